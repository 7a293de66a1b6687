package viewsql

import (
	"context"
	"strings"
)

// SourceTable returns the table a view's SQL reads, so the caller can find
// the dataset to Analyze it against. Anything that is not a single SELECT
// from one table is an *Error; Analyze gives the precise reason.
func SourceTable(ctx context.Context, q Querier, sqlText string) (string, error) {
	doc, err := serialize(ctx, q, sqlText)
	if err != nil {
		return "", err
	}
	stmts := list(doc, "statements")
	if len(stmts) != 1 {
		return "", userErrorf("a view is exactly one SELECT statement")
	}
	stmt, _ := stmts[0].(node)
	from := obj(obj(stmt, "node"), "from_table")
	if str(from, "type") != "BASE_TABLE" {
		return "", userErrorf("a view must read one dataset: SELECT ... FROM <dataset>")
	}
	schema := str(from, "schema_name")
	if schema != "" && !strings.EqualFold(schema, "raw") {
		return "", userErrorf("unknown table %q; a view reads a dataset, by name or as raw.<name>", schema+"."+str(from, "table_name"))
	}
	return str(from, "table_name"), nil
}
