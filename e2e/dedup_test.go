package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDedupThroughCLI: a dataset created with --dedup-key stores a file
// ingested twice once, also when the second time comes after a restart and
// the first time's records are archived.
func TestDedupThroughCLI(t *testing.T) {
	dataDir := t.TempDir()
	p := startServer(t, dataDir)
	out := mustDuet(t, p, "", strings.Fields("dataset create orders --time-column ts --column ts:timestamp --column id:bigint --column amount:double --dedup-key id --dedup-window 10m")...)
	if !strings.Contains(out, "dedup key id within 10m0s") {
		t.Fatalf("dataset create printed %q", out)
	}
	if out := mustDuet(t, p, "", "dataset", "show", "orders"); !regexp.MustCompile(`dedup:\s+key id, window 10m0s`).MatchString(out) {
		t.Fatalf("dataset show does not print the dedup key and window:\n%s", out)
	}
	if _, errOut, code := duet(t, p, "", strings.Fields("dataset create bad --time-column ts --column ts:timestamp --column x:double --dedup-key x")...); code == 0 || !strings.Contains(errOut, `dedup_key "x": must be a varchar, bigint or integer column`) {
		t.Fatalf("a double dedup key: exit %d, %q", code, errOut)
	}

	var csv strings.Builder
	csv.WriteString("ts,id,amount\n")
	for i := range 500 {
		fmt.Fprintf(&csv, "2026-11-01T%02d:%02d:00Z,%d,%d\n", i/60, i%60, 1000+i, i)
	}
	path := filepath.Join(t.TempDir(), "orders.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	count := func(p *proc) string {
		t.Helper()
		out := mustDuet(t, p, "", "sql", "SELECT count(*) AS n, sum(amount) AS total FROM raw.orders")
		m := regexp.MustCompile(`(?m)^\s*(\d+)\s*\|\s*([\d.]+)\s*$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("duet sql printed %q", out)
		}
		return m[1] + " " + strings.TrimSuffix(m[2], ".0")
	}

	if out := mustDuet(t, p, "", "ingest", "--dataset", "orders", "--batch-rows", "200", path); !strings.Contains(out, "ingested 500 rows into orders (offsets 0..499)") {
		t.Fatalf("first ingest printed %q", out)
	}
	if got := count(p); got != "500 124750" {
		t.Fatalf("after the first ingest: count, sum = %s", got)
	}
	if out := mustDuet(t, p, "", "ingest", "--dataset", "orders", path); !strings.Contains(out, "ingested 0 rows into orders") || !strings.Contains(out, "all 500 records of "+path+" were duplicates") {
		t.Fatalf("second ingest printed %q", out)
	}
	if got := count(p); got != "500 124750" {
		t.Fatalf("after ingesting the file again: count, sum = %s, want 500 124750", got)
	}

	// The server archives segments within a second (--segment-max-age 300ms);
	// after a restart their keys still keep the file out.
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := p.client.GetDataset(ctxT(t), "orders")
		if err != nil {
			t.Fatal(err)
		}
		if d.Log != nil && d.Log.ArchivedOffset == 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records not archived within 30s: %+v", d.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(t)
	p = startServer(t, dataDir)
	csv.WriteString("2026-11-01T12:00:00Z,9999,1\n")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustDuet(t, p, "", "ingest", "--dataset", "orders", path); !strings.Contains(out, "ingested 1 rows into orders (offsets 500..500)") || !strings.Contains(out, "ignored 500 duplicates already accepted") {
		t.Fatalf("ingest after restart printed %q", out)
	}
	if got := count(p); got != "501 124751" {
		t.Fatalf("after the restart: count, sum = %s, want 501 124751", got)
	}
	p.stop(t)
}
