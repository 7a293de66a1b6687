package viewsql

import (
	"fmt"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// role is what a partial column holds, which decides how it merges.
type role int

const (
	roleKey       role = iota // a visible grouping key
	roleHiddenKey             // a GROUP BY expression the view does not output
	roleCount                 // count(*), count(x): merged by sum, 0 over no rows
	roleSum
	roleMin
	roleMax
	roleAvgSum   // avg's sum(x), as DOUBLE
	roleAvgCount // avg's count(x)
	roleSketch   // approx_count_distinct(x): a HyperLogLog sketch, merged register-wise
)

// partCol is one column of the partial form.
type partCol struct {
	name string
	role role
	expr node   // the expression in the inner partial SELECT, aliased to name
	cast string // engine type the partial form casts to, "" to keep the engine's
	typ  string // the column's type in the partial form
	// sketch is the input of a roleSketch column, whose expr buildSketches sets.
	sketch *sketchSource
}

// outCol is one output column of the view and the partial columns it is
// computed from (one, or two for avg).
type outCol struct {
	name  string
	role  role // roleKey, roleCount, roleSum, roleMin, roleMax, roleSketch, or roleAvgSum for avg
	parts []string
}

// aggPlan is the rewrite of an aggregate view.
type aggPlan struct {
	out   []outCol
	parts []partCol
	// groupBy are the grouping expressions of the partial form.
	groupBy []node
}

// exprTexter renders an expression as SQL for error messages.
type exprTexter func(node) string

func hasAggregate(v any, fc *functionCatalog) bool {
	found := false
	walkExprs(v, func(n node) bool {
		if fc.aggregate[funcName(n)] {
			found = true
		}
		return !found
	})
	return found
}

// isAggregateView tells aggregate views (GROUP BY, GROUP BY ALL or any
// aggregate in the select list) from projections.
func isAggregateView(sel node, fc *functionCatalog) bool {
	return len(list(sel, "group_expressions")) > 0 ||
		str(sel, "aggregate_handling") == "FORCE_AGGREGATES" ||
		hasAggregate(list(sel, "select_list"), fc)
}

// analyzeAggregate rewrites an aggregate view. sketchCols are the columns of
// the source that hold approx_distinct sketches (an upstream view's).
func analyzeAggregate(sel node, spec *dataset.Spec, fc *functionCatalog, text exprTexter, sketchCols map[string]bool) (*aggPlan, error) {
	var items []node
	for _, it := range list(sel, "select_list") {
		items = append(items, it.(node))
	}
	isAgg := make([]bool, len(items))
	for i, it := range items {
		if str(it, "class") == "STAR" {
			return nil, userErrorf("select item %d: * and COLUMNS(...) cannot be used with GROUP BY or aggregates; list the key columns", i+1)
		}
		isAgg[i] = fc.aggregate[funcName(it)]
		if isAgg[i] {
			if hasAggregate(it["children"], fc) || hasAggregate(it["filter"], fc) {
				return nil, userErrorf("select item %d (%s) nests an aggregate inside an aggregate, which cannot be merged incrementally", i+1, text(it))
			}
		} else if hasAggregate(it, fc) {
			return nil, userErrorf("select item %d (%s) puts an aggregate inside an expression; aggregates must be top-level select items; compute ratios in the query over the view", i+1, text(it))
		}
	}

	groups, err := groupExprs(sel, items, isAgg, spec)
	if err != nil {
		return nil, err
	}
	isKey := make([]bool, len(items))
	matched := make([]bool, len(groups))
	for i, it := range items {
		if isAgg[i] {
			continue
		}
		for g, ge := range groups {
			if sameExpr(it, ge) {
				isKey[i], matched[g] = true, true
			}
		}
		if !isKey[i] {
			return nil, userErrorf("select item %d (%s) must be a GROUP BY key or an aggregate", i+1, text(it))
		}
	}

	p := &aggPlan{}
	for _, ge := range groups {
		g := copyNode(ge)
		g["alias"] = ""
		p.groupBy = append(p.groupBy, g)
	}
	for i, it := range items {
		name, err := itemName(i, it, text)
		if err != nil {
			return nil, err
		}
		if isKey[i] {
			p.parts = append(p.parts, partCol{name: name, role: roleKey, expr: aliased(it, name)})
			p.out = append(p.out, outCol{name: name, role: roleKey, parts: []string{name}})
			continue
		}
		if err := p.addAggregate(i, it, name, text, sketchCols); err != nil {
			return nil, err
		}
	}
	hidden := 0
	for g, ge := range groups {
		if matched[g] {
			continue
		}
		hidden++
		name := fmt.Sprintf("__key_%d", hidden)
		p.parts = append(p.parts, partCol{name: name, role: roleHiddenKey, expr: aliased(ge, name)})
	}
	if err := p.checkNames(); err != nil {
		return nil, err
	}
	return p, nil
}

// groupExprs resolves the GROUP BY list to expressions: positions and
// aliases become the select item they name. Like DuckDB, a name that is a
// dataset column means the column, not a select alias.
func groupExprs(sel node, items []node, isAgg []bool, spec *dataset.Spec) ([]node, error) {
	raw := list(sel, "group_expressions")
	if len(raw) == 0 && str(sel, "aggregate_handling") == "FORCE_AGGREGATES" {
		var all []node
		for i, it := range items {
			if !isAgg[i] {
				all = append(all, it)
			}
		}
		return dedupe(all), nil
	}
	var out []node
	for _, r := range raw {
		g := r.(node)
		if k, ok := positional(g); ok {
			if k < 1 || k > len(items) {
				return nil, userErrorf("GROUP BY %d is out of range: the select list has %d items", k, len(items))
			}
			if isAgg[k-1] {
				return nil, userErrorf("GROUP BY %d refers to an aggregate; group by key expressions only", k)
			}
			out = append(out, items[k-1])
			continue
		}
		if name := columnRefName(g); name != "" && len(list(g, "column_names")) == 1 {
			if _, isColumn := spec.Column(name); !isColumn {
				if i := aliasIndex(items, name); i >= 0 {
					if isAgg[i] {
						return nil, userErrorf("GROUP BY %s refers to an aggregate; group by key expressions only", name)
					}
					out = append(out, items[i])
					continue
				}
			}
		}
		out = append(out, g)
	}
	return dedupe(out), nil
}

func aliasIndex(items []node, name string) int {
	for i, it := range items {
		if a := str(it, "alias"); a != "" && strings.EqualFold(a, name) {
			return i
		}
	}
	return -1
}

func dedupe(exprs []node) []node {
	var out []node
next:
	for _, e := range exprs {
		for _, o := range out {
			if sameExpr(e, o) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// itemName is the deterministic output name of an aggregate view's item:
// its alias, else the column a plain reference names.
func itemName(i int, it node, text exprTexter) (string, error) {
	name := str(it, "alias")
	if name == "" {
		name = columnRefName(it)
	}
	if name == "" {
		return "", userErrorf("give select item %d (%s) a name with AS", i+1, text(it))
	}
	if strings.HasPrefix(name, "__") {
		return "", userErrorf("select item %d is named %q, but names starting with two underscores are reserved; choose another name with AS", i+1, name)
	}
	return name, nil
}

func aliased(expr node, name string) node {
	c := copyNode(expr)
	c["alias"] = name
	return c
}

func (p *aggPlan) addAggregate(i int, it node, name string, text exprTexter, sketchCols map[string]bool) error {
	fn := funcName(it)
	if d, _ := it["distinct"].(bool); d && fn != "approx_count_distinct" {
		if fn == "count" {
			return userErrorf("aggregate count(DISTINCT ...) cannot be merged incrementally; use approx_distinct(...) (HyperLogLog, about 1.6%% error), or make the column a GROUP BY key and count over the view")
		}
		return userErrorf("aggregate %s(DISTINCT ...) cannot be merged incrementally; make the column a GROUP BY key and count or sum over the view instead", fn)
	}
	if len(list(obj(it, "order_bys"), "orders")) > 0 {
		return userErrorf("ORDER BY inside aggregate %s() is not supported in a view", fn)
	}
	if s, _ := it["export_state"].(bool); s {
		return userErrorf("EXPORT_STATE on aggregate %s() is not supported in a view", fn)
	}
	args := len(list(it, "children"))
	want := 1
	var r role
	switch fn {
	case "count_star":
		r, want = roleCount, 0
	case "count":
		r = roleCount
		if args == 0 {
			want = 0
		}
	case "count_if", "countif":
		// DuckDB's count_if is NULL over no rows (or only NULL conditions),
		// like sum: merge it as one.
		r = roleSum
	case "sum":
		r = roleSum
	case "min":
		r = roleMin
	case "max":
		r = roleMax
	case "avg", "mean":
		r = roleAvgSum
	case "approx_count_distinct":
		r = roleSketch
	default:
		return userErrorf("aggregate %s() cannot be merged incrementally; a view supports count, count_if, sum, min, max, avg and approx_distinct (approx_count_distinct)", fn)
	}
	if args != want {
		return userErrorf("select item %d (%s): %s() with %d arguments is not supported in a view", i+1, text(it), fn, args)
	}
	if r == roleSketch {
		arg := list(it, "children")[0].(node)
		s := &sketchSource{arg: arg, filter: obj(it, "filter")}
		if col := columnRefName(arg); col != "" && sketchCols[strings.ToLower(col)] {
			s.merge = true
		}
		p.parts = append(p.parts, partCol{name: name, role: r, sketch: s})
		p.out = append(p.out, outCol{name: name, role: r, parts: []string{name}})
		return nil
	}
	if r != roleAvgSum {
		p.parts = append(p.parts, partCol{name: name, role: r, expr: aliased(it, name)})
		p.out = append(p.out, outCol{name: name, role: r, parts: []string{name}})
		return nil
	}
	// avg merges as sum(x)/count(x); both keep the aggregate's FILTER.
	sum, count := aliased(it, name+"__sum"), aliased(it, name+"__count")
	sum["function_name"], count["function_name"] = "sum", "count"
	p.parts = append(p.parts,
		partCol{name: name + "__sum", role: roleAvgSum, expr: sum},
		partCol{name: name + "__count", role: roleAvgCount, expr: count})
	p.out = append(p.out, outCol{name: name, role: roleAvgSum, parts: []string{name + "__sum", name + "__count"}})
	return nil
}

// checkNames requires unique names, case-insensitively as SQL compares them,
// among the output columns and among the partial columns.
func (p *aggPlan) checkNames() error {
	seen := map[string]bool{}
	for _, o := range p.out {
		l := strings.ToLower(o.name)
		if seen[l] {
			return userErrorf("output column name %q is used twice; rename one with AS", o.name)
		}
		seen[l] = true
	}
	seen = map[string]bool{}
	for _, pc := range p.parts {
		l := strings.ToLower(pc.name)
		if seen[l] {
			return userErrorf("column name %q clashes with a column the view stores for an avg (<name>__sum, <name>__count); rename it with AS", pc.name)
		}
		seen[l] = true
	}
	return nil
}

func (p *aggPlan) keys() []string {
	var ks []string
	for _, pc := range p.parts {
		if pc.role == roleKey || pc.role == roleHiddenKey {
			ks = append(ks, pc.name)
		}
	}
	return ks
}
