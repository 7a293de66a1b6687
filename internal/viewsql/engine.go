package viewsql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/duet-analytics/duet/dataset"
)

// serialize parses sqlText with DuckDB's own parser. A parse failure is the
// user's to fix and comes back as *Error.
func serialize(ctx context.Context, q Querier, sqlText string) (node, error) {
	var s string
	if err := q.QueryRowContext(ctx, `SELECT CAST(json_serialize_sql(CAST(? AS VARCHAR)) AS VARCHAR)`, sqlText).Scan(&s); err != nil {
		return nil, engineError(ctx, "parse view SQL", err)
	}
	doc, err := decodeAST(s)
	if err != nil {
		return nil, fmt.Errorf("decode json_serialize_sql output: %w", err)
	}
	if failed, _ := doc["error"].(bool); failed {
		msg := str(doc, "error_message")
		if str(doc, "error_type") == "not implemented" {
			return nil, userErrorf("a view must be a single SELECT statement")
		}
		return nil, userErrorf("%s", cleanEngineMessage(msg))
	}
	renameApproxDistinct(doc)
	return doc, nil
}

// deserialize renders SELECT statements from their ASTs, in one engine call.
// doc is the parsed document whose envelope (named_param_map, ...) is reused.
func deserialize(ctx context.Context, q Querier, doc node, selects ...node) ([]string, error) {
	var query strings.Builder
	query.WriteString("SELECT ")
	args := make([]any, len(selects))
	stmt := copyNode(list(doc, "statements")[0].(node))
	for i, sel := range selects {
		stmt["node"] = sel
		js, err := encodeAST(node{"error": false, "statements": []any{stmt}})
		if err != nil {
			return nil, fmt.Errorf("encode AST: %w", err)
		}
		args[i] = js
		if i > 0 {
			query.WriteString(", ")
		}
		query.WriteString("json_deserialize_sql(CAST(? AS JSON))")
	}
	out := make([]string, len(selects))
	dest := make([]any, len(selects))
	for i := range out {
		dest[i] = &out[i]
	}
	if err := q.QueryRowContext(ctx, query.String(), args...).Scan(dest...); err != nil {
		return nil, engineError(ctx, "render view SQL", err)
	}
	return out, nil
}

// describe binds query without running it and returns its output columns.
// A bind failure (unknown column, bad types) comes back as *Error.
func describe(ctx context.Context, q Querier, query string) ([]Column, error) {
	var s string
	err := q.QueryRowContext(ctx,
		`SELECT CAST(to_json(list({'name': column_name, 'type': column_type})) AS VARCHAR) FROM (DESCRIBE `+query+`)`).Scan(&s)
	if err != nil {
		return nil, engineError(ctx, "bind view SQL", err)
	}
	var cols []Column
	if err := json.Unmarshal([]byte(s), &cols); err != nil {
		return nil, fmt.Errorf("decode DESCRIBE output: %w", err)
	}
	return cols, nil
}

// functionCatalog is what the analysis needs to know about function names.
type functionCatalog struct {
	aggregate map[string]bool
	// unstable functions give different answers at different times (now(),
	// random()); batch and speed evaluate the view at different times, so
	// their partials would disagree.
	unstable map[string]bool
}

// loadFunctions looks up the functions the view calls in the engine's
// catalog, so the analysis agrees with the engine about what is an aggregate.
func loadFunctions(ctx context.Context, q Querier, sel node) (*functionCatalog, error) {
	fc := &functionCatalog{aggregate: map[string]bool{}, unstable: map[string]bool{}}
	used := map[string]bool{}
	walkExprs(sel, func(n node) bool {
		if name := strings.ToLower(str(n, "function_name")); name != "" {
			used[name] = true
		}
		return true
	})
	if len(used) == 0 {
		return fc, nil
	}
	quoted := make([]string, 0, len(used))
	for name := range used {
		quoted = append(quoted, dataset.QuoteString(name))
	}
	var aggs, unstable string
	err := q.QueryRowContext(ctx, `SELECT
		CAST(to_json(coalesce(list(DISTINCT lower(function_name)) FILTER (WHERE function_type = 'aggregate'), [])) AS VARCHAR),
		CAST(to_json(coalesce(list(DISTINCT lower(function_name)) FILTER (WHERE function_type = 'scalar' AND stability <> 'CONSISTENT'), [])) AS VARCHAR)
		FROM duckdb_functions() WHERE lower(function_name) IN (`+strings.Join(quoted, ", ")+`)`).Scan(&aggs, &unstable)
	if err != nil {
		return nil, engineError(ctx, "look up functions", err)
	}
	for _, set := range []struct {
		js string
		m  map[string]bool
	}{{aggs, fc.aggregate}, {unstable, fc.unstable}} {
		var names []string
		if err := json.Unmarshal([]byte(set.js), &names); err != nil {
			return nil, fmt.Errorf("decode function names: %w", err)
		}
		for _, n := range names {
			set.m[n] = true
		}
	}
	return fc, nil
}

// engineError turns DuckDB's complaints about the SQL itself into *Error and
// wraps everything else (cancellation, lost connections, internal errors).
func engineError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var de *duckdb.Error
	if errors.As(err, &de) && userErrorTypes[de.Type] {
		return &Error{Msg: "view SQL: " + cleanEngineMessage(de.Msg)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

var userErrorTypes = map[duckdb.ErrorType]bool{
	duckdb.ErrorTypeBinder:               true,
	duckdb.ErrorTypeCatalog:              true,
	duckdb.ErrorTypeParser:               true,
	duckdb.ErrorTypeSyntax:               true,
	duckdb.ErrorTypeConversion:           true,
	duckdb.ErrorTypeInvalidInput:         true,
	duckdb.ErrorTypeNotImplemented:       true,
	duckdb.ErrorTypeMismatchType:         true,
	duckdb.ErrorTypeInvalidType:          true,
	duckdb.ErrorTypeOutOfRange:           true,
	duckdb.ErrorTypeExpression:           true,
	duckdb.ErrorTypePermission:           true,
	duckdb.ErrorTypeParameterNotResolved: true,
	duckdb.ErrorTypeParameterNotAllowed:  true,
	duckdb.ErrorTypeDecimal:              true,
	duckdb.ErrorTypeDivideByZero:         true,
	duckdb.ErrorTypeMissingExtension:     true,
	duckdb.ErrorTypeAutoLoad:             true,
	duckdb.ErrorTypeInvalidConfiguration: true,
	duckdb.ErrorTypeUnknownType:          true,
}

// cleanEngineMessage drops the "LINE 1: ..." excerpt DuckDB appends: it
// quotes the rewritten SQL, not what the user wrote, and would only confuse.
func cleanEngineMessage(msg string) string {
	if i := strings.Index(msg, "\nLINE "); i >= 0 {
		msg = msg[:i]
	}
	return strings.Join(strings.Fields(msg), " ")
}
