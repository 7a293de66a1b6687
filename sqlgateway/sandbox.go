package sqlgateway

import (
	"fmt"
	"strings"
)

// The engine's own lockdown (no settings, no extensions, files only under
// duet's data directories) cannot tell duet's views reading their Parquet
// files from a user doing the same, nor keep a user out of duet's internal
// tables. So the gateway also checks what a SELECT reads, anywhere in it
// (CTEs, subqueries, joins), in DuckDB's own parse tree: relations in the
// catalog's visible schemas, and only table functions that generate rows.

// rowFunctions are the table functions user SQL may call: they compute rows
// and read nothing.
var rowFunctions = map[string]bool{"range": true, "generate_series": true, "unnest": true}

// catalogSchemas are the schemas of DuckDB's system catalog that BI tools
// read for metadata.
var catalogSchemas = map[string]bool{"information_schema": true, "pg_catalog": true}

// checkSandbox reports the first thing in the parse tree that user SQL may
// not read, as PERMISSION_DENIED.
func checkSandbox(tree any, catalog string) *queryError {
	switch n := tree.(type) {
	case []any:
		for _, c := range n {
			if qe := checkSandbox(c, catalog); qe != nil {
				return qe
			}
		}
	case map[string]any:
		switch n["type"] {
		case "BASE_TABLE":
			if qe := checkRelation(n, catalog); qe != nil {
				return qe
			}
		case "TABLE_FUNCTION":
			if fn, ok := n["function"].(map[string]any); ok {
				name, _ := fn["function_name"].(string)
				if !rowFunctions[strings.ToLower(name)] {
					return newQueryError(errPermission, fmt.Sprintf(
						"Access Denied: table function %s is not available: queries read duet's views, raw and system schemas, not files or engine internals", name))
				}
			}
		}
		for _, c := range n {
			if qe := checkSandbox(c, catalog); qe != nil {
				return qe
			}
		}
	}
	return nil
}

func checkRelation(n map[string]any, catalog string) *queryError {
	cat, _ := n["catalog_name"].(string)
	schema, _ := n["schema_name"].(string)
	table, _ := n["table_name"].(string)
	name := strings.Join(nonEmpty(cat, schema, table), ".")
	// DuckDB reads a file for a table name that looks like a path.
	if strings.ContainsAny(table, "./\\*?") {
		return newQueryError(errPermission, fmt.Sprintf("Access Denied: %q is not a table: queries cannot read files", table))
	}
	switch {
	case cat == "" || strings.EqualFold(cat, catalog):
		if hiddenSchema(schema) {
			return newQueryError(errPermission, fmt.Sprintf("Access Denied: cannot read %s: schema %s is internal to duet", name, schema))
		}
	case strings.EqualFold(cat, "system") && catalogSchemas[strings.ToLower(schema)]:
	default:
		return newQueryError(errPermission, fmt.Sprintf("Access Denied: cannot read %s: catalog %s is not available; use catalog %s", name, cat, catalog))
	}
	return nil
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
