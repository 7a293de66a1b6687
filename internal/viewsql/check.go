package viewsql

import (
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// sourcePlaceholder stands for the source relation in rendered SQL until
// PartialSQL splices the real one in. View SQL containing it is rejected, so
// it occurs exactly once in what DuckDB renders.
const sourcePlaceholder = "__duet_source__"

// checkStatement checks the statement's shape (one plain SELECT over the
// dataset, no clauses that cannot be merged) and returns its SELECT node and
// the name the dataset goes by inside the query.
func checkStatement(doc node, spec *dataset.Spec, fc *functionCatalog, overView bool) (sel node, qualifier string, err error) {
	stmts := list(doc, "statements")
	switch {
	case len(stmts) == 0:
		return nil, "", userErrorf("the SQL is empty; write one SELECT statement")
	case len(stmts) > 1:
		return nil, "", userErrorf("found %d statements; a view is exactly one SELECT statement", len(stmts))
	}
	stmt, _ := stmts[0].(node)
	sel = obj(stmt, "node")
	switch t := str(sel, "type"); t {
	case "SELECT_NODE":
	case "SET_OPERATION_NODE":
		return nil, "", userErrorf("UNION, INTERSECT and EXCEPT are not supported in a view; define one view per SELECT")
	case "CTE_NODE", "RECURSIVE_CTE_NODE":
		return nil, "", userErrorf("WITH (common table expressions) is not supported in a view; select from the dataset directly")
	default:
		return nil, "", userErrorf("a view must be a plain SELECT, not %s", strings.ToLower(strings.TrimSuffix(t, "_NODE")))
	}
	if m := obj(sel, "cte_map"); len(list(m, "map")) > 0 {
		return nil, "", userErrorf("WITH (common table expressions) is not supported in a view; select from the dataset directly")
	}
	if err := checkModifiers(sel); err != nil {
		return nil, "", err
	}
	if sel["having"] != nil {
		return nil, "", userErrorf("HAVING is not supported in a view: it filters merged groups, which partial results cannot see; filter in the query over the view")
	}
	if sel["qualify"] != nil {
		return nil, "", userErrorf("QUALIFY is not supported in a view: it needs all rows at once; filter in the query over the view")
	}
	if sel["sample"] != nil {
		return nil, "", userErrorf("USING SAMPLE is not supported in a view: samples of batch and speed data cannot be merged exactly")
	}
	if h := str(sel, "aggregate_handling"); h != "STANDARD_HANDLING" && h != "FORCE_AGGREGATES" {
		return nil, "", userErrorf("unsupported grouping (%s); use GROUP BY with expressions, positions or ALL", h)
	}
	if sets := list(sel, "group_sets"); len(sets) > 1 {
		return nil, "", userErrorf("GROUPING SETS, ROLLUP and CUBE are not supported in a view; define one view per grouping")
	} else if len(sets) == 1 {
		set, _ := sets[0].([]any)
		if len(set) != len(list(sel, "group_expressions")) {
			return nil, "", userErrorf("GROUPING SETS, ROLLUP and CUBE are not supported in a view; define one view per grouping")
		}
	}
	qualifier, err = checkFrom(obj(sel, "from_table"), spec, overView)
	if err != nil {
		return nil, "", err
	}
	if err := checkExprs(sel, fc); err != nil {
		return nil, "", err
	}
	return sel, qualifier, nil
}

func checkModifiers(sel node) error {
	for _, m := range list(sel, "modifiers") {
		mod, _ := m.(node)
		switch str(mod, "type") {
		case "ORDER_MODIFIER":
			return userErrorf("ORDER BY is not supported in a view: a view is an unordered set of rows; order in the query over the view")
		case "LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER":
			return userErrorf("LIMIT and OFFSET are not supported in a view: they would cut batch and speed rows arbitrarily; limit the query over the view")
		case "DISTINCT_MODIFIER":
			if len(list(mod, "distinct_on_targets")) > 0 {
				return userErrorf("DISTINCT ON is not supported in a view: which row it keeps depends on all rows at once; use GROUP BY with min/max")
			}
		default:
			return userErrorf("%s is not supported in a view", strings.ToLower(str(mod, "type")))
		}
	}
	return nil
}

func isDistinct(sel node) bool {
	for _, m := range list(sel, "modifiers") {
		if str(m.(node), "type") == "DISTINCT_MODIFIER" {
			return true
		}
	}
	return false
}

// checkFrom requires FROM <dataset> and returns the qualifier the query's
// columns may use: the table alias, or the table name as written.
func checkFrom(from node, spec *dataset.Spec, overView bool) (string, error) {
	want := spec.Name
	switch t := str(from, "type"); t {
	case "BASE_TABLE":
	case "EMPTY", "":
		return "", userErrorf("the view has no FROM; it must read dataset %q (FROM %s)", want, want)
	case "JOIN":
		return "", userErrorf("joins are not supported in a view; a view reads dataset %q only", want)
	case "SUBQUERY":
		return "", userErrorf("subqueries in FROM are not supported in a view; select from dataset %q directly", want)
	case "TABLE_FUNCTION":
		return "", userErrorf("table functions are not supported in a view's FROM; the view must read dataset %q", want)
	default:
		return "", userErrorf("FROM %s is not supported in a view; the view must read dataset %q", strings.ToLower(t), want)
	}
	name := str(from, "table_name")
	catalog, schema := str(from, "catalog_name"), str(from, "schema_name")
	wantSchema := "raw"
	if overView {
		wantSchema = "views"
	}
	schemaOK := schema == "" && catalog == "" ||
		strings.EqualFold(schema, wantSchema) && (catalog == "" || strings.EqualFold(catalog, "duet"))
	if !strings.EqualFold(name, want) || !schemaOK {
		full := name
		if schema != "" {
			full = schema + "." + full
		}
		if catalog != "" {
			full = catalog + "." + full
		}
		return "", userErrorf("unknown table %q; the view must read dataset %q", full, want)
	}
	if from["sample"] != nil {
		return "", userErrorf("TABLESAMPLE is not supported in a view: samples of batch and speed data cannot be merged exactly")
	}
	if from["at_clause"] != nil {
		return "", userErrorf("AT (time travel) is not supported in a view")
	}
	if len(list(from, "column_name_alias")) > 0 {
		return "", userErrorf("column aliases on the dataset (AS %s(...)) are not supported in a view; name columns in the select list", str(from, "alias"))
	}
	if a := str(from, "alias"); a != "" {
		return a, nil
	}
	return name, nil
}

// checkExprs rejects what no rewrite can merge wherever it appears:
// subqueries (they read other tables), window functions (they need all rows
// at once) and functions whose answer changes between evaluations.
func checkExprs(sel node, fc *functionCatalog) error {
	var err error
	walkExprs(sel, func(n node) bool {
		if err != nil {
			return false
		}
		switch str(n, "class") {
		case "PARAMETER":
			err = userErrorf("parameters ($1, ?, $name) are not supported in a view; write the values into the SQL")
		case "SUBQUERY":
			err = userErrorf("subqueries are not supported in a view; a view reads one dataset, so filter with plain expressions")
		case "WINDOW":
			err = userErrorf("window function %s() is not supported in a view: it needs all rows at once; apply it in the query over the view", strings.ToLower(str(n, "function_name")))
		case "FUNCTION":
			if name := funcName(n); fc.unstable[name] {
				err = userErrorf("function %s() is not supported in a view: it gives a different answer each time it runs, so batch and speed results would disagree; use a fixed value", name)
			}
		}
		return err == nil
	})
	return err
}
