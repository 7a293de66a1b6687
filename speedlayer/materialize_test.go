package speedlayer_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/speedlayer"
)

// materializeNode is a node whose background loop never materializes on
// its own (the idle time is an hour): tests call MaterializeIdle.
func materializeNode(t *testing.T, dir string, cacheRows int64) *lambdatest.Node {
	return lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 150, Speed: func(c *speedlayer.Config) {
		c.MaterializeAfter = time.Hour
		c.ViewCacheRows = cacheRows
	}})
}

// TestIdleViewsAreMaterializedAndStayExact: once its dataset is idle a
// view's answer is computed into a table the view reads; the next records
// switch it back to merging in the transaction that adds them, builds and
// rollbacks too, and its answer equals recomputation in every state, after
// a restart included. A view whose batch version is read from its files
// is not materialized.
func TestIdleViewsAreMaterializedAndStayExact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n := materializeNode(t, dir, 1_000_000)
	defer func() { n.Stop() }()
	rnd := rand.New(rand.NewPCG(11, 12))
	var accepted []lambdatest.Row
	ingest := func(k int) { accepted = append(accepted, n.IngestRandom(rnd, k)...) }
	idle := func() { speedlayer.MaterializeIdle(ctx, n.Layer, time.Now().Add(2*time.Hour)) }
	// expect checks the view's state three ways: the status, what the
	// view's definition reads, and whether the table of final rows exists.
	expect := func(step string, want bool) {
		t.Helper()
		st, err := n.Layer.ViewStatus("v", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		def := lambdatest.QueryAll(ctx, t, n.DB, "SELECT sql FROM duckdb_views() WHERE database_name = 'duet' AND schema_name = 'views' AND view_name = 'v'")
		tables := lambdatest.QueryAll(ctx, t, n.DB, "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'duet' AND table_name = 'final__v'")
		reads := len(def) == 1 && strings.Contains(def[0][0].(string), "final__v")
		if st.Materialized != want || reads != want || (tables[0][0].(int64) == 1) != want {
			t.Fatalf("%s: status materialized %v, definition reads final rows %v, final table count %v; want all %v (definition %v)",
				step, st.Materialized, reads, tables[0][0], want, def)
		}
		n.Check(accepted, step)
	}
	build := func(job string) int64 {
		t.Helper()
		v, err := n.Builder.Build(ctx, batchlayer.Request{JobID: job, View: "v"})
		if err != nil {
			t.Fatal(err)
		}
		return v.Version
	}

	ingest(300)
	expect("after ingest", false)
	idle()
	expect("idle", true)
	ingest(200)
	expect("after the next records", false)
	idle()
	v1 := build("b1")
	expect("after a build", false)
	idle()
	expect("idle after the build", true)
	ingest(120)
	build("b2")
	idle()
	expect("idle on v2", true)
	if _, err := n.Builder.Rollback(ctx, "v", v1); err != nil {
		t.Fatal(err)
	}
	expect("after rolling back to v1", false)
	idle()
	expect("idle on v1 again", true)

	n.Stop()
	n = materializeNode(t, dir, 1_000_000)
	expect("after a restart", false)
	idle()
	expect("idle after a restart", true)

	// A version read from its files is as large as queries go: not copied.
	n.Stop()
	n = materializeNode(t, dir, 10)
	ingest(50)
	build("b3")
	idle()
	expect("idle on a version read from its files", false)
}

// TestQueriesDuringMaterializationSeeWholeStates: queries running while
// records arrive and the view is materialized and switched back again
// never fail (a query that bound the final rows still reads them after the
// next records drop them) and always see the view after a whole number of
// requests.
func TestQueriesDuringMaterializationSeeWholeStates(t *testing.T) {
	ctx := context.Background()
	n := materializeNode(t, t.TempDir(), 1_000_000)
	defer func() { n.Stop() }()
	rnd := rand.New(rand.NewPCG(5, 6))
	const requests, size = 40, 37
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	seen := make(chan int64, 1<<16)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var total int64
				if err := n.DB.QueryRowContext(ctx, "SELECT coalesce(sum(n), 0)::BIGINT FROM duet.views.v").Scan(&total); err != nil {
					errs <- err
					return
				}
				select {
				case seen <- total:
				default:
				}
			}
		})
	}
	materialized := 0
	for range requests {
		n.IngestRandom(rnd, size)
		speedlayer.MaterializeIdle(ctx, n.Layer, time.Now().Add(2*time.Hour))
		if st, err := n.Layer.ViewStatus("v", time.Now()); err != nil {
			t.Fatal(err)
		} else if st.Materialized {
			materialized++
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a query failed while the view changed form: %v", err)
	}
	close(seen)
	queries := 0
	for total := range seen {
		queries++
		if total%size != 0 || total > requests*size {
			t.Fatalf("a query counted %d records: not a whole number of %d-record requests up to %d", total, size, requests*size)
		}
	}
	if materialized != requests || queries < requests {
		t.Fatalf("%d of %d idle states materialized, %d queries; want every state materialized and a query per request", materialized, requests, queries)
	}
}
