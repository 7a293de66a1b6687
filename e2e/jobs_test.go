package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
)

// TestJobsThroughCLIAndAPI follows real build jobs through the job commands
// and the jobs API: a successful build listed, shown and its logs kept; then
// a build whose executor fails (its input files were lost), retried after a
// backoff, its executor's stderr served as its logs, and killed while it
// waits to retry.
func TestJobsThroughCLIAndAPI(t *testing.T) {
	dataDir := t.TempDir()
	p := startServer(t, dataDir)
	ctx := ctxT(t)
	mustDuet(t, p, "", strings.Fields("dataset create trips --time-column ts --column ts:timestamp --column fare:double --column zone:varchar")...)
	rows := func(from, n int) string {
		var b strings.Builder
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&b, `{"ts":"2026-11-01 00:%02d:00","fare":%d,"zone":"z%d"}`+"\n", i%60, i, i%3)
		}
		return b.String()
	}
	mustDuet(t, p, rows(0, 100), "ingest", "--dataset", "trips", "-")
	mustDuet(t, p, "", "view", "create", "fares", "--max-retries", "2", "--timeout", "10m",
		"--sql", "SELECT date_trunc('hour', ts) AS hour, zone, count(*) AS n, sum(fare) AS total FROM trips GROUP BY 1, 2")
	v, err := p.client.GetView(ctx, "fares")
	if err != nil {
		t.Fatal(err)
	}
	if v.Catchup != "skip" || v.MaxRetries != 2 || v.Timeout != "10m" {
		t.Fatalf("view policy = catchup %q, max_retries %d, timeout %q; want skip, 2, 10m", v.Catchup, v.MaxRetries, v.Timeout)
	}

	// A successful build.
	out := mustDuet(t, p, "", "view", "build", "fares", "--wait")
	id := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`).FindString(out)
	if id == "" || !strings.Contains(out, "succeeded") {
		t.Fatalf("view build --wait printed %q", out)
	}
	line := regexp.MustCompile(`(?m)^` + id + `\s+view-build\s+fares\s+succeeded\s+1/3\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+\S+$`)
	if out := mustDuet(t, p, "", "job", "list"); !line.MatchString(out) || !strings.HasPrefix(out, "ID  ") {
		t.Fatalf("job list lacks the build as %s:\n%s", line, out)
	}
	if out := mustDuet(t, p, "", "job", "list", "--view", "fares", "--state", "succeeded", "--kind", "view-build"); !line.MatchString(out) {
		t.Fatalf("filtered job list lacks the build:\n%s", out)
	}
	if out := mustDuet(t, p, "", "job", "list", "--state", "failed"); out != "no jobs\n" {
		t.Fatalf("job list --state failed printed %q", out)
	}
	prefix := "logs/jobs/" + id + "/attempt-1/"
	out = mustDuet(t, p, "", "job", "show", id)
	for _, want := range []string{"state:      succeeded", "attempt:    1 of at most 3", "timeout:    10m per attempt", "logs:       " + prefix, "published:  version 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("job show lacks %q:\n%s", want, out)
		}
	}
	jobs, err := p.client.ListJobs(ctx, client.JobFilter{View: "fares"})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].ID != id || jobs[0].LogPrefix != prefix || jobs[0].Attempt != 1 || jobs[0].MaxAttempts != 3 {
		t.Fatalf("GET /v1/jobs?view=fares = %+v", jobs)
	}
	// The executor's output was kept in the object store, and is served.
	for _, name := range []string{"stderr", "stdout"} {
		if _, err := os.Stat(filepath.Join(dataDir, "objects", filepath.FromSlash(prefix), name)); err != nil {
			t.Errorf("executor %s not kept: %v", name, err)
		}
	}
	resp, err := http.Get(p.base + "/v1/jobs/" + id + "/logs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET logs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, errOut, code := duet(t, p, "", "job", "kill", id); code == 0 || !strings.Contains(errOut, "already succeeded") {
		t.Fatalf("kill of a finished job: exit %d, %q", code, errOut)
	}

	// Corrupt the rows of the version's file the next build must merge with
	// (new records for the same day), so its executor fails.
	built, err := filepath.Glob(filepath.Join(dataDir, "objects", "views", "fares", "v1", "*", "*.parquet"))
	if err != nil || len(built) != 1 {
		t.Fatalf("view files %v, %v; want one", built, err)
	}
	corruptParquetRows(t, built[0])
	mustDuet(t, p, rows(100, 50), "ingest", "--dataset", "trips", "-")
	failing := strings.TrimSpace(mustDuet(t, p, "", "view", "build", "fares"))
	var j api.Job
	deadline := time.Now().Add(60 * time.Second)
	for {
		if j, err = p.client.GetJob(ctx, failing); err != nil {
			t.Fatal(err)
		}
		if j.Attempt >= 1 && j.State == api.JobQueued && j.Error != "" {
			break
		}
		if time.Now().After(deadline) || api.JobFinished(j.State) {
			t.Fatalf("job %s did not fail its first attempt and wait to retry: %+v", failing, j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j.NextAttemptAt == nil || j.NextAttemptAt.Before(j.CreatedAt) || j.MaxAttempts != 3 {
		t.Fatalf("job waiting to retry = %+v", j)
	}
	// The logs are the executor's stderr: its stages, then the error whose
	// line the job's error quotes.
	logs := strings.TrimSpace(mustDuet(t, p, "", "job", "logs", failing))
	last := logs[strings.LastIndexByte(logs, '\n')+1:]
	if !strings.Contains(logs, " writing the result\n") || !strings.HasPrefix(last, "duet: ") || !strings.Contains(last, "Error") ||
		!strings.Contains(j.Error, "executor") || !strings.Contains(j.Error, last) {
		t.Fatalf("job logs of the failed attempt:\n%s\njob error: %s", logs, j.Error)
	}
	out = mustDuet(t, p, "", "job", "show", failing)
	for _, want := range []string{"state:         queued", "next attempt:  ", "error:         "} {
		if !strings.Contains(out, want) {
			t.Errorf("job show of the job waiting to retry lacks %q:\n%s", want, out)
		}
	}

	// Kill it while it waits.
	if out := mustDuet(t, p, "", "job", "kill", failing); out != "killed job "+failing+"\n" && !strings.HasPrefix(out, "stopping job "+failing) {
		t.Fatalf("job kill printed %q", out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for j.State != api.JobKilled {
		if j, err = p.client.GetJob(ctx, failing); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not killed: %+v", failing, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(j.Error, "killed on request") || j.NextAttemptAt != nil {
		t.Fatalf("killed job = %+v", j)
	}
	if _, err := p.client.KillJob(ctx, failing); !client.IsStatus(err, http.StatusConflict) {
		t.Fatalf("second kill = %v, want 409", err)
	}
	killed, err := p.client.ListJobs(ctx, client.JobFilter{State: api.JobKilled})
	if err != nil || len(killed) != 1 || killed[0].ID != failing {
		t.Fatalf("GET /v1/jobs?state=killed = %+v, %v", killed, err)
	}
	// Newest first.
	all, err := p.client.ListJobs(ctx, client.JobFilter{Limit: 1})
	if err != nil || len(all) != 1 || all[0].ID != failing {
		t.Fatalf("GET /v1/jobs?limit=1 = %+v, %v; want the newest job", all, err)
	}
	for _, bad := range []string{"?state=done", "?limit=0"} {
		resp, err := http.Get(p.base + "/v1/jobs" + bad)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("GET /v1/jobs%s = %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
	if _, errOut, code := duet(t, p, "", "job", "logs", "nope"); code == 0 || !strings.Contains(errOut, `job "nope" not found`) {
		t.Errorf("job logs nope: exit %d, %q", code, errOut)
	}
	p.stop(t)
}

// corruptParquetRows overwrites a Parquet file's column data but keeps its
// footer, so the file opens and its schema reads, but its rows do not.
func corruptParquetRows(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(b)
	if n < 12 || string(b[:4]) != "PAR1" || string(b[n-4:]) != "PAR1" {
		t.Fatalf("%s is not a Parquet file", path)
	}
	dataEnd := n - 8 - int(binary.LittleEndian.Uint32(b[n-8:n-4]))
	for i := 4; i < dataEnd; i++ {
		b[i] = 0xAB
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
