package sqlgateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler serves the Trino client protocol:
//
//	POST   /v1/statement
//	GET    /v1/statement/{queued,executing}/{id}/{slug}/{token}
//	DELETE /v1/statement/{queued,executing}/{id}/{slug}/{token}
//	GET    /v1/query/{id}, DELETE /v1/query/{id}
//	GET    /v1/info, GET /v1/info/state
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/statement", g.handleSubmit)
	for _, phase := range []string{"queued", "executing"} {
		mux.HandleFunc("GET /v1/statement/"+phase+"/{id}/{slug}/{token}", g.handlePoll)
		mux.HandleFunc("DELETE /v1/statement/"+phase+"/{id}/{slug}/{token}", g.handleCancelStatement)
	}
	mux.HandleFunc("GET /v1/query/{id}", g.handleQueryInfo)
	mux.HandleFunc("DELETE /v1/query/{id}", g.handleCancelQuery)
	mux.HandleFunc("GET /v1/info", g.handleInfo)
	mux.HandleFunc("GET /v1/info/state", g.handleState)
	if g.router != nil {
		return g.router.wrap(mux)
	}
	return mux
}

func (g *Gateway) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxStatementBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("SQL statement is larger than %d bytes", maxStatementBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read SQL statement: "+err.Error(), http.StatusBadRequest)
		return
	}
	text := string(body)
	if strings.TrimSpace(text) == "" {
		http.Error(w, "SQL statement is empty", http.StatusBadRequest)
		return
	}
	sess, sessErr := sessionFromRequest(r)
	if g.router != nil {
		var routed bool
		if routed, sessErr = g.router.submit(w, r, text, sess, sessErr); routed {
			return
		}
	}
	doc, ok := g.register(text, sess, sessErr, baseURL(r))
	if !ok {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	writeDoc(w, doc)
}

func (g *Gateway) handlePoll(w http.ResponseWriter, r *http.Request) {
	q, token, ok := g.target(r)
	if !ok {
		queryNotFound(w)
		return
	}
	q.polling.Add(1)
	defer q.polling.Add(-1)
	q.touch()
	defer q.touch()

	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case token == q.token:
		// A retry of the latest request gets the same document.
		writeDoc(w, q.served)
	case token == q.token+1 && q.doneAt.Load() == 0:
		doc, ok := q.advance(r.Context(), baseURL(r), token)
		if !ok {
			return // the client went away; the next retry of token advances
		}
		q.token, q.served = token, doc
		writeDoc(w, doc)
	default:
		queryNotFound(w)
	}
}

// target finds the query a statement URI names.
func (g *Gateway) target(r *http.Request) (*query, int64, bool) {
	token, err := strconv.ParseInt(r.PathValue("token"), 10, 64)
	if err != nil {
		return nil, 0, false
	}
	q := g.lookup(r.PathValue("id"))
	if q == nil || q.slug != r.PathValue("slug") || q.deleted.Load() {
		return nil, 0, false
	}
	return q, token, true
}

func (g *Gateway) handleCancelStatement(w http.ResponseWriter, r *http.Request) {
	q, _, ok := g.target(r)
	if !ok {
		queryNotFound(w)
		return
	}
	g.cancelQuery(q)
	w.WriteHeader(http.StatusNoContent)
}

// handleCancelQuery is trino-go-client's cancel. It succeeds for unknown
// queries too: the query may have ended and been forgotten already.
func (g *Gateway) handleCancelQuery(w http.ResponseWriter, r *http.Request) {
	if q := g.lookup(r.PathValue("id")); q != nil {
		g.cancelQuery(q)
	}
	w.WriteHeader(http.StatusNoContent)
}

// cancelQuery cancels q: its statement URIs answer 404 from now on, and its
// info URI answers FAILED, as Trino's do, until the query is reaped.
func (g *Gateway) cancelQuery(q *query) {
	q.cancel(errCanceledByUser)
	q.deleted.Store(true)
	q.state.Store("FAILED")
	q.doneAt.CompareAndSwap(0, time.Now().UnixNano())
}

// queryInfo is a short form of Trino's QueryInfo, for the infoUri.
type queryInfo struct {
	QueryID           string `json:"queryId"`
	State             string `json:"state"`
	Query             string `json:"query"`
	User              string `json:"user"`
	Source            string `json:"source,omitempty"`
	Catalog           string `json:"catalog,omitempty"`
	Schema            string `json:"schema,omitempty"`
	CreateTime        string `json:"createTime"`
	ElapsedTimeMillis int64  `json:"elapsedTimeMillis"`
}

func (g *Gateway) handleQueryInfo(w http.ResponseWriter, r *http.Request) {
	q := g.lookup(r.PathValue("id"))
	if q == nil {
		queryNotFound(w)
		return
	}
	writeJSON(w, queryInfo{
		QueryID:           q.id,
		State:             q.state.Load().(string),
		Query:             q.sql,
		User:              q.sess.user,
		Source:            q.sess.source,
		Catalog:           q.sess.catalog,
		Schema:            q.sess.schema,
		CreateTime:        q.created.UTC().Format(time.RFC3339Nano),
		ElapsedTimeMillis: time.Since(q.created).Milliseconds(),
	})
}

func (g *Gateway) handleInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, serverInfo{
		NodeVersion: nodeVersion{Version: g.cfg.Version},
		Environment: "duet",
		Coordinator: true,
		Starting:    false,
		Uptime:      fmt.Sprintf("%.2fm", time.Since(g.started).Minutes()),
	})
}

func (g *Gateway) handleState(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	state := "ACTIVE"
	if closed {
		state = "SHUTTING_DOWN"
	}
	writeJSON(w, state)
}

func writeDoc(w http.ResponseWriter, doc *servedDoc) {
	for k, vs := range doc.headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc.body)
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func queryNotFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, "Query not found")
}

// baseURL is the scheme and host clients reach this server at, honouring
// the X-Forwarded-Proto and X-Forwarded-Host a proxy sets.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
		scheme = p
	}
	host := r.Host
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
		host = h
	}
	return scheme + "://" + host
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost accepts host[:port] made of characters a host can have, so a
// forged header cannot inject a path or query into the URIs.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]_", c)) {
			return false
		}
	}
	return true
}
