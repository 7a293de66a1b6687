package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/resulttext"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
	"github.com/duet-analytics/duet/sqlgateway"
)

// GET /v1/views/{name}/rows answers a view's rows for dashboards: a time
// range, filters, a rollup over fewer keys, order and limit as query
// parameters; JSON, CSV or Arrow IPC by Accept.
//
// Every answer is tagged with the state it reflects: the view's batch
// version, the offset it covers and the log end the speed layer had applied
// (plus a hash of the normalized request and of this process). That state
// is read before and after the query; the speed layer changes it under the
// same lock as the engine transaction that changes the view, and the log
// end only grows, so when both reads agree the query's snapshot was that
// state and the answer is cached under it, exactly. When they differ, the
// answer reflects a state at least as new as the first read: it is tagged
// with that one (a later request can only match it again if nothing
// changed) and not cached. The process's nonce in the tag makes a restart
// or a new leader, which recompute the speed layer, change every tag once.

// Media types the rows API answers in.
const (
	contentTypeJSON = "application/json"
	contentTypeCSV  = "text/csv"
)

// Defaults and bounds of the rows API's parameters.
const (
	defaultRowsLimit = 1000
)

// rowsSpeed is what the rows API reads of the speed layer.
type rowsSpeed interface {
	Plan(name string) (*viewsql.Plan, error)
	PartialsRelation(name string) (string, error)
	ViewStatus(name string, now time.Time) (speedlayer.ViewStatus, error)
}

// rowsConfig bounds the rows API.
type rowsConfig struct {
	// MaxRows bounds limit (-1: no bound).
	MaxRows int64
	// Timeout bounds one query.
	Timeout time.Duration
	// Concurrent bounds queries running at once; more wait.
	Concurrent int
}

type rowsAPI struct {
	cfg    rowsConfig
	db     *sql.DB
	speed  rowsSpeed
	cache  *serving.ResultCache
	logger *slog.Logger
	slots  chan struct{}
	// instance is this process's nonce in every tag.
	instance string
	answers  *prometheus.CounterVec
}

func newRowsAPI(cfg rowsConfig, db *sql.DB, speed rowsSpeed, cache *serving.ResultCache, logger *slog.Logger, reg prometheus.Registerer) *rowsAPI {
	if cfg.Concurrent <= 0 {
		cfg.Concurrent = sqlgateway.DefaultMaxConcurrent
	}
	if cfg.MaxRows == 0 {
		cfg.MaxRows = sqlgateway.DefaultMaxResultRows
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	a := &rowsAPI{
		cfg: cfg, db: db, speed: speed, cache: cache, logger: logger,
		slots: make(chan struct{}, cfg.Concurrent), instance: hex.EncodeToString(nonce),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_server_rows_answers_total",
			Help: "GET /v1/views/{name}/rows answers by how they were made: not_modified (304), cached, queried.",
		}, []string{"answer"}),
	}
	if reg != nil {
		reg.MustRegister(a.answers)
	}
	return a
}

func (s *Server) rowsRoutes(mux *http.ServeMux) {
	a := newRowsAPI(rowsConfig{MaxRows: s.cfg.QueryMaxRows, Timeout: s.cfg.QueryTimeout, Concurrent: s.cfg.QueryMaxConcurrent},
		s.db, s.speed, serving.NewResultCache(s.cfg.RowsCacheBytes, s.registry), s.logger.With("component", "rows"), s.registry)
	mux.HandleFunc("GET /v1/views/{name}/rows", a.serve)
}

// rowsFormat is one representation of an answer.
type rowsFormat struct {
	contentType string
	encode      func(*rowsResult) ([]byte, error)
}

var rowsFormats = []rowsFormat{
	{contentTypeJSON, encodeRowsJSON},
	{contentTypeCSV, encodeRowsCSV},
	{ContentTypeArrow, encodeRowsArrow},
}

// negotiate picks the first media range of accept the API can answer; ok is
// false when there is none.
func negotiate(accept string) (rowsFormat, bool) {
	if strings.TrimSpace(accept) == "" {
		return rowsFormats[0], true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "*/*", "application/*", contentTypeJSON:
			return rowsFormats[0], true
		case "text/*", contentTypeCSV:
			return rowsFormats[1], true
		case ContentTypeArrow:
			return rowsFormats[2], true
		}
	}
	return rowsFormat{}, false
}

// rowsState is what an answer reflects.
type rowsState struct {
	version, covered, logEnd int64
}

func (st rowsState) String() string {
	return fmt.Sprintf("v%d.%d.%d", st.version, st.covered, st.logEnd)
}

func (a *rowsAPI) state(name string) (rowsState, error) {
	st, err := a.speed.ViewStatus(name, time.Now())
	if err != nil {
		return rowsState{}, err
	}
	out := rowsState{covered: st.FromOffset, logEnd: st.LogEnd}
	if st.Version != nil {
		out.version = st.Version.Version
	}
	return out, nil
}

func (a *rowsAPI) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	plan, err := a.speed.Plan(name)
	if errors.Is(err, speedlayer.ErrUnknownView) {
		writeError(w, http.StatusNotFound, "view %q not found", name)
		return
	}
	if err != nil {
		a.internalError(w, "read view", err)
		return
	}
	format, ok := negotiate(r.Header.Get("Accept"))
	if !ok {
		writeError(w, http.StatusNotAcceptable, "Accept %q: the rows API answers %s (default), %s or %s", r.Header.Get("Accept"), contentTypeJSON, contentTypeCSV, ContentTypeArrow)
		return
	}
	q, err := parseRowsQuery(r.URL.Query(), plan, a.cfg.MaxRows)
	if err != nil {
		writeError(w, http.StatusBadRequest, "view %q: %v", name, err)
		return
	}
	before, err := a.state(name)
	if err != nil {
		a.internalError(w, "read view state", err)
		return
	}
	key := serving.ResultKey{View: name, State: before.String(), Request: a.requestHash(name, plan, q, format)}
	etag := `"` + key.State + "-" + key.Request + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept")
	if noneMatch(r.Header.Get("If-None-Match"), etag) {
		a.answers.WithLabelValues("not_modified").Inc()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ans, cached := a.cache.Get(key)
	if cached {
		a.answers.WithLabelValues("cached").Inc()
	} else {
		v, err := a.cache.Do(key, func() (any, error) { return a.compute(r.Context(), name, plan, q, format, key, before) })
		if err != nil {
			a.queryError(w, name, err)
			return
		}
		ans = v.(serving.Answer)
		a.answers.WithLabelValues("queried").Inc()
	}
	h.Set("Content-Type", format.contentType)
	h.Set("X-Duet-Batch-Version", strconv.FormatInt(before.version, 10))
	h.Set("X-Duet-Covered-Offset", strconv.FormatInt(before.covered, 10))
	h.Set("X-Duet-Log-End-Offset", strconv.FormatInt(before.logEnd, 10))
	if ans.Truncated {
		// More rows matched than limit.
		h.Set("X-Duet-Truncated", "true")
	}
	h.Set("Content-Length", strconv.Itoa(len(ans.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ans.Body)
}

// compute runs the query and encodes its answer, cached when the state
// read after it is still before.
func (a *rowsAPI) compute(ctx context.Context, name string, plan *viewsql.Plan, q *rowsQuery, format rowsFormat, key serving.ResultKey, before rowsState) (serving.Answer, error) {
	// The first caller's request may be cancelled while others wait on it.
	ctx = context.WithoutCancel(ctx)
	res, err := a.query(ctx, name, plan, q)
	if err != nil {
		return serving.Answer{}, err
	}
	defer res.release()
	after, err := a.state(name)
	if err != nil {
		return serving.Answer{}, err
	}
	res.state = before
	body, err := format.encode(res)
	if err != nil {
		return serving.Answer{}, fmt.Errorf("encode rows: %w", err)
	}
	ans := serving.Answer{Body: body, Truncated: res.truncated}
	if after == before {
		a.cache.Put(key, ans)
	}
	return ans, nil
}

func (a *rowsAPI) queryError(w http.ResponseWriter, name string, err error) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "rows of view %q: the query ran longer than %s (--query-timeout)", name, a.cfg.Timeout)
	case errors.Is(err, speedlayer.ErrUnknownView):
		writeError(w, http.StatusNotFound, "view %q not found", name)
	default:
		a.internalError(w, "rows of view "+name, err)
	}
}

func (a *rowsAPI) internalError(w http.ResponseWriter, what string, err error) {
	a.logger.Error(what, "err", err)
	writeError(w, http.StatusInternalServerError, "%s: %v", what, err)
}

// requestHash names the answer to q apart from the state: this process,
// the view's definition, the normalized request and its format.
func (a *rowsAPI) requestHash(name string, plan *viewsql.Plan, q *rowsQuery, format rowsFormat) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", a.instance, name, plan.FinalSQL(""), format.contentType)
	for _, c := range plan.Columns {
		fmt.Fprintf(h, "%s %s\x00", c.Name, c.Type)
	}
	h.Write([]byte(q.normalized))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// noneMatch reports whether an If-None-Match header matches etag (weak
// comparison, as for GET).
func noneMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// --- the request ---

// rowsQuery is a parsed request: SQL to run and its arguments.
type rowsQuery struct {
	grouped bool
	keys    []string
	// preds are SQL predicates over the view's rows, with args bound in order.
	preds   []rowPred
	columns []viewsql.Column
	order   []string
	limit   int64
	// normalized identifies the request, whatever its spelling.
	normalized string
}

type rowPred struct {
	column, op string
	// cast is the engine type the argument is cast to ("" for none).
	cast string
	arg  any
}

var rowsParams = map[string]bool{"from": true, "to": true, "time": true, "filter": true, "group_by": true, "columns": true, "order": true, "limit": true}

func parseRowsQuery(v url.Values, plan *viewsql.Plan, maxRows int64) (*rowsQuery, error) {
	for p, vals := range v {
		if !rowsParams[p] {
			return nil, fmt.Errorf("unknown parameter %q (known: from, to, time, filter, group_by, columns, order, limit)", p)
		}
		if p != "filter" && len(vals) > 1 {
			return nil, fmt.Errorf("parameter %s is given %d times; give it once", p, len(vals))
		}
	}
	viewCol := func(param, name string) (viewsql.Column, error) {
		for _, c := range plan.Columns {
			if strings.EqualFold(c.Name, strings.TrimSpace(name)) {
				return c, nil
			}
		}
		return viewsql.Column{}, fmt.Errorf("%s: the view has no column %q (its columns: %s)", param, name, columnNames(plan.Columns))
	}
	q := &rowsQuery{}
	norm := map[string]any{}

	// The time range, on the view's time key or the column named by time.
	if v.Has("from") || v.Has("to") || v.Has("time") {
		var tc viewsql.Column
		if v.Has("time") {
			c, err := viewCol("time", v.Get("time"))
			if err != nil {
				return nil, err
			}
			if !isTemporal(c.Type) {
				return nil, fmt.Errorf("time: column %q is %s, not a timestamp or date", c.Name, c.Type)
			}
			tc = c
		} else {
			c, err := viewCol("from", plan.TimeKey)
			if plan.TimeKey == "" || err != nil {
				return nil, errors.New("from/to: the view has no time key column; name a timestamp or date column with time=<column>")
			}
			tc = c
		}
		norm["time"] = tc.Name
		for _, b := range []struct{ param, op string }{{"from", ">="}, {"to", "<"}} {
			if !v.Has(b.param) {
				continue
			}
			t, err := parseInstant(v.Get(b.param))
			if err != nil {
				return nil, fmt.Errorf("%s %q: %v", b.param, v.Get(b.param), err)
			}
			norm[b.param] = t.Format(time.RFC3339Nano)
			cast := "TIMESTAMP"
			arg := t.Format("2006-01-02 15:04:05.999999")
			if strings.Contains(tc.Type, "TIME ZONE") {
				cast, arg = tc.Type, arg+"+00"
			}
			q.preds = append(q.preds, rowPred{column: tc.Name, op: b.op, cast: cast, arg: arg})
		}
	}

	var filters []string
	for _, f := range v["filter"] {
		col, op, val, ok := splitFilter(f)
		if !ok {
			return nil, fmt.Errorf("filter %q: write <column><op><value> with op one of =, !=, <, <=, >, >= (like origin=ATL)", f)
		}
		c, err := viewCol("filter", col)
		if err != nil {
			return nil, err
		}
		cast, arg, canon, err := filterValue(c, val)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %v", f, err)
		}
		q.preds = append(q.preds, rowPred{column: c.Name, op: op, cast: cast, arg: arg})
		filters = append(filters, c.Name+op+canon)
	}
	slices.Sort(filters)
	norm["filter"] = filters

	// The relation answered: the view's rows, or their rollup.
	base := plan.Columns
	if v.Has("group_by") {
		q.grouped = true
		for _, k := range splitList(v.Get("group_by")) {
			c, err := viewCol("group_by", k)
			if err != nil {
				return nil, err
			}
			if slices.Contains(q.keys, c.Name) {
				return nil, fmt.Errorf("group_by: %q is named twice", c.Name)
			}
			q.keys = append(q.keys, c.Name)
		}
		// The rollup's columns, to check the other parameters against.
		_, cols, err := plan.RollupSQL("x", q.keys)
		if err != nil {
			return nil, fmt.Errorf("group_by: %v", err)
		}
		base = cols
		keys := slices.Clone(q.keys)
		slices.Sort(keys)
		norm["group_by"] = keys
	}
	baseCol := func(param, name string) (viewsql.Column, error) {
		for _, c := range base {
			if strings.EqualFold(c.Name, strings.TrimSpace(name)) {
				return c, nil
			}
		}
		if q.grouped {
			return viewsql.Column{}, fmt.Errorf("%s: the rollup by group_by has no column %q (its columns: %s)", param, name, columnNames(base))
		}
		return viewCol(param, name)
	}

	if v.Has("columns") {
		for _, n := range splitList(v.Get("columns")) {
			c, err := baseCol("columns", n)
			if err != nil {
				return nil, err
			}
			if slices.Contains(q.columns, c) {
				return nil, fmt.Errorf("columns: %q is named twice", c.Name)
			}
			q.columns = append(q.columns, c)
		}
		if len(q.columns) == 0 {
			return nil, errors.New("columns: name at least one column")
		}
	} else {
		q.columns = base
	}
	norm["columns"] = columnNames(q.columns)

	// The user's order, then every column, so the answer (and what limit
	// keeps) is one and the same each time.
	var ordered []string
	if v.Has("order") {
		for _, o := range splitList(v.Get("order")) {
			desc := strings.HasPrefix(o, "-")
			c, err := baseCol("order", strings.TrimPrefix(o, "-"))
			if err != nil {
				return nil, err
			}
			if slices.Contains(ordered, c.Name) {
				return nil, fmt.Errorf("order: %q is named twice", c.Name)
			}
			ordered = append(ordered, c.Name)
			term := dataset.QuoteIdent(c.Name)
			if desc {
				term += " DESC"
			}
			q.order = append(q.order, term)
		}
	}
	norm["order"] = slices.Clone(q.order)
	for _, c := range base {
		if !slices.Contains(ordered, c.Name) {
			q.order = append(q.order, dataset.QuoteIdent(c.Name))
		}
	}

	q.limit = defaultRowsLimit
	if v.Has("limit") {
		n, err := strconv.ParseInt(v.Get("limit"), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("limit %q: must be a whole number of rows, 0 or more", v.Get("limit"))
		}
		if maxRows >= 0 && n > maxRows {
			return nil, fmt.Errorf("limit %d: at most %d (the server's --query-max-rows)", n, maxRows)
		}
		q.limit = n
	}
	norm["limit"] = q.limit
	norm["grouped"] = q.grouped
	raw, err := json.Marshal(norm)
	if err != nil {
		return nil, err
	}
	q.normalized = string(raw)
	return q, nil
}

func columnNames(cols []viewsql.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// splitFilter cuts <column><op><value> at its first operator.
func splitFilter(f string) (col, op, val string, ok bool) {
	i := strings.IndexAny(f, "=!<>")
	if i <= 0 {
		return "", "", "", false
	}
	col, rest := f[:i], f[i:]
	for _, o := range []string{"!=", "<=", ">=", "=", "<", ">"} {
		if strings.HasPrefix(rest, o) {
			return strings.TrimSpace(col), o, rest[len(o):], true
		}
	}
	return "", "", "", false
}

func isTemporal(t string) bool { return t == "DATE" || strings.HasPrefix(t, "TIMESTAMP") }

// parseInstant reads an RFC 3339 timestamp, or one without a zone (UTC),
// or a date (its midnight, UTC).
func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", time.DateOnly} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("write an RFC 3339 timestamp (2026-11-01T10:00:00Z) or a date (2026-11-01)")
}

// filterValue parses a filter's value for column c: what the argument is
// cast to, the argument, and its canonical spelling.
func filterValue(c viewsql.Column, val string) (cast string, arg any, canon string, err error) {
	t := c.Type
	switch {
	case t == "VARCHAR":
		return "", val, strconv.Quote(val), nil
	case t == "BOOLEAN":
		b, err := strconv.ParseBool(val)
		if err != nil {
			return "", nil, "", fmt.Errorf("column %q is boolean: write true or false", c.Name)
		}
		return "", b, strconv.FormatBool(b), nil
	case slices.Contains([]string{"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}, t):
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return "", nil, "", fmt.Errorf("column %q is %s: %q is not a whole number", c.Name, t, val)
		}
		return "BIGINT", n, strconv.FormatInt(n, 10), nil
	case t == "DOUBLE" || t == "FLOAT" || strings.HasPrefix(t, "DECIMAL"):
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "", nil, "", fmt.Errorf("column %q is %s: %q is not a number", c.Name, t, val)
		}
		return "DOUBLE", f, strconv.FormatFloat(f, 'g', -1, 64), nil
	case t == "DATE":
		d, err := time.Parse(time.DateOnly, val)
		if err != nil {
			return "", nil, "", fmt.Errorf("column %q is a date: write it as 2026-11-01", c.Name)
		}
		s := d.Format(time.DateOnly)
		return "DATE", s, s, nil
	case strings.HasPrefix(t, "TIMESTAMP"):
		ts, err := parseInstant(val)
		if err != nil {
			return "", nil, "", fmt.Errorf("column %q is a timestamp: %v", c.Name, err)
		}
		s := ts.Format("2006-01-02 15:04:05.999999")
		if strings.Contains(t, "TIME ZONE") {
			return t, s + "+00", ts.Format(time.RFC3339Nano), nil
		}
		return "TIMESTAMP", s, ts.Format(time.RFC3339Nano), nil
	}
	return "", nil, "", fmt.Errorf("column %q is %s, which filters do not compare", c.Name, t)
}

// sql renders the query over the view (or its partials) and its arguments.
// Every identifier comes from the plan; every value is an argument.
func (q *rowsQuery) sql(name string, plan *viewsql.Plan, partials string) (string, []any, error) {
	var where []string
	var args []any
	combine := false
	for _, p := range q.preds {
		expr := dataset.QuoteIdent(p.column)
		if q.grouped {
			// A filter is on the view's rows, before the rollup: over
			// partial rows for a key, over one combined row per key (a
			// row of the view) for an aggregate.
			e, ok := plan.RowExpr(p.column)
			if !ok {
				return "", nil, fmt.Errorf("no expression for column %q", p.column)
			}
			expr = e
			if !slices.Contains(plan.VisibleKeys(), p.column) {
				combine = true
			}
		}
		arg := "?"
		if p.cast != "" {
			arg = "CAST(? AS " + p.cast + ")"
		}
		where = append(where, expr+" "+p.op+" "+arg)
		args = append(args, p.arg)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var from string
	if q.grouped {
		src := partials
		if combine {
			src = "(" + plan.CombineSQL(partials) + ")"
		}
		if cond != "" {
			src = "(SELECT * FROM " + src + " AS __duet_rows" + cond + ")"
		}
		rolled, _, err := plan.RollupSQL(src, q.keys)
		if err != nil {
			return "", nil, err
		}
		from, cond = "("+rolled+")", ""
	} else {
		from = engine.Table(engine.ViewsSchema, name)
	}
	cols := make([]string, len(q.columns))
	for i, c := range q.columns {
		cols[i] = dataset.QuoteIdent(c.Name)
	}
	// One row past limit tells whether more matched.
	text := fmt.Sprintf("SELECT %s FROM %s AS __duet_answer%s ORDER BY %s LIMIT %d",
		strings.Join(cols, ", "), from, cond, strings.Join(q.order, ", "), q.limit+1)
	return text, args, nil
}

// --- running and encoding ---

// rowsResult is a query's answer as Arrow records, at most limit rows.
type rowsResult struct {
	columns   []viewsql.Column
	schema    *arrow.Schema
	records   []arrow.RecordBatch
	truncated bool
	state     rowsState
}

func (r *rowsResult) release() {
	for _, rec := range r.records {
		rec.Release()
	}
}

func (a *rowsAPI) query(ctx context.Context, name string, plan *viewsql.Plan, q *rowsQuery) (*rowsResult, error) {
	partials := ""
	if q.grouped {
		var err error
		if partials, err = a.speed.PartialsRelation(name); err != nil {
			return nil, err
		}
	}
	text, args, err := q.sql(name, plan, partials)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine connection: %w", err)
	}
	defer conn.Close()
	ar, err := engine.Arrow(conn)
	if err != nil {
		return nil, err
	}
	rr, err := ar.QueryContext(ctx, text, args...)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("query %s: %w", text, err)
	}
	defer rr.Release()
	res := &rowsResult{columns: q.columns, schema: rr.Schema()}
	var n int64
	for rr.Next() {
		rec := rr.RecordBatch()
		if keep := q.limit - n; rec.NumRows() > keep {
			res.truncated = true
			if keep > 0 {
				res.records = append(res.records, rec.NewSlice(0, keep))
			}
			n = q.limit
			continue
		}
		rec.Retain()
		res.records = append(res.records, rec)
		n += rec.NumRows()
	}
	if err := rr.Err(); err != nil {
		res.release()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read rows: %w", err)
	}
	return res, nil
}

func encodeRowsArrow(r *rowsResult) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(r.schema))
	for _, rec := range r.records {
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeRowsJSON(r *rowsResult) ([]byte, error) {
	out := api.Rows{Columns: make([]api.RowsColumn, len(r.columns)), Rows: [][]any{},
		BatchVersion: r.state.version, CoveredOffset: r.state.covered, LogEndOffset: r.state.logEnd}
	for i, c := range r.columns {
		out.Columns[i] = api.RowsColumn{Name: c.Name, Type: c.Type}
	}
	for _, rec := range r.records {
		for i := range int(rec.NumRows()) {
			row := make([]any, rec.NumCols())
			for j, col := range rec.Columns() {
				row[j] = jsonValue(col, i)
			}
			out.Rows = append(out.Rows, row)
		}
	}
	return json.Marshal(out)
}

func encodeRowsCSV(r *rowsResult) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	header := make([]string, len(r.columns))
	for i, c := range r.columns {
		header[i] = c.Name
	}
	if err := w.Write(header); err != nil {
		return nil, err
	}
	for _, rec := range r.records {
		for i := range int(rec.NumRows()) {
			row := make([]string, rec.NumCols())
			for j, col := range rec.Columns() {
				switch v := jsonValue(col, i).(type) {
				case nil:
				case string:
					row[j] = v
				default:
					b, _ := json.Marshal(v)
					row[j] = string(b)
				}
			}
			if err := w.Write(row); err != nil {
				return nil, err
			}
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// jsonValue is row i of col as a JSON value: numbers, strings, booleans,
// timestamps in RFC 3339 (UTC), dates as 2026-11-01, NaN and infinities as
// the strings "NaN", "Infinity", "-Infinity", null for NULL.
func jsonValue(col arrow.Array, i int) any {
	if col.IsNull(i) {
		return nil
	}
	switch c := col.(type) {
	case *array.Boolean:
		return c.Value(i)
	case *array.Int8:
		return c.Value(i)
	case *array.Int16:
		return c.Value(i)
	case *array.Int32:
		return c.Value(i)
	case *array.Int64:
		return c.Value(i)
	case *array.Uint8:
		return c.Value(i)
	case *array.Uint16:
		return c.Value(i)
	case *array.Uint32:
		return c.Value(i)
	case *array.Uint64:
		return c.Value(i)
	case *array.Float32:
		return floatValue(float64(c.Value(i)))
	case *array.Float64:
		return floatValue(c.Value(i))
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Date32:
		return c.Value(i).ToTime().Format(time.DateOnly)
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		return c.Value(i).ToTime(unit).UTC().Format(time.RFC3339Nano)
	case *array.Decimal128:
		return json.Number(c.ValueStr(i))
	}
	return col.ValueStr(i)
}

// floatValue is f as JSON, which has no NaN or infinities: those are
// spelled as duet sql writes them.
func floatValue(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return resulttext.Float(f, 64)
	}
	return f
}
