package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
)

// TestTrinoLauncher: a view build placed on a trino cluster (a second duet
// server standing in, holding the same records) runs its partial query
// there through trino-go-client; the version it publishes keeps the merged
// view exact. Jobs whose criteria only the trino cluster meets, but which
// it cannot run, fail with a clear error; the cluster gone, jobs for it wait.
func TestTrinoLauncher(t *testing.T) {
	ctx := ctxT(t)
	upstream := startServer(t, t.TempDir())
	clusters := filepath.Join(t.TempDir(), "clusters.json")
	if err := os.WriteFile(clusters, []byte(fmt.Sprintf(`{
		"clusters": [
			{"name": "here", "launcher": "local", "tags": ["local", "default"], "slots": 2},
			{"name": "stand-in", "launcher": "trino", "tags": ["trino", "large"], "slots": 1,
			 "trino": {"url": %q, "user": "duet", "catalog": "duet", "schema": "raw", "request_retry_timeout": "1s"}}],
		"health_check": {"interval": "200ms", "timeout": "1s", "failure_threshold": 2}}`, upstream.base)), 0o644); err != nil {
		t.Fatal(err)
	}
	front := startServer(t, t.TempDir(), "--clusters-file", clusters)
	prodFront, prodUp := newProducer(21), newProducer(21)
	for _, p := range []*proc{front, upstream} {
		if _, err := p.client.CreateDataset(ctx, flightsSpec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := front.client.CreateView(ctx, api.ViewRequest{Name: "delays", SQL: viewSQL}); err != nil {
		t.Fatal(err)
	}
	prodFront.ingest(t, front.client, 3, 150)
	prodUp.ingest(t, upstream.client, 3, 150)

	j := waitJob(t, front, mustPostJob(t, front, api.JobRequest{Kind: api.JobKindViewBuild, View: "delays",
		ClusterCriteria: [][]string{{"gpu"}, {"trino", "large"}, {"local"}}}).ID)
	if j.State != api.JobSucceeded || j.Executor == nil || j.Executor.Cluster != "stand-in" {
		t.Fatalf("build = %s %q on %+v, want succeeded on stand-in", j.State, j.Error, j.Executor)
	}
	if j.Version == nil || j.Version.CoveredOffset != 450 {
		t.Fatalf("version %+v, want one covering the 450 records", j.Version)
	}
	assertExact(t, front, prodFront, "after the trino build")
	// The query ran on the stand-in: its history has it, from the executor.
	var n int
	if err := trinoDB(t, upstream).QueryRow(`SELECT count(*) FROM system.queries WHERE source = 'duet-executor' AND sql LIKE '%GROUP BY%' AND state = 'FINISHED'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("partial queries the stand-in ran for the executor: %d, %v; want 1", n, err)
	}
	// The stand-in holds records duet has not: the build refuses to publish.
	prodUp.ingest(t, upstream.client, 1, 10)
	prodFront.ingest(t, front.client, 1, 5)
	j = waitJob(t, front, mustPostJob(t, front, api.JobRequest{Kind: api.JobKindViewBuild, View: "delays", ClusterCriteria: [][]string{{"trino"}}, MaxAttempts: 1}).ID)
	if j.State != api.JobFailed || !strings.Contains(j.Error, "not in step with duet's archive") {
		t.Fatalf("build against a table out of step: %s %q, want failed", j.State, j.Error)
	}
	// A sql job on trino runs its script there (the cluster's tables, its
	// parameters bound by trino-go-client); the result lands here.
	j = waitJob(t, front, mustPostJob(t, front, api.JobRequest{Kind: api.JobKindSQL, ClusterCriteria: [][]string{{"trino"}},
		SQL:    "SELECT origin, count(*) AS n, max(date) AS latest FROM flights WHERE delay > $min AND origin <> '$min' GROUP BY origin",
		Params: map[string]string{"min": "10"}, Output: "jobs.on_trino"}).ID)
	if j.State != api.JobSucceeded || j.Executor.Cluster != "stand-in" {
		t.Fatalf("sql job on trino: %s %q on %+v", j.State, j.Error, j.Executor)
	}
	want := queryRows(t, trinoDB(t, upstream), "SELECT origin, count(*), max(date) FROM raw.flights WHERE delay > 10 GROUP BY origin ORDER BY origin")
	if err := sameRows(want, queryRows(t, trinoDB(t, front), "SELECT origin, n, latest FROM jobs.on_trino ORDER BY origin")); err != nil {
		t.Fatalf("jobs.on_trino differs from the stand-in's answer: %v", err)
	}
	// Compactions work on duet's own archive: not on trino.
	j = waitJob(t, front, mustPostJob(t, front, api.JobRequest{Kind: api.JobKindCompaction, Params: map[string]string{"dataset": "flights"},
		ClusterCriteria: [][]string{{"trino"}}, MaxAttempts: 1}).ID)
	if j.State != api.JobFailed || !strings.Contains(j.Error, "a compaction job needs a local cluster") {
		t.Fatalf("compaction on trino: %s %q, want failed", j.State, j.Error)
	}
	// The stand-in stops: once its health checks fail it meets no
	// criterion, so a job preferring it runs on the next one's cluster, and
	// one that only it could take waits.
	upstream.stop(t)
	deadline := time.Now().Add(time.Minute) // a guard against hanging, not a timing assertion
	for {
		j = waitJob(t, front, mustPostJob(t, front, api.JobRequest{Kind: api.JobKindViewBuild, View: "delays",
			ClusterCriteria: [][]string{{"trino"}, {"local"}}, MaxAttempts: 1}).ID)
		if j.State == api.JobSucceeded && j.Executor.Cluster == "here" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the stand-in stopped, the build still went to it: %s on %+v: %s", j.State, j.Executor, j.Error)
		}
	}
	assertExact(t, front, prodFront, "after the local build")
	waiting := mustPostJob(t, front, api.JobRequest{Kind: api.JobKindSQL, SQL: "SELECT 1", ClusterCriteria: [][]string{{"trino"}}})
	time.Sleep(time.Second) // several scheduling passes
	if j, err := front.client.GetJob(ctx, waiting.ID); err != nil || j.State != api.JobQueued {
		t.Fatalf("a job only the stopped stand-in could take: %s, %v; want it queued", j.State, err)
	}
	// Criteria no cluster has are refused at once.
	if _, status, body := postJob(t, front, api.JobRequest{Kind: api.JobKindSQL, SQL: "SELECT 1", ClusterCriteria: [][]string{{"gpu"}}}); status != 400 || !strings.Contains(body, "no cluster has the tags") {
		t.Fatalf("unplaceable job: %d %s", status, body)
	}
}
