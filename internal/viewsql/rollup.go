package viewsql

import (
	"fmt"
	"slices"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// A rollup is an aggregate view's rows merged over fewer keys: the partial
// rows of the view grouped by a subset of its visible keys, each aggregate
// merged as the final form merges it (counts and sums add, min of mins, max
// of maxes, avg from its sum and count, approx_distinct from its sketches),
// so the answer equals the view's SQL grouped by those keys only.

// VisibleKeys are the view's output columns that are grouping keys, in
// output order (none for projections and global aggregates).
func (p *Plan) VisibleKeys() []string {
	var out []string
	for _, c := range p.Columns {
		if p.Kind == Aggregate && p.roles[strings.ToLower(c.Name)] == roleKey {
			out = append(out, c.Name)
		}
	}
	return out
}

// rollupOut is how one output column of the view is computed from partial
// rows, or ok false for a name that is not one.
func (p *Plan) rollupOut(name string) (outCol, bool) {
	for _, c := range p.Columns {
		if !strings.EqualFold(c.Name, name) {
			continue
		}
		if r, ok := p.roles[strings.ToLower(c.Name)]; ok {
			return outCol{name: c.Name, role: r, parts: []string{c.Name}}, true
		}
		if p.roles[strings.ToLower(c.Name+"__sum")] == roleAvgSum {
			return outCol{name: c.Name, role: roleAvgSum, parts: []string{c.Name + "__sum", c.Name + "__count"}}, true
		}
	}
	return outCol{}, false
}

// RowExpr is the SQL computing the view's output column name from one row
// of the combine form (CombineSQL, one partial row per key, which is one
// row of the view): what a filter on the view's rows compares. ok is false
// when the view has no such column or is not an aggregate view.
func (p *Plan) RowExpr(name string) (expr string, ok bool) {
	if p.Kind != Aggregate {
		return "", false
	}
	o, ok := p.rollupOut(name)
	if !ok {
		return "", false
	}
	q := dataset.QuoteIdent(o.name)
	switch o.role {
	case roleAvgSum:
		s, c := dataset.QuoteIdent(o.parts[0]), dataset.QuoteIdent(o.parts[1])
		return fmt.Sprintf("CAST(%s / nullif(%s, 0) AS DOUBLE)", s, c), true
	case roleSketch:
		return estimateSketch(q), true
	}
	return q, true
}

// RollupSQL is a SELECT of the view's columns except the keys not in keys,
// in the view's order, one row per distinct value of keys, merged from
// partials: a relation expression (without an alias) of partial rows, or of
// combined rows (one per key), which merge the same way. keys must be
// visible keys of an aggregate view; the error names the first that is not.
func (p *Plan) RollupSQL(partials string, keys []string) (string, []Column, error) {
	if p.Kind != Aggregate {
		return "", nil, fmt.Errorf("the view is a projection: it has no keys to roll up")
	}
	visible := p.VisibleKeys()
	keep := map[string]bool{}
	for _, k := range keys {
		i := slices.IndexFunc(visible, func(v string) bool { return strings.EqualFold(v, k) })
		if i < 0 {
			return "", nil, fmt.Errorf("%q is not a key of the view (its keys: %s)", k, strings.Join(visible, ", "))
		}
		keep[strings.ToLower(visible[i])] = true
	}
	types := map[string]string{}
	for _, c := range p.Partial {
		types[strings.ToLower(c.Name)] = c.Type
	}
	// A plan of the same aggregates whose only keys are the kept ones: its
	// final form is the rollup.
	ap := &aggPlan{}
	var cols []Column
	for _, c := range p.Columns {
		o, _ := p.rollupOut(c.Name)
		if o.role == roleKey && !keep[strings.ToLower(c.Name)] {
			continue
		}
		cols = append(cols, c)
		ap.out = append(ap.out, o)
		for _, part := range o.parts {
			r := o.role
			if part != o.parts[0] {
				r = roleAvgCount
			}
			ap.parts = append(ap.parts, partCol{name: part, role: r, typ: types[strings.ToLower(part)]})
		}
	}
	head, tail := ap.finalSQL()
	return head + partials + " AS " + dataset.QuoteIdent(partialAlias) + tail, cols, nil
}
