package speedlayer_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/speedlayer"
)

// replica opens a node on the shared catalog and bucket in dir, with its own
// log directory, leading at epoch.
func replica(t *testing.T, dir, logDir string, epoch int64) *lambdatest.Node {
	t.Helper()
	return lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 1000, Speed: func(c *speedlayer.Config) {
		c.LogDir, c.Epoch = logDir, epoch
	}})
}

// waitRaw waits until raw.ev holds want rows: restaging runs in the
// background loop.
func waitRaw(t *testing.T, n *lambdatest.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var got int
		if err := n.DB.QueryRow("SELECT count(*) FROM duet.raw.ev").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("raw.ev holds %d rows after a minute, want %d", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSupersededLogIsRestaged: replica A leads and dies with records it
// never archived; replica B leads on its own log and archives records of its
// own at the same offsets; when A leads again, its unarchived records are
// ingested again as new ones, once, and every answer is exact.
func TestSupersededLogIsRestaged(t *testing.T) {
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "log-a"), filepath.Join(dir, "log-b")
	rnd := rand.New(rand.NewPCG(5, 5))
	var accepted []lambdatest.Row

	a := replica(t, dir, logA, 1)
	accepted = append(accepted, a.IngestRandom(rnd, 120)...)
	if err := a.Layer.Flush(context.Background(), "ev"); err != nil {
		t.Fatal(err)
	}
	accepted = append(accepted, a.IngestRandom(rnd, 70)...) // never archived by A
	a.Check(accepted, "A before it dies")
	a.Stop()

	b := replica(t, dir, logB, 2)
	b.Check(accepted[:120], "B takes over: only what A archived")
	fromB := b.IngestRandom(rnd, 50)
	if err := b.Layer.Flush(context.Background(), "ev"); err != nil {
		t.Fatal(err)
	}
	b.Stop()

	a = replica(t, dir, logA, 3)
	accepted = append(accepted, fromB...)
	waitRaw(t, a, len(accepted))
	a.Check(accepted, "A leads again: its unarchived records restaged")
	if left, _ := filepath.Glob(filepath.Join(logA, "ev.stale-from-*")); len(left) != 0 {
		t.Fatalf("superseded log left after restaging: %v", left)
	}
	if err := a.Layer.Flush(context.Background(), "ev"); err != nil {
		t.Fatal(err)
	}
	a.Stop()

	// Restarting again restages nothing twice, and B, whose log A has
	// superseded in turn, has nothing unarchived to add.
	a = replica(t, dir, logA, 4)
	a.Check(accepted, "A restarted")
	a.Stop()
	b = replica(t, dir, logB, 5)
	time.Sleep(100 * time.Millisecond) // a restage would start at the first tick
	b.Check(accepted, "B leads again")
	b.Stop()
	if _, err := os.Stat(filepath.Join(logB, "ev.epoch")); err != nil {
		t.Fatalf("B's log has no epoch file: %v", err)
	}
}
