package speedlayer_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

var spec = dataset.Spec{Name: "ev", TimeColumn: "ts", Columns: []dataset.Column{
	{Name: "ts", Type: dataset.Timestamp}, {Name: "k", Type: dataset.Varchar}, {Name: "v", Type: dataset.Bigint},
}}

const viewSQL = `SELECT date_trunc('hour', ts) AS hour, k, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi, avg(v) AS a, count_if(v > 10) AS big FROM ev GROUP BY 1, 2`

// inProcess runs executor tasks in this process: the real task code, without
// a child process, so the speed layer's handoffs can be tested on their own.
type inProcess struct{}

func (inProcess) Launch(ctx context.Context, dir string, _ ...string) error {
	return batchlayer.RunTask(ctx, dir)
}

// node is one process's worth of duet state on a data directory.
type node struct {
	t       *testing.T
	cat     *catalog.Store
	db      *sql.DB
	layer   *speedlayer.Layer
	builder *batchlayer.Builder
	stop    func()
}

func start(t *testing.T, dir string, segmentRecords int64) *node {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := objstore.NewFilesystem(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := engine.Open(ctx, engine.Config{AllowedDirectories: []string{dir}, Threads: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := speedlayer.New(speedlayer.Config{
		LogDir: filepath.Join(dir, "log"), ScratchDir: filepath.Join(dir, "scratch"),
		SegmentMaxRecords: segmentRecords, SegmentMaxAge: time.Hour, TickInterval: 5 * time.Millisecond,
	}, db, cat, bucket, bucket, serving.NewMerger(bucket), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.GetDataset(ctx, spec.Name); errors.Is(err, catalog.ErrNotFound) {
		if err := cat.CreateDataset(ctx, catalog.Dataset{Spec: spec}); err != nil {
			t.Fatal(err)
		}
		if err := cat.CreateView(ctx, catalog.View{Name: "v", Dataset: spec.Name, SQL: viewSQL}); err != nil {
			t.Fatal(err)
		}
	}
	if err := layer.AddDataset(ctx, spec); err != nil {
		t.Fatal(err)
	}
	plan, err := viewsql.Analyze(ctx, db, viewSQL, &spec)
	if err != nil {
		t.Fatal(err)
	}
	var version *catalog.ViewVersion
	if cur, err := cat.CurrentVersion(ctx, "v"); err == nil {
		version = &cur
	}
	if err := layer.AddView(ctx, "v", plan, version); err != nil {
		t.Fatal(err)
	}
	builder, err := batchlayer.NewBuilder(batchlayer.Config{ScratchDir: filepath.Join(dir, "scratch")}, cat, layer, bucket, inProcess{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- layer.Run(runCtx) }()
	n := &node{t: t, cat: cat, db: db, layer: layer, builder: builder}
	n.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		db.Close()
		cat.Close()
	}
	return n
}

type row struct {
	ts time.Time
	k  string
	v  *int64
}

func record(rows []row) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, spec.ArrowSchema())
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts.UnixMicro()))
		b.Field(1).(*array.StringBuilder).Append(r.k)
		if r.v == nil {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Int64Builder).Append(*r.v)
		}
	}
	return b.NewRecordBatch()
}

func randomRows(rnd *rand.Rand, n int) []row {
	base := time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC)
	out := make([]row, n)
	for i := range out {
		var v *int64
		if rnd.IntN(8) != 0 {
			x := rnd.Int64N(40) - 5
			v = &x
		}
		// Spread over two days in random order: late and out-of-order data.
		out[i] = row{ts: base.Add(time.Duration(rnd.IntN(48*60)) * time.Minute), k: string(rune('a' + rnd.IntN(4))), v: v}
	}
	return out
}

// check asserts the invariant inside the engine: the merged view and the
// raw table equal the view SQL and the rows over everything accepted.
func (n *node) check(accepted []row, step string) {
	n.t.Helper()
	ctx := context.Background()
	conn, err := n.db.Conn(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close()
	mustExec := func(q string) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			n.t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec("CREATE OR REPLACE TABLE memory.main.expected(ts TIMESTAMP, k VARCHAR, v BIGINT)")
	defer mustExec("DROP TABLE memory.main.expected")
	if len(accepted) > 0 {
		vals := make([]string, len(accepted))
		for i, r := range accepted {
			v := "NULL"
			if r.v != nil {
				v = fmt.Sprint(*r.v)
			}
			vals[i] = fmt.Sprintf("(TIMESTAMP '%s', '%s', %s)", r.ts.Format("2006-01-02 15:04:05.999999"), r.k, v)
		}
		mustExec("INSERT INTO memory.main.expected VALUES " + strings.Join(vals, ", "))
	}
	cols := "hour, k, n, s, lo, hi, round(a, 9) AS a, big"
	want := fmt.Sprintf("SELECT %s FROM (%s)", cols, strings.Replace(viewSQL, "FROM ev", "FROM memory.main.expected AS ev", 1))
	got := fmt.Sprintf("SELECT %s FROM duet.views.v", cols)
	for _, pair := range [][2]string{{want, got}, {"SELECT * FROM memory.main.expected", "SELECT ts, k, v FROM duet.raw.ev"}} {
		var diff int
		q := fmt.Sprintf("SELECT count(*) FROM ((%[1]s EXCEPT ALL %[2]s) UNION ALL (%[2]s EXCEPT ALL %[1]s))", pair[0], pair[1])
		if err := conn.QueryRowContext(ctx, q).Scan(&diff); err != nil {
			n.t.Fatalf("%s: %v", step, err)
		}
		if diff != 0 {
			n.t.Fatalf("%s: %d rows differ between %q and %q over %d accepted rows", step, diff, pair[1], pair[0], len(accepted))
		}
	}
}

// TestMergedEqualsRecomputationUnderRandomOperations interleaves ingest,
// archiving, builds, rollbacks and restarts at random and checks the
// invariant after every operation.
func TestMergedEqualsRecomputationUnderRandomOperations(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, seed*31))
			dir := t.TempDir()
			n := start(t, dir, int64(10+rnd.IntN(40)))
			defer func() { n.stop() }()
			ctx := context.Background()
			var accepted []row
			for op := range 60 {
				var step string
				switch k := rnd.IntN(13); {
				case k < 5:
					rows := randomRows(rnd, 1+rnd.IntN(30))
					rec := record(rows)
					first, err := n.layer.Ingest(ctx, spec.Name, rec)
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
					if err := n.layer.Flush(ctx, spec.Name); err != nil {
						t.Fatal(err)
					}
					step = "flush"
				case k < 9:
					full := k == 8
					v, err := n.builder.Build(ctx, batchlayer.Request{JobID: fmt.Sprint("job", op), View: "v", Full: full})
					if err != nil && !errors.Is(err, batchlayer.ErrUpToDate) {
						t.Fatal(err)
					}
					if err == nil && v.Covered != int64(len(accepted)) {
						t.Fatalf("build covered %d, want all %d accepted", v.Covered, len(accepted))
					}
					step = fmt.Sprintf("build (full=%v) -> %s v%d", full, v.Meta.Kind, v.Version)
				case k < 10:
					versions, err := n.cat.ListVersions(ctx, "v")
					if err != nil || len(versions) < 2 {
						continue
					}
					old := versions[1+rnd.IntN(len(versions)-1)]
					if _, err := n.builder.Rollback(ctx, "v", old.Version); err != nil {
						t.Fatal(err)
					}
					step = fmt.Sprintf("rollback to v%d", old.Version)
				case k < 11:
					merged, err := n.builder.Compact(ctx, fmt.Sprint("compact", op), spec.Name, &spec, "")
					if err != nil {
						t.Fatal(err)
					}
					step = fmt.Sprintf("compaction merged %d files", merged)
				case k < 12:
					from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rnd.IntN(3))
					to := from.AddDate(0, 0, rnd.IntN(2))
					_, err := n.builder.Build(ctx, batchlayer.Request{JobID: fmt.Sprint("job", op), View: "v", From: from.Format(time.DateOnly), To: to.Format(time.DateOnly)})
					if err != nil && !strings.Contains(err.Error(), "no version yet") {
						t.Fatal(err)
					}
					step = "backfill " + from.Format(time.DateOnly) + ".." + to.Format(time.DateOnly)
				default:
					n.stop()
					n = start(t, dir, int64(10+rnd.IntN(40)))
					step = "restart"
				}
				t.Logf("op %d: %s", op, step)
				n.check(accepted, fmt.Sprintf("op %d (%s)", op, step))
			}
		})
	}
}

func TestIngestUnknownDataset(t *testing.T) {
	n := start(t, t.TempDir(), 100)
	defer n.stop()
	rec := record(randomRows(rand.New(rand.NewPCG(1, 1)), 1))
	defer rec.Release()
	if _, err := n.layer.Ingest(context.Background(), "nope", rec); !errors.Is(err, speedlayer.ErrUnknownDataset) {
		t.Fatalf("got %v, want ErrUnknownDataset", err)
	}
}
