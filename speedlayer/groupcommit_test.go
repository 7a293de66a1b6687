package speedlayer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/duet-analytics/duet/internal/lambdatest"
)

// TestConcurrentIngestCommitsInGroups: requests from many producers at once
// are stored in groups (one log write and one engine transaction for
// several), yet each is acknowledged with its own offsets, the offsets of
// all of them tile the log without gap or overlap, and the merged view and
// raw equal recomputation over exactly the acknowledged rows, also across
// segment seals inside a group and after a restart.
func TestConcurrentIngestCommitsInGroups(t *testing.T) {
	dir := t.TempDir()
	n := lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 97})
	defer func() { n.Stop() }()
	ctx := context.Background()

	type acked struct {
		first int64
		rows  []lambdatest.Row
	}
	const producers, requests = 12, 15
	var (
		mu   sync.Mutex
		all  []acked
		wg   sync.WaitGroup
		errs = make(chan error, producers)
	)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(p), 7))
			for range requests {
				rows := lambdatest.RandomRows(rnd, 1+rnd.IntN(40))
				rec := lambdatest.Record(rows)
				res, err := n.Layer.IngestBatch(ctx, lambdatest.Spec.Name, rec)
				rec.Release()
				if err != nil {
					errs <- err
					return
				}
				if res.Stored != int64(len(rows)) || res.Duplicates != 0 {
					errs <- fmt.Errorf("ingest of %d rows stored %d, %d duplicates", len(rows), res.Stored, res.Duplicates)
					return
				}
				mu.Lock()
				all = append(all, acked{res.First, rows})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	sort.Slice(all, func(i, j int) bool { return all[i].first < all[j].first })
	var accepted []lambdatest.Row
	for _, a := range all {
		if a.first != int64(len(accepted)) {
			t.Fatalf("a request was acknowledged at offset %d, want %d: offsets must tile the log", a.first, len(accepted))
		}
		accepted = append(accepted, a.rows...)
	}
	n.Check(accepted, "concurrent ingest")

	groups, requestsStored := histogram(t, n, "duet_speedlayer_commit_requests")
	if requestsStored != producers*requests {
		t.Fatalf("group commits stored %v requests, want %d", requestsStored, producers*requests)
	}
	if groups >= producers*requests {
		t.Fatalf("%d requests from %d producers at once took %d commits: none was grouped", producers*requests, producers, groups)
	}
	t.Logf("%d requests in %d commits", producers*requests, groups)

	n.Stop()
	n = lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 97})
	n.Check(accepted, "after restart")
}

// histogram reads a histogram's count and sum from the node's registry.
func histogram(t *testing.T, n *lambdatest.Node, name string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := n.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}
