package sqlgateway

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Checking a SELECT (checkReadOnly: DuckDB's json_serialize_sql, its JSON
// decoded and walked for the sandbox and the rewrites) costs about as much
// as running a dashboard's query on a materialized view: a quarter of the
// server's CPU per query. Dashboards and BI tools send the same statement
// text over and over with other literals (a time window, a filter value),
// so the gateway remembers what the check found per statement shape: the
// text with every string and number literal blanked out. A statement of a
// known shape skips the check and gets the same rewrites.
//
// That is sound because literals never decide the verdict or the rewrites:
// DuckDB's grammar builds the same tree whatever a literal's value, and
// the sandbox and the rewrites look only at names (relations, functions,
// CTEs), never at constants. The exceptions are kept out of the cache: a
// string literal used as a relation (FROM 'file.parquet' reads a file),
// and any text whose literal boundaries the gateway's lexer might see
// otherwise than DuckDB's (escapes, dollar quoting, comments, prefixed
// strings, numbers run into names).

// maxShapeText bounds the statements whose shapes are kept: a dashboard's
// are far shorter, and it bounds the cache's memory with maxShapes.
const (
	maxShapeText = 8 << 10
	maxShapes    = 512
)

// shapeCache maps statement shapes, per user and session schema (the
// sandbox's inputs besides the tree), to what their check found. When full
// it starts over: shapes are few, and a workload of ever-new ones gains
// nothing from keeping old ones.
type shapeCache struct {
	mu sync.Mutex
	m  map[shapeKey]*checkedShape

	hits, misses prometheus.Counter
}

type shapeKey struct {
	shape, user, schema string
}

// checkedShape is what checking a statement of the shape found.
type checkedShape struct {
	nulls []bool
	edits []tokenSplice
}

// tokenSplice is a splice anchored to tokens, so that it applies to every
// text of the shape: it replaces from the start of token from to the start
// (toStart) or the end of token to.
type tokenSplice struct {
	from, to int
	toStart  bool
	with     string
}

func newShapeCache(reg prometheus.Registerer) (*shapeCache, error) {
	c := &shapeCache{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_sqlgateway_shape_cache_hits_total",
			Help: "SELECT statements admitted without asking the engine to parse them: a statement of the same shape (other literals) was checked before.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_sqlgateway_shape_cache_misses_total",
			Help: "SELECT statements of a shape not yet checked, so parsed by the engine for the check.",
		}),
	}
	if reg != nil {
		for _, m := range []prometheus.Collector{c.hits, c.misses} {
			if err := reg.Register(m); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *shapeCache) get(k shapeKey) *checkedShape {
	c.mu.Lock()
	cs := c.m[k]
	c.mu.Unlock()
	if cs == nil {
		c.misses.Inc()
	} else {
		c.hits.Inc()
	}
	return cs
}

func (c *shapeCache) put(k shapeKey, cs *checkedShape) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxShapes {
		c.m = map[shapeKey]*checkedShape{}
	}
	c.m[k] = cs
}

// statementShape is text with its literals blanked out, and false when the
// text cannot be cached: too long, or holding something whose literal
// boundaries DuckDB's lexer could draw elsewhere than lex does.
func statementShape(text string, toks []token) (string, bool) {
	if len(text) > maxShapeText || strings.ContainsAny(text, `\$`) ||
		strings.Contains(text, "--") || strings.Contains(text, "/*") {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, t := range toks {
		if t.kind != tokString && t.kind != tokNumber {
			continue
		}
		// E'...', X'...', U&'...' and the like escape or encode their
		// contents; 0x1F, 1e5x and 1.2.3 lex otherwise in DuckDB.
		if t.start > 0 && (isIdentPart(text[t.start-1]) || text[t.start-1] == '&' || text[t.start-1] == '.') ||
			t.end < len(text) && (isIdentPart(text[t.end]) || text[t.end] == '.' || text[t.end] == '\'') ||
			t.kind == tokNumber && strings.Count(text[t.start:t.end], ".") > 1 {
			return "", false
		}
		b.WriteString(text[last:t.start])
		// NUL never occurs in a statement (run refuses it), so a blanked
		// literal cannot match any other text.
		if t.kind == tokString {
			b.WriteString("\x00s")
		} else {
			b.WriteString("\x00n")
		}
		last = t.end
	}
	b.WriteString(text[last:])
	return b.String(), true
}

// newCheckedShape records a check's findings for the statement's shape, or
// reports false when they could depend on its literals: a relation named
// by a literal, or a rewrite not anchored to names.
// starts is tokenStarts(toks).
func newCheckedShape(nulls []bool, edits []splice, toks []token, starts map[int]int, tree any) (*checkedShape, bool) {
	ends := make(map[int]int, len(toks))
	for i, t := range toks {
		ends[t.end] = i
	}
	if !relationsNamed(tree, toks, starts) {
		return nil, false
	}
	named := func(i int) bool { return toks[i].kind == tokWord || toks[i].kind == tokQuoted }
	cs := &checkedShape{nulls: nulls}
	for _, e := range edits {
		from, ok := starts[e.start]
		if !ok || !named(from) {
			return nil, false
		}
		ts := tokenSplice{from: from, with: e.with}
		if e.end == e.start {
			ts.to, ts.toStart = from, true
		} else if ts.to, ok = ends[e.end]; !ok || !named(ts.to) {
			return nil, false
		}
		cs.edits = append(cs.edits, ts)
	}
	return cs, true
}

// relationsNamed reports whether every relation in the tree is named by an
// identifier, not a string literal.
func relationsNamed(tree any, toks []token, starts map[int]int) bool {
	switch n := tree.(type) {
	case map[string]any:
		if n["type"] == "BASE_TABLE" {
			num, _ := n["query_location"].(json.Number)
			loc, err := num.Int64()
			i, ok := starts[int(loc)]
			if err != nil || !ok || toks[i].kind != tokWord && toks[i].kind != tokQuoted {
				return false
			}
		}
		for _, v := range n {
			if !relationsNamed(v, toks, starts) {
				return false
			}
		}
	case []any:
		for _, v := range n {
			if !relationsNamed(v, toks, starts) {
				return false
			}
		}
	}
	return true
}

// splices are the shape's edits placed in a text of that shape.
func (cs *checkedShape) splices(toks []token) []splice {
	out := make([]splice, len(cs.edits))
	for i, e := range cs.edits {
		end := toks[e.to].end
		if e.toStart {
			end = toks[e.to].start
		}
		out[i] = splice{toks[e.from].start, end, e.with}
	}
	return out
}
