package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trinodb/trino-go-client/trino"
	"go.uber.org/goleak"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/dataset"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newTestClient serves h on 127.0.0.1 and returns a client of it.
func newTestClient(t *testing.T, h http.Handler, cfg Config) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	c, err := NewWithConfig(srv.URL, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CloseIdleConnections()
		srv.Close()
	})
	return c
}

func TestDatasets(t *testing.T) {
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var got api.Dataset
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/datasets", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			writeJSON(w, 400, api.Error{Error: "content type " + ct})
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			writeJSON(w, 400, api.Error{Error: err.Error()})
			return
		}
		d := got
		d.CreatedAt = &created
		d.Log = &api.LogStatus{}
		writeJSON(w, 201, d)
	})
	mux.HandleFunc("GET /v1/datasets/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "flights" {
			writeJSON(w, 404, api.Error{Error: `dataset "` + r.PathValue("name") + `" not found`})
			return
		}
		writeJSON(w, 200, api.Dataset{Name: "flights", TimeColumn: "ts", Columns: got.Columns,
			Log: &api.LogStatus{EndOffset: 42, ArchivedOffset: 40, ArchiveFiles: 2}})
	})
	mux.HandleFunc("GET /v1/datasets", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.DatasetList{Datasets: []api.Dataset{{Name: "a"}, {Name: "b"}}})
	})
	c := newTestClient(t, mux, Config{})
	ctx := context.Background()

	cols := []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "delay", Type: dataset.Double}}
	d, err := c.CreateDataset(ctx, api.Dataset{Name: "flights", TimeColumn: "ts", Columns: cols})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "flights" || got.TimeColumn != "ts" || len(got.Columns) != 2 || got.Columns[1] != cols[1] {
		t.Errorf("server received %+v", got)
	}
	if d.CreatedAt == nil || !d.CreatedAt.Equal(created) || d.Log == nil {
		t.Errorf("answer decoded as %+v", d)
	}

	d, err = c.GetDataset(ctx, "flights")
	if err != nil {
		t.Fatal(err)
	}
	if d.Log == nil || d.Log.EndOffset != 42 || d.Log.ArchiveFiles != 2 || len(d.Columns) != 2 {
		t.Errorf("GetDataset decoded %+v", d)
	}

	_, err = c.GetDataset(ctx, "nope")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || err.Error() != `dataset "nope" not found` {
		t.Errorf("GetDataset(nope) = %v (%T), want 404 APIError with the server's message", err, err)
	}
	if !IsStatus(err, http.StatusNotFound) {
		t.Error("IsStatus(err, 404) = false")
	}

	list, err := c.ListDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Errorf("ListDatasets = %+v", list)
	}
}

func TestPathSegmentsAreEscaped(t *testing.T) {
	var path string
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		writeJSON(w, 200, api.View{Name: "x"})
	}), Config{})
	if _, err := c.GetView(context.Background(), "a b/c"); err != nil {
		t.Fatal(err)
	}
	if path != "/v1/views/a%20b%2Fc" {
		t.Errorf("path = %q", path)
	}
}

func TestAPIErrorMapping(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ingest/bad", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, api.Error{Error: `row 3, column "delay": "x" is not a double`, Row: 3, Column: "delay"})
	})
	mux.HandleFunc("POST /v1/views", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 409, api.Error{Error: `view "v" already exists`})
	})
	mux.HandleFunc("GET /v1/views", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		_, _ = io.WriteString(w, "Bad Gateway from proxy\n<html>...</html>")
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
	})
	c := newTestClient(t, mux, Config{})
	ctx := context.Background()

	_, err := c.Ingest(ctx, "bad", ContentTypeNDJSON, []byte("{}\n"))
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("Ingest error %v (%T), want *APIError", err, err)
	}
	if ae.Status != 400 || ae.Row != 3 || ae.Column != "delay" || ae.Error() != `row 3, column "delay": "x" is not a double` {
		t.Errorf("APIError = %+v", ae)
	}

	_, err = c.CreateView(ctx, api.ViewRequest{Name: "v", SQL: "SELECT 1"})
	if !IsStatus(err, 409) || err.Error() != `view "v" already exists` {
		t.Errorf("CreateView error = %v", err)
	}

	_, err = c.ListViews(ctx)
	if !IsStatus(err, 502) || err.Error() != "server answered 502 Bad Gateway: Bad Gateway from proxy" {
		t.Errorf("ListViews error = %q", err)
	}

	_, err = c.GetJob(ctx, "j1")
	if !IsStatus(err, 500) || err.Error() != "server answered 500 Internal Server Error" {
		t.Errorf("GetJob error = %q", err)
	}
}

func TestIngestRetriesAfter429(t *testing.T) {
	var (
		mu       sync.Mutex
		bodies   [][]byte
		arrivals []time.Time
	)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/ingest/events" || r.Header.Get("Content-Type") != ContentTypeNDJSON {
			writeJSON(w, 400, api.Error{Error: "unexpected " + r.Method + " " + r.URL.Path})
			return
		}
		b, _ := io.ReadAll(r.Body)
		if r.ContentLength != int64(len(b)) {
			writeJSON(w, 400, api.Error{Error: fmt.Sprintf("Content-Length %d for %d bytes", r.ContentLength, len(b))})
			return
		}
		mu.Lock()
		bodies = append(bodies, b)
		arrivals = append(arrivals, time.Now())
		n := len(bodies)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, api.Error{Error: "ingest memory budget exhausted; retry later"})
			return
		}
		writeJSON(w, 200, api.IngestResult{Accepted: 2, FirstOffset: 10, LastOffset: 11})
	}), Config{})

	var events []RetryEvent
	c.cfg.OnRetry = func(e RetryEvent) { events = append(events, e) }
	body := []byte("{\"a\":1}\n{\"a\":2}\n")
	res, err := c.Ingest(context.Background(), "events", ContentTypeNDJSON, body)
	if err != nil {
		t.Fatal(err)
	}
	if res != (api.IngestResult{Accepted: 2, FirstOffset: 10, LastOffset: 11}) {
		t.Errorf("result = %+v", res)
	}
	if len(bodies) != 2 || !bytes.Equal(bodies[0], body) || !bytes.Equal(bodies[1], body) {
		t.Fatalf("server received %q, want the same body twice", bodies)
	}
	if gap := arrivals[1].Sub(arrivals[0]); gap < 900*time.Millisecond {
		t.Errorf("resent after %s, want the 1s Retry-After honoured", gap)
	}
	if len(events) != 1 || events[0].Status != 429 || events[0].Wait != time.Second || events[0].Attempt != 1 {
		t.Errorf("retry events = %+v", events)
	}
}

func TestIngestGivesUpAfterAttempts(t *testing.T) {
	var attempts atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		writeJSON(w, 503, api.Error{Error: "server is shutting down"})
	}), Config{IngestAttempts: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 4 * time.Millisecond})

	_, err := c.Ingest(context.Background(), "events", ContentTypeArrowStream, []byte("x"))
	if attempts.Load() != 3 {
		t.Errorf("attempts = %d, want 3", attempts.Load())
	}
	if !IsStatus(err, 503) || !strings.Contains(err.Error(), "after 3 attempts: server is shutting down") {
		t.Errorf("error = %v", err)
	}
}

func TestIngestDoesNotRetryRejectedBody(t *testing.T) {
	var attempts atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		writeJSON(w, 413, api.Error{Error: "request body too large"})
	}), Config{RetryDelay: time.Millisecond})
	_, err := c.Ingest(context.Background(), "events", ContentTypeNDJSON, []byte("{}\n"))
	if attempts.Load() != 1 || !IsStatus(err, 413) {
		t.Errorf("attempts=%d err=%v, want one attempt and a 413", attempts.Load(), err)
	}
}

func TestIngestWaitStopsOnCancel(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		writeJSON(w, 429, api.Error{Error: "busy"})
	}), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Ingest(ctx, "events", ContentTypeNDJSON, []byte("{}\n"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("err = %v after %s, want the deadline to end the wait", err, time.Since(start))
	}
}

func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	c, err := New("http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListDatasets(context.Background())
	want := `cannot reach duet server at http://` + addr + `: connection refused (start it with "duet serve")`
	if err == nil || err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Errorf("error is %T, want *UnreachableError", err)
	}
	if err := c.CheckReachable(context.Background()); err == nil || err.Error() != want {
		t.Errorf("CheckReachable = %v, want %q", err, want)
	}
}

func TestCheckReachable(t *testing.T) {
	c := newTestClient(t, http.NotFoundHandler(), Config{})
	if err := c.CheckReachable(context.Background()); err != nil {
		t.Errorf("CheckReachable of a listening server: %v", err)
	}
}

func TestWaitJob(t *testing.T) {
	var polls atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/jobs/j-7" {
			writeJSON(w, 404, api.Error{Error: "job not found"})
			return
		}
		n := polls.Add(1)
		job := api.Job{ID: "j-7", Kind: "build", View: "v", State: api.JobQueued}
		switch {
		case n == 2:
			job.State = api.JobRunning
		case n >= 3:
			job.State = api.JobSucceeded
			job.Version = &api.BatchVersion{Version: 3, CoveredOffset: 100}
		}
		writeJSON(w, 200, job)
	}), Config{})
	job, err := c.WaitJob(context.Background(), "j-7", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if polls.Load() != 3 || job.State != api.JobSucceeded || job.Version == nil || job.Version.Version != 3 {
		t.Errorf("after %d polls job = %+v", polls.Load(), job)
	}
}

func TestTriggerBuild(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/views/hourly/builds" {
			writeJSON(w, 404, api.Error{Error: "no route " + r.URL.Path})
			return
		}
		w.Header().Set("Location", "/v1/jobs/j-1")
		writeJSON(w, 202, api.Job{ID: "j-1", Kind: "build", View: "hourly", State: api.JobQueued})
	}), Config{})
	job, err := c.TriggerBuild(context.Background(), "hourly")
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != "j-1" || job.State != api.JobQueued || job.View != "hourly" {
		t.Errorf("job = %+v", job)
	}
}

func TestTrinoDSN(t *testing.T) {
	c, err := New("http://127.0.0.1:8080/", nil)
	if err != nil {
		t.Fatal(err)
	}
	dsn := c.TrinoDSN("ana")
	if dsn != "http://ana@127.0.0.1:8080?catalog=duet&schema=views" {
		t.Errorf("dsn = %q", dsn)
	}
	cfg, err := trino.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerURI != "http://ana@127.0.0.1:8080" || cfg.Catalog != "duet" || cfg.Schema != "views" {
		t.Errorf("trino reads the DSN as %+v", cfg)
	}
}

func TestCredentials(t *testing.T) {
	var got []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/datasets", func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization")+r.Header.Get("X-Duet-User"))
		writeJSON(w, 200, api.DatasetList{})
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		creds      Credentials
		authHeader string
		dsn        string // of TrinoDSN("")
	}{
		{Credentials{}, "", "https://HOST?catalog=duet&schema=views"},
		{Credentials{Token: "t.o.k"}, "Bearer t.o.k", "https://HOST?accessToken=t.o.k&catalog=duet&schema=views"},
		{Credentials{User: "ana", Password: "p@ss"}, "Basic YW5hOnBAc3M=", "https://ana:p%40ss@HOST?catalog=duet&schema=views"},
		{Credentials{User: "ana"}, "ana", "https://HOST?catalog=duet&schema=views"}, // the X-Duet-User claim
	} {
		got = nil
		cl, err := NewWithConfig(srv.URL, srv.Client(), Config{Credentials: c.creds})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.ListDatasets(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != c.authHeader {
			t.Errorf("%+v: Authorization %q, want %q", c.creds, got, c.authHeader)
		}
		host := strings.TrimPrefix(srv.URL, "https://")
		if dsn := strings.Replace(cl.TrinoDSN(""), host, "HOST", 1); dsn != c.dsn {
			t.Errorf("%+v: TrinoDSN = %q, want %q", c.creds, dsn, c.dsn)
		}
		if _, err := trino.ParseDSN(cl.TrinoDSN("")); err != nil {
			t.Errorf("%+v: trino refuses the DSN: %v", c.creds, err)
		}
	}
	for _, c := range []struct {
		url   string
		creds Credentials
		want  string
	}{
		{"http://h:1", Credentials{User: "ana", Password: "x"}, "a password is sent only over https"},
		{"https://h:1", Credentials{Password: "x"}, "a password needs a user"},
		{"https://h:1", Credentials{User: "ana", Password: "x", Token: "t"}, "a token or a user and password, not both"},
	} {
		if _, err := NewWithConfig(c.url, nil, Config{Credentials: c.creds}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: got %v, want an error saying %q", c.url, c.creds, err, c.want)
		}
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, s := range []string{"127.0.0.1:8080", "ftp://x", "http://", "http://h:1/prefix", "http://u@h:1"} {
		if _, err := New(s, nil); err == nil {
			t.Errorf("New(%q) accepted it", s)
		}
	}
	if _, err := NewWithConfig("http://h:1", nil, Config{IngestAttempts: -1}); err == nil || !strings.Contains(err.Error(), "ingest_attempts") {
		t.Errorf("bad config error = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"0":                             0,
		"junk":                          0,
		"Mon, 01 Jan 2024 00:00:05 GMT": 5 * time.Second,
		"Sun, 31 Dec 2023 00:00:05 GMT": 0,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
