package viewsql

import (
	"fmt"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// approx_count_distinct (and Trino's approx_distinct) is kept as a
// HyperLogLog sketch written in plain SQL, so the executor, the speed layer
// and serving run it with no extension or UDF, and a sketch written to
// Parquet today merges with one computed years later.
//
// A value's sketch entry comes from the 128-bit md5 of its text: the top
// sketchPrecision bits pick one of sketchRegisters registers and the rank is
// one plus the number of trailing zeros of the low sketchRankBits bits. md5
// rather than DuckDB's hash(): hash() is about five times faster, but DuckDB
// does not promise it stays the same across versions, and sketches persisted
// in batch files must hash exactly like new ones or every value would count
// twice after an upgrade. The text of a value is the engine's cast to
// VARCHAR, which for integers, strings, dates and timestamps is fixed by their
// ISO/decimal forms; doubles are normalised (-0.0 to 0.0, every NaN to 'nan')
// so that they count like count(DISTINCT ...) does, and their text (DuckDB's
// shortest round-trip form) is the one place a future engine could differ.
// Timestamps with a time zone hash their epoch, not their zone-dependent text.
//
// A sketch is stored as an INTEGER[] of register<<6 | rank, one entry per
// non-empty register, ascending: a sparse form, so a group of ten values
// stores ten integers and a saturated one 4096 (16 KiB before Parquet's
// compression). Merging is register-wise max, which is associative and
// commutative, so a merged sketch is identical to the sketch of all rows at
// once and so is its estimate. The estimate is Ertl's improved raw estimator
// ("New cardinality estimation algorithms for HyperLogLog sketches", 2017),
// which has no switch-over between linear counting and the raw HLL estimate
// and so none of the bias the classic estimator has around 2.5m; at small
// cardinalities it equals linear counting, so counts up to a few dozen come
// out exact unless two values share a register.
const (
	sketchPrecision = 12
	sketchRegisters = 1 << sketchPrecision // standard error 1.04/sqrt(4096) = 1.6%
	// sketchRankBits are the hash bits a rank is counted in: with the
	// index, 64 bits of md5's 128, as in a 64-bit HyperLogLog.
	sketchRankBits = 64 - sketchPrecision
	sketchSQLType  = "INTEGER[]"
)

// SketchStandardError is the relative standard error of approx_distinct.
const SketchStandardError = 1.04 / 64 // 1.04/sqrt(sketchRegisters)

// Placeholders the sketch templates are parsed with, replaced by the
// aggregate's argument and FILTER condition in the AST.
const (
	sketchArgPlaceholder    = "__duet_arg"
	sketchFilterPlaceholder = "__duet_filter"
)

// approxFunctions are the names a view may call approximate distinct
// counting by; DuckDB knows only the first.
var approxFunctions = map[string]bool{"approx_count_distinct": true, "approx_distinct": true}

// renameApproxDistinct makes Trino's approx_distinct DuckDB's
// approx_count_distinct throughout a parsed statement, so binding the view
// as written works and the rest of the analysis sees one name.
func renameApproxDistinct(v any) {
	walkExprs(v, func(n node) bool {
		if funcName(n) == "approx_distinct" && str(n, "schema") == "" && str(n, "catalog") == "" {
			n["function_name"] = "approx_count_distinct"
		}
		return true
	})
}

// sketchSource is the input of one approx_distinct partial column.
type sketchSource struct {
	arg    node // the aggregate's argument
	filter node // its FILTER condition, nil when none
	// merge is set when arg is an upstream view's sketch column: the
	// partial merges sketches instead of hashing values.
	merge bool
	// argType is the engine type of arg (hashed sketches only).
	argType string
}

// canonicalText renders a value of type typ as the text its hash is taken of.
func canonicalText(typ string) string {
	a := sketchArgPlaceholder
	switch typ {
	case "VARCHAR":
		return a
	case "DOUBLE", "FLOAT", "REAL":
		return fmt.Sprintf("CASE WHEN isnan(%[1]s) THEN 'nan' ELSE CAST(%[1]s + 0.0 AS VARCHAR) END", a)
	case "TIMESTAMP WITH TIME ZONE":
		// Its text follows the session's TimeZone, which engines may not share.
		return "CAST(epoch_us(" + a + ") AS VARCHAR)"
	}
	return "CAST(" + a + " AS VARCHAR)"
}

// sketchTemplate is the partial aggregate of one sketch column as SQL over
// the placeholders: an ascending list of register<<6|rank entries, possibly
// several per register, which compactSketch reduces.
func sketchTemplate(s sketchSource) string {
	if s.merge {
		if s.filter != nil {
			return fmt.Sprintf("list_sort(flatten(list(%s) FILTER (WHERE %s)))", sketchArgPlaceholder, sketchFilterPlaceholder)
		}
		return fmt.Sprintf("list_sort(flatten(list(%s)))", sketchArgPlaceholder)
	}
	h := "md5_number(" + canonicalText(s.argType) + ")"
	low := fmt.Sprintf("(CAST(%s & CAST(%d AS UHUGEINT) AS BIGINT) | %d)", h, uint64(1)<<sketchRankBits-1, uint64(1)<<sketchRankBits)
	// low has a bit set above the rank bits, so it is never 0 and
	// low xor (low - 1) has exactly trailing zeros + 1 bits set.
	entry := fmt.Sprintf("(CAST(%s >> %d AS INTEGER) << 6) | CAST(bit_count(xor(%s, %s - 1)) AS INTEGER)", h, 128-sketchPrecision, low, low)
	cond := sketchArgPlaceholder + " IS NOT NULL"
	if s.filter != nil {
		cond = "(" + sketchFilterPlaceholder + ") AND " + cond
	}
	return fmt.Sprintf("list_sort(list(DISTINCT %s) FILTER (WHERE %s))", entry, cond)
}

// compactSketch keeps the highest rank of each register of q, an ascending
// list (the highest rank of a register is its last entry), and makes an
// absent sketch empty, so every stored sketch is canonical: equal register
// contents give equal lists.
func compactSketch(q string) string {
	return fmt.Sprintf("coalesce(list_filter(%[1]s, lambda __x, __i: __i = len(%[1]s) OR (%[1]s[__i + 1] >> 6) <> (__x >> 6)), CAST([] AS %[2]s))", q, sketchSQLType)
}

// estimateSketch is the cardinality estimate of the compact sketch q as a
// BIGINT: Ertl's improved raw estimator
//
//	alpha_inf * m^2 / (m * sigma(C0/m) + sum over non-empty registers of 2^-rank)
//
// with C0 the empty registers, sigma(x) = x + sum_k>=1 x^(2^k) 2^(k-1) (32
// terms: x <= 1 - 1/m, so later terms vanish) and alpha_inf = 1/(2 ln 2). The
// sum of 2^-rank is taken exactly, in integers, so the estimate depends on
// the registers only. A register of rank sketchRankBits+1 (all rank bits zero,
// chance 2^-52 per value) is counted as 2^-53 rather than through Ertl's tau
// term; the difference is far below a double's precision.
func estimateSketch(q string) string {
	m := sketchRegisters
	x := fmt.Sprintf("(CAST(%d - len(%s) AS DOUBLE) / %d)", m, q, m)
	sigma := fmt.Sprintf("(%[1]s + list_sum(list_transform(range(1, 33), lambda __k: pow(%[1]s, pow(2, __k)) * pow(2, __k - 1))))", x)
	ranks := fmt.Sprintf("CAST(list_sum(list_transform(%s, lambda __x: CAST(1 AS BIGINT) << (%d - (__x & 63)))) AS DOUBLE) / %d",
		q, sketchRankBits+1, uint64(1)<<(sketchRankBits+1))
	return fmt.Sprintf("CAST(CASE WHEN len(%[1]s) = 0 THEN 0 ELSE round(%.17g / (%d * %s + %s)) END AS BIGINT)",
		q, 0.7213475204444817*float64(m)*float64(m), m, sigma, ranks)
}

// buildSketches sets the partial expression of every sketch column of ap:
// one engine call binds the hashed arguments' types, one parses the
// templates, and the AST then gets the user's argument and FILTER spliced in.
func (a *analysis) buildSketches(ap *aggPlan) error {
	var idx []int
	for i, pc := range ap.parts {
		if pc.role == roleSketch {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	if err := a.sketchArgTypes(ap, idx); err != nil {
		return err
	}
	texts := make([]string, len(idx))
	for j, i := range idx {
		texts[j] = sketchTemplate(*ap.parts[i].sketch)
	}
	doc, err := serialize(a.ctx, a.q, "SELECT "+strings.Join(texts, ", ")+" FROM t")
	if err != nil {
		return fmt.Errorf("parse sketch templates: %w", err)
	}
	sel := obj(list(doc, "statements")[0].(node), "node")
	items := list(sel, "select_list")
	if len(items) != len(idx) {
		return fmt.Errorf("sketch templates parsed into %d expressions, want %d", len(items), len(idx))
	}
	for j, i := range idx {
		pc := &ap.parts[i]
		repl := map[string]node{sketchArgPlaceholder: pc.sketch.arg}
		if pc.sketch.filter != nil {
			repl[sketchFilterPlaceholder] = pc.sketch.filter
		}
		e := substitute(items[j], repl).(node)
		e["alias"] = pc.name
		pc.expr = e
	}
	return nil
}

// sketchArgTypes binds the arguments of hashed sketch columns over the
// empty relation to learn their types.
func (a *analysis) sketchArgTypes(ap *aggPlan, idx []int) error {
	var args []any
	var hashed []*sketchSource
	for _, i := range idx {
		if s := ap.parts[i].sketch; !s.merge {
			arg := copyNode(s.arg)
			arg["alias"] = fmt.Sprintf("__a%d", len(args))
			args, hashed = append(args, arg), append(hashed, s)
		}
	}
	if len(args) == 0 {
		return nil
	}
	sel := copyNode(a.view)
	sel["select_list"], sel["group_expressions"], sel["group_sets"] = args, []any{}, []any{}
	sel["aggregate_handling"], sel["modifiers"] = "STANDARD_HANDLING", []any{}
	head, tail, err := a.split(sel)
	if err != nil {
		return err
	}
	cols, err := describe(a.ctx, a.q, head+a.empty+tail)
	if err != nil {
		return err
	}
	if len(cols) != len(hashed) {
		return fmt.Errorf("approx_distinct arguments bind to %d columns, want %d", len(cols), len(hashed))
	}
	for i, c := range cols {
		hashed[i].argType = c.Type
	}
	return nil
}

// substitute returns a copy of v with every plain reference to a column
// named like a key of repl replaced by a copy of its node.
func substitute(v any, repl map[string]node) any {
	switch t := v.(type) {
	case map[string]any:
		if name := columnRefName(t); name != "" && len(list(t, "column_names")) == 1 {
			if r, ok := repl[name]; ok {
				c := copyNode(r)
				c["alias"] = ""
				return c
			}
		}
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = substitute(x, repl)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = substitute(x, repl)
		}
		return c
	}
	return v
}

// emptyRelation is a relation of no rows with the given columns, for
// binding forms over columns that are not dataset types (sketches).
func emptyRelation(cols []Column) string {
	items := make([]string, len(cols))
	for i, c := range cols {
		items[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, dataset.QuoteIdent(c.Name))
	}
	return "(SELECT " + strings.Join(items, ", ") + " WHERE false)"
}
