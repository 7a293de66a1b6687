package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
)

// postJob sends POST /v1/jobs and decodes the answer; status is its code.
func postJob(t *testing.T, p *proc, req api.JobRequest) (job api.Job, status int, body string) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := http.NewRequest(http.MethodPost, p.base+"/v1/jobs", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("X-Duet-User", "e2e") // without authentication, the user a job is counted for
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(raw, &job); err != nil {
			t.Fatal(err)
		}
		if loc := resp.Header.Get("Location"); loc != "/v1/jobs/"+job.ID {
			t.Fatalf("Location %q for job %s", loc, job.ID)
		}
	}
	return job, resp.StatusCode, string(raw)
}

func mustPostJob(t *testing.T, p *proc, req api.JobRequest) api.Job {
	t.Helper()
	j, status, body := postJob(t, p, req)
	if status != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %d %s", status, body)
	}
	return j
}

func waitJob(t *testing.T, p *proc, id string) api.Job {
	t.Helper()
	j, err := p.client.WaitJob(ctxT(t), id, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// getOutput reads a job's output file, with a Range header when rng is set.
func getOutput(t *testing.T, p *proc, id, name, rng string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.base+"/v1/jobs/"+id+"/output/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runningExecutor waits until the job's executor runs and reports stage
// (any stage when ""), and returns its pid.
func runningExecutor(t *testing.T, p *proc, id, stage string) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a guard against hanging, not a timing assertion
	for time.Now().Before(deadline) {
		j, err := p.client.GetJob(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if api.JobFinished(j.State) {
			t.Fatalf("job %s ended (%s: %s) before its executor was seen", id, j.State, j.Error)
		}
		if j.Executor != nil && j.Executor.PID > 0 && j.Progress != nil && (stage == "" || j.Progress.Stage == stage) {
			return j.Executor.PID
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s: no executor reported stage %q within a minute", id, stage)
	return 0
}

// waitGone waits for a process to exit (the server reaps its executors).
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s: executor pid %d still runs 10s later", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// longQuery runs for far longer than any test waits.
const longQuery = "SELECT count(*) FROM range(1000000000000) WHERE range % 3 = 1"

// TestSQLJobs runs sql jobs on real executors (the duet binary) through the
// jobs API: results exact against the gateway's answers, typed parameters,
// outputs with byte ranges; kill, timeout, a crashed executor retried, and
// a hung one taken for lost.
func TestSQLJobs(t *testing.T) {
	dataDir := t.TempDir()
	p := startServer(t, dataDir, "--job-retry-backoff", "100ms", "--executor-heartbeat-timeout", "4s", "--executor-standby", "0",
		"--max-active-jobs-per-user", "2")
	ctx := ctxT(t)
	createFlightsAndDelays(t, p)
	// 600 events in segments of 400: some archived, the rest only in the
	// speed layer, which the job's snapshot must carry.
	newProducer(11).ingest(t, p.client, 3, 200)
	db := trinoDB(t, p)

	t.Run("script into a table", func(t *testing.T) {
		req := api.JobRequest{
			ID: "late-flights", Kind: api.JobKindSQL, Output: "jobs.late", Params: map[string]string{"min": "30"},
			SQL: "-- flights later than $min\nCREATE TEMP TABLE late AS SELECT origin, delay FROM raw.flights WHERE delay > $min;\n" +
				"SELECT origin, count(*) AS n, sum(delay) AS total FROM late GROUP BY origin",
		}
		j := waitJob(t, p, mustPostJob(t, p, req).ID)
		if j.State != api.JobSucceeded || j.Executor == nil || j.Executor.Cluster != "local" {
			t.Fatalf("job = %s %q on %+v, want succeeded on local", j.State, j.Error, j.Executor)
		}
		want := queryRows(t, db, "SELECT origin, count(*), sum(delay) FROM raw.flights WHERE delay > 30 GROUP BY origin ORDER BY origin")
		if len(want) == 0 {
			t.Fatal("the test data has no flight later than 30")
		}
		if err := sameRows(want, queryRows(t, db, "SELECT origin, n, total FROM jobs.late ORDER BY origin")); err != nil {
			t.Fatalf("jobs.late differs from the gateway's answer: %v", err)
		}
		// The executor's working directory is gone with it.
		if left, _ := filepath.Glob(filepath.Join(dataDir, "scratch", "sql-*")); len(left) != 0 {
			t.Fatalf("scratch directories left behind: %v", left)
		}
		// The same id again is the same job; for other work it is refused.
		if again := mustPostJob(t, p, req); again.ID != j.ID || again.State != api.JobSucceeded {
			t.Fatalf("resubmitted: %+v, want the first job", again)
		}
		req.SQL = "SELECT 1"
		if _, status, body := postJob(t, p, req); status != http.StatusConflict || !strings.Contains(body, "late-flights") {
			t.Fatalf("id reused for other work: %d %s, want 409", status, body)
		}
	})

	t.Run("view into an object, output files", func(t *testing.T) {
		j := waitJob(t, p, mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: "SELECT * FROM views.delays"}).ID)
		if j.State != api.JobSucceeded || j.Output != "jobs/"+j.ID+"/result.parquet" {
			t.Fatalf("job = %s %q, output %q", j.State, j.Error, j.Output)
		}
		var files api.JobOutput
		resp, err := http.Get(p.base + "/v1/jobs/" + j.ID + "/output")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(resp.Body).Decode(&files); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var names []string
		for _, f := range files.Files {
			names = append(names, f.Name)
		}
		if fmt.Sprint(names) != "[stdout stderr manifest.json result.parquet]" {
			t.Fatalf("output files %v", names)
		}
		if status, body := getOutput(t, p, j.ID, "result.parquet", "bytes=0-3"); status != http.StatusPartialContent || body != "PAR1" {
			t.Fatalf("first 4 bytes of the result: %d %q, want 206 PAR1", status, body)
		}
		status, body := getOutput(t, p, j.ID, "manifest.json", "")
		var m struct {
			Rows    int64  `json:"rows"`
			Cluster string `json:"cluster"`
			PID     int    `json:"pid"`
		}
		if err := json.Unmarshal([]byte(body), &m); status != http.StatusOK || err != nil {
			t.Fatalf("manifest: %d %v %s", status, err, body)
		}
		var n int64
		if err := db.QueryRow("SELECT count(*) FROM views.delays").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if m.Rows != n || m.Cluster != "local" || m.PID == 0 {
			t.Fatalf("manifest %+v; want %d rows of views.delays, cluster local, a pid", m, n)
		}
		if status, body := getOutput(t, p, j.ID, "stderr", "bytes=100000-"); status != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("a range past the end: %d %q, want 416", status, body)
		}
	})

	t.Run("through the CLI", func(t *testing.T) {
		out := mustDuet(t, p, "SELECT origin, count(*) AS n FROM raw.flights WHERE delay >= $min GROUP BY origin\n",
			"job", "submit", "--sql-file", "-", "-p", "min=0", "--output", "jobs.by_origin", "--wait")
		if !strings.Contains(out, "succeeded") {
			t.Fatalf("duet job submit --wait printed %q", out)
		}
		want := queryRows(t, db, "SELECT origin, count(*) FROM raw.flights WHERE delay >= 0 GROUP BY origin ORDER BY origin")
		if err := sameRows(want, queryRows(t, db, "SELECT origin, n FROM jobs.by_origin ORDER BY origin")); err != nil {
			t.Fatalf("jobs.by_origin: %v", err)
		}
	})

	t.Run("parameters are values, not SQL", func(t *testing.T) {
		j := waitJob(t, p, mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL,
			SQL: "SELECT count(*) FROM raw.flights WHERE delay > $min", Params: map[string]string{"min": "0 OR true"}}).ID)
		if j.State != api.JobFailed || !strings.Contains(j.Error, "0 OR true") {
			t.Fatalf("job = %s %q, want failed: the text %q is no number", j.State, j.Error, "0 OR true")
		}
	})

	t.Run("kill", func(t *testing.T) {
		j := mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: longQuery})
		// Killed while its query runs, so its logs have that stage's line.
		pid := runningExecutor(t, p, j.ID, "writing the result")
		if _, err := p.client.KillJob(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		j = waitJob(t, p, j.ID)
		if j.State != api.JobKilled {
			t.Fatalf("state %s, want killed", j.State)
		}
		waitGone(t, pid, "killed job")
		if status, body := getOutput(t, p, j.ID, "stderr", ""); status != http.StatusOK || !strings.Contains(body, "writing the result") {
			t.Fatalf("logs up to the kill: %d %q", status, body)
		}
	})

	t.Run("per-user limit", func(t *testing.T) {
		a := mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: longQuery})
		b := mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: longQuery})
		if _, status, body := postJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: "SELECT 1"}); status != http.StatusTooManyRequests || !strings.Contains(body, "2 queued or running jobs") {
			t.Fatalf("a third active job: %d %s, want 429", status, body)
		}
		for _, id := range []string{a.ID, b.ID} {
			if _, err := p.client.KillJob(ctx, id); err != nil {
				t.Fatal(err)
			}
			waitJob(t, p, id)
		}
		if j := waitJob(t, p, mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: "SELECT 1"}).ID); j.State != api.JobSucceeded {
			t.Fatalf("after the kills: %s %q", j.State, j.Error)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		j := mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: longQuery, Timeout: "2s"})
		pid := runningExecutor(t, p, j.ID, "")
		if j = waitJob(t, p, j.ID); j.State != api.JobTimedOut {
			t.Fatalf("state %s %q, want timed_out", j.State, j.Error)
		}
		waitGone(t, pid, "timed-out job")
	})

	t.Run("crashed executor retried", func(t *testing.T) {
		j := mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, MaxAttempts: 2,
			SQL: "SELECT count(*) AS n FROM range(1000000000) WHERE range % 7 = 3"})
		pid := runningExecutor(t, p, j.ID, "")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if j = waitJob(t, p, j.ID); j.State != api.JobSucceeded || j.Attempt != 2 {
			t.Fatalf("job = %s after %d attempts (%q), want succeeded on the second", j.State, j.Attempt, j.Error)
		}
	})

	t.Run("hung executor lost", func(t *testing.T) {
		j := mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: longQuery})
		pid := runningExecutor(t, p, j.ID, "")
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if j = waitJob(t, p, j.ID); j.State != api.JobFailed || !strings.Contains(j.Error, "no heartbeat for 4s") {
			t.Fatalf("job = %s %q, want failed as lost", j.State, j.Error)
		}
		waitGone(t, pid, "lost executor")
	})
}
