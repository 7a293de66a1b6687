package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
)

func TestListJobsSendsFilters(t *testing.T) {
	var query string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		writeJSON(w, 200, api.JobList{Jobs: []api.Job{{ID: "j2", State: api.JobQueued}, {ID: "j1", State: api.JobFailed}}})
	})
	c := newTestClient(t, mux, Config{})
	since := time.Date(2024, 5, 1, 14, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	jobs, err := c.ListJobs(context.Background(), JobFilter{View: "by origin", State: api.JobFailed, Kind: "view-build", User: "ann",
		Since: since, Limit: 5, Offset: 10})
	if err != nil {
		t.Fatal(err)
	}
	if query != "kind=view-build&limit=5&offset=10&since=2024-05-01T12%3A00%3A00Z&state=failed&user=ann&view=by+origin" {
		t.Errorf("query = %q", query)
	}
	if len(jobs) != 2 || jobs[0].ID != "j2" {
		t.Errorf("jobs = %+v", jobs)
	}
	if _, err := c.ListJobs(context.Background(), JobFilter{}); err != nil || query != "" {
		t.Errorf("no filter: query %q, err %v", query, err)
	}
}

func TestKillJobAndLogs(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "done" {
			writeJSON(w, 409, api.Error{Error: "job done already succeeded: only queued and running jobs can be killed"})
			return
		}
		writeJSON(w, 202, api.Job{ID: r.PathValue("id"), State: api.JobKilled})
	})
	mux.HandleFunc("GET /v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "j1" {
			writeJSON(w, 404, api.Error{Error: "job j9 has no logs"})
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("duet: build: IO Error\n"))
	})
	c := newTestClient(t, mux, Config{})
	ctx := context.Background()
	if j, err := c.KillJob(ctx, "j1"); err != nil || j.State != api.JobKilled {
		t.Errorf("KillJob = %+v, %v", j, err)
	}
	if _, err := c.KillJob(ctx, "done"); !IsStatus(err, 409) || !strings.Contains(err.Error(), "already succeeded") {
		t.Errorf("KillJob(finished) = %v", err)
	}
	var b strings.Builder
	if err := c.JobLogs(ctx, "j1", &b); err != nil || b.String() != "duet: build: IO Error\n" {
		t.Errorf("JobLogs = %q, %v", b.String(), err)
	}
	if err := c.JobLogs(ctx, "j9", &b); !IsStatus(err, 404) || err.Error() != "job j9 has no logs" {
		t.Errorf("JobLogs(none) = %v", err)
	}
}

func TestWaitJobStopsOnEveryFinalState(t *testing.T) {
	for _, final := range []string{api.JobSucceeded, api.JobFailed, api.JobKilled, api.JobTimedOut} {
		polls := 0
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
			polls++
			state := api.JobRunning
			if polls > 1 {
				state = final
			}
			writeJSON(w, 200, api.Job{ID: "j", State: state})
		})
		c := newTestClient(t, mux, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		j, err := c.WaitJob(ctx, "j", time.Millisecond)
		cancel()
		if err != nil || j.State != final || polls != 2 {
			t.Errorf("WaitJob until %s = %+v, %v after %d polls", final, j, err, polls)
		}
	}
}

func TestListJobsPagesFollowNext(t *testing.T) {
	var queries []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		if r.URL.Query().Get("offset") == "" {
			writeJSON(w, 200, api.JobList{Jobs: []api.Job{{ID: "j3"}, {ID: "j2"}}, Next: "/v1/jobs?limit=2&offset=2&user=ann"})
			return
		}
		writeJSON(w, 200, api.JobList{Jobs: []api.Job{{ID: "j1"}}})
	})
	c := newTestClient(t, mux, Config{})
	ctx := context.Background()
	first, err := c.ListJobsPage(ctx, JobFilter{User: "ann", Limit: 2})
	if err != nil || len(first.Jobs) != 2 || first.Next == "" {
		t.Fatalf("first page = %+v, %v", first, err)
	}
	second, err := c.NextJobsPage(ctx, first.Next)
	if err != nil || len(second.Jobs) != 1 || second.Jobs[0].ID != "j1" || second.Next != "" {
		t.Fatalf("second page = %+v, %v", second, err)
	}
	if want := []string{"limit=2&user=ann", "limit=2&offset=2&user=ann"}; fmt.Sprint(queries) != fmt.Sprint(want) {
		t.Errorf("queries %q, want %q", queries, want)
	}
	// The link is followed with the client's credentials: never to another host.
	if _, err := c.NextJobsPage(ctx, "http://elsewhere.example/v1/jobs?offset=2"); err == nil || !strings.Contains(err.Error(), "leaves the server") {
		t.Errorf("link to another host: %v", err)
	}
	if len(queries) != 2 {
		t.Errorf("%d requests after a foreign link, want 2", len(queries))
	}
}

func TestSubmitJob(t *testing.T) {
	var got api.JobRequest
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			writeJSON(w, 415, api.Error{Error: "content type " + ct})
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			writeJSON(w, 400, api.Error{Error: err.Error()})
			return
		}
		switch got.ID {
		case "taken":
			writeJSON(w, 409, api.Error{Error: `job "taken" is a different job`})
		case "busy":
			w.Header().Set("Retry-After", "3")
			writeJSON(w, 429, api.Error{Error: "user ann has 10 active jobs"})
		default:
			w.Header().Set("Location", "/v1/jobs/"+got.ID)
			writeJSON(w, 202, api.Job{ID: got.ID, Kind: got.Kind, State: api.JobQueued, SQL: got.SQL, ClusterCriteria: got.ClusterCriteria})
		}
	})
	c := newTestClient(t, mux, Config{})
	ctx := context.Background()
	req := api.JobRequest{ID: "daily-1", Kind: api.JobKindSQL, SQL: "SELECT $n", Params: map[string]string{"n": "1"}, Output: "jobs.daily",
		Timeout: "30m", MaxAttempts: 2, ClusterCriteria: [][]string{{"gpu", "eu"}, {"default"}}}
	j, err := c.SubmitJob(ctx, req)
	if err != nil || j.ID != "daily-1" || j.State != api.JobQueued || len(j.ClusterCriteria) != 2 {
		t.Fatalf("SubmitJob = %+v, %v", j, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(req) {
		t.Errorf("server got %+v\nwant %+v", got, req)
	}
	if _, err := c.SubmitJob(ctx, api.JobRequest{ID: "taken", Kind: api.JobKindSQL}); !IsStatus(err, 409) || err.Error() != `job "taken" is a different job` {
		t.Errorf("SubmitJob(taken) = %v", err)
	}
	_, err = c.SubmitJob(ctx, api.JobRequest{ID: "busy", Kind: api.JobKindSQL})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 429 || ae.RetryAfter != 3*time.Second {
		t.Errorf("SubmitJob(busy) = %#v", err)
	}
}

// growingOutput serves a job's stderr as the output endpoint does: ranges
// honoured, 416 past the end, and the file growing between requests.
type growingOutput struct {
	mu     sync.Mutex
	stderr []byte
	ranges []string
}

func (g *growingOutput) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}/output", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		writeJSON(w, 200, api.JobOutput{Files: []api.JobOutputFile{{Name: "stderr", Bytes: int64(len(g.stderr))}, {Name: "stdout", Bytes: 0}}})
	})
	mux.HandleFunc("GET /v1/jobs/{id}/output/{name}", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.ranges = append(g.ranges, r.Header.Get("Range"))
		if r.PathValue("name") != "stderr" {
			writeJSON(w, 404, api.Error{Error: "job j1 has no " + r.PathValue("name")})
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(g.stderr))
	})
	return mux
}

func TestJobOutputReadsFromOffset(t *testing.T) {
	g := &growingOutput{stderr: []byte("statement 1 of 2\n")}
	c := newTestClient(t, g.handler(), Config{})
	ctx := context.Background()

	files, err := c.JobOutputFiles(ctx, "j1")
	if err != nil || len(files) != 2 || files[0] != (api.JobOutputFile{Name: "stderr", Bytes: 17}) {
		t.Fatalf("JobOutputFiles = %+v, %v", files, err)
	}
	var b strings.Builder
	off := int64(0)
	read := func() int64 {
		t.Helper()
		n, err := c.JobOutput(ctx, "j1", "stderr", off, &b)
		if err != nil {
			t.Fatalf("JobOutput from %d: %v", off, err)
		}
		off += n
		return n
	}
	if n := read(); n != 17 || b.String() != "statement 1 of 2\n" {
		t.Fatalf("first read: %d bytes, %q", n, b.String())
	}
	if n := read(); n != 0 {
		t.Errorf("read at the end copied %d bytes", n)
	}
	g.mu.Lock()
	g.stderr = append(g.stderr, "statement 2 of 2\n"...)
	g.mu.Unlock()
	if n := read(); n != 17 || b.String() != "statement 1 of 2\nstatement 2 of 2\n" {
		t.Errorf("read after growth: %d bytes, %q", n, b.String())
	}
	if want := []string{"", "bytes=17-", "bytes=17-"}; fmt.Sprint(g.ranges) != fmt.Sprint(want) {
		t.Errorf("Range headers %q, want %q", g.ranges, want)
	}
	if _, err := c.JobOutput(ctx, "j1", "stdout", 0, &b); !IsStatus(err, 404) || err.Error() != "job j1 has no stdout" {
		t.Errorf("JobOutput(missing) = %v", err)
	}
}

func TestJobOutputCopesWithServersIgnoringRange(t *testing.T) {
	contentRange := ""
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}/output/{name}", func(w http.ResponseWriter, r *http.Request) {
		if contentRange != "" {
			w.Header().Set("Content-Range", contentRange)
			w.WriteHeader(http.StatusPartialContent)
			fmt.Fprint(w, "xyz")
			return
		}
		fmt.Fprint(w, "0123456789") // the whole file, Range or not
	})
	c := newTestClient(t, mux, Config{})
	ctx := context.Background()
	var b strings.Builder
	if n, err := c.JobOutput(ctx, "j1", "stdout", 4, &b); err != nil || n != 6 || b.String() != "456789" {
		t.Errorf("from 4 on a 200 answer: %d, %q, %v", n, b.String(), err)
	}
	b.Reset()
	if n, err := c.JobOutput(ctx, "j1", "stdout", 20, &b); err != nil || n != 0 || b.Len() != 0 {
		t.Errorf("past the end of a 200 answer: %d, %q, %v", n, b.String(), err)
	}
	contentRange = "bytes 2-4/10"
	if _, err := c.JobOutput(ctx, "j1", "stdout", 4, &b); err == nil || !strings.Contains(err.Error(), "starts at byte 2, not 4") || b.Len() != 0 {
		t.Errorf("misplaced 206: %q, %v", b.String(), err)
	}
}
