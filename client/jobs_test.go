package client

import (
	"context"
	"net/http"
	"strings"
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
	jobs, err := c.ListJobs(context.Background(), JobFilter{View: "by origin", State: api.JobFailed, Kind: "view-build", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if query != "kind=view-build&limit=5&state=failed&view=by+origin" {
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
