package sqlgateway

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/duet-analytics/duet/dataset"
)

// outcome is what a statement produces: a result set (columns and rows) or
// only an update type, plus the session headers for the final document.
type outcome struct {
	names      []string
	types      []trinoType
	rows       rowSource // nil when the statement has no result set
	updateType string
	headers    http.Header
}

// rowSource is the part of *sql.Rows the gateway reads.
type rowSource interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// staticRows is a rowSource over values the gateway computed itself.
type staticRows struct {
	rows [][]any
	i    int
}

func (s *staticRows) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *staticRows) Err() error { return nil }
func (s *staticRows) Close() error {
	s.i = len(s.rows)
	return nil
}

func (s *staticRows) Scan(dest ...any) error {
	row := s.rows[s.i-1]
	for i, d := range dest {
		*(d.(*any)) = row[i]
	}
	return nil
}

// resultOf is an outcome with a result set of varchar columns.
func resultOf(names []string, rows [][]any) *outcome {
	types := make([]trinoType, len(names))
	for i := range types {
		types[i] = typeVarchar
	}
	return &outcome{names: names, types: types, rows: &staticRows{rows: rows}}
}

// execution runs one query's statement. It takes a DuckDB connection only
// when the statement needs one, and puts the connection back in the state
// it found it.
type execution struct {
	g    *Gateway
	q    *query
	ctx  context.Context
	sess *session

	conn *sql.Conn
	// schemaSet: conn's schema is schema (USE), the session's.
	schemaSet bool
	schema    string
	// userSet: the session user's engine variables are set on conn (vars).
	userSet bool
	vars    []string
	// rows counts the result rows produced.
	rows int64
}

// admit waits for a query slot; the query's context ending first (cancel,
// timeout, shutdown) fails it as it would fail a running query.
func (g *Gateway) admit(q *query) *queryError {
	if err := g.admission.acquire(q.ctx, q.sess.user); err != nil {
		if qe, ok := err.(*queryError); ok {
			return qe
		}
		return canceledError(q.ctx)
	}
	q.started.Store(time.Now().UnixNano())
	return nil
}

// produce runs q and feeds its pages to the polling clients.
func (g *Gateway) produce(q *query, sessErr *queryError) {
	defer g.producers.Done()
	defer q.stop()
	x := &execution{g: g, q: q, ctx: q.ctx, sess: q.sess}

	var last *batch
	qe := sessErr
	if qe == nil {
		qe = g.admit(q)
	}
	if qe == nil {
		// Counted from admission: a statement waiting for a slot is not running.
		g.running.Add(1)
		last, qe = x.runRecovered()
		x.release(qe == nil)
		g.admission.release(q.sess.user)
		g.running.Add(-1)
	}

	state := "finished"
	if qe != nil {
		state = "failed"
		switch qe.code {
		case errUserCanceled, errAbandonedQuery, errShuttingDown:
			state = "canceled"
		}
	}
	elapsed := time.Since(q.created)
	info := q.info()
	info.State, info.Ended, info.Rows = strings.ToUpper(state), time.Now(), x.rows
	if qe != nil {
		info.ErrorName, info.Error = qe.code.name, qe.message
	}
	g.history.add(info)
	g.metrics.queries.WithLabelValues(state).Inc()
	g.metrics.duration.Observe(elapsed.Seconds())
	logAttrs := []any{"query_id", q.id, "user", q.sess.user, "source", q.sess.source, "state", state, "elapsed", elapsed.Round(time.Millisecond)}
	switch {
	case qe != nil && qe.code == errInternal:
		g.logger.Warn("query failed", append(logAttrs, "error", qe.message)...)
	case qe != nil:
		g.logger.Debug("query failed", append(logAttrs, "error", qe.message)...)
	default:
		g.logger.Debug("query finished", logAttrs...)
	}

	if qe == nil {
		if err := q.send(*last); err != nil {
			qe = canceledError(q.ctx)
		}
	}
	if qe != nil {
		q.failure = qe
	}
	close(q.pages)
}

// runRecovered is run, turning a panic into an internal error of the one
// query rather than a crash of the server.
func (x *execution) runRecovered() (last *batch, qe *queryError) {
	defer func() {
		if r := recover(); r != nil {
			x.g.logger.Error("query panicked", "query_id", x.q.id, "panic", r, "stack", string(debug.Stack()))
			last, qe = nil, newQueryError(errInternal, fmt.Sprintf("internal error: %v", r))
		}
	}()
	return x.run()
}

// run executes the statement and sends every page but the last, which it
// returns so that the connection is released before the client sees the end.
func (x *execution) run() (*batch, *queryError) {
	if strings.ContainsRune(x.q.sql, 0) {
		// DuckDB reads statements as C strings, which end at a NUL.
		return nil, newQueryError(errSyntax, "the statement contains a NUL character")
	}
	st, qe := parseStatement(x.q.sql)
	if qe != nil {
		return nil, qe
	}
	// DuckDB's error positions point into the client's text only when the
	// statement went to DuckDB as sent, not rewritten by EXECUTE.
	located := ""
	if st.kind == stmtQuery {
		located = st.sql
	}
	out, err := x.dispatch(st, false)
	if err != nil {
		return nil, translateError(x.ctx, err, located)
	}
	last, err := x.stream(out)
	if err != nil {
		return nil, translateError(x.ctx, err, located)
	}
	return last, nil
}

func (x *execution) dispatch(st *statement, rewritten bool) (*outcome, error) {
	switch st.kind {
	case stmtQuery:
		return x.selectQuery(st.sql, rewritten)
	case stmtVersion:
		return resultOf([]string{st.alias}, [][]any{{x.g.cfg.Version}}), nil
	case stmtShowCatalogs:
		return x.showCatalogs(st)
	case stmtShowSchemas:
		return x.showSchemas(st)
	case stmtShowTables:
		return x.showTables(st)
	case stmtShowColumns:
		return x.showColumns(st)
	case stmtShowFunctions:
		return x.showFunctions(st)
	case stmtShowSession:
		return x.showSession(st)
	case stmtShowCreateView, stmtShowCreateTable:
		return x.showCreate(st)
	case stmtUse:
		return x.use(st)
	case stmtSetSession, stmtResetSession, stmtSetTimeZone:
		return sessionStatement(st)
	case stmtStartTransaction:
		// Statements are read-only and autocommitted: a transaction is a
		// no-op, but clients expect an id for it.
		h := http.Header{}
		h.Set(headerStartedTransaction, randomHex(16))
		return &outcome{updateType: "START TRANSACTION", headers: h}, nil
	case stmtCommit, stmtRollback:
		h := http.Header{}
		h.Set(headerClearTransaction, "true")
		kind := "COMMIT"
		if st.kind == stmtRollback {
			kind = "ROLLBACK"
		}
		return &outcome{updateType: kind, headers: h}, nil
	case stmtPrepare:
		h := http.Header{}
		h.Set(headerAddedPrepare, urlEncode(st.name[0])+"="+urlEncode(st.value))
		return &outcome{updateType: "PREPARE", headers: h}, nil
	case stmtDeallocate:
		h := http.Header{}
		h.Set(headerDeallocatedPrepare, urlEncode(st.name[0]))
		return &outcome{updateType: "DEALLOCATE", headers: h}, nil
	case stmtExecute:
		if rewritten {
			return nil, newQueryError(errNotSupported, "EXECUTE cannot run a prepared EXECUTE, PREPARE or DEALLOCATE statement")
		}
		return x.execute(st)
	case stmtDenied:
		return nil, denied(st.sql)
	}
	return nil, fmt.Errorf("statement kind %d is not handled", st.kind)
}

// execute runs a prepared statement with its parameters bound.
func (x *execution) execute(st *statement) (*outcome, error) {
	text := st.value
	if st.name != nil {
		var ok bool
		if text, ok = x.sess.prepared[st.name[0]]; !ok {
			return nil, newQueryError(errNotFound, fmt.Sprintf("Prepared statement not found: %s", st.name[0]))
		}
	}
	bound, qe := bindParameters(text, st.params)
	if qe != nil {
		return nil, qe
	}
	inner, qe := parseStatement(bound)
	if qe != nil {
		qe.line, qe.column = 0, 0
		return nil, qe
	}
	switch inner.kind {
	case stmtExecute, stmtPrepare, stmtDeallocate:
		return nil, newQueryError(errNotSupported, "EXECUTE cannot run a prepared EXECUTE, PREPARE or DEALLOCATE statement")
	}
	return x.dispatch(inner, true)
}

// denied is the error for every statement that could change state.
func denied(sql string) *queryError {
	verb := "this"
	if toks, qe := lex(sql); qe == nil && len(toks) > 0 && toks[0].kind == tokWord {
		verb = strings.ToUpper(toks[0].text)
	}
	return newQueryError(errPermission, fmt.Sprintf(
		"duet's SQL gateway is read-only: %s statements are not allowed; run SELECT queries, or SHOW, DESCRIBE, USE and SET SESSION", verb))
}

// connection returns the query's DuckDB connection with the session's
// catalog and schema applied.
func (x *execution) connection() (*sql.Conn, error) {
	if err := x.checkCatalog(x.sess.catalog); err != nil {
		return nil, err
	}
	if x.sess.schema != "" && !x.schemaSet {
		schema, err := x.resolveSchema(x.sess.schema)
		if err != nil {
			return nil, err
		}
		if x.conn == nil {
			if kept := x.g.conns.take(schema); kept != nil {
				x.conn, x.schemaSet, x.schema = kept, true, schema
			}
		}
		if !x.schemaSet {
			conn, err := x.rawConnection()
			if err != nil {
				return nil, err
			}
			if _, err := conn.ExecContext(x.ctx, "USE "+x.qualified(schema)); err != nil {
				return nil, fmt.Errorf("apply session schema %q: %w", schema, err)
			}
			x.schemaSet, x.schema = true, schema
		}
	}
	conn, err := x.rawConnection()
	if err != nil {
		return nil, err
	}
	if a := x.g.cfg.Authorizer; a != nil && !x.userSet {
		vars := []string{sessionUserVariable}
		if !a.IsAdmin(x.sess.user) {
			vars = append(vars, QueriesUserVariable)
		}
		x.userSet = true
		for _, v := range vars {
			if _, err := conn.ExecContext(x.ctx, "SET VARIABLE "+v+" = "+dataset.QuoteString(x.sess.user)); err != nil {
				return nil, fmt.Errorf("name the session user to the engine: %w", err)
			}
			x.vars = append(x.vars, v)
		}
	}
	return conn, nil
}

// release returns the connection: after a statement that succeeded, one
// in a session schema is kept for the next statement in that schema (see
// schemaConns); otherwise its default schema is restored and it goes back
// to the engine's pool. A connection that cannot be restored is discarded.
func (x *execution) release(succeeded bool) {
	if x.conn == nil {
		return
	}
	conn, schema, schemaSet := x.conn, x.schema, x.schemaSet
	x.conn, x.schemaSet, x.schema, x.userSet = nil, false, "", false
	var resets []string
	for _, v := range x.vars {
		resets = append(resets, "RESET VARIABLE "+v)
	}
	x.vars = nil
	ok := x.restore(conn, resets)
	if ok && succeeded && schemaSet && x.g.conns.put(schema, conn) {
		return
	}
	if ok && schemaSet {
		x.restore(conn, []string{"USE " + dataset.QuoteIdent(x.g.cfg.Catalog)})
	}
	if err := conn.Close(); err != nil && !errors.Is(err, sql.ErrConnDone) {
		x.g.logger.Warn("release DuckDB connection", "query_id", x.q.id, "error", err)
	}
}

// restore runs stmts on conn; when one fails it marks conn bad, so the
// pool discards it on Close, and reports false.
func (x *execution) restore(conn *sql.Conn, stmts []string) bool {
	for _, q := range stmts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := conn.ExecContext(ctx, q)
		cancel()
		if err != nil {
			x.g.logger.Warn("discarding DuckDB connection: restoring its state failed", "query_id", x.q.id, "statement", q, "error", err)
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			return false
		}
	}
	return true
}

// qualified quotes catalog.name.
func (x *execution) qualified(names ...string) string {
	parts := []string{dataset.QuoteIdent(x.g.cfg.Catalog)}
	for _, n := range names {
		parts = append(parts, dataset.QuoteIdent(n))
	}
	return strings.Join(parts, ".")
}

// selectQuery runs a single SELECT on DuckDB.
func (x *execution) selectQuery(text string, rewritten bool) (*outcome, error) {
	conn, err := x.connection()
	if err != nil {
		return nil, err
	}
	nullColumns, text, err := x.admitSelect(conn, text, rewritten)
	if err != nil {
		return nil, err
	}
	if max := x.g.cfg.MaxResultRows; max > 0 {
		// The engine materializes a result in full before the first row is
		// read, outside its memory limit: without a bound in the query, a
		// billion-row SELECT would take the server's memory before the
		// gateway could count its rows. One row more than the limit tells
		// an over-long result apart. (The engine suffixes repeated column
		// names of a subquery: a, a_1.)
		text = fmt.Sprintf("%s%s\n) LIMIT %d", limitPrefix, text, max+1)
	}
	rows, err := conn.QueryContext(x.ctx, text)
	if err != nil {
		return nil, err
	}
	out, err := x.describeRows(rows, nullColumns)
	if err != nil {
		_ = rows.Close()
		return nil, err
	}
	return out, nil
}

// admitSelect checks text (checkReadOnly) and rewrites it for the engine
// (rewrites), or does what the check of a statement of its shape found
// (see shapeCache).
func (x *execution) admitSelect(conn *sql.Conn, text string, rewritten bool) ([]bool, string, error) {
	toks, lexErr := lex(text)
	key, cacheable := shapeKey{user: x.sess.user, schema: x.sandbox().schema}, false
	if lexErr == nil {
		key.shape, cacheable = statementShape(text, toks)
	}
	if cacheable {
		if cs := x.g.shapes.get(key); cs != nil {
			return cs.nulls, applySplices(text, cs.splices(toks)), nil
		}
	}
	nulls, tree, err := x.checkReadOnly(conn, text, rewritten)
	if err != nil {
		return nil, "", err
	}
	if lexErr != nil {
		return nulls, text, nil
	}
	at := tokenStarts(toks)
	edits := x.rewrites(toks, at, tree)
	if cacheable {
		if cs, ok := newCheckedShape(nulls, edits, toks, at, tree); ok {
			x.g.shapes.put(key, cs)
		}
	}
	return nulls, applySplices(text, edits), nil
}

// describeRows maps the columns of a DuckDB result to Trino columns.
func (x *execution) describeRows(rows *sql.Rows, nullColumns []bool) (*outcome, error) {
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read result columns: %w", err)
	}
	out := &outcome{rows: rows}
	if len(nullColumns) != len(cts) {
		nullColumns = nil // the select list does not map onto the columns
	}
	for i, ct := range cts {
		t := typeUnknown
		if nullColumns == nil || !nullColumns[i] {
			if t, err = trinoTypeOf(ct.DatabaseTypeName()); err != nil {
				return nil, newQueryError(errNotSupported, fmt.Sprintf(
					"column %q has DuckDB type %s, which Trino clients cannot read: cast it, for example to VARCHAR",
					ct.Name(), ct.DatabaseTypeName()))
			}
		}
		out.names = append(out.names, columnName(ct.Name()))
		out.types = append(out.types, t)
	}
	return out, nil
}

// serializedSQL is json_serialize_sql's answer.
type serializedSQL struct {
	Error        bool   `json:"error"`
	ErrorType    string `json:"error_type"`
	ErrorMessage string `json:"error_message"`
	Position     string `json:"position"`
	Statements   []struct {
		Node struct {
			Type       string `json:"type"`
			SelectList []struct {
				Class string `json:"class"`
				Value *struct {
					IsNull bool `json:"is_null"`
					Type   struct {
						ID string `json:"id"`
					} `json:"type"`
				} `json:"value"`
			} `json:"select_list"`
		} `json:"node"`
	} `json:"statements"`
}

// rowQuerier is a connection or the pool.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// parseSQL has DuckDB parse text: json_serialize_sql's answer, and its
// parse tree when it parsed.
func parseSQL(ctx context.Context, conn rowQuerier, text string) (serializedSQL, any, error) {
	var js string
	var parsed serializedSQL
	// json_serialize_sql takes only a constant, not a parameter.
	if err := conn.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql("+dataset.QuoteString(text)+") AS VARCHAR)").Scan(&js); err != nil {
		return parsed, nil, fmt.Errorf("parse statement: %w", err)
	}
	if err := json.Unmarshal([]byte(js), &parsed); err != nil {
		return parsed, nil, fmt.Errorf("read json_serialize_sql output: %w", err)
	}
	if parsed.Error {
		return parsed, nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber() // query_location may be 2^64-1 (unknown)
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return parsed, nil, fmt.Errorf("read json_serialize_sql output: %w", err)
	}
	return parsed, tree, nil
}

// limitPrefix opens the subquery that bounds a result; on the statement's
// first line, so the engine's error positions keep their lines.
const limitPrefix = "SELECT * FROM ("

// checkReadOnly admits text only if DuckDB parses it as exactly one SELECT
// statement (json_serialize_sql serializes nothing else) that reads nothing
// outside the sandbox. It also reports, per select list entry, whether it
// is a bare NULL literal, which Trino types unknown (DuckDB reports
// INTEGER), and returns the parse tree.
func (x *execution) checkReadOnly(conn *sql.Conn, text string, rewritten bool) ([]bool, any, error) {
	parsed, tree, err := parseSQL(x.ctx, conn, text)
	if err != nil {
		return nil, nil, err
	}
	if parsed.Error {
		if parsed.ErrorType == "parser" {
			qe := newQueryError(errSyntax, "Parser Error: "+parsed.ErrorMessage)
			var pos int
			if _, err := fmt.Sscan(parsed.Position, &pos); err == nil && !rewritten {
				qe.line, qe.column = lineColumn(text, pos)
			}
			return nil, nil, qe
		}
		return nil, nil, denied(text)
	}
	switch len(parsed.Statements) {
	case 0:
		return nil, nil, newQueryError(errSyntax, "the statement is empty: send one SQL statement")
	case 1:
	default:
		return nil, nil, newQueryError(errSyntax, "multiple statements are not supported: send one statement per request")
	}
	if qe := checkSandbox(tree, x.sandbox()); qe != nil {
		return nil, nil, qe
	}
	node := parsed.Statements[0].Node
	if node.Type != "SELECT_NODE" {
		return nil, tree, nil
	}
	nulls := make([]bool, len(node.SelectList))
	for i, e := range node.SelectList {
		if e.Class == "STAR" || e.Class == "COLUMNS" {
			return nil, tree, nil // column positions are unknown before binding
		}
		if e.Class == "CONSTANT" && e.Value != nil && e.Value.IsNull && e.Value.Type.ID == "NULL" {
			nulls[i] = true
		}
	}
	return nulls, tree, nil
}

// stream encodes the outcome's rows into pages of at most PageRows rows and
// about maxPageBytes of JSON, sending all but the last, which it returns.
func (x *execution) stream(out *outcome) (*batch, error) {
	last := &batch{last: true, updateType: out.updateType, headers: out.headers}
	if out.rows == nil {
		return last, nil
	}
	defer out.rows.Close()
	cols := make([]column, len(out.names))
	encs := make([]encoder, len(out.names))
	for i := range cols {
		cols[i] = newColumn(out.names[i], out.types[i])
		encs[i] = newEncoder(out.types[i], x.sess.zone)
	}
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	columnsSent := false
	var page []byte
	n := 0
	more := out.rows.Next()
	for more {
		if err := out.rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read result row: %w", err)
		}
		if n == 0 {
			page = append(page[:0], '[')
		} else {
			page = append(page, ',')
		}
		page = append(page, '[')
		for i, v := range values {
			if i > 0 {
				page = append(page, ',')
			}
			var err error
			if page, err = encs[i](page, v); err != nil {
				return nil, newQueryError(errInternal, fmt.Sprintf("column %q: %v", cols[i].Name, err))
			}
		}
		page = append(page, ']')
		n++
		if x.rows++; x.g.cfg.MaxResultRows > 0 && x.rows > x.g.cfg.MaxResultRows {
			return nil, newQueryError(errResources, fmt.Sprintf(
				"the result has more than %d rows, the gateway's limit: aggregate, filter or add a LIMIT", x.g.cfg.MaxResultRows))
		}
		more = out.rows.Next()
		if !more {
			if err := out.rows.Err(); err != nil {
				return nil, err
			}
		}
		if n < x.g.cfg.PageRows && len(page) < maxPageBytes && more {
			continue
		}
		b := batch{data: append(page, ']'), rows: n}
		if !columnsSent {
			b.columns, columnsSent = cols, true
		}
		if !more {
			last.data, last.rows, last.columns = b.data, b.rows, b.columns
			return last, nil
		}
		if err := x.q.send(b); err != nil {
			return nil, err
		}
		page, n = nil, 0
	}
	if err := out.rows.Err(); err != nil {
		return nil, err
	}
	if !columnsSent {
		last.columns = cols
	}
	return last, nil
}
