package speedlayer_test

// A property-based test of duet's invariant: after every step of a random
// interleaving of ingest (late, out-of-order, duplicate and NULL-laden
// events in batches of every size), archiving, incremental and full
// builds, backfills, rollbacks, restarts and compactions, every view's
// merged answer equals DuckDB computing the view's SQL from scratch over
// every accepted row, and raw.<dataset> holds exactly those rows. Each run
// draws its own dataset (columns of every type) and views (every supported
// aggregate, FILTER, GROUP BY keys and time buckets, plain projections,
// rollups over views) from a small grammar.
//
// CI runs 2000 steps from a fixed seed. Longer runs:
//
//	go test -tags duckdb_arrow -count=1 -timeout 0 -run TestPropertyMergedEqualsRecomputation ./speedlayer/ \
//	    -args -property.steps=20000 -property.seed=7
//
// (or DUET_PROPERTY_STEPS / DUET_PROPERTY_SEED). A failure prints the run's
// seed, dataset, views and every step so far, and the command that replays
// it. Replays are exact up to the background loop, which archives sealed
// segments concurrently with the steps (on purpose: queries must be exact
// at every moment, not only between steps).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/speedlayer"
)

var (
	propertySteps    = flag.Int("property.steps", 0, "total steps of TestPropertyMergedEqualsRecomputation (default 2000, or $DUET_PROPERTY_STEPS)")
	propertySeed     = flag.Uint64("property.seed", 0, "seed of the first run, run i uses seed+i (default 1, or $DUET_PROPERTY_SEED)")
	propertyRunSteps = flag.Int("property.runsteps", 100, "steps per run; each run has its own dataset, views and data directory")
)

const defaultPropertySteps = 2000

func propertySettings(t *testing.T) (steps int, seed uint64) {
	steps, seed = defaultPropertySteps, 1
	if s := os.Getenv("DUET_PROPERTY_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DUET_PROPERTY_STEPS=%q: want a positive number", s)
		}
		steps = n
	}
	if s := os.Getenv("DUET_PROPERTY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DUET_PROPERTY_SEED=%q: want a number", s)
		}
		seed = n
	}
	if *propertySteps > 0 {
		steps = *propertySteps
	}
	if *propertySeed > 0 {
		seed = *propertySeed
	}
	return steps, seed
}

// propertyStats are counted over every run of the test.
type propertyStats struct {
	mu                 sync.Mutex
	generated, refused int
	refusals           map[string]int
	ops                map[string]int
	opTime             map[string]time.Duration
	checkTime          time.Duration
	rows               int
	// approx counts approx_distinct values checked; approxSlack those off
	// by more than four standard errors (but at most two: tiny counts).
	approx, approxSlack int
	// materialized counts view checks that read a materialized answer.
	materialized, viewChecks int
}

func TestPropertyMergedEqualsRecomputation(t *testing.T) {
	steps, seed := propertySettings(t)
	runSteps := max(*propertyRunSteps, 1)
	stats := &propertyStats{refusals: map[string]int{}, ops: map[string]int{}, opTime: map[string]time.Duration{}}
	start := time.Now()
	// Runs are independent (each has its own data directory and a
	// one-thread engine), so they run side by side.
	t.Run("runs", func(t *testing.T) {
		for done, run := 0, uint64(0); done < steps; run++ {
			n := min(runSteps, steps-done)
			s := seed + run
			t.Run(fmt.Sprint("seed", s), func(t *testing.T) {
				t.Parallel()
				runProperty(t, s, n, stats)
			})
			done += n
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d steps from seed %d in %s (checks %s); %d rows accepted", steps, seed, time.Since(start).Round(time.Millisecond),
		stats.checkTime.Round(time.Millisecond), stats.rows)
	ops := make([]string, 0, len(stats.ops))
	for op := range stats.ops {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		t.Logf("  %-12s %5d steps, %s", op, stats.ops[op], stats.opTime[op].Round(time.Millisecond))
	}
	t.Logf("views: %d generated, %d refused by the analyser; %d approx_distinct values checked, %d off by more than 4 standard errors (by at most 2)",
		stats.generated, stats.refused, stats.approx, stats.approxSlack)
	for msg, c := range stats.refusals {
		t.Logf("  refused %d×: %s", c, msg)
	}
	t.Logf("%d of %d view checks read a materialized answer", stats.materialized, stats.viewChecks)
	if steps >= 500 && stats.materialized == 0 {
		t.Fatalf("no view check read a materialized answer; the test would not cover materialization")
	}
	// The generator must keep producing views duet maintains, or the test
	// would quietly test less.
	if stats.generated >= 10 && 2*stats.refused > stats.generated {
		t.Fatalf("the analyser refused %d of %d generated views; fix the generator", stats.refused, stats.generated)
	}
}

var propertyBase = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

const propertyDays = 5

// ---- datasets ----

// colGen draws a column's values.
type colGen struct {
	name  string
	typ   dataset.Type
	nulls float64 // chance of NULL
	card  int     // how many distinct values are drawn from
	nan   bool    // doubles: now and then NaN
	time  bool    // the time column
}

var varcharPool = []string{"a", "b", "it's", "é", "", "B", "a b", "z"}

func (c *colGen) value(rnd *rand.Rand) any {
	if c.nulls > 0 && rnd.Float64() < c.nulls {
		return nil
	}
	return c.literalValue(rnd)
}

// literalValue is a value of the column's domain, never NULL.
func (c *colGen) literalValue(rnd *rand.Rand) any {
	switch c.typ {
	case dataset.Bigint:
		return int64(rnd.IntN(c.card) - c.card/4)
	case dataset.Integer:
		return int32(rnd.IntN(c.card) - c.card/4)
	case dataset.Double:
		if c.nan && rnd.IntN(100) == 0 {
			return math.NaN()
		}
		// Eighths of small integers: their sums are exact in any order,
		// so sums must be equal, not merely close.
		return float64(rnd.IntN(8*c.card)-2*c.card) / 8
	case dataset.Varchar:
		i := rnd.IntN(c.card)
		if i < len(varcharPool) {
			return varcharPool[i]
		}
		return fmt.Sprintf("u%d", i)
	case dataset.Boolean:
		return rnd.IntN(2) == 0
	case dataset.Date:
		return propertyBase.AddDate(0, 0, rnd.IntN(min(c.card, 40))-10)
	case dataset.Timestamp:
		if c.time {
			return propertyBase.Add(time.Duration(rnd.Int64N(int64(propertyDays * 24 * time.Hour))))
		}
		return propertyBase.Add(time.Duration(rnd.IntN(c.card)) * (37*time.Minute + 123457*time.Microsecond))
	}
	panic("unknown type " + c.typ)
}

type propDataset struct {
	spec  dataset.Spec
	cols  []*colGen // in spec order
	dedup int       // position of the dedup key, -1 without one
}

var columnTypes = []dataset.Type{dataset.Bigint, dataset.Integer, dataset.Double, dataset.Varchar, dataset.Boolean, dataset.Date, dataset.Timestamp}

func genDataset(rnd *rand.Rand) *propDataset {
	d := &propDataset{dedup: -1}
	d.cols = append(d.cols, &colGen{name: "ts", typ: dataset.Timestamp, time: true})
	n := 2 + rnd.IntN(5)
	for i := range n {
		// Every run has a number and a string to aggregate and group by.
		typ := columnTypes[rnd.IntN(len(columnTypes))]
		switch i {
		case 0:
			typ = []dataset.Type{dataset.Bigint, dataset.Integer, dataset.Double}[rnd.IntN(3)]
		case 1:
			typ = dataset.Varchar
		}
		c := &colGen{name: fmt.Sprintf("c%d", i+1), typ: typ, card: []int{3, 6, 12, 60, 1000}[rnd.IntN(5)]}
		if rnd.IntN(4) != 0 {
			c.nulls = []float64{0.02, 0.1, 0.3}[rnd.IntN(3)]
		}
		c.nan = typ == dataset.Double && rnd.IntN(4) == 0
		d.cols = append(d.cols, c)
	}
	// Columns are in random order, the time column anywhere.
	rnd.Shuffle(len(d.cols), func(i, j int) { d.cols[i], d.cols[j] = d.cols[j], d.cols[i] })
	d.spec = dataset.Spec{Name: fmt.Sprintf("ds%d", rnd.IntN(100)), TimeColumn: "ts"}
	for _, c := range d.cols {
		d.spec.Columns = append(d.spec.Columns, dataset.Column{Name: c.name, Type: c.typ})
	}
	if rnd.IntN(3) == 0 {
		var keys []int
		for i, c := range d.cols {
			if c.typ == dataset.Varchar || c.typ == dataset.Bigint || c.typ == dataset.Integer {
				keys = append(keys, i)
			}
		}
		if len(keys) > 0 {
			d.dedup = keys[rnd.IntN(len(keys))]
			c := d.cols[d.dedup]
			// Mostly fresh keys; producer retries and reused keys repeat them.
			c.card, c.nulls = 1_000_000, min(c.nulls, 0.02)
			d.spec.DedupKey = c.name
			// The whole test runs inside one window: a key, once
			// accepted, keeps every later duplicate out.
			d.spec.DedupWindow = dataset.Duration(dataset.MaxDedupWindow)
		}
	}
	return d
}

func (d *propDataset) col(name string) *colGen {
	for _, c := range d.cols {
		if c.name == name {
			return c
		}
	}
	return nil
}

// ---- views ----

// item is one select item of a generated view.
type item struct {
	alias string // "" for a plain column reference kept under its name
	// expr is a key or projection expression; {name} stands for a column
	// of what the view reads.
	expr string
	typ  dataset.Type
	gen  *colGen // draws literals for conditions over this output
	// Aggregates: fn as written, role as merged, arg ({name} template;
	// the condition of count_if; "" for count(*)) and FILTER condition.
	fn, role, arg, filter string
	// over is the upstream aggregate a rollup aggregate merges.
	over *item
}

func (it *item) name() string {
	if it.alias != "" {
		return it.alias
	}
	return strings.Trim(it.expr, "{}")
}

func (it *item) isAgg() bool { return it.role != "" }

type viewKind int

const (
	kindAggregate viewKind = iota
	kindProjection
	kindDistinct
)

const (
	groupExprs = iota
	groupPositions
	groupAll
	groupAliases
)

type viewDef struct {
	name string
	// qualified views name their columns as "<dataset>"."<column>".
	qualified bool
	up        *viewDef // the view it reads; nil for the dataset
	kind      viewKind
	star      bool
	items     []*item
	hidden    []string // GROUP BY expressions not selected
	where     string
	groupBy   int
}

func (v *viewDef) hasKeys() bool {
	for _, it := range v.items {
		if !it.isAgg() {
			return true
		}
	}
	return len(v.hidden) > 0
}

// vcol is a column a generated view can read: a dataset column or an
// upstream view's output.
type vcol struct {
	name string
	typ  dataset.Type
	gen  *colGen
}

var placeholderRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func render(tmpl string, sub func(string) string) string {
	return placeholderRe.ReplaceAllStringFunc(tmpl, func(m string) string { return sub(m[1 : len(m)-1]) })
}

func quoted(name string) string { return dataset.QuoteIdent(name) }

func sqlLiteral(typ dataset.Type, v any) string {
	if v == nil {
		return "NULL"
	}
	switch typ {
	case dataset.Double:
		return "CAST('" + strconv.FormatFloat(v.(float64), 'g', -1, 64) + "' AS DOUBLE)"
	case dataset.Varchar:
		return dataset.QuoteString(v.(string))
	case dataset.Date:
		return "DATE '" + v.(time.Time).Format(time.DateOnly) + "'"
	case dataset.Timestamp:
		return "TIMESTAMP '" + v.(time.Time).Format("2006-01-02 15:04:05.000000") + "'"
	}
	return fmt.Sprint(v)
}

func pick[T any](rnd *rand.Rand, xs []T) T { return xs[rnd.IntN(len(xs))] }

func isNumber(t dataset.Type) bool {
	return t == dataset.Bigint || t == dataset.Integer || t == dataset.Double
}

func isInt(t dataset.Type) bool { return t == dataset.Bigint || t == dataset.Integer }

// genCond is a condition over cols.
func genCond(rnd *rand.Rand, cols []vcol, depth int) string {
	if depth < 2 {
		switch rnd.IntN(10) {
		case 0, 1:
			op := pick(rnd, []string{"AND", "OR"})
			return "(" + genCond(rnd, cols, depth+1) + ") " + op + " (" + genCond(rnd, cols, depth+1) + ")"
		case 2:
			return "NOT (" + genCond(rnd, cols, depth+1) + ")"
		}
	}
	c := pick(rnd, cols)
	ref := "{" + c.name + "}"
	if rnd.IntN(7) == 0 {
		return ref + pick(rnd, []string{" IS NULL", " IS NOT NULL"})
	}
	lit := func() string { return sqlLiteral(c.gen.typ, c.gen.literalValue(rnd)) }
	cmp := pick(rnd, []string{" > ", " >= ", " < ", " <= ", " = ", " <> "})
	switch c.typ {
	case dataset.Bigint, dataset.Integer:
		if rnd.IntN(4) == 0 {
			return ref + " % 2 = 0"
		}
		return ref + cmp + lit()
	case dataset.Varchar:
		switch rnd.IntN(4) {
		case 0:
			return ref + " IN (" + lit() + ", " + lit() + ")"
		case 1:
			return ref + " LIKE 'u1%'"
		}
		return ref + pick(rnd, []string{" = ", " <> ", " < "}) + lit()
	case dataset.Boolean:
		return pick(rnd, []string{ref, "NOT " + ref})
	case dataset.Timestamp:
		if rnd.IntN(3) == 0 {
			return "hour(" + ref + ") < 12"
		}
	}
	return ref + cmp + lit()
}

// keyCandidate is a GROUP BY expression over cols with its type.
func keyCandidates(rnd *rand.Rand, cols []vcol) []item {
	var out []item
	for _, c := range cols {
		ref := "{" + c.name + "}"
		switch {
		case c.gen != nil && c.gen.time:
			unit := pick(rnd, []string{"hour", "day", "minute", "month"})
			dayGen := &colGen{typ: dataset.Date, card: 40}
			out = append(out,
				item{expr: "date_trunc('" + unit + "', " + ref + ")", typ: dataset.Timestamp, gen: c.gen},
				item{expr: "CAST(" + ref + " AS DATE)", typ: dataset.Date, gen: dayGen})
			if rnd.IntN(4) == 0 {
				out = append(out, item{expr: ref, typ: c.typ, gen: c.gen})
			}
			continue
		case c.typ == dataset.Timestamp:
			out = append(out, item{expr: "date_trunc('day', " + ref + ")", typ: dataset.Timestamp, gen: c.gen})
		case isInt(c.typ):
			out = append(out, item{expr: "(" + ref + " % 3)", typ: c.typ, gen: &colGen{typ: c.typ, card: 3}})
		case c.typ == dataset.Varchar:
			out = append(out, item{expr: "upper(" + ref + ")", typ: dataset.Varchar, gen: c.gen})
		case c.typ == dataset.Double:
			out = append(out, item{expr: "(" + ref + " > 3.5)", typ: dataset.Boolean, gen: &colGen{typ: dataset.Boolean}})
		}
		if c.gen == nil || c.gen.card <= 12 || c.typ == dataset.Boolean || rnd.IntN(5) == 0 {
			out = append(out, item{expr: ref, typ: c.typ, gen: c.gen})
		}
	}
	return out
}

// genAggregates adds 1-5 aggregates over cols to v.
func genAggregates(rnd *rand.Rand, v *viewDef, cols []vcol, exactOnly bool) {
	var numbers []vcol
	for _, c := range cols {
		if isNumber(c.typ) {
			numbers = append(numbers, c)
		}
	}
	n := 1 + rnd.IntN(5)
	for range n {
		it := &item{typ: dataset.Bigint}
		c := pick(rnd, cols)
		ref := "{" + c.name + "}"
		roles := []string{"count_star", "count", "min", "max", "count_if", "sum", "sum", "avg", "approx"}
		if exactOnly {
			roles = roles[:6]
		}
		switch role := pick(rnd, roles); role {
		case "count_star":
			it.fn, it.role = "count", "count"
		case "count":
			it.fn, it.role, it.arg = "count", "count", ref
		case "min", "max":
			it.fn, it.role, it.arg, it.typ, it.gen = role, role, ref, c.typ, c.gen
		case "count_if":
			it.fn, it.role, it.arg = pick(rnd, []string{"count_if", "countif"}), "sum", genCond(rnd, cols, 1)
		case "sum", "avg":
			if len(numbers) == 0 {
				it.fn, it.role = "count", "count"
				break
			}
			x := pick(rnd, numbers)
			it.fn, it.role, it.arg, it.typ = role, role, "{"+x.name+"}", x.typ
			if rnd.IntN(5) == 0 {
				it.arg = "{" + x.name + "} * 2"
			}
			if role == "avg" {
				it.typ = dataset.Double
				if rnd.IntN(4) == 0 {
					it.fn = "mean"
				}
			}
		case "approx":
			it.fn, it.role, it.arg = pick(rnd, []string{"approx_distinct", "approx_count_distinct"}), "approx", ref
			if c.typ == dataset.Varchar && rnd.IntN(3) == 0 {
				it.arg = "upper(" + ref + ")"
			}
		}
		if rnd.IntN(4) == 0 {
			it.filter = genCond(rnd, cols, 1)
		}
		v.items = append(v.items, it)
	}
}

// genAggregate is a GROUP BY (or global) aggregate view over cols.
func genAggregate(rnd *rand.Rand, v *viewDef, cols []vcol) {
	v.kind = kindAggregate
	cands := keyCandidates(rnd, cols)
	rnd.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	nkeys := min(len(cands), pick(rnd, []int{0, 1, 1, 1, 2, 2, 3}))
	used := map[string]bool{}
	var keys []*item
	for _, k := range cands[:nkeys] {
		if used[k.expr] {
			continue
		}
		used[k.expr] = true
		k := k
		keys = append(keys, &k)
	}
	// A hidden key (grouped by, not selected) makes output rows repeat
	// their visible keys; the comparison is then a multiset of exact
	// values, so such views aggregate exactly only.
	if len(keys) > 0 && len(cands) > nkeys && rnd.IntN(6) == 0 && !used[cands[nkeys].expr] {
		v.hidden = append(v.hidden, cands[nkeys].expr)
	}
	genAggregates(rnd, v, cols, len(v.hidden) > 0)
	for i, k := range keys {
		if k.expr != "{"+strings.Trim(k.expr, "{}")+"}" || rnd.IntN(2) == 0 {
			k.alias = fmt.Sprintf("k%d", i+1)
		}
	}
	for i, it := range v.items {
		it.alias = fmt.Sprintf("a%d", i+1)
	}
	// Keys first or interleaved with the aggregates.
	for _, k := range keys {
		at := 0
		if rnd.IntN(3) == 0 {
			at = rnd.IntN(len(v.items) + 1)
		}
		v.items = slices.Insert(v.items, at, k)
	}
	if rnd.IntN(3) == 0 {
		v.where = genCond(rnd, cols, 0)
	}
	v.qualified = rnd.IntN(6) == 0
	switch {
	case len(keys) == 0 || len(v.hidden) > 0:
		v.groupBy = groupExprs
	default:
		v.groupBy = pick(rnd, []int{groupExprs, groupExprs, groupPositions, groupAll, groupAliases})
	}
}

// genProjection is a filter/projection view over the dataset (or SELECT
// DISTINCT, which merges like a GROUP BY over every column).
func genProjection(rnd *rand.Rand, v *viewDef, d *propDataset) {
	v.kind = kindProjection
	cols := d.vcols()
	if rnd.IntN(3) != 0 {
		v.where = genCond(rnd, cols, 0)
	}
	v.qualified = rnd.IntN(6) == 0
	if rnd.IntN(5) == 0 {
		v.star = true
		return
	}
	if rnd.IntN(8) == 0 {
		v.kind = kindDistinct
		for _, c := range cols {
			if !c.gen.time && (c.gen.card <= 12 || c.typ == dataset.Boolean) && rnd.IntN(2) == 0 {
				v.items = append(v.items, &item{expr: "{" + c.name + "}", typ: c.typ, gen: c.gen})
			}
		}
		if len(v.items) == 0 {
			v.items = append(v.items, &item{expr: "CAST({ts} AS DATE)", alias: "day", typ: dataset.Date, gen: &colGen{typ: dataset.Date, card: 40}})
		}
		return
	}
	if rnd.IntN(5) != 0 {
		v.items = append(v.items, &item{expr: "{ts}", typ: dataset.Timestamp, gen: d.col("ts")})
	}
	for _, c := range cols {
		if c.gen.time || rnd.IntN(2) == 0 {
			continue
		}
		ref := "{" + c.name + "}"
		it := &item{expr: ref, typ: c.typ, gen: c.gen}
		if rnd.IntN(3) == 0 {
			switch {
			case isNumber(c.typ):
				// (An integer minus 0.5 is a DECIMAL, which a view over
				// this one could not read.)
				it.expr = ref + pick(rnd, []string{" * 2", " + 1"})
				if c.typ == dataset.Double && rnd.IntN(2) == 0 {
					it.expr = ref + " - 0.5"
				}
			case c.typ == dataset.Varchar:
				it.expr = pick(rnd, []string{"upper(" + ref + ")", "coalesce(" + ref + ", 'none')"})
			case c.typ == dataset.Timestamp:
				it.expr, it.typ = "CAST("+ref+" AS DATE)", dataset.Date
				it.gen = &colGen{typ: dataset.Date, card: 40}
			}
			if it.expr != ref {
				it.alias = fmt.Sprintf("e%d", len(v.items)+1)
			}
		}
		v.items = append(v.items, it)
	}
	if len(v.items) == 0 {
		v.items = append(v.items, &item{expr: "{ts}", typ: dataset.Timestamp, gen: d.col("ts")})
	}
}

// genRollup is a view over up: over an aggregate view, a rollup of its
// keys merging its aggregates; over a projection, any aggregate of it.
func genRollup(rnd *rand.Rand, v *viewDef, up *viewDef, d *propDataset) {
	v.up = up
	cols := up.outputs(d)
	if up.kind == kindProjection {
		genAggregate(rnd, v, cols)
		return
	}
	v.kind = kindAggregate
	var keys []vcol
	for _, it := range up.items {
		if !it.isAgg() {
			keys = append(keys, vcol{name: it.name(), typ: it.typ, gen: it.gen})
		}
	}
	var selected []*item
	for i, k := range keys {
		if rnd.IntN(2) == 0 {
			continue
		}
		it := &item{expr: "{" + k.name + "}", typ: k.typ, gen: k.gen, alias: fmt.Sprintf("r%d", i+1)}
		if k.typ == dataset.Timestamp && rnd.IntN(2) == 0 {
			it.expr = "date_trunc('day', {" + k.name + "})"
		}
		selected = append(selected, it)
	}
	for _, u := range up.items {
		if !u.isAgg() || u.role == "avg" || rnd.IntN(4) == 0 {
			continue
		}
		it := &item{over: u, arg: "{" + u.name() + "}", typ: u.typ, gen: u.gen}
		switch u.role {
		case "count", "sum":
			it.fn, it.role = "sum", u.role
		case "min", "max":
			it.fn, it.role = u.role, u.role
		case "approx":
			it.fn, it.role = pick(rnd, []string{"approx_distinct", "approx_count_distinct"}), "approx"
		}
		if rnd.IntN(4) == 0 && len(keys) > 0 {
			it.filter = genCond(rnd, keys, 1)
		}
		v.items = append(v.items, it)
	}
	if len(keys) > 0 && rnd.IntN(4) == 0 {
		k := pick(rnd, keys)
		v.items = append(v.items, &item{fn: "approx_distinct", role: "approx", arg: "{" + k.name + "}", typ: dataset.Bigint})
	}
	for i, it := range v.items {
		it.alias = fmt.Sprintf("a%d", i+1)
	}
	v.items = append(selected, v.items...)
	if len(v.items) == 0 {
		// Nothing to merge: group by a key alone (count(*) would count
		// the upstream's groups, which a view over it cannot keep exact).
		v.items = []*item{{expr: "{" + keys[0].name + "}", typ: keys[0].typ, gen: keys[0].gen, alias: "r1"}}
	}
	if len(keys) > 0 && rnd.IntN(3) == 0 {
		v.where = genCond(rnd, keys, 1)
	}
	v.groupBy = groupExprs
}

func (d *propDataset) vcols() []vcol {
	out := make([]vcol, len(d.cols))
	for i, c := range d.cols {
		out[i] = vcol{name: c.name, typ: c.typ, gen: c}
	}
	return out
}

// outputs are the columns a view over v reads.
func (v *viewDef) outputs(d *propDataset) []vcol {
	if v.star {
		return d.vcols()
	}
	out := make([]vcol, len(v.items))
	for i, it := range v.items {
		out[i] = vcol{name: it.name(), typ: it.typ, gen: it.gen}
	}
	return out
}

func (v *viewDef) aggText(it *item, sub func(string) string) string {
	call := it.fn + "(*)"
	if it.arg != "" {
		call = it.fn + "(" + render(it.arg, sub) + ")"
	}
	if it.filter != "" {
		call += " FILTER (WHERE " + render(it.filter, sub) + ")"
	}
	return call
}

// SQL is the view as created.
func (v *viewDef) SQL(ds string) string {
	from, qualifier := quoted(ds), quoted(ds)
	if v.up != nil {
		from, qualifier = "views."+quoted(v.up.name), quoted(v.up.name)
	}
	col := quoted
	if v.qualified {
		col = func(name string) string { return qualifier + "." + quoted(name) }
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	if v.kind == kindDistinct {
		b.WriteString("DISTINCT ")
	}
	if v.star {
		b.WriteString("*")
	}
	for i, it := range v.items {
		if i > 0 {
			b.WriteString(", ")
		}
		if it.isAgg() {
			b.WriteString(v.aggText(it, col) + " AS " + quoted(it.alias))
			continue
		}
		b.WriteString(render(it.expr, col))
		if it.alias != "" {
			b.WriteString(" AS " + quoted(it.alias))
		}
	}
	b.WriteString(" FROM " + from)
	if v.where != "" {
		b.WriteString(" WHERE " + render(v.where, col))
	}
	if v.kind == kindAggregate && v.hasKeys() {
		var groups []string
		switch v.groupBy {
		case groupAll:
			groups = []string{"ALL"}
		case groupPositions:
			for i, it := range v.items {
				if !it.isAgg() {
					groups = append(groups, strconv.Itoa(i+1))
				}
			}
		case groupAliases:
			for _, it := range v.items {
				if !it.isAgg() {
					groups = append(groups, quoted(it.name()))
				}
			}
		default:
			for _, it := range v.items {
				if !it.isAgg() {
					groups = append(groups, render(it.expr, col))
				}
			}
			for _, h := range v.hidden {
				groups = append(groups, render(h, col))
			}
		}
		b.WriteString(" GROUP BY " + strings.Join(groups, ", "))
	}
	return b.String()
}

// refSub renders a column this view reads as an expression over the
// dataset's columns.
func (v *viewDef) refSub() func(string) string {
	if v.up == nil || v.up.star {
		return quoted
	}
	return func(name string) string {
		for _, it := range v.up.items {
			if !it.isAgg() && it.name() == name {
				return "(" + render(it.expr, quoted) + ")"
			}
		}
		panic("view " + v.name + " reads no column " + name + " of " + v.up.name)
	}
}

func conj(conds ...string) string {
	var out []string
	for _, c := range conds {
		if c != "" {
			out = append(out, "("+c+")")
		}
	}
	return strings.Join(out, " AND ")
}

// refAgg is an aggregate computed from scratch over the dataset, with
// count(DISTINCT ...) for approx_distinct (the exact count it estimates).
func (v *viewDef) refAgg(it *item, sub func(string) string) string {
	if it.over == nil {
		var call string
		switch {
		case it.role == "approx":
			call = "count(DISTINCT " + render(it.arg, sub) + ")"
		case it.arg == "":
			call = "count(*)"
		default:
			call = it.fn + "(" + render(it.arg, sub) + ")"
		}
		if it.filter != "" {
			call += " FILTER (WHERE " + render(it.filter, sub) + ")"
		}
		return call
	}
	// A rollup merges the upstream aggregate u over the upstream groups
	// its FILTER keeps: u over their rows, with both filters.
	u := *it.over
	rf := ""
	if it.filter != "" {
		rf = render(it.filter, sub)
	}
	u.filter = conj(rf, render(u.filter, quoted))
	call := v.up.refAgg(&u, quoted)
	if u.role == "count" {
		// sum() of counts over no upstream group is NULL, not 0: in a
		// group its FILTER empties, or in a global rollup of no groups.
		none := "count(*)"
		if rf != "" {
			none += " FILTER (WHERE " + rf + ")"
		}
		call = "CASE WHEN " + none + " = 0 THEN NULL ELSE " + call + " END"
	}
	return call
}

// RefSQL computes the view from scratch over table, which holds the
// dataset's rows; approx_distinct columns are exact distinct counts.
func (v *viewDef) RefSQL(table, ds string) string {
	sub := v.refSub()
	where := render(v.where, sub)
	if v.up != nil {
		where = conj(render(v.up.where, quoted), where)
	}
	var items, groups []string
	if v.star {
		items = []string{"*"}
	}
	for _, it := range v.items {
		if it.isAgg() {
			items = append(items, v.refAgg(it, sub)+" AS "+quoted(it.name()))
			continue
		}
		e := render(it.expr, sub)
		items = append(items, e+" AS "+quoted(it.name()))
		groups = append(groups, e)
	}
	for _, h := range v.hidden {
		groups = append(groups, render(h, sub))
	}
	q := "SELECT "
	if v.kind == kindDistinct {
		q += "DISTINCT "
	}
	q += strings.Join(items, ", ") + " FROM " + table + " AS " + quoted(ds)
	if where != "" {
		q += " WHERE " + where
	}
	if v.kind == kindAggregate && len(groups) > 0 {
		q += " GROUP BY " + strings.Join(groups, ", ")
	}
	return q
}

// colClass says how an output column is compared.
type colClass int

const (
	classKey colClass = iota
	classExact
	classAvg
	classApprox
)

func (v *viewDef) classes(d *propDataset) []colClass {
	if v.star {
		return make([]colClass, len(d.cols))
	}
	out := make([]colClass, len(v.items))
	for i, it := range v.items {
		switch {
		case !it.isAgg():
			out[i] = classKey
		case it.role == "avg":
			out[i] = classAvg
		case it.role == "approx":
			out[i] = classApprox
		default:
			out[i] = classExact
		}
	}
	return out
}

func (v *viewDef) hasApprox() bool {
	for _, it := range v.items {
		if it.role == "approx" {
			return true
		}
	}
	return false
}

// ---- the run ----

type propRun struct {
	t     *testing.T
	ctx   context.Context
	seed  uint64
	steps int
	rnd   *rand.Rand
	stats *propertyStats

	d    *propDataset
	dir  string
	opts lambdatest.Options
	// viewCache is the layer's ViewCacheRows: some versions are read from
	// an engine copy, others from their files, or all of one kind.
	viewCache int64
	// materializeAfter is the layer's MaterializeAfter (0: never).
	materializeAfter time.Duration
	n                *lambdatest.Node

	views   []*viewDef // created
	later   []*viewDef // created at a later step
	nextID  int
	history []string

	// Answers computed from scratch, which change only when rows are
	// accepted: the fingerprint of the accepted rows, and per view its
	// recomputation and its from-scratch sketch estimates.
	expectedPrint string
	refs          map[string][2][][]any

	accepted [][]any   // stored rows in offset order
	batches  [][][]any // every batch sent, for retries
	keys     map[any]bool
	now      time.Time // event time moves forward; late events lag it
	advance  time.Duration
}

func (s *propertyStats) add(o *propertyStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generated += o.generated
	s.refused += o.refused
	for k, v := range o.refusals {
		s.refusals[k] += v
	}
	for k, v := range o.ops {
		s.ops[k] += v
	}
	for k, v := range o.opTime {
		s.opTime[k] += v
	}
	s.checkTime += o.checkTime
	s.rows += o.rows
	s.approx += o.approx
	s.approxSlack += o.approxSlack
	s.materialized += o.materialized
	s.viewChecks += o.viewChecks
}

func runProperty(t *testing.T, seed uint64, steps int, total *propertyStats) {
	stats := &propertyStats{refusals: map[string]int{}, ops: map[string]int{}, opTime: map[string]time.Duration{}}
	defer total.add(stats)
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	r := &propRun{t: t, ctx: context.Background(), seed: seed, steps: steps, rnd: rnd, stats: stats,
		d: genDataset(rnd), dir: dataDir(t), keys: map[any]bool{}, now: propertyBase.Add(time.Hour)}
	// Event time crosses all days over the run's ingests.
	r.advance = propertyDays * 24 * time.Hour / time.Duration(max(steps*2/5, 1))
	keep := 2 + rnd.IntN(4)
	grace := []time.Duration{10 * time.Minute, time.Millisecond}[rnd.IntN(2)]
	// One engine thread: runs go side by side, and two threads each would
	// spend their time waking each other for queries of a few thousand rows.
	r.opts = lambdatest.Options{Spec: &r.d.spec, SegmentRecords: r.segmentRecords(), Threads: 1,
		Batch: batchlayer.Config{KeepVersions: keep, GCGrace: grace, ExecutorThreads: 1}}
	r.chooseSpeedConfig()
	r.n = lambdatest.Start(t, r.dir, r.opts)
	defer func() { r.n.Stop() }()
	r.resetExpected()
	r.history = append(r.history, fmt.Sprintf("start: segments of %d records, keep %d versions, gc grace %s, %s", r.opts.SegmentRecords, keep, grace, r.speedConfigText()))

	for range 2 + rnd.IntN(3) {
		v := r.genView()
		if rnd.IntN(5) == 0 {
			r.later = append(r.later, v)
			continue
		}
		r.create(v)
	}
	for step := range steps {
		op, desc := r.step(step)
		r.history = append(r.history, fmt.Sprintf("%d %s: %s", step, op, desc))
		start := time.Now()
		r.check(step)
		stats.checkTime += time.Since(start)
	}
	stats.rows += len(r.accepted)
}

// dataDir is a new directory on tmpfs where the machine has one. The log,
// the catalog and uploads fsync, which on a disk takes longer than the rest
// of a step; restarts here are clean stops, for which fsync does not matter.
func dataDir(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "duet-property-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func (r *propRun) segmentRecords() int64 { return int64(pick(r.rnd, []int{15, 50, 200, 1000})) }

// genView draws a view over the dataset or, sometimes, over a created view.
func (r *propRun) genView() *viewDef {
	r.nextID++
	v := &viewDef{name: fmt.Sprintf("v%d", r.nextID)}
	var ups []*viewDef
	for _, u := range r.views {
		if u.up == nil && u.kind != kindDistinct && (u.kind == kindProjection || len(u.hidden) == 0 && u.hasKeys()) {
			ups = append(ups, u)
		}
	}
	switch p := r.rnd.IntN(10); {
	case p < 2 && len(ups) > 0:
		genRollup(r.rnd, v, pick(r.rnd, ups), r.d)
	case p < 4:
		genProjection(r.rnd, v, r.d)
	default:
		genAggregate(r.rnd, v, r.d.vcols())
	}
	return v
}

// create creates v as the server does, counting the views the analyser
// refuses (they are dropped).
func (r *propRun) create(v *viewDef) bool {
	r.stats.generated++
	sqlText := v.SQL(r.d.spec.Name)
	err := r.n.CreateView(r.ctx, v.name, sqlText)
	var verr *viewsql.Error
	switch {
	case errors.As(err, &verr):
		r.stats.refused++
		r.stats.refusals[verr.Msg]++
		r.t.Logf("refused %s: %s\n\t%s", v.name, verr.Msg, sqlText)
		return false
	case err != nil:
		r.fail("create view %s (%s): %v", v.name, sqlText, err)
	}
	r.views = append(r.views, v)
	r.history = append(r.history, fmt.Sprintf("create view %s: %s", v.name, sqlText))
	return true
}

func (r *propRun) fail(format string, args ...any) {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nseed %d (replay: go test -tags duckdb_arrow -count=1 -run 'TestPropertyMergedEqualsRecomputation' ./speedlayer/ -args -property.seed=%d -property.steps=%d -property.runsteps=%d)\n",
		fmt.Sprintf(format, args...), r.seed, r.seed, r.steps, r.steps)
	fmt.Fprintf(&b, "dataset %s: time column %s, dedup key %q\n", r.d.spec.Name, r.d.spec.TimeColumn, r.d.spec.DedupKey)
	for _, c := range r.d.cols {
		fmt.Fprintf(&b, "  %s %s (nulls %.2f, %d values)\n", c.name, c.typ, c.nulls, c.card)
	}
	b.WriteString("history:\n")
	for _, h := range r.history {
		b.WriteString("  " + h + "\n")
	}
	r.t.Fatal(b.String())
}

// step runs one random operation.
func (r *propRun) step(step int) (op, desc string) {
	start := time.Now()
	defer func() {
		r.stats.ops[op]++
		r.stats.opTime[op] += time.Since(start)
	}()
	ctx := r.ctx
	p := r.rnd.IntN(100)
	if p >= 94 && len(r.later) > 0 {
		v := r.later[0]
		r.later = r.later[1:]
		if r.create(v) {
			return "view", "created " + v.name
		}
		return "view", "refused " + v.name
	}
	if len(r.views) == 0 {
		p %= 40
	}
	view := func() *viewDef { return pick(r.rnd, r.views) }
	switch {
	case p < 42:
		return "ingest", r.ingest(r.freshBatch())
	case p < 46:
		if len(r.batches) == 0 {
			return "ingest", r.ingest(r.freshBatch())
		}
		i := r.rnd.IntN(len(r.batches))
		return "retry", fmt.Sprintf("batch %d again: %s", i, r.ingest(r.batches[i]))
	case p < 52:
		if err := r.n.Layer.Flush(ctx, r.d.spec.Name); err != nil {
			r.fail("step %d: flush: %v", step, err)
		}
		return "flush", "archived every sealed segment"
	case p < 63:
		v := view()
		full := r.rnd.IntN(4) == 0
		got, err := r.n.Builder.Build(ctx, batchlayer.Request{JobID: fmt.Sprintf("b%d", step), View: v.name, Full: full})
		if errors.Is(err, batchlayer.ErrUpToDate) {
			return "build", fmt.Sprintf("%s (full=%v): up to date", v.name, full)
		}
		if err != nil {
			r.fail("step %d: build %s: %v", step, v.name, err)
		}
		if got.Covered != int64(len(r.accepted)) {
			r.fail("step %d: build of %s covered %d records, want all %d accepted", step, v.name, got.Covered, len(r.accepted))
		}
		return "build", fmt.Sprintf("%s (full=%v) -> %s v%d covering %d", v.name, full, got.Meta.Kind, got.Version, got.Covered)
	case p < 68:
		v := view()
		from := propertyBase.AddDate(0, 0, r.rnd.IntN(propertyDays+2)-1)
		to := from.AddDate(0, 0, r.rnd.IntN(3))
		got, err := r.n.Builder.Build(ctx, batchlayer.Request{JobID: fmt.Sprintf("b%d", step), View: v.name,
			From: from.Format(time.DateOnly), To: to.Format(time.DateOnly)})
		days := from.Format(time.DateOnly) + ".." + to.Format(time.DateOnly)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "no version yet") || strings.Contains(msg, "no day-aligned time key") {
				return "backfill", fmt.Sprintf("%s %s: %v", v.name, days, err)
			}
			r.fail("step %d: backfill %s %s: %v", step, v.name, days, err)
		}
		return "backfill", fmt.Sprintf("%s %s -> v%d covering %d", v.name, days, got.Version, got.Covered)
	case p < 76:
		v := view()
		versions, err := r.n.Cat.ListVersions(ctx, v.name)
		if err != nil {
			r.fail("step %d: versions of %s: %v", step, v.name, err)
		}
		cur, err := r.n.Cat.CurrentVersion(ctx, v.name)
		if errors.Is(err, catalog.ErrNotFound) {
			return "rollback", v.name + ": no version yet"
		} else if err != nil {
			r.fail("step %d: current version of %s: %v", step, v.name, err)
		}
		var older, others []catalog.ViewVersion
		for _, vv := range versions {
			if vv.Version < cur.Version {
				older = append(older, vv)
			}
			if vv.Version != cur.Version {
				others = append(others, vv)
			}
		}
		// Mostly back to an older version; now and then forward again.
		if len(older) == 0 || r.rnd.IntN(5) == 0 {
			older = others
		}
		if len(older) == 0 {
			return "rollback", v.name + ": only one version"
		}
		to := pick(r.rnd, older)
		if _, err := r.n.Builder.Rollback(ctx, v.name, to.Version); err != nil {
			r.fail("step %d: roll %s back to v%d: %v", step, v.name, to.Version, err)
		}
		return "rollback", fmt.Sprintf("%s from v%d to v%d (covering %d)", v.name, cur.Version, to.Version, to.Covered)
	case p < 79:
		merged, err := r.n.Builder.Compact(ctx, fmt.Sprintf("c%d", step), r.d.spec.Name, &r.n.Spec, "")
		if err != nil {
			r.fail("step %d: compaction: %v", step, err)
		}
		return "compact", fmt.Sprintf("merged %d files", merged)
	case p < 81:
		r.n.Stop()
		r.opts.SegmentRecords = r.segmentRecords()
		r.chooseSpeedConfig()
		r.n = lambdatest.Start(r.t, r.dir, r.opts)
		r.resetExpected()
		return "restart", fmt.Sprintf("segments of %d records, %s", r.opts.SegmentRecords, r.speedConfigText())
	case p < 85:
		// Let the background loop archive sealed segments while queries run.
		d := time.Duration(2+r.rnd.IntN(15)) * time.Millisecond
		time.Sleep(d)
		return "pause", d.String()
	default:
		return "ingest", r.ingest(r.freshBatch())
	}
}

// eventTime is mostly a little before the moving present, sometimes late
// by days, ahead of it, or on a day boundary.
func (r *propRun) eventTime() time.Time {
	rnd := r.rnd
	switch p := rnd.IntN(100); {
	case p < 3:
		d := propertyBase.AddDate(0, 0, rnd.IntN(propertyDays+1))
		if rnd.IntN(2) == 0 {
			return d.Add(-time.Microsecond)
		}
		return d
	case p < 23:
		return propertyBase.Add(time.Duration(rnd.Int64N(int64(r.now.Sub(propertyBase)) + 1)))
	case p < 26:
		return r.now.Add(time.Duration(rnd.Int64N(int64(12 * time.Hour))))
	}
	return r.now.Add(-time.Duration(rnd.Int64N(int64(2 * time.Hour))))
}

func (r *propRun) freshBatch() [][]any {
	rnd := r.rnd
	var n int
	// No empty batches: ingest refuses requests without rows before they
	// reach the layer.
	switch p := rnd.IntN(100); {
	case p < 60:
		n = 1 + rnd.IntN(10)
	case p < 95:
		n = 10 + rnd.IntN(50)
	default:
		n = 100 + rnd.IntN(200)
	}
	r.now = r.now.Add(time.Duration(rnd.Int64N(int64(2*r.advance) + 1)))
	rows := make([][]any, 0, n)
	for range n {
		switch p := rnd.IntN(100); {
		case p < 6 && len(r.batches) > 0:
			// An exact copy of an earlier event.
			b := pick(rnd, r.batches)
			if len(b) > 0 {
				rows = append(rows, slices.Clone(pick(rnd, b)))
				continue
			}
		case p < 9 && len(rows) > 0:
			rows = append(rows, slices.Clone(pick(rnd, rows)))
			continue
		}
		row := make([]any, len(r.d.cols))
		for i, c := range r.d.cols {
			if c.time {
				row[i] = r.eventTime()
			} else {
				row[i] = c.value(rnd)
			}
		}
		// A new event reusing an earlier event's dedup key.
		if r.d.dedup >= 0 && rnd.IntN(20) == 0 && len(r.accepted) > 0 {
			row[r.d.dedup] = pick(rnd, r.accepted)[r.d.dedup]
		}
		rows = append(rows, row)
	}
	r.batches = append(r.batches, rows)
	return rows
}

// ingest sends rows and records what the dataset must have stored.
func (r *propRun) ingest(rows [][]any) string {
	stored := rows
	if r.d.dedup >= 0 {
		stored = nil
		for _, row := range rows {
			k := row[r.d.dedup]
			if k != nil {
				if r.keys[k] {
					continue
				}
				r.keys[k] = true
			}
			stored = append(stored, row)
		}
	}
	rec := buildRecord(&r.d.spec, rows)
	first, err := r.n.Layer.Ingest(r.ctx, r.d.spec.Name, rec)
	rec.Release()
	if err != nil {
		r.fail("ingest %d rows: %v", len(rows), err)
	}
	switch {
	case len(stored) > 0 && first != int64(len(r.accepted)):
		r.fail("ingest of %d rows (%d new) stored them from offset %d, want %d", len(rows), len(stored), first, len(r.accepted))
	case len(stored) == 0 && len(rows) > 0 && first != -1:
		r.fail("ingest of %d duplicates answered offset %d, want -1 (nothing stored)", len(rows), first)
	}
	r.accepted = append(r.accepted, stored...)
	r.insertExpected(stored)
	if len(stored) > 0 {
		r.expectedPrint, r.refs = "", nil
	}
	late := 0
	for _, row := range rows {
		if row[r.d.spec.TimeIndex()].(time.Time).Before(r.now.Add(-2 * time.Hour)) {
			late++
		}
	}
	return fmt.Sprintf("%d rows (%d stored, %d late), now %s", len(rows), len(stored), late, r.now.Format("01-02 15:04"))
}

func buildRecord(spec *dataset.Spec, rows [][]any) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, spec.ArrowSchema())
	defer b.Release()
	for _, row := range rows {
		for i, v := range row {
			f := b.Field(i)
			if v == nil {
				f.AppendNull()
				continue
			}
			switch f := f.(type) {
			case *array.Int64Builder:
				f.Append(v.(int64))
			case *array.Int32Builder:
				f.Append(v.(int32))
			case *array.Float64Builder:
				f.Append(v.(float64))
			case *array.StringBuilder:
				f.Append(v.(string))
			case *array.BooleanBuilder:
				f.Append(v.(bool))
			case *array.Date32Builder:
				f.Append(arrow.Date32FromTime(v.(time.Time)))
			case *array.TimestampBuilder:
				f.Append(arrow.Timestamp(v.(time.Time).UnixMicro()))
			default:
				panic(fmt.Sprintf("column %d: builder %T", i, f))
			}
		}
	}
	return b.NewRecordBatch()
}

// ---- the invariant ----

const expectedTable = "memory.main.expected"

// resetExpected loads every accepted row into the node's engine, where the
// views are recomputed from scratch.
func (r *propRun) resetExpected() {
	cols := make([]string, len(r.d.cols))
	for i, c := range r.d.cols {
		cols[i] = quoted(c.name) + " " + c.typ.DuckDBType()
	}
	if _, err := r.n.DB.ExecContext(r.ctx, "CREATE OR REPLACE TABLE "+expectedTable+" ("+strings.Join(cols, ", ")+")"); err != nil {
		r.t.Fatal(err)
	}
	r.insertExpected(r.accepted)
}

func (r *propRun) insertExpected(rows [][]any) {
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), 500)]
		rows = rows[len(chunk):]
		vals := make([]string, len(chunk))
		for i, row := range chunk {
			lits := make([]string, len(row))
			for j, v := range row {
				lits[j] = sqlLiteral(r.d.cols[j].typ, v)
			}
			vals[i] = "(" + strings.Join(lits, ", ") + ")"
		}
		if _, err := r.n.DB.ExecContext(r.ctx, "INSERT INTO "+expectedTable+" VALUES "+strings.Join(vals, ", ")); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *propRun) query(q string) [][]any {
	r.t.Helper()
	rows, err := r.n.DB.QueryContext(r.ctx, q)
	if err != nil {
		r.fail("query %s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		r.fail("query %s: %v", q, err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			r.fail("query %s: %v", q, err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		r.fail("query %s: %v", q, err)
	}
	return out
}

// valueText renders a value so that equal values of the engine types a
// view and its recomputation may differ in (BIGINT and HUGEINT, say) read
// the same.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.999999")
	case *big.Int:
		return x.String()
	case string:
		return strconv.Quote(x)
	case []byte:
		return strconv.Quote(string(x))
	}
	return fmt.Sprint(v)
}

func rowText(row []any) string {
	parts := make([]string, len(row))
	for i, v := range row {
		parts[i] = valueText(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	}
	return 0, false
}

// check asserts the invariant for raw.<dataset> and every view.
func (r *propRun) check(step int) {
	r.t.Helper()
	ds := r.d.spec.Name
	cols := make([]string, len(r.d.cols))
	for i, c := range r.d.cols {
		cols[i] = quoted(c.name)
	}
	list := strings.Join(cols, ", ")
	want := "SELECT " + list + " FROM " + expectedTable
	got := "SELECT " + list + " FROM raw." + quoted(ds)
	// An order-independent fingerprint of the multiset is cheap; the
	// difference itself is computed only when they disagree.
	fingerprint := func(from string) string {
		rows := r.query(fmt.Sprintf("SELECT count(*), sum(hash(%s)::HUGEINT) FROM %s", list, from))
		return rowText(rows[0])
	}
	if r.expectedPrint == "" {
		r.expectedPrint = fingerprint(expectedTable)
	}
	var diff [][]any
	if r.expectedPrint != fingerprint("raw."+quoted(ds)) {
		diff = r.query(fmt.Sprintf("SELECT * FROM ((%[1]s EXCEPT ALL %[2]s) UNION ALL (%[2]s EXCEPT ALL %[1]s)) LIMIT 5", want, got))
		if len(diff) == 0 {
			r.fail("step %d: raw.%s and the %d accepted rows have different fingerprints but no different rows", step, ds, len(r.accepted))
		}
	}
	if len(diff) > 0 {
		var s []string
		for _, row := range diff {
			s = append(s, rowText(row))
		}
		r.fail("step %d: raw.%s differs from the %d accepted rows, e.g. %s", step, ds, len(r.accepted), strings.Join(s, " "))
	}
	for _, v := range r.views {
		r.checkView(step, v)
	}
}

func (r *propRun) checkView(step int, v *viewDef) {
	r.t.Helper()
	classes := v.classes(r.d)
	r.stats.viewChecks++
	// Only the background loop changes a view's form between steps, and
	// only into a materialized one: read before the query, the status
	// says the answer came from final rows.
	if st, err := r.n.Layer.ViewStatus(v.name, time.Now()); err != nil {
		r.fail("step %d: status of %s: %v", step, v.name, err)
	} else if st.Materialized {
		r.stats.materialized++
	}
	merged := r.query("SELECT * FROM views." + quoted(v.name))

	if r.refs == nil {
		r.refs = map[string][2][][]any{}
	}
	cached, ok := r.refs[v.name]
	if !ok {
		cached[0] = r.query(v.RefSQL(expectedTable, r.d.spec.Name))
		if v.hasApprox() {
			plan, err := r.n.Layer.Plan(v.name)
			if err != nil {
				r.fail("plan of %s: %v", v.name, err)
			}
			// The estimates of a sketch over every accepted row at once.
			cached[1] = r.query(plan.FinalSQL("(" + plan.PartialSQL(expectedTable) + ")"))
		}
		r.refs[v.name] = cached
	}
	ref := cached[0]
	failf := func(format string, args ...any) {
		r.t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "step %d: view %s (%s) over %d accepted rows: %s\n", step, v.name, v.SQL(r.d.spec.Name), len(r.accepted), fmt.Sprintf(format, args...))
		fmt.Fprintf(&b, "recomputed as: %s\n", v.RefSQL(expectedTable, r.d.spec.Name))
		for i, row := range merged {
			if i == 40 {
				fmt.Fprintf(&b, "  ... %d merged rows\n", len(merged))
				break
			}
			fmt.Fprintf(&b, "  merged     %s\n", rowText(row))
		}
		for i, row := range ref {
			if i == 40 {
				fmt.Fprintf(&b, "  ... %d recomputed rows\n", len(ref))
				break
			}
			fmt.Fprintf(&b, "  recomputed %s\n", rowText(row))
		}
		r.fail("%s", b.String())
	}
	if len(merged) > 0 && len(merged[0]) != len(classes) {
		failf("%d merged columns, want %d", len(merged[0]), len(classes))
	}
	// Projections, DISTINCT views and views with a hidden key hold only
	// keys and exact values, and compare as multisets.
	if v.kind != kindAggregate || len(v.hidden) > 0 {
		if d := multisetDiff(sortedTexts(merged), sortedTexts(ref)); d != "" {
			failf("%d merged rows, %d recomputed; %s", len(merged), len(ref), d)
		}
		return
	}
	if len(merged) != len(ref) {
		failf("%d merged rows, want %d", len(merged), len(ref))
	}
	// Aggregate rows pair up by their keys.
	keyOf := func(row []any) string {
		var parts []string
		for i, c := range classes {
			if c == classKey {
				parts = append(parts, valueText(row[i]))
			}
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	index := func(rows [][]any, what string) map[string][]any {
		m := make(map[string][]any, len(rows))
		for _, row := range rows {
			k := keyOf(row)
			if _, dup := m[k]; dup {
				failf("%s rows repeat the key %s", what, k)
			}
			m[k] = row
		}
		return m
	}
	mi, ri := index(merged, "merged"), index(ref, "recomputed")
	var sketch map[string][]any
	if v.hasApprox() {
		sketch = index(cached[1], "from-scratch sketch")
	}
	for k, want := range ri {
		got, ok := mi[k]
		if !ok {
			failf("no merged row for %s (recomputed %s)", k, rowText(want))
		}
		for i, c := range classes {
			switch c {
			case classKey, classExact:
				if valueText(got[i]) != valueText(want[i]) {
					failf("column %d of %s: merged %s, recomputed %s", i+1, k, valueText(got[i]), valueText(want[i]))
				}
			case classAvg:
				if !closeEnough(got[i], want[i]) {
					failf("avg column %d of %s: merged %s, recomputed %s", i+1, k, valueText(got[i]), valueText(want[i]))
				}
			case classApprox:
				s, ok := sketch[k]
				if !ok {
					failf("approx_distinct column %d of %s: no row for it in the sketch of every accepted row", i+1, k)
				}
				if valueText(s[i]) != valueText(got[i]) {
					failf("approx_distinct column %d of %s: merged %s, the sketch of every accepted row gives %s", i+1, k, valueText(got[i]), valueText(s[i]))
				}
				est, _ := toFloat(got[i])
				exact, _ := toFloat(want[i])
				// Four standard errors; below a few dozen values, where
				// that is under one, the error is values sharing a
				// register, and two are allowed.
				off := math.Abs(est - exact)
				if bound := max(4*viewsql.SketchStandardError*exact, 2); off > bound {
					failf("approx_distinct column %d of %s: estimate %v for %v distinct values, off by more than %.1f", i+1, k, est, exact, bound)
				}
				r.stats.approx++
				if off > 4*viewsql.SketchStandardError*exact {
					r.stats.approxSlack++
				}
			}
		}
	}
}

func sortedTexts(rows [][]any) []string {
	out := make([]string, len(rows))
	for i, row := range rows {
		out[i] = rowText(row)
	}
	sort.Strings(out)
	return out
}

// multisetDiff names a few rows only one side has.
func multisetDiff(got, want []string) string {
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	for _, w := range want {
		count[w]--
	}
	var extra, missing []string
	for row, c := range count {
		switch {
		case c > 0 && len(extra) < 5:
			extra = append(extra, fmt.Sprintf("%d× %s", c, row))
		case c < 0 && len(missing) < 5:
			missing = append(missing, fmt.Sprintf("%d× %s", -c, row))
		}
	}
	if len(extra)+len(missing) == 0 {
		return ""
	}
	sort.Strings(extra)
	sort.Strings(missing)
	return fmt.Sprintf("merged only: %v; recomputed only: %v", extra, missing)
}

// closeEnough compares averages to 1e-9 relative (NULLs and NaNs equal).
func closeEnough(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	x, ok1 := toFloat(a)
	y, ok2 := toFloat(b)
	if !ok1 || !ok2 {
		return false
	}
	if math.IsNaN(x) || math.IsNaN(y) {
		return math.IsNaN(x) && math.IsNaN(y)
	}
	return math.Abs(x-y) <= 1e-9*max(math.Abs(x), math.Abs(y))
}

// chooseSpeedConfig draws how the speed layer serves views until the next
// restart: how large a batch version it copies into the engine, and
// whether idle views are materialized (after a millisecond: between most
// steps, since the background loop ticks every few).
func (r *propRun) chooseSpeedConfig() {
	r.viewCache = []int64{0, 40, 1_000_000}[r.rnd.IntN(3)]
	r.materializeAfter = []time.Duration{0, time.Millisecond}[r.rnd.IntN(2)]
	rows, after := r.viewCache, r.materializeAfter
	r.opts.Speed = func(c *speedlayer.Config) { c.ViewCacheRows, c.MaterializeAfter = rows, after }
}

func (r *propRun) speedConfigText() string {
	return fmt.Sprintf("versions of up to %d rows copied into the engine, idle views materialized after %s", r.viewCache, r.materializeAfter)
}
