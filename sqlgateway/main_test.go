package sqlgateway

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	_ "github.com/trinodb/trino-go-client/trino" // registers the "trino" driver
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newEngine prepares DuckDB the way duet's server does: an attached
// in-memory catalog "duet" as every connection's default, schemas views,
// raw and the hidden __duet_internal, and the engine locked down.
func newEngine(t *testing.T) *sql.DB {
	t.Helper()
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		for _, q := range []string{"ATTACH IF NOT EXISTS ':memory:' AS duet", "USE duet"} {
			if _, err := execer.ExecContext(context.Background(), q, nil); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { _ = db.Close() })
	setup := []string{
		"CREATE SCHEMA views",
		"CREATE SCHEMA raw",
		"CREATE SCHEMA __duet_internal",
		"CREATE TABLE __duet_internal.secrets AS SELECT 1 AS x",
		`CREATE TABLE raw.events_data AS
			SELECT range AS id, 'name-' || range AS name, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (range) MINUTE AS ts
			FROM range(100)`,
		"CREATE VIEW raw.events AS SELECT * FROM raw.events_data",
		"COMMENT ON COLUMN raw.events_data.name IS 'the name'",
		"CREATE VIEW views.totals AS SELECT count(*) AS n, max(id) AS top FROM raw.events_data",
		"SET threads = 2",
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	}
	for _, q := range setup {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

// testGateway is a Gateway served on a loopback port, with its registry.
type testGateway struct {
	g   *Gateway
	db  *sql.DB
	srv *httptest.Server
	reg *prometheus.Registry
}

func startGateway(t *testing.T, cfg Config) *testGateway {
	t.Helper()
	return startGatewayOn(t, cfg, newEngine(t))
}

// startGatewayOn serves a gateway over db.
func startGatewayOn(t *testing.T, cfg Config, db *sql.DB) *testGateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := New(cfg, db, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return &testGateway{g: g, db: db, srv: srv, reg: reg}
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client opens a trino-go-client database on the gateway.
func (tg *testGateway) client(t *testing.T, params string) *sql.DB {
	t.Helper()
	dsn := strings.Replace(tg.srv.URL, "http://", "http://alice@", 1) + "?catalog=duet&schema=views"
	if params != "" {
		dsn += "&" + params
	}
	db, err := sql.Open("trino", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// metric reads a gauge or counter value from the gateway's registry.
func (tg *testGateway) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := tg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawClient speaks the protocol by hand, for the details clients hide.
type rawClient struct {
	t   *testing.T
	url string
	hc  *http.Client
}

func (tg *testGateway) raw(t *testing.T) *rawClient {
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return &rawClient{t: t, url: tg.srv.URL, hc: hc}
}

// rawDoc is a QueryResults document as a client decodes it.
type rawDoc struct {
	ID      string `json:"id"`
	InfoURI string `json:"infoUri"`
	NextURI string `json:"nextUri"`
	Columns []struct {
		Name          string          `json:"name"`
		Type          string          `json:"type"`
		TypeSignature json.RawMessage `json:"typeSignature"`
	} `json:"columns"`
	Data       [][]any        `json:"data"`
	Stats      map[string]any `json:"stats"`
	Error      *errorDoc      `json:"error"`
	UpdateType string         `json:"updateType"`

	body   []byte
	header http.Header
	status int
}

func (c *rawClient) do(method, uri, body string, header http.Header) *rawDoc {
	c.t.Helper()
	req, err := http.NewRequest(method, uri, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	d := &rawDoc{body: b, header: resp.Header, status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && bytes.HasPrefix(b, []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(d); err != nil {
			c.t.Fatalf("decode %s %s: %v\n%s", method, uri, err, b)
		}
	}
	return d
}

// post submits a statement.
func (c *rawClient) post(sql string, header http.Header) *rawDoc {
	c.t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if header.Get("X-Trino-User") == "" {
		header.Set("X-Trino-User", "bob")
	}
	return c.do(http.MethodPost, c.url+"/v1/statement", sql, header)
}

func (c *rawClient) get(uri string) *rawDoc {
	c.t.Helper()
	return c.do(http.MethodGet, uri, "", nil)
}

// run submits a statement and follows it to the end, returning every document.
func (c *rawClient) run(sql string, header http.Header) []*rawDoc {
	c.t.Helper()
	docs := []*rawDoc{c.post(sql, header)}
	for docs[len(docs)-1].NextURI != "" {
		d := c.get(docs[len(docs)-1].NextURI)
		if d.status != http.StatusOK {
			c.t.Fatalf("GET %s: %d %s", docs[len(docs)-1].NextURI, d.status, d.body)
		}
		docs = append(docs, d)
	}
	return docs
}

// rowsOf concatenates the data of documents.
func rowsOf(docs []*rawDoc) [][]any {
	var rows [][]any
	for _, d := range docs {
		rows = append(rows, d.Data...)
	}
	return rows
}
