package sqlgateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const slowQuery = "SELECT sum(a.range * b.range) FROM range(1000000) a CROSS JOIN range(1000000) b"

func TestProtocolDocumentsFollowTheSpec(t *testing.T) {
	tg := startGateway(t, Config{PageRows: 30})
	c := tg.raw(t)
	docs := c.run("SELECT id, name FROM raw.events ORDER BY id", nil)

	post := docs[0]
	if ct := post.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST Content-Type %q, want application/json", ct)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(post.body, &keys); err != nil {
		t.Fatal(err)
	}
	if _, ok := keys["data"]; ok {
		t.Errorf("POST reply carries data: %s", post.body)
	}
	if post.Stats["state"] != "QUEUED" || !strings.HasPrefix(post.NextURI, tg.srv.URL+"/v1/statement/queued/"+post.ID+"/") {
		t.Errorf("POST reply state %v nextUri %q", post.Stats["state"], post.NextURI)
	}
	for i, d := range docs {
		if d.ID != post.ID || d.InfoURI != tg.srv.URL+"/v1/query/"+post.ID || d.Stats["state"] == nil {
			t.Errorf("document %d lacks id, infoUri or stats.state: %s", i, d.body)
		}
		if len(d.Data) > 0 && len(d.Columns) != 2 {
			t.Errorf("document %d has data without columns: %s", i, d.body)
		}
		if len(d.Data) > 30 {
			t.Errorf("document %d has %d rows, more than PageRows 30", i, len(d.Data))
		}
		if d.header.Get("X-Trino-Set-Path") != "" {
			t.Errorf("document %d sets the path", i)
		}
	}
	last := docs[len(docs)-1]
	if last.Stats["state"] != "FINISHED" || last.NextURI != "" {
		t.Errorf("last document: state %v nextUri %q", last.Stats["state"], last.NextURI)
	}
	rows := rowsOf(docs)
	if len(rows) != 100 {
		t.Fatalf("got %d rows, want 100", len(rows))
	}
	for i, r := range rows {
		if r[0].(json.Number).String() != strconv.Itoa(i) || r[1] != "name-"+strconv.Itoa(i) {
			t.Fatalf("row %d = %v", i, r)
		}
	}
	if len(docs) < 5 {
		t.Errorf("100 rows at 30 per page came in %d documents", len(docs))
	}
	var withColumns *rawDoc
	for _, d := range docs {
		if len(d.Columns) > 0 {
			withColumns = d
			break
		}
	}
	if withColumns == nil {
		t.Fatal("no document has columns")
	}
	col := withColumns.Columns
	if col[0].Type != "bigint" || string(col[1].TypeSignature) != `{"rawType":"varchar","arguments":[{"kind":"LONG","value":2147483647}]}` {
		t.Errorf("columns %+v", col)
	}
	info := c.get(post.InfoURI)
	if info.status != http.StatusOK || !bytes.Contains(info.body, []byte(`"user":"bob"`)) || !bytes.Contains(info.body, []byte(`"state":"FINISHED"`)) {
		t.Errorf("infoUri: %d %s", info.status, info.body)
	}
}

func TestProtocolRetriedGetAnswersTheSamePage(t *testing.T) {
	tg := startGateway(t, Config{PageRows: 10})
	c := tg.raw(t)
	post := c.post("SELECT id FROM raw.events ORDER BY id", nil)
	uri := post.NextURI
	first := c.get(uri)
	for len(first.Data) == 0 && first.NextURI != "" { // a slow machine answers RUNNING first
		uri = first.NextURI
		first = c.get(uri)
	}
	if len(first.Data) == 0 {
		t.Fatalf("no page has rows: %s", first.body)
	}
	again := c.get(uri)
	if !bytes.Equal(first.body, again.body) {
		t.Fatalf("a retried GET answered a different document:\n%s\n%s", first.body, again.body)
	}
	second := c.get(first.NextURI)
	if second.Data[0][0].(json.Number).String() != "10" {
		t.Fatalf("second page starts at %v, want 10", second.Data[0][0])
	}
	if d := c.get(uri); d.status != http.StatusNotFound {
		t.Errorf("an old token answered %d, want 404", d.status)
	}
	// Drain to the end: the final document stays available for retries.
	docs := []*rawDoc{second}
	for docs[len(docs)-1].NextURI != "" {
		docs = append(docs, c.get(docs[len(docs)-1].NextURI))
	}
	lastURI := docs[len(docs)-2].NextURI
	final := docs[len(docs)-1]
	if retry := c.get(lastURI); !bytes.Equal(retry.body, final.body) {
		t.Fatalf("a retried GET of the final document answered %d %s", retry.status, retry.body)
	}
}

func TestProtocolUnknownQueriesAre404(t *testing.T) {
	tg := startGateway(t, Config{})
	c := tg.raw(t)
	post := c.post("SELECT 1", nil)
	wrongSlug := strings.Replace(post.NextURI, "/queued/"+post.ID+"/", "/queued/"+post.ID+"/x", 1)
	for _, uri := range []string{
		tg.srv.URL + "/v1/statement/executing/20240101_000000_00001_abcdef/slug/1",
		wrongSlug,
		strings.TrimSuffix(post.NextURI, "/1") + "/7",
		strings.TrimSuffix(post.NextURI, "/1") + "/x",
		tg.srv.URL + "/v1/query/nosuch",
	} {
		d := c.get(uri)
		if d.status != http.StatusNotFound || string(d.body) != "Query not found" || !strings.HasPrefix(d.header.Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s: %d %q %q, want 404 text/plain Query not found", uri, d.status, d.header.Get("Content-Type"), d.body)
		}
	}
	if d := c.do(http.MethodPost, tg.srv.URL+"/v1/statement", "  \n", nil); d.status != http.StatusBadRequest {
		t.Errorf("empty statement: %d, want 400", d.status)
	}
}

func TestProtocolDeleteCancelsTheQuery(t *testing.T) {
	tg := startGateway(t, Config{})
	c := tg.raw(t)
	post := c.post(slowQuery, nil)
	running := c.get(post.NextURI) // waits up to a second, then answers RUNNING
	if running.Stats["state"] != "RUNNING" || running.NextURI == "" || running.Error != nil {
		t.Fatalf("slow query after a poll: %s", running.body)
	}
	if tg.metric(t, "duet_sqlgateway_running_queries", nil) != 1 {
		t.Fatal("the slow query is not counted as running")
	}
	if d := c.do(http.MethodDelete, running.NextURI, "", nil); d.status != http.StatusNoContent {
		t.Fatalf("DELETE nextUri: %d, want 204", d.status)
	}
	if d := c.get(running.NextURI); d.status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", d.status)
	}
	eventually(t, 5*time.Second, "the cancelled query to stop", func() bool {
		return tg.metric(t, "duet_sqlgateway_running_queries", nil) == 0 &&
			tg.metric(t, "duet_sqlgateway_queries_total", map[string]string{"state": "canceled"}) == 1
	})
	// Its info URI answers FAILED, as Trino's does, until it is reaped.
	if d := c.get(tg.srv.URL + "/v1/query/" + post.ID); d.status != http.StatusOK || !strings.Contains(string(d.body), `"state":"FAILED"`) {
		t.Errorf("GET /v1/query after DELETE: %d %s, want 200 with state FAILED", d.status, d.body)
	}
	// trino-go-client's DELETE /v1/query/{id}, also for a forgotten query.
	if d := c.do(http.MethodDelete, tg.srv.URL+"/v1/query/"+post.ID, "", nil); d.status != http.StatusNoContent {
		t.Errorf("DELETE /v1/query: %d, want 204", d.status)
	}
}

func TestProtocolCancelWhileAClientWaits(t *testing.T) {
	tg := startGateway(t, Config{})
	c := tg.raw(t)
	post := c.post(slowQuery, nil)
	first := c.get(post.NextURI)
	done := make(chan *rawDoc, 1)
	go func() {
		// Long-polls while the DELETE below cancels the query.
		req, _ := http.NewRequest(http.MethodGet, first.NextURI, nil)
		resp, err := c.hc.Do(req)
		if err != nil {
			done <- nil
			return
		}
		defer resp.Body.Close()
		var d rawDoc
		_ = json.NewDecoder(resp.Body).Decode(&d)
		done <- &d
	}()
	time.Sleep(100 * time.Millisecond)
	if d := c.do(http.MethodDelete, tg.srv.URL+"/v1/query/"+post.ID, "", nil); d.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", d.status)
	}
	d := <-done
	if d == nil {
		t.Fatal("the waiting GET failed")
	}
	// The waiting poll either got the cancellation or a plain RUNNING document.
	if d.Error != nil && (d.Error.ErrorName != "USER_CANCELED" || d.Error.ErrorCode != 3) {
		t.Fatalf("waiting poll: %+v", d.Error)
	}
}

func TestProtocolInfo(t *testing.T) {
	tg := startGateway(t, Config{})
	c := tg.raw(t)
	d := c.get(tg.srv.URL + "/v1/info")
	var info struct {
		NodeVersion struct {
			Version string `json:"version"`
		} `json:"nodeVersion"`
		Environment string `json:"environment"`
		Coordinator bool   `json:"coordinator"`
		Starting    *bool  `json:"starting"`
		Uptime      string `json:"uptime"`
	}
	if err := json.Unmarshal(d.body, &info); err != nil {
		t.Fatal(err)
	}
	if info.NodeVersion.Version != "476-duet" || info.Environment == "" || !info.Coordinator || info.Starting == nil || *info.Starting || info.Uptime == "" {
		t.Errorf("/v1/info = %s", d.body)
	}
	if s := c.get(tg.srv.URL + "/v1/info/state"); string(s.body) != `"ACTIVE"` {
		t.Errorf("/v1/info/state = %s", s.body)
	}
}

func TestProtocolHonoursForwardedHeaders(t *testing.T) {
	tg := startGateway(t, Config{})
	c := tg.raw(t)
	h := http.Header{}
	h.Set("X-Forwarded-Proto", "https")
	h.Set("X-Forwarded-Host", "gw.example.com:8443, proxy.internal")
	d := c.post("SELECT 1", h)
	if !strings.HasPrefix(d.NextURI, "https://gw.example.com:8443/v1/statement/queued/") || !strings.HasPrefix(d.InfoURI, "https://gw.example.com:8443/") {
		t.Errorf("forwarded: nextUri %q infoUri %q", d.NextURI, d.InfoURI)
	}
	h.Set("X-Forwarded-Host", "evil.example/path?x=")
	d = c.post("SELECT 1", h)
	if !strings.HasPrefix(d.NextURI, "https://"+strings.TrimPrefix(tg.srv.URL, "http://")+"/") {
		t.Errorf("a forged host was used: %q", d.NextURI)
	}
}

func TestProtocolSessionStatementsAnswerWithHeaders(t *testing.T) {
	tg := startGateway(t, Config{})
	c := tg.raw(t)
	cases := []struct {
		sql, header, want string
	}{
		{"USE raw", "X-Trino-Set-Schema", "raw"},
		{"use duet.VIEWS", "X-Trino-Set-Schema", "views"},
		{"USE raw", "X-Trino-Set-Catalog", "duet"},
		{"SET SESSION query_max_run_time = '10m'", "X-Trino-Set-Session", "query_max_run_time=10m"},
		{"SET SESSION hive.some_flag = true", "X-Trino-Set-Session", "hive.some_flag=true"},
		{"RESET SESSION query_max_run_time", "X-Trino-Clear-Session", "query_max_run_time"},
		{"SET TIME ZONE 'America/New_York'", "X-Trino-Set-Session", "time_zone_id=America%2FNew_York"},
		{"SET TIME ZONE LOCAL", "X-Trino-Clear-Session", "time_zone_id"},
		{"COMMIT", "X-Trino-Clear-Transaction-Id", "true"},
		{"PREPARE q1 FROM SELECT ?", "X-Trino-Added-Prepare", "q1=SELECT+%3F"},
		{"DEALLOCATE PREPARE q1", "X-Trino-Deallocated-Prepare", "q1"},
	}
	for _, tc := range cases {
		docs := c.run(tc.sql, nil)
		last := docs[len(docs)-1]
		if last.Error != nil {
			t.Errorf("%s: %s", tc.sql, last.Error.Message)
			continue
		}
		if got := last.header.Get(tc.header); got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.sql, tc.header, got, tc.want)
		}
		for _, d := range docs[:len(docs)-1] {
			if d.header.Get(tc.header) != "" {
				t.Errorf("%s: %s sent before the final document", tc.sql, tc.header)
			}
		}
		if last.UpdateType == "" {
			t.Errorf("%s: no updateType", tc.sql)
		}
	}
	h := http.Header{}
	h.Set("X-Trino-Transaction-Id", "NONE")
	docs := c.run("START TRANSACTION", h)
	if id := docs[len(docs)-1].header.Get("X-Trino-Started-Transaction-Id"); id == "" {
		t.Error("START TRANSACTION returned no transaction id")
	}
	// The session travels in headers: a prepared statement and session properties.
	h = http.Header{}
	h.Set("X-Trino-Prepared-Statement", "q1=SELECT+name+FROM+raw.events+WHERE+id+%3D+%3F")
	h.Add("X-Trino-Session", "a=1,b=x%2Cy")
	h.Set("X-Trino-Time-Zone", "Europe/Berlin")
	h.Set("X-Trino-Client-Tags", "t1,t2")
	docs = c.run("EXECUTE q1 USING 3", h)
	if rows := rowsOf(docs); len(rows) != 1 || rows[0][0] != "name-3" {
		t.Errorf("EXECUTE q1 USING 3: %v %s", rows, docs[len(docs)-1].body)
	}
	docs = c.run("SHOW SESSION", h)
	if rows := rowsOf(docs); len(rows) != 2 || rows[1][0] != "b" || rows[1][1] != "x,y" {
		t.Errorf("SHOW SESSION: %v", rows)
	}
}

func TestProtocolZeroRowsHaveColumns(t *testing.T) {
	tg := startGateway(t, Config{})
	docs := tg.raw(t).run("SELECT id, ts FROM raw.events WHERE false", nil)
	var cols int
	for _, d := range docs {
		if len(d.Data) > 0 {
			t.Fatalf("a document of an empty result has data: %s", d.body)
		}
		if len(d.Columns) > 0 {
			cols = len(d.Columns)
		}
	}
	if cols != 2 {
		t.Fatalf("no document described the 2 columns: %s", docs[len(docs)-1].body)
	}
}

func TestProtocolPagesAreCutAtAMebibyte(t *testing.T) {
	tg := startGateway(t, Config{PageRows: 100000})
	docs := tg.raw(t).run("SELECT repeat('x', 100000) AS big FROM range(25)", nil)
	total := 0
	for _, d := range docs {
		total += len(d.Data)
		if len(d.body) > maxPageBytes+150000 {
			t.Errorf("a document is %d bytes", len(d.body))
		}
	}
	if total != 25 || len(docs) < 4 {
		t.Fatalf("%d rows in %d documents, want 25 rows in at least 3 pages", total, len(docs))
	}
}

func TestProtocolAbandonedQueryIsCancelled(t *testing.T) {
	tg := startGateway(t, Config{AbandonAfter: 200 * time.Millisecond})
	c := tg.raw(t)
	post := c.post(slowQuery, nil)
	eventually(t, 10*time.Second, "the abandoned query to be cancelled", func() bool {
		return tg.metric(t, "duet_sqlgateway_queries_total", map[string]string{"state": "canceled"}) == 1 &&
			tg.metric(t, "duet_sqlgateway_running_queries", nil) == 0
	})
	if d := c.get(post.NextURI); d.status != http.StatusNotFound {
		t.Errorf("GET of an abandoned query: %d, want 404", d.status)
	}
}

func TestProtocolQueryTimeout(t *testing.T) {
	tg := startGateway(t, Config{QueryTimeout: 300 * time.Millisecond})
	c := tg.raw(t)
	start := time.Now()
	docs := c.run(slowQuery, nil)
	last := docs[len(docs)-1]
	if last.Error == nil || last.Error.ErrorName != "EXCEEDED_TIME_LIMIT" || last.Error.ErrorCode != 131075 ||
		last.Error.ErrorType != "INSUFFICIENT_RESOURCES" || last.Stats["state"] != "FAILED" {
		t.Fatalf("slow query with a 300ms limit ended with %s", last.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the time limit took %s to hit", d)
	}
	// query_max_run_time lowers the limit for one session.
	tg2 := startGateway(t, Config{})
	h := http.Header{}
	h.Set("X-Trino-Session", "query_max_run_time=200ms")
	docs = tg2.raw(t).run(slowQuery, h)
	if e := docs[len(docs)-1].Error; e == nil || e.ErrorName != "EXCEEDED_TIME_LIMIT" {
		t.Fatalf("query_max_run_time=200ms: %s", docs[len(docs)-1].body)
	}
}

func TestProtocolDefaultsAndUserHeaders(t *testing.T) {
	tg := startGateway(t, Config{})
	c := tg.raw(t)
	d := c.do(http.MethodPost, tg.srv.URL+"/v1/statement", "SELECT 1", http.Header{
		"X-Trino-Transaction-Id":      {"NONE"},
		"X-Trino-Client-Capabilities": {"PARAMETRIC_DATETIME"},
		"X-Trino-Query-Data-Encoding": {"json+zstd"},
		"X-Trino-Time-Zone":           {"Mars/Olympus"},
	})
	info := c.get(d.InfoURI)
	if !bytes.Contains(info.body, []byte(`"user":"anonymous"`)) {
		t.Errorf("query without X-Trino-User: %s", info.body)
	}
	next := c.get(d.NextURI)
	if next.Error == nil || next.Error.ErrorName != "GENERIC_USER_ERROR" || !strings.Contains(next.Error.Message, "Mars/Olympus") {
		t.Errorf("an unknown time zone: %s", next.body)
	}
	// Inline data even though the client asked for spooled segments.
	docs := c.run("SELECT 42", http.Header{"X-Trino-Query-Data-Encoding": {"json"}})
	if rows := rowsOf(docs); len(rows) != 1 || rows[0][0].(json.Number).String() != "42" {
		t.Errorf("SELECT 42: %v", rows)
	}
}

func TestRunRefusesQueriesAfterShutdown(t *testing.T) {
	db := newEngine(t)
	g, err := New(Config{}, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	c := &rawClient{t: t, url: srv.URL, hc: &http.Client{Transport: &http.Transport{}}}
	defer c.hc.CloseIdleConnections()
	post := c.post(slowQuery, nil)
	running := c.get(post.NextURI)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if d := c.get(running.NextURI); d.Error == nil || d.Error.ErrorName != "SERVER_SHUTTING_DOWN" {
		t.Errorf("the running query after shutdown: %s", d.body)
	}
	if d := c.post("SELECT 1", nil); d.status != http.StatusServiceUnavailable {
		t.Errorf("POST after shutdown: %d, want 503", d.status)
	}
	if s := c.get(srv.URL + "/v1/info/state"); string(s.body) != `"SHUTTING_DOWN"` {
		t.Errorf("state after shutdown: %s", s.body)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	db := newEngine(t)
	for _, cfg := range []Config{
		{Version: "duet-1"},
		{Catalog: "a.b"},
		{PageRows: -1},
		{QueryTimeout: -time.Second},
	} {
		if _, err := New(cfg, db, nil, nil); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
	if _, err := New(Config{}, nil, nil, nil); err == nil {
		t.Error("New accepted a nil database")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, db, nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, db, nil, reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}
