package e2e

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// duet runs the CLI against p and returns stdout, stderr and the exit code.
func duet(t *testing.T, p *proc, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(duetBin, append([]string{"--server", p.base}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func mustDuet(t *testing.T, p *proc, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := duet(t, p, stdin, args...)
	if code != 0 {
		t.Fatalf("duet %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestCLIAgainstRealServer is a data engineer's session: define a dataset,
// load CSV, Parquet and NDJSON files, define and build a view, query it.
func TestCLIAgainstRealServer(t *testing.T) {
	p := startServer(t, t.TempDir())
	dir := t.TempDir()
	mustDuet(t, p, "", strings.Fields("dataset create trips --time-column ts --column ts:timestamp --column fare:double --column zone:varchar")...)

	// 300 CSV rows, 200 Parquet rows, 100 NDJSON rows; zone i%3, fare i.
	var csv strings.Builder
	csv.WriteString("zone,ts,fare\n")
	for i := range 300 {
		fmt.Fprintf(&csv, "z%d,2026-11-01T%02d:%02d:00Z,%d\n", i%3, i/60, i%60, i)
	}
	csvPath := filepath.Join(dir, "trips.csv")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	parquetPath := filepath.Join(dir, "trips.parquet")
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT TIMESTAMP '2026-11-02 00:00:00' + INTERVAL (i) MINUTE AS ts, CAST(i AS DOUBLE) AS fare, 'z' || (i %% 3) AS zone
		FROM range(200) t(i)) TO '%s' (FORMAT parquet)`, parquetPath))
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var nd strings.Builder
	for i := range 100 {
		fmt.Fprintf(&nd, `{"ts":"2026-11-03 00:%02d:00","fare":%d,"zone":"z%d"}`+"\n", i%60, i, i%3)
	}

	for _, tc := range []struct {
		args        []string
		stdin, want string
	}{
		{[]string{"ingest", "--dataset", "trips", csvPath}, "", "ingested 300 rows into trips (offsets 0..299)"},
		{[]string{"ingest", "--dataset", "trips", "--batch-rows", "64", parquetPath}, "", "ingested 200 rows into trips (offsets 300..499)"},
		{[]string{"ingest", "--dataset", "trips", "-"}, nd.String(), "ingested 100 rows into trips (offsets 500..599)"},
	} {
		out, errOut, code := duet(t, p, tc.stdin, tc.args...)
		if code != 0 || !strings.Contains(out+errOut, tc.want) {
			t.Fatalf("duet %v: exit %d, output %q %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}

	mustDuet(t, p, "", "view", "create", "fares", "--sql", "SELECT zone, count(*) AS n, sum(fare) AS total FROM trips GROUP BY zone")
	out := mustDuet(t, p, "", "view", "build", "fares", "--wait")
	if !strings.Contains(out, "succeeded") {
		t.Fatalf("view build --wait printed %q", out)
	}
	jobID := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`).FindString(out)
	if jobID == "" {
		t.Fatalf("no job id in %q", out)
	}
	if out := mustDuet(t, p, "", "job", "status", jobID); !strings.Contains(out, "succeeded") || !strings.Contains(out, "fares") {
		t.Fatalf("job status printed %q", out)
	}

	// Expected, per zone: CSV fares 0..299, Parquet 0..199, NDJSON 0..99, each i%3 == zone.
	want := map[int][2]int{}
	for _, n := range []int{300, 200, 100} {
		for i := range n {
			w := want[i%3]
			want[i%3] = [2]int{w[0] + 1, w[1] + i}
		}
	}
	out = mustDuet(t, p, "", "sql", "SELECT zone, n, total FROM views.fares ORDER BY zone")
	for z := range 3 {
		line := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*z%d\s*\|\s*%d\s*\|\s*%d(\.0)?\s*$`, z, want[z][0], want[z][1]))
		if !line.MatchString(out) {
			t.Fatalf("duet sql output lacks zone z%d with n=%d total=%d:\n%s", z, want[z][0], want[z][1], out)
		}
	}
	if !strings.Contains(out, "(3 rows)") {
		t.Fatalf("duet sql output has no row count:\n%s", out)
	}
	if out := mustDuet(t, p, "", "view", "show", "fares"); !strings.Contains(out, "600") {
		t.Fatalf("view show does not mention the 600 covered offsets:\n%s", out)
	}

	// Errors: one line, non-zero exit.
	for _, args := range [][]string{
		{"sql", "SELECT * FROM views.nope"},
		{"ingest", "--dataset", "nope", csvPath},
		{"view", "build", "nope"},
		{"job", "status", "nope"},
	} {
		out, errOut, code := duet(t, p, "", args...)
		if code == 0 || !strings.HasPrefix(errOut, "duet: ") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "nope") {
			t.Errorf("duet %v: exit %d, stdout %q, stderr %q; want one 'duet: ...nope...' line and a non-zero exit", args, code, out, errOut)
		}
	}
	down := &proc{base: "http://127.0.0.1:1"}
	if _, errOut, code := duet(t, down, "", "dataset", "list"); code == 0 || !strings.Contains(errOut, "cannot reach") {
		t.Errorf("unreachable server: exit %d, %q", code, errOut)
	}
	p.stop(t)
}

// TestScheduledBuild checks that a view's cron schedule builds it with no
// request from anyone.
func TestScheduledBuild(t *testing.T) {
	p := startServer(t, t.TempDir())
	ctx := ctxT(t)
	if _, err := p.client.CreateDataset(ctx, flightsSpec); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(4)
	prod.ingest(t, p.client, 2, 50)
	mustDuet(t, p, "", "view", "create", "delays", "--schedule", "@every 1s", "--sql", viewSQL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := p.client.GetView(ctx, "delays")
		if err != nil {
			t.Fatal(err)
		}
		if v.Batch != nil && v.Batch.CoveredOffset == int64(len(prod.all)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled build covered the %d events within 30s: %+v", len(prod.all), v.Batch)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertExact(t, p, prod, "after scheduled build")
	p.stop(t)
}

// TestBatchLayerThroughCLI: incremental builds, history, rollback, backfill,
// full rebuild and archive compaction, with the merged view exact after each.
func TestBatchLayerThroughCLI(t *testing.T) {
	p := startServer(t, t.TempDir())
	ctx := ctxT(t)
	if _, err := p.client.CreateDataset(ctx, flightsSpec); err != nil {
		t.Fatal(err)
	}
	mustDuet(t, p, "", "view", "create", "delays", "--sql", viewSQL)
	prod := newProducer(9)
	prod.ingest(t, p.client, 3, 200)
	mustDuet(t, p, "", "view", "build", "delays", "--wait")
	prod.ingest(t, p.client, 2, 100) // more events, some late
	mustDuet(t, p, "", "view", "build", "delays", "--wait")
	assertExact(t, p, prod, "after incremental build")

	versions, err := p.client.ListVersions(ctx, "delays")
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 || versions[0].Kind != "incremental" || versions[0].Base != 1 || !versions[0].Current || len(versions[0].Rebuilt) == 0 {
		t.Fatalf("versions %+v", versions)
	}
	out := mustDuet(t, p, "", "view", "history", "delays")
	if !regexp.MustCompile(`(?m)^2 \*\s.*incremental on v1`).MatchString(out) || !regexp.MustCompile(`(?m)^1\s.*full`).MatchString(out) {
		t.Fatalf("view history:\n%s", out)
	}

	mustDuet(t, p, "", "view", "rollback", "delays", "--to", "1")
	assertExact(t, p, prod, "after rollback to v1")
	prod.ingest(t, p.client, 1, 50)
	assertExact(t, p, prod, "ingest after rollback")

	day := prod.all[0].Date.UTC().Format(time.DateOnly)
	out = mustDuet(t, p, "", "view", "backfill", "delays", "--from", day, "--to", day, "--wait")
	if !strings.Contains(out, "succeeded") {
		t.Fatalf("backfill: %s", out)
	}
	assertExact(t, p, prod, "after backfill")
	mustDuet(t, p, "", "view", "build", "delays", "--full", "--wait")
	assertExact(t, p, prod, "after full build")
	if vs, _ := p.client.ListVersions(ctx, "delays"); vs[0].Kind != "full" || vs[1].Kind != "backfill" {
		t.Fatalf("after backfill and --full: %+v", vs[:2])
	}

	before, err := p.client.GetDataset(ctx, "flights")
	if err != nil {
		t.Fatal(err)
	}
	mustDuet(t, p, "", "dataset", "compact", "flights", "--wait")
	after, err := p.client.GetDataset(ctx, "flights")
	if err != nil {
		t.Fatal(err)
	}
	if after.Log.ArchiveFiles >= before.Log.ArchiveFiles {
		t.Fatalf("compaction left %d archive files of %d", after.Log.ArchiveFiles, before.Log.ArchiveFiles)
	}
	assertExact(t, p, prod, "after compaction")
	mustDuet(t, p, "", "view", "rollback", "delays", "--to", "2")
	assertExact(t, p, prod, "rollback after compaction")

	if _, errOut, code := duet(t, p, "", "view", "rollback", "delays", "--to", "99"); code == 0 || !strings.Contains(errOut, "no version 99") {
		t.Fatalf("rollback to a missing version: %d %s", code, errOut)
	}
	if _, errOut, code := duet(t, p, "", "view", "backfill", "delays", "--from", "2026-11-05", "--to", "2026-11-01"); code == 0 || !strings.Contains(errOut, "after") {
		t.Fatalf("reversed backfill: %d %s", code, errOut)
	}
	p.stop(t)
}
