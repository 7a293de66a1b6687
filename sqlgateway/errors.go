package sqlgateway

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
)

// errorCode is one of Trino's StandardErrorCode values.
type errorCode struct {
	name string
	code int
	kind string // errorType: USER_ERROR, INTERNAL_ERROR, INSUFFICIENT_RESOURCES, EXTERNAL
}

var (
	errGenericUser     = errorCode{"GENERIC_USER_ERROR", 0, "USER_ERROR"}
	errSyntax          = errorCode{"SYNTAX_ERROR", 1, "USER_ERROR"}
	errAbandonedQuery  = errorCode{"ABANDONED_QUERY", 2, "USER_ERROR"}
	errUserCanceled    = errorCode{"USER_CANCELED", 3, "USER_ERROR"}
	errPermission      = errorCode{"PERMISSION_DENIED", 4, "USER_ERROR"}
	errNotFound        = errorCode{"NOT_FOUND", 5, "USER_ERROR"}
	errFunctionMissing = errorCode{"FUNCTION_NOT_FOUND", 6, "USER_ERROR"}
	errDivisionByZero  = errorCode{"DIVISION_BY_ZERO", 8, "USER_ERROR"}
	errInvalidCast     = errorCode{"INVALID_CAST_ARGUMENT", 9, "USER_ERROR"}
	errNotSupported    = errorCode{"NOT_SUPPORTED", 13, "USER_ERROR"}
	errCatalogMissing  = errorCode{"CATALOG_NOT_FOUND", 44, "USER_ERROR"}
	errSchemaMissing   = errorCode{"SCHEMA_NOT_FOUND", 45, "USER_ERROR"}
	errTableMissing    = errorCode{"TABLE_NOT_FOUND", 46, "USER_ERROR"}
	errColumnMissing   = errorCode{"COLUMN_NOT_FOUND", 47, "USER_ERROR"}
	errTypeMismatch    = errorCode{"TYPE_MISMATCH", 58, "USER_ERROR"}
	errInternal        = errorCode{"GENERIC_INTERNAL_ERROR", 65536, "INTERNAL_ERROR"}
	errShuttingDown    = errorCode{"SERVER_SHUTTING_DOWN", 65545, "INTERNAL_ERROR"}
	errOutOfMemory     = errorCode{"EXCEEDED_LOCAL_MEMORY_LIMIT", 131079, "INSUFFICIENT_RESOURCES"}
	errTimeLimit       = errorCode{"EXCEEDED_TIME_LIMIT", 131075, "INSUFFICIENT_RESOURCES"}
	errResources       = errorCode{"GENERIC_INSUFFICIENT_RESOURCES", 131072, "INSUFFICIENT_RESOURCES"}
	errQueueFull       = errorCode{"QUERY_QUEUE_FULL", 131074, "INSUFFICIENT_RESOURCES"}
)

// queryError is a failure reported to the client in the error object of a
// QueryResults document.
type queryError struct {
	code    errorCode
	message string
	// line and column locate the error in the statement text, 1-based;
	// zero when unknown.
	line, column int
}

func (e *queryError) Error() string { return e.code.name + ": " + e.message }

func newQueryError(code errorCode, message string) *queryError {
	return &queryError{code: code, message: message}
}

// syntaxErrorAt is a SYNTAX_ERROR located at a byte offset of sql.
func syntaxErrorAt(sql string, offset int, message string) *queryError {
	e := newQueryError(errSyntax, message)
	e.line, e.column = lineColumn(sql, offset)
	return e
}

// lineColumn converts a byte offset of sql to a 1-based line and column
// (in characters), or zeros when the offset is outside the text.
func lineColumn(sql string, offset int) (line, column int) {
	if offset < 0 || offset > len(sql) {
		return 0, 0
	}
	before := sql[:offset]
	line = strings.Count(before, "\n") + 1
	lineStart := strings.LastIndexByte(before, '\n') + 1
	column = utf8.RuneCountInString(before[lineStart:]) + 1
	return line, column
}

// Causes of a query's cancellation, told apart when the error is reported.
var (
	errCanceledByUser = errors.New("query was canceled by the client")
	errAbandoned      = errors.New("query was abandoned: no client polled it")
	errShutdown       = errors.New("server is shutting down")
	errTimedOut       = errors.New("query exceeded the time limit")
	errEncoding       = errors.New("a result document could not be encoded")
)

// lineContext matches DuckDB's error context: "LINE 3: <text>" followed by
// a line with a caret under the error position.
var lineContext = regexp.MustCompile(`(?m)^LINE (\d+): (.*)\n( *)\^`)

// translateError maps an error from running sql on DuckDB to a Trino error.
// sql is the statement text as the client sent it, or "" when the gateway
// rewrote it (then positions in DuckDB's message do not apply).
func translateError(ctx context.Context, err error, sql string) *queryError {
	var qe *queryError
	if errors.As(err, &qe) {
		return qe
	}
	if ctx.Err() != nil {
		return canceledError(ctx)
	}
	msg := err.Error()
	var de *duckdb.Error
	if errors.As(err, &de) {
		msg = de.Msg
	}
	first, _, _ := strings.Cut(msg, "\n")
	first = strings.TrimSpace(first)
	e := newQueryError(classifyDuckDBError(first), first)
	if sql != "" {
		e.line, e.column = locate(msg, sql)
	}
	return e
}

// canceledError reports why ctx ended.
func canceledError(ctx context.Context) *queryError {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTimedOut) || errors.Is(cause, context.DeadlineExceeded):
		return newQueryError(errTimeLimit, "Query exceeded the maximum execution time limit")
	case errors.Is(cause, errAbandoned):
		return newQueryError(errAbandonedQuery, "Query was abandoned: no client polled it in time")
	case errors.Is(cause, errShutdown):
		return newQueryError(errShuttingDown, "Query was canceled: the server is shutting down; retry it")
	default:
		return newQueryError(errUserCanceled, "Query was canceled")
	}
}

// classifyDuckDBError picks the Trino error code for the first line of a
// DuckDB error message ("Catalog Error: Table with name x does not exist!").
func classifyDuckDBError(first string) errorCode {
	kind, detail, _ := strings.Cut(first, ": ")
	switch kind {
	case "Parser Error", "Syntax Error":
		return errSyntax
	case "Catalog Error":
		switch {
		case strings.HasPrefix(detail, "Table with name"), strings.HasPrefix(detail, "Table Function with name"),
			strings.HasPrefix(detail, "View with name"):
			return errTableMissing
		case strings.Contains(detail, "Function with name"), strings.HasPrefix(detail, "Macro Function with name"):
			return errFunctionMissing
		case strings.HasPrefix(detail, "Schema with name"), strings.Contains(detail, "SET schema"):
			return errSchemaMissing
		case strings.HasPrefix(detail, "Catalog with name"), strings.HasPrefix(detail, "Catalog \""):
			return errCatalogMissing
		case strings.Contains(detail, "does not exist"):
			return errNotFound
		}
		return errGenericUser
	case "Binder Error":
		switch {
		case strings.Contains(detail, "Referenced column") && strings.Contains(detail, "not found"),
			strings.HasPrefix(detail, "Values list") && strings.Contains(detail, "does not have a column named"),
			strings.Contains(detail, "does not have a column named"),
			strings.HasPrefix(detail, "Column ") && strings.Contains(detail, "not found"):
			return errColumnMissing
		case strings.Contains(detail, "No function matches"), strings.Contains(detail, "Could not choose a best candidate"),
			strings.Contains(detail, "Cannot compare values"), strings.Contains(detail, "Cannot mix values"),
			strings.Contains(detail, "type"):
			return errTypeMismatch
		}
		return errGenericUser
	case "Conversion Error":
		return errInvalidCast
	case "Mismatch Type Error", "Invalid type Error":
		return errTypeMismatch
	case "Divide by Zero Error":
		return errDivisionByZero
	case "Permission Error":
		return errPermission
	case "Not implemented Error":
		return errNotSupported
	case "Out of Memory Error":
		return errOutOfMemory
	case "INTERNAL Error", "FATAL Error", "Connection Error", "Executor Error", "Scheduler Error":
		return errInternal
	case "Out of Range Error", "Invalid Input Error", "Constraint Error", "Decimal Error", "Sequence Error",
		"Dependency Error", "Invalid Error", "Expression Error", "Planner Error", "Settings Error", "IO Error",
		"Parameter Not Resolved Error", "Parameter Not Allowed Error", "Invalid Configuration Error":
		return errGenericUser
	}
	if strings.HasPrefix(first, "database/sql/driver: unsupported data type") ||
		strings.Contains(first, "unsupported data type") {
		return errNotSupported
	}
	return errInternal
}

// locate finds the position DuckDB's "LINE n: ..." context points at in
// sql. DuckDB may shorten a long line to a window around the position,
// marked with "..."; the window is then searched for in the real line.
// It returns zeros when the position cannot be established.
func locate(msg, sql string) (line, column int) {
	m := lineContext.FindStringSubmatch(msg)
	if m == nil {
		return 0, 0
	}
	line, err := strconv.Atoi(m[1])
	lines := strings.Split(sql, "\n")
	if err != nil || line < 1 || line > len(lines) {
		return 0, 0
	}
	shown := m[2]
	caret := len(m[3]) - len("LINE "+m[1]+": ") // byte offset of the caret in shown
	if caret < 0 || caret > len(shown) {
		return 0, 0
	}
	if strings.HasPrefix(shown, "...") {
		shown, caret = shown[3:], caret-3
	}
	if line == 1 && strings.HasPrefix(shown, limitPrefix) {
		shown, caret = shown[len(limitPrefix):], caret-len(limitPrefix)
	}
	shown = strings.TrimSuffix(shown, "...")
	real := strings.TrimRight(lines[line-1], "\r")
	at := strings.Index(real, shown)
	if at < 0 || caret < 0 || caret > len(shown) {
		return 0, 0
	}
	offset := at + caret
	return line, utf8.RuneCountInString(real[:offset]) + 1
}
