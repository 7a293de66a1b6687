package speedlayer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/duet-analytics/duet/dataset"
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

	const producers, requests = 12, 15
	var (
		mu  sync.Mutex
		all []ackedRows
	)
	concurrently(t, producers, func(p int) error {
		rnd := rand.New(rand.NewPCG(uint64(p), 7))
		for range requests {
			rows := lambdatest.RandomRows(rnd, 1+rnd.IntN(40))
			rec := lambdatest.Record(rows)
			res, err := n.Layer.IngestBatch(ctx, lambdatest.Spec.Name, rec)
			rec.Release()
			if err != nil {
				return err
			}
			if res.Stored != int64(len(rows)) || res.Duplicates != 0 {
				return fmt.Errorf("ingest of %d rows stored %d, %d duplicates", len(rows), res.Stored, res.Duplicates)
			}
			mu.Lock()
			all = append(all, ackedRows{res.First, rows})
			mu.Unlock()
		}
		return nil
	})

	accepted := inOffsetOrder(t, all)
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

// concurrently runs produce(p) for p in [0, producers) at once and fails the
// test with the errors they return.
func concurrently(t *testing.T, producers int, produce func(p int) error) {
	t.Helper()
	errs := make(chan error, producers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- produce(p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// ackedRows is an acknowledged request: its first offset and its rows.
type ackedRows struct {
	first int64
	rows  []lambdatest.Row
}

// inOffsetOrder checks that the acknowledged requests tile the log and
// returns their rows in offset order.
func inOffsetOrder(t *testing.T, acks []ackedRows) []lambdatest.Row {
	t.Helper()
	tiled(t, acks, func(a ackedRows) (int64, int64) { return a.first, int64(len(a.rows)) })
	var rows []lambdatest.Row
	for _, a := range acks {
		rows = append(rows, a.rows...)
	}
	return rows
}

// tiled sorts acknowledged requests by their first offset and fails the
// test unless, with span giving each one's first offset and records, they
// cover the log from offset 0 without gap or overlap; it returns the records.
func tiled[T any](t *testing.T, acks []T, span func(T) (first, n int64)) int64 {
	t.Helper()
	sort.Slice(acks, func(i, j int) bool {
		a, _ := span(acks[i])
		b, _ := span(acks[j])
		return a < b
	})
	var end int64
	for _, a := range acks {
		first, n := span(a)
		if first != end {
			t.Fatalf("a request was acknowledged at offset %d, want %d: offsets must tile the log", first, end)
		}
		end += n
	}
	return end
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

// TestConcurrentIngestWithDedupStoresEachKeyOnce: producers racing to send
// overlapping keys to a dataset with a dedup key get each key stored once in
// all (the first to be stored wins), every null key stored, offsets that tile
// the log, and a view equal to its SQL over what raw holds.
func TestConcurrentIngestWithDedupStoresEachKeyOnce(t *testing.T) {
	clk := &clock{t: time.Now()}
	n := startDedupNode(t, t.TempDir(), dedupSpec(dataset.Varchar), clk)
	defer n.Stop()
	ctx := context.Background()

	const producers, requests, keys = 8, 20, 150
	type acked struct{ first, stored int64 }
	var (
		mu      sync.Mutex
		all     []acked
		sent    = map[string]bool{}
		nulls   int64
		batches = make([][][]order, producers)
	)
	for p := range producers {
		rnd := rand.New(rand.NewPCG(uint64(p), 11))
		batches[p] = make([][]order, requests)
		for r := range batches[p] {
			ids := make([]string, 1+rnd.IntN(12))
			for i := range ids {
				if rnd.IntN(10) > 0 {
					ids[i] = strconv.Itoa(rnd.IntN(keys))
				}
			}
			batches[p][r] = orders(int64(p*10000+r*100), ids...)
			for _, o := range batches[p][r] {
				if o.id == nil {
					nulls++
				} else {
					sent[*o.id] = true
				}
			}
		}
	}
	concurrently(t, producers, func(p int) error {
		for _, rows := range batches[p] {
			rec := n.record(rows)
			res, err := n.Layer.IngestBatch(ctx, n.Spec.Name, rec)
			rec.Release()
			if err != nil {
				return err
			}
			if res.Stored+res.Duplicates != int64(len(rows)) {
				return fmt.Errorf("ingest of %d rows: stored %d, %d duplicates", len(rows), res.Stored, res.Duplicates)
			}
			if res.Stored > 0 {
				mu.Lock()
				all = append(all, acked{res.First, res.Stored})
				mu.Unlock()
			}
		}
		return nil
	})

	stored := tiled(t, all, func(a acked) (int64, int64) { return a.first, a.stored })
	if want := int64(len(sent)) + nulls; stored != want {
		t.Fatalf("stored %d records, want %d: each of %d keys once and all %d null keys", stored, want, len(sent), nulls)
	}
	var rows, distinct, nullIDs int64
	if err := n.DB.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT id), count(*) - count(id) FROM duet.raw.orders").Scan(&rows, &distinct, &nullIDs); err != nil {
		t.Fatal(err)
	}
	if rows != stored || distinct != int64(len(sent)) || nullIDs != nulls {
		t.Fatalf("raw holds %d rows, %d keys, %d null keys; want %d, %d, %d", rows, distinct, nullIDs, stored, len(sent), nulls)
	}
	want := strings.Replace(dedupViewSQL, "FROM orders", "FROM duet.raw.orders AS orders", 1)
	var diff int
	q := fmt.Sprintf("SELECT count(*) FROM ((%[1]s EXCEPT ALL %[2]s) UNION ALL (%[2]s EXCEPT ALL %[1]s))", want, "SELECT * FROM duet.views.v")
	if err := n.DB.QueryRowContext(ctx, q).Scan(&diff); err != nil {
		t.Fatal(err)
	}
	if diff != 0 {
		t.Fatalf("%d rows differ between the view and its SQL over raw", diff)
	}
}

// TestBadRequestInAGroupFailsAlone: a request whose records the log refuses
// (here, another schema) fails on its own; the requests committed in the same
// group are stored and acknowledged as if it had not been sent.
func TestBadRequestInAGroupFailsAlone(t *testing.T) {
	dir := t.TempDir()
	n := lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 1000})
	defer n.Stop()
	ctx := context.Background()
	// The dataset's first two columns without the third.
	other := arrow.NewSchema(lambdatest.Spec.ArrowSchema().Fields()[:2], nil)

	const producers, requests = 8, 12
	// Even producers send every other request in the other schema.
	const badRequests = (producers / 2) * (requests / 2)
	var (
		mu      sync.Mutex
		all     []ackedRows
		refused int
	)
	concurrently(t, producers, func(p int) error {
		rnd := rand.New(rand.NewPCG(uint64(p), 13))
		for r := range requests {
			rows := lambdatest.RandomRows(rnd, 1+rnd.IntN(20))
			rec := lambdatest.Record(rows)
			if p%2 == 0 && r%2 == 1 {
				wrong := array.NewRecordBatch(other, rec.Columns()[:2], rec.NumRows())
				rec.Release()
				_, err := n.Layer.IngestBatch(ctx, lambdatest.Spec.Name, wrong)
				wrong.Release()
				if err == nil || !strings.Contains(err.Error(), "schema") {
					return fmt.Errorf("a request of another schema got %v, want a schema error", err)
				}
				mu.Lock()
				refused++
				mu.Unlock()
				continue
			}
			res, err := n.Layer.IngestBatch(ctx, lambdatest.Spec.Name, rec)
			rec.Release()
			if err != nil {
				return fmt.Errorf("a good request failed: %w", err)
			}
			mu.Lock()
			all = append(all, ackedRows{res.First, rows})
			mu.Unlock()
		}
		return nil
	})
	if refused != badRequests {
		t.Fatalf("%d requests refused, want the %d bad ones", refused, badRequests)
	}
	n.Check(inOffsetOrder(t, all), "good requests of groups with bad ones")
	if err := n.Layer.Healthy(); err != nil {
		t.Fatalf("a refused request left the dataset unhealthy: %v", err)
	}
}
