package speedlayer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/lambdatest"
)

// TestArchivedSegmentsKeepOnePartialRowPerKey: a segment's partials are
// written per micro-batch, so many rows share a key; once the segment is
// archived they are combined into one row per key, and the merged view
// still equals recomputation, before and after a restart.
func TestArchivedSegmentsKeepOnePartialRowPerKey(t *testing.T) {
	dir := t.TempDir()
	n := lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 1_000_000})
	defer func() { n.Stop() }()
	ctx := context.Background()
	plan, err := n.Layer.Plan("v")
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(plan.Keys))
	for i, k := range plan.Keys {
		keys[i] = dataset.QuoteIdent(k)
	}
	table := engine.Table(engine.InternalSchema, "partial__v")
	count := func() (rows, distinct int64) {
		t.Helper()
		q := fmt.Sprintf("SELECT count(*), count(DISTINCT struct_pack(%s)) FROM %s WHERE __seg = 0", strings.Join(keys, ", "), table)
		if err := n.DB.QueryRowContext(ctx, q).Scan(&rows, &distinct); err != nil {
			t.Fatal(err)
		}
		return rows, distinct
	}

	rnd := rand.New(rand.NewPCG(3, 5))
	var accepted []lambdatest.Row
	for range 40 {
		accepted = append(accepted, n.IngestRandom(rnd, 25)...)
	}
	before, distinct := count()
	if before <= distinct {
		t.Fatalf("before archiving: %d partial rows for %d keys; the test needs keys repeated across micro-batches", before, distinct)
	}
	if err := n.Layer.Flush(ctx, lambdatest.Spec.Name); err != nil {
		t.Fatal(err)
	}
	after, afterDistinct := count()
	if after != distinct || afterDistinct != distinct {
		t.Fatalf("after archiving: %d partial rows, %d keys; want one row for each of the %d keys", after, afterDistinct, distinct)
	}
	t.Logf("segment partials: %d rows -> %d", before, after)
	n.Check(accepted, "after compaction")

	// The next segment's micro-batches are not touched by the compaction.
	accepted = append(accepted, n.IngestRandom(rnd, 30)...)
	n.Check(accepted, "after more ingest")

	n.Stop()
	n = lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 1_000_000})
	n.Check(accepted, "after restart")
}
