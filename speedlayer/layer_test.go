package speedlayer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/speedlayer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// TestMergedEqualsRecomputationUnderRandomOperations interleaves ingest,
// archiving, builds, rollbacks and restarts at random and checks the
// invariant after every operation.
func TestMergedEqualsRecomputationUnderRandomOperations(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, seed*31))
			dir := t.TempDir()
			n := lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: int64(10 + rnd.IntN(40))})
			defer func() { n.Stop() }()
			ctx := context.Background()
			var accepted []lambdatest.Row
			for op := range 60 {
				var step string
				switch k := rnd.IntN(13); {
				case k < 5:
					rows := lambdatest.RandomRows(rnd, 1+rnd.IntN(30))
					rec := lambdatest.Record(rows)
					first, err := n.Layer.Ingest(ctx, lambdatest.Spec.Name, rec)
					rec.Release()
					if err != nil {
						t.Fatal(err)
					}
					if first != int64(len(accepted)) {
						t.Fatalf("ingest got first offset %d, want %d", first, len(accepted))
					}
					accepted = append(accepted, rows...)
					step = fmt.Sprintf("ingest %d", len(rows))
				case k < 6:
					if err := n.Layer.Flush(ctx, lambdatest.Spec.Name); err != nil {
						t.Fatal(err)
					}
					step = "flush"
				case k < 9:
					full := k == 8
					v, err := n.Builder.Build(ctx, batchlayer.Request{JobID: fmt.Sprint("job", op), View: "v", Full: full})
					if err != nil && !errors.Is(err, batchlayer.ErrUpToDate) {
						t.Fatal(err)
					}
					if err == nil && v.Covered != int64(len(accepted)) {
						t.Fatalf("build covered %d, want all %d accepted", v.Covered, len(accepted))
					}
					step = fmt.Sprintf("build (full=%v) -> %s v%d", full, v.Meta.Kind, v.Version)
				case k < 10:
					versions, err := n.Cat.ListVersions(ctx, "v")
					if err != nil || len(versions) < 2 {
						continue
					}
					old := versions[1+rnd.IntN(len(versions)-1)]
					if _, err := n.Builder.Rollback(ctx, "v", old.Version); err != nil {
						t.Fatal(err)
					}
					step = fmt.Sprintf("rollback to v%d", old.Version)
				case k < 11:
					merged, err := n.Builder.Compact(ctx, fmt.Sprint("compact", op), lambdatest.Spec.Name, &lambdatest.Spec, "")
					if err != nil {
						t.Fatal(err)
					}
					step = fmt.Sprintf("compaction merged %d files", merged)
				case k < 12:
					from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rnd.IntN(3))
					to := from.AddDate(0, 0, rnd.IntN(2))
					_, err := n.Builder.Build(ctx, batchlayer.Request{JobID: fmt.Sprint("job", op), View: "v", From: from.Format(time.DateOnly), To: to.Format(time.DateOnly)})
					if err != nil && !strings.Contains(err.Error(), "no version yet") {
						t.Fatal(err)
					}
					step = "backfill " + from.Format(time.DateOnly) + ".." + to.Format(time.DateOnly)
				default:
					n.Stop()
					n = lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: int64(10 + rnd.IntN(40))})
					step = "restart"
				}
				t.Logf("op %d: %s", op, step)
				n.Check(accepted, fmt.Sprintf("op %d (%s)", op, step))
			}
		})
	}
}

func TestIngestUnknownDataset(t *testing.T) {
	n := lambdatest.Start(t, t.TempDir(), lambdatest.Options{SegmentRecords: 100})
	defer n.Stop()
	rec := lambdatest.Record(lambdatest.RandomRows(rand.New(rand.NewPCG(1, 1)), 1))
	defer rec.Release()
	if _, err := n.Layer.Ingest(context.Background(), "nope", rec); !errors.Is(err, speedlayer.ErrUnknownDataset) {
		t.Fatalf("got %v, want ErrUnknownDataset", err)
	}
}

// TestViewReadingSomeColumns covers views that read a subset of the
// dataset's columns, not starting with the first one.
func TestViewReadingSomeColumns(t *testing.T) {
	n := lambdatest.Start(t, t.TempDir(), lambdatest.Options{SegmentRecords: 7})
	defer n.Stop()
	ctx := context.Background()
	const sql = "SELECT k, count(*) AS c, sum(v) AS s FROM ev GROUP BY k"
	plan, err := viewsql.Analyze(ctx, n.DB, sql, &lambdatest.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Layer.AddView(ctx, "w", plan, nil); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(5, 5))
	var accepted []lambdatest.Row
	for range 5 {
		accepted = append(accepted, n.IngestRandom(rnd, 10)...)
	}
	n.Check(accepted, "view v")
	want := map[string][2]int64{}
	for _, r := range accepted {
		w := want[r.K]
		w[0]++
		if r.V != nil {
			w[1] += *r.V
		}
		want[r.K] = w
	}
	rows, err := n.DB.QueryContext(ctx, "SELECT k, c, coalesce(s, 0) FROM duet.views.w")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][2]int64{}
	for rows.Next() {
		var k string
		var c, s int64
		if err := rows.Scan(&k, &c, &s); err != nil {
			t.Fatal(err)
		}
		got[k] = [2]int64{c, s}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("views.w = %v, want %v", got, want)
	}
}

// TestLagCountsFromArrivalThroughArchiving: archiving a segment does not
// make its records look younger; the lag counts from their arrival until a
// batch version covers them, through a restart too.
func TestLagCountsFromArrivalThroughArchiving(t *testing.T) {
	dir := t.TempDir()
	n := lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 1000})
	defer func() { n.Stop() }()
	ctx := context.Background()
	n.IngestRandom(rand.New(rand.NewPCG(1, 2)), 20)
	later := time.Now().Add(time.Hour)
	before, err := n.Layer.ViewStatus("v", later)
	if err != nil {
		t.Fatal(err)
	}
	if before.LagRecords != 20 || before.LagMillis < time.Hour.Milliseconds() {
		t.Fatalf("before archiving: lag %d records, %d ms; want 20 records, at least an hour", before.LagRecords, before.LagMillis)
	}
	if err := n.Layer.Flush(ctx, lambdatest.Spec.Name); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		st, err := n.Layer.ViewStatus("v", later)
		if err != nil {
			t.Fatal(err)
		}
		// The catalog keeps milliseconds.
		if st.LagRecords != 20 || st.LagMillis < before.LagMillis-1 || st.LagMillis > before.LagMillis+1 {
			t.Fatalf("%s: lag %d records, %d ms; want 20 records, %d ms as before archiving", when, st.LagRecords, st.LagMillis, before.LagMillis)
		}
		if len(st.Segments) != 1 || !st.Segments[0].Archived {
			t.Fatalf("%s: segments %+v, want one archived", when, st.Segments)
		}
	}
	check("after archiving")
	n.Stop()
	n = lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 1000})
	check("after a restart")
}

// hangUpCtx is a request whose client hangs up right after the speed layer
// looked: its first Err is nil, then it is cancelled.
type hangUpCtx struct {
	context.Context
	looked atomic.Bool
	done   chan struct{}
}

func (c *hangUpCtx) Done() <-chan struct{} { return c.done }

func (c *hangUpCtx) Err() error {
	if c.looked.Swap(true) {
		return context.Canceled
	}
	return nil
}

// TestClientHangingUpLosesNothing: a request cancelled before anything is
// stored is refused; one cancelled once its records are in the log is
// applied anyway, and the dataset keeps accepting records.
func TestClientHangingUpLosesNothing(t *testing.T) {
	n := lambdatest.Start(t, t.TempDir(), lambdatest.Options{SegmentRecords: 100})
	defer func() { n.Stop() }()
	rnd := rand.New(rand.NewPCG(3, 4))
	var accepted []lambdatest.Row
	ingest := func(ctx context.Context) error {
		rows := lambdatest.RandomRows(rnd, 10)
		rec := lambdatest.Record(rows)
		defer rec.Release()
		_, err := n.Layer.Ingest(ctx, lambdatest.Spec.Name, rec)
		if err == nil {
			accepted = append(accepted, rows...)
		}
		return err
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ingest(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("request of a client that had gone: %v, want it refused", err)
	}
	done := make(chan struct{})
	close(done)
	if err := ingest(&hangUpCtx{Context: context.Background(), done: done}); err != nil {
		t.Fatalf("request whose client hung up after the log append: %v", err)
	}
	if err := ingest(context.Background()); err != nil {
		t.Fatalf("the next request: %v", err)
	}
	n.Check(accepted, "after a client hung up")
}
