package viewsql

import (
	"context"
	"strings"
)

// SourceTable returns the table a view's SQL reads and its schema as written
// ("", "raw" for a dataset, "views" for another view), so the caller can find
// what to analyse it against. Anything that is not a single SELECT from one
// table is an *Error; Analyze gives the precise reason.
func SourceTable(ctx context.Context, q Querier, sqlText string) (schema, table string, err error) {
	doc, err := serialize(ctx, q, sqlText)
	if err != nil {
		return "", "", err
	}
	stmts := list(doc, "statements")
	if len(stmts) != 1 {
		return "", "", userErrorf("a view is exactly one SELECT statement")
	}
	stmt, _ := stmts[0].(node)
	from := obj(obj(stmt, "node"), "from_table")
	if str(from, "type") != "BASE_TABLE" {
		return "", "", userErrorf("a view must read one dataset or view: SELECT ... FROM <dataset> or views.<view>")
	}
	schema = strings.ToLower(str(from, "schema_name"))
	if schema != "" && schema != "raw" && schema != "views" {
		return "", "", userErrorf("unknown table %q; a view reads a dataset (by name or raw.<name>) or another view (views.<name>)", str(from, "schema_name")+"."+str(from, "table_name"))
	}
	return schema, str(from, "table_name"), nil
}
