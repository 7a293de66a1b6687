package sqlgateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// batch is what a query's producer hands to the polling client: one page
// of rows, and with the last page the statement's outcome.
type batch struct {
	columns []column
	data    []byte // JSON array of row arrays; nil when the page has no rows
	rows    int
	last    bool
	// Set on the last batch only.
	updateType string
	headers    http.Header
}

// query is one submitted statement. Its producer goroutine (produce) sends
// batches on pages and closes it when done, after setting failure if the
// statement failed. Clients advance it one document per token.
type query struct {
	id, slug string
	sql      string
	sess     *session
	created  time.Time

	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   context.CancelFunc // releases the timeout timer

	pages   chan batch
	failure *queryError // written before pages is closed

	started  atomic.Int64 // unix nanos it was admitted to run, 0 while queued
	deleted  atomic.Bool  // cancelled by a client's DELETE
	lastPoll atomic.Int64 // unix nanos of the latest request for the query
	polling  atomic.Int32 // requests in progress
	doneAt   atomic.Int64 // unix nanos the last document was produced, 0 before
	state    atomic.Value // string, for /v1/query

	mu      sync.Mutex // serialises polls; guards the fields below
	token   int64      // token of the document in served
	served  *servedDoc // the latest document, answered again on a retry
	columns []column
	rows    int64
}

// servedDoc is a rendered QueryResults document and its response headers.
type servedDoc struct {
	body    []byte
	headers http.Header
	broken  bool // the document could not be encoded; an error document replaced it
}

func newQuery(id, slug, sqlText string, sess *session, now time.Time, timeout time.Duration) *query {
	base, cancel := context.WithCancelCause(context.Background())
	ctx, stop := context.WithTimeoutCause(base, timeout, errTimedOut)
	q := &query{
		id: id, slug: slug, sql: sqlText, sess: sess, created: now,
		ctx: ctx, cancel: cancel, stop: stop,
		pages: make(chan batch),
	}
	q.lastPoll.Store(now.UnixNano())
	q.state.Store("QUEUED")
	return q
}

// send hands a batch to the client, or gives up when the query ends.
func (q *query) send(b batch) error {
	select {
	case q.pages <- b:
		return nil
	case <-q.ctx.Done():
		return q.ctx.Err()
	}
}

func (q *query) touch() { q.lastPoll.Store(time.Now().UnixNano()) }

// document builds the part every document has.
func (q *query) document(base, state string) queryResults {
	if !q.deleted.Load() {
		q.state.Store(state)
	}
	return queryResults{
		ID:      q.id,
		InfoURI: base + "/v1/query/" + q.id,
		Stats: statementStats{
			State:             state,
			Queued:            state == "QUEUED",
			Scheduled:         state != "QUEUED",
			Nodes:             1,
			ElapsedTimeMillis: time.Since(q.created).Milliseconds(),
			WallTimeMillis:    time.Since(q.created).Milliseconds(),
			ProcessedRows:     q.rows,
		},
		Warnings: []any{},
	}
}

func (q *query) nextURI(base string, token int64) string {
	return base + "/v1/statement/executing/" + q.id + "/" + q.slug + "/" + strconv.FormatInt(token, 10)
}

// queued is the answer to the POST: no rows, ever (trino-go-client drops them).
func (q *query) queued(base string) *servedDoc {
	doc := q.document(base, "QUEUED")
	doc.NextURI = base + "/v1/statement/queued/" + q.id + "/" + q.slug + "/1"
	return render(doc, nil)
}

// advance produces the document for token, the one after the last served:
// the next page, the outcome, or after longPollWait a document without rows.
// It reports false when the client went away before anything was consumed.
func (q *query) advance(ctx context.Context, base string, token int64) (*servedDoc, bool) {
	timer := time.NewTimer(longPollWait)
	defer timer.Stop()
	select {
	case b, ok := <-q.pages:
		if !ok {
			return q.failed(base), true
		}
		return q.page(base, token, b), true
	case <-timer.C:
		state := "RUNNING"
		if q.started.Load() == 0 {
			state = "QUEUED"
		}
		doc := q.document(base, state)
		doc.Columns = q.columns
		doc.NextURI = q.nextURI(base, token+1)
		return render(doc, nil), true
	case <-ctx.Done():
		return nil, false
	}
}

func (q *query) page(base string, token int64, b batch) *servedDoc {
	if b.columns != nil {
		q.columns = b.columns
	}
	q.rows += int64(b.rows)
	state := "RUNNING"
	if b.last {
		state = "FINISHED"
	}
	doc := q.document(base, state)
	doc.Columns = q.columns
	if b.rows > 0 {
		doc.Data = b.data
	}
	if !b.last {
		doc.NextURI = q.nextURI(base, token+1)
		sd := render(doc, nil)
		if sd.broken {
			q.cancel(errEncoding)
			q.doneAt.Store(time.Now().UnixNano())
		}
		return sd
	}
	doc.UpdateType = b.updateType
	if b.updateType != "" && len(q.columns) == 0 {
		zero := int64(0)
		doc.UpdateCount = &zero
	}
	q.doneAt.Store(time.Now().UnixNano())
	return render(doc, b.headers)
}

func (q *query) failed(base string) *servedDoc {
	qe := q.failure
	if qe == nil {
		qe = newQueryError(errInternal, "query ended without a result")
	}
	doc := q.document(base, "FAILED")
	doc.Columns = q.columns
	doc.Error = qe.document()
	q.doneAt.Store(time.Now().UnixNano())
	return render(doc, nil)
}

func render(doc queryResults, headers http.Header) *servedDoc {
	body, err := json.Marshal(doc)
	if err != nil {
		// Only a bug in an encoder can produce invalid row JSON.
		doc.Data = nil
		doc.NextURI = ""
		doc.Stats.State = "FAILED"
		doc.Error = newQueryError(errInternal, "encode result document: "+err.Error()).document()
		body, _ = json.Marshal(doc)
		return &servedDoc{body: body, broken: true}
	}
	return &servedDoc{body: body, headers: headers}
}
