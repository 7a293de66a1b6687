package speedlayer_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/duet-analytics/duet/internal/lambdatest"
)

// TestManySmallIngestsKeepMemoryBounded ingests thousands of one-record
// requests, as a fleet of chatty producers sends them, and checks that the
// process grows by little more than the records it holds (3.4-6.5 MB here).
// Handing each micro-batch to the engine through duckdb-go's RegisterView
// grew it by 18.5 MB here, about 5-10 KB per request whatever the request's
// size: C memory the speed layer's memory budget cannot see.
func TestManySmallIngestsKeepMemoryBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the resident set from /proc")
	}
	n := lambdatest.Start(t, t.TempDir(), lambdatest.Options{SegmentRecords: 1 << 40})
	defer func() { n.Stop() }()
	ctx := context.Background()
	rows := lambdatest.RandomRows(rand.New(rand.NewPCG(3, 3)), 1)
	rec := lambdatest.Record(rows)
	defer rec.Release()
	var accepted []lambdatest.Row
	ingest := func(times int) {
		for range times {
			if _, err := n.Layer.Ingest(ctx, lambdatest.Spec.Name, rec); err != nil {
				t.Fatal(err)
			}
			accepted = append(accepted, rows...)
		}
	}
	ingest(200) // allocator and engine warm-up
	const requests = 3000
	before := lambdatest.ResidentBytes(t)
	ingest(requests)
	runtime.GC()
	grew := (lambdatest.ResidentBytes(t) - before) >> 10
	if limit := int64(12 << 10); grew > limit {
		t.Fatalf("%d ingests of one record grew the process by %d KB (%d bytes per request), more than %d KB", requests, grew, grew<<10/requests, limit)
	}
	t.Logf("%d ingests of one record grew the process by %d KB", requests, grew)
	n.Check(accepted, "after the small ingests")
}
