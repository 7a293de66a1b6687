package viewsql

import (
	"context"
	"fmt"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// engineTypes maps the engine types a view can store to dataset types, so
// the view's stored (partial) rows can be read like a dataset.
var engineTypes = map[string]dataset.Type{
	"BOOLEAN": dataset.Boolean, "INTEGER": dataset.Integer, "BIGINT": dataset.Bigint, "DOUBLE": dataset.Double,
	"VARCHAR": dataset.Varchar, "DATE": dataset.Date, "TIMESTAMP": dataset.Timestamp,
}

// AnalyzeOver analyses a view that reads another view (views.<name>). Over
// an aggregate view it must be a rollup that is exact over the upstream's
// partial rows: keys, filters and grouping only over the upstream's keys,
// and aggregates that merge like the upstream's columns (sum of a count or
// sum, min of a min, max of a max, approx_distinct of an approx_distinct,
// which merges its sketches). Its partial form is composed over the
// upstream's, so it reads the same dataset and is kept by the same layers.
func AnalyzeOver(ctx context.Context, q Querier, sqlText, upstreamName string, upstream *Plan) (*Plan, error) {
	spec := &dataset.Spec{Name: upstreamName, TimeColumn: upstream.TimeKey}
	sketchCols := map[string]bool{}
	for _, c := range upstream.Partial {
		if upstream.roles[strings.ToLower(c.Name)] == roleSketch {
			// Not a dataset type: the analysis binds over src.columns,
			// which carry the engine type, and reads it only through
			// approx_distinct, which merges it.
			sketchCols[strings.ToLower(c.Name)] = true
			spec.Columns = append(spec.Columns, dataset.Column{Name: c.Name, Type: dataset.Type(strings.ToLower(c.Type))})
			continue
		}
		t, ok := engineTypes[c.Type]
		if !ok {
			return nil, userErrorf("view %q stores column %q as %s, which a view over it cannot read; cast it in %q", upstreamName, c.Name, c.Type, upstreamName)
		}
		spec.Columns = append(spec.Columns, dataset.Column{Name: c.Name, Type: t})
	}
	if upstream.Kind == Aggregate {
		if err := checkRollup(ctx, q, sqlText, upstreamName, upstream); err != nil {
			return nil, err
		}
	}
	p, err := analyze(ctx, q, sqlText, spec, sourceInfo{overView: true, columns: upstream.Partial, sketchCols: sketchCols})
	if err != nil {
		return nil, err
	}
	if upstream.Kind == Aggregate && p.Kind == Projection {
		return nil, userErrorf("a view over aggregate view %q must group by its keys (or use DISTINCT): its stored rows are partial", upstreamName)
	}
	p.Dataset, p.upstream = upstream.Dataset, upstream
	return p, nil
}

// checkRollup enforces AnalyzeOver's rules on the statement's AST.
func checkRollup(ctx context.Context, q Querier, sqlText, upstreamName string, up *Plan) error {
	doc, err := serialize(ctx, q, sqlText)
	if err != nil {
		return err
	}
	stmts := list(doc, "statements")
	if len(stmts) != 1 {
		return userErrorf("a view is exactly one SELECT statement")
	}
	stmt, _ := stmts[0].(node)
	sel := obj(stmt, "node")
	keys := map[string]bool{}
	for _, k := range up.Keys {
		keys[strings.ToLower(k)] = true
	}
	aliases := map[string]bool{}
	for _, it := range list(sel, "select_list") {
		if n, _ := it.(node); n != nil && str(n, "alias") != "" {
			aliases[strings.ToLower(str(n, "alias"))] = true
		}
	}
	onlyKeys := func(where string, v any, allowAliases bool) error {
		var bad string
		walkExprs(v, func(n node) bool {
			if bad != "" {
				return false
			}
			if str(n, "class") == "COLUMN_REF" {
				name := strings.ToLower(columnRefName(n))
				if !keys[name] && !(allowAliases && aliases[name]) {
					bad = columnRefName(n)
				}
			}
			if str(n, "class") == "STAR" {
				bad = "*"
			}
			return true
		})
		if bad != "" {
			return userErrorf("%s uses %q, which is not a key of view %q (keys: %s); over an aggregate view only its keys can group or filter", where, bad, upstreamName, strings.Join(up.Keys, ", "))
		}
		return nil
	}
	if err := onlyKeys("WHERE", sel["where_clause"], false); err != nil {
		return err
	}
	for _, g := range list(sel, "group_expressions") {
		if err := onlyKeys("GROUP BY", g, true); err != nil {
			return err
		}
	}
	for i, it := range list(sel, "select_list") {
		n, _ := it.(node)
		if n == nil {
			continue
		}
		if funcName(n) == "approx_count_distinct" {
			if err := checkRollupSketch(i, n, upstreamName, up, onlyKeys); err != nil {
				return err
			}
			continue
		}
		if str(n, "class") != "FUNCTION" || !isRollupCandidate(funcName(n)) {
			if err := onlyKeys(fmt.Sprintf("select item %d", i+1), n, false); err != nil {
				return err
			}
			continue
		}
		if err := checkRollupAggregate(i, n, upstreamName, up); err != nil {
			return err
		}
		if f := obj(n, "filter"); f != nil {
			if err := onlyKeys(fmt.Sprintf("the FILTER of select item %d", i+1), f, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRollupSketch accepts approx_distinct of an upstream approx_distinct
// column, which merges its sketches (the distinct count over the rolled-up
// groups), and approx_distinct of an expression over the upstream's keys,
// whose distinct values are those of its merged rows.
func checkRollupSketch(i int, n node, upstreamName string, up *Plan, onlyKeys func(string, any, bool) error) error {
	if f := obj(n, "filter"); f != nil {
		if err := onlyKeys(fmt.Sprintf("the FILTER of select item %d", i+1), f, false); err != nil {
			return err
		}
	}
	args := list(n, "children")
	if len(args) != 1 {
		return nil // analysis names the wrong number of arguments
	}
	arg, _ := args[0].(node)
	if col := columnRefName(arg); col != "" && up.roles[strings.ToLower(col)] == roleSketch {
		return nil
	}
	var sketches []string
	for _, c := range up.Partial {
		if up.roles[strings.ToLower(c.Name)] == roleSketch {
			sketches = append(sketches, c.Name)
		}
	}
	if err := onlyKeys(fmt.Sprintf("select item %d", i+1), arg, false); err != nil {
		if len(sketches) == 0 {
			return userErrorf("select item %d: approx_distinct over view %q counts distinct values of its keys (%s) only; it has no approx_distinct column whose sketches could be merged", i+1, upstreamName, strings.Join(up.Keys, ", "))
		}
		return userErrorf("select item %d: approx_distinct over view %q merges the sketches of one of its approx_distinct columns (%s) or counts distinct values of its keys (%s); its argument is neither", i+1, upstreamName, strings.Join(sketches, ", "), strings.Join(up.Keys, ", "))
	}
	return nil
}

func isRollupCandidate(fn string) bool {
	switch fn {
	case "sum", "min", "max", "count", "count_star", "avg", "mean", "count_if", "countif":
		return true
	}
	return false
}

// checkRollupAggregate accepts sum of a count or sum column, min of a min,
// max of a max: over the upstream's partial rows these give exactly the
// aggregate over its merged rows.
func checkRollupAggregate(i int, n node, upstreamName string, up *Plan) error {
	fn := funcName(n)
	args := list(n, "children")
	var col string
	if len(args) == 1 {
		if a, _ := args[0].(node); a != nil && str(a, "class") == "COLUMN_REF" {
			col = columnRefName(a)
		}
	}
	r, known := up.roles[strings.ToLower(col)]
	ok := known && col != "" && !isTrue(n["distinct"])
	switch fn {
	case "sum":
		ok = ok && (r == roleCount || r == roleSum)
	case "min":
		ok = ok && r == roleMin
	case "max":
		ok = ok && r == roleMax
	default:
		ok = false
	}
	if fn == "count_star" {
		fn = "count(*)"
	}
	if !ok {
		return userErrorf("select item %d: %s over view %q cannot be kept exact; over an aggregate view use sum(<count or sum column>), min(<min column>), max(<max column>) or approx_distinct(<approx_distinct column>) (a count(*) would count its groups, which change as data arrives)", i+1, fn, upstreamName)
	}
	return nil
}

func isTrue(v any) bool { b, _ := v.(bool); return b }
