package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
)

// fakeJobsAPI answers the jobs endpoints from a fixed list, and records the
// view requests it gets.
type fakeJobsAPI struct {
	mu     sync.Mutex
	jobs   []api.Job // newest first
	query  string
	viewRq []api.ViewRequest
}

func newFakeJobsAPI(t *testing.T) (*fakeJobsAPI, string) {
	next := testTime.Add(30 * time.Second)
	started, finished := testTime.Add(time.Second), testTime.Add(3500*time.Millisecond)
	f := &fakeJobsAPI{jobs: []api.Job{
		{ID: "j3", Kind: "backfill", View: "by_origin", Params: map[string]string{"to": "2024-04-30", "from": "2024-04-01"}, State: api.JobQueued,
			Attempt: 1, MaxAttempts: 4, NextAttemptAt: &next, Timeout: "30m", CreatedAt: testTime, StartedAt: &started, FinishedAt: &finished,
			DurationMs: 2500, Error: "executor exited with 1: out of disk", LogPrefix: "logs/jobs/j3/attempt-1/"},
		{ID: "j2", Kind: "compaction", Params: map[string]string{"dataset": "flights"}, State: api.JobRunning, Attempt: 1, MaxAttempts: 4, CreatedAt: testTime, StartedAt: &started},
		{ID: "j1", Kind: "view-build", View: "by_origin", State: api.JobSucceeded, Attempt: 2, MaxAttempts: 4, CreatedAt: testTime,
			StartedAt: &started, FinishedAt: &finished, DurationMs: 2500, LogPrefix: "logs/jobs/j1/attempt-2/"},
	}}
	find := func(id string) *api.Job {
		for i := range f.jobs {
			if f.jobs[i].ID == id {
				return &f.jobs[i]
			}
		}
		return nil
	}
	notFound := func(w http.ResponseWriter, id string) {
		writeJSON(w, 404, api.Error{Error: fmt.Sprintf("job %q not found", id)})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.query = r.URL.RawQuery
		out := api.JobList{Jobs: []api.Job{}}
		for _, j := range f.jobs {
			if s := r.URL.Query().Get("state"); s == "" || s == j.State {
				out.Jobs = append(out.Jobs, j)
			}
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if j := find(r.PathValue("id")); j != nil {
			writeJSON(w, 200, j)
			return
		}
		notFound(w, r.PathValue("id"))
	})
	mux.HandleFunc("GET /v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "j3" {
			writeJSON(w, 404, api.Error{Error: "job " + r.PathValue("id") + " has no logs: it has not started"})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "duet: build: out of disk\nrows written: 0\n")
	})
	mux.HandleFunc("DELETE /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j := find(r.PathValue("id"))
		switch {
		case j == nil:
			notFound(w, r.PathValue("id"))
		case api.JobFinished(j.State):
			writeJSON(w, 409, api.Error{Error: fmt.Sprintf("job %s already %s: only queued and running jobs can be killed", j.ID, j.State)})
		case j.State == api.JobQueued:
			j.State = api.JobKilled
			writeJSON(w, 202, j)
		default:
			writeJSON(w, 202, j) // running: stops later
		}
	})
	mux.HandleFunc("POST /v1/views", func(w http.ResponseWriter, r *http.Request) {
		var req api.ViewRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, 400, api.Error{Error: err.Error()})
			return
		}
		f.mu.Lock()
		f.viewRq = append(f.viewRq, req)
		f.mu.Unlock()
		writeJSON(w, 201, api.View{Name: req.Name, Dataset: "flights", SQL: req.SQL, Schedule: req.Schedule})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestJobList(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	r := runCLI(t, url, "", "job", "list")
	r.wantSuccess(t)
	want := "ID  KIND        VIEW       STATE      ATTEMPT  CREATED                  DURATION\n" +
		"j3  backfill    by_origin  queued     1/4      2024-05-01 12:00:00 UTC  2.5s\n" +
		"j2  compaction  -          running    1/4      2024-05-01 12:00:00 UTC  -\n" +
		"j1  view-build  by_origin  succeeded  2/4      2024-05-01 12:00:00 UTC  2.5s\n"
	if r.stdout != want {
		t.Errorf("list:\n%s\nwant:\n%s", r.stdout, want)
	}
	if f.query != "limit=20" {
		t.Errorf("default query %q, want limit=20", f.query)
	}
	runCLI(t, url, "", "job", "list", "--view", "by_origin", "--state", "failed", "--kind", "backfill", "--limit", "5").wantSuccess(t)
	if f.query != "kind=backfill&limit=5&state=failed&view=by_origin" {
		t.Errorf("query %q", f.query)
	}
	if r := runCLI(t, url, "", "job", "list", "--state", "failed"); r.stdout != "no jobs\n" {
		t.Errorf("empty list printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "list", "--limit", "0").wantFailure(t, "duet: --limit 0: give a positive number")
}

func TestJobShowLogsKill(t *testing.T) {
	_, url := newFakeJobsAPI(t)
	want := "job:           j3\n" +
		"kind:          backfill\n" +
		"view:          by_origin\n" +
		"params:        from=2024-04-01 to=2024-04-30\n" +
		"state:         queued\n" +
		"attempt:       1 of at most 4\n" +
		"next attempt:  2024-05-01 12:00:30 UTC\n" +
		"timeout:       30m per attempt\n" +
		"created:       2024-05-01 12:00:00 UTC\n" +
		"started:       2024-05-01 12:00:01 UTC\n" +
		"finished:      2024-05-01 12:00:03 UTC\n" +
		"duration:      2.5s\n" +
		"error:         executor exited with 1: out of disk\n" +
		"logs:          logs/jobs/j3/attempt-1/ (duet job logs j3)\n"
	for _, verb := range []string{"show", "status"} {
		r := runCLI(t, url, "", "job", verb, "j3")
		r.wantSuccess(t)
		if r.stdout != want {
			t.Errorf("job %s:\n%s\nwant:\n%s", verb, r.stdout, want)
		}
	}
	r := runCLI(t, url, "", "job", "logs", "j3")
	r.wantSuccess(t)
	if r.stdout != "duet: build: out of disk\nrows written: 0\n" {
		t.Errorf("logs printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "logs", "j2").wantFailure(t, "duet: job j2 has no logs: it has not started")

	r = runCLI(t, url, "", "job", "kill", "j3")
	r.wantSuccess(t)
	if r.stdout != "killed job j3\n" {
		t.Errorf("kill of a queued job printed %q", r.stdout)
	}
	r = runCLI(t, url, "", "job", "kill", "j2")
	r.wantSuccess(t)
	if !strings.HasPrefix(r.stdout, "stopping job j2 (running)") {
		t.Errorf("kill of a running job printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "kill", "j1").wantFailure(t, "duet: job j1 already succeeded: only queued and running jobs can be killed")
	runCLI(t, url, "", "job", "kill", "nope").wantFailure(t, `duet: job "nope" not found`)
	runCLI(t, url, "", "job", "kill").wantFailure(t, "duet: missing ID (usage: duet job kill ID)")
}

func TestViewCreatePolicyFlags(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	sql := "SELECT origin, count(*) AS n FROM flights GROUP BY origin"
	runCLI(t, url, "", "view", "create", "a", "--sql", sql, "--schedule", "@hourly", "--catchup", "all", "--max-retries", "0", "--timeout", "30m").wantSuccess(t)
	runCLI(t, url, "", "view", "create", "b", "--sql", sql).wantSuccess(t)
	if len(f.viewRq) != 2 {
		t.Fatalf("server got %d view requests", len(f.viewRq))
	}
	a, b := f.viewRq[0], f.viewRq[1]
	if a.Catchup != "all" || a.MaxRetries == nil || *a.MaxRetries != 0 || a.Timeout != "30m" {
		t.Errorf("view a sent as %+v", a)
	}
	// Unset flags leave the server's defaults: in particular no max_retries.
	if b.Catchup != "" || b.MaxRetries != nil || b.Timeout != "" {
		t.Errorf("view b sent as %+v", b)
	}
}
