// Package lambdatest assembles duet's catalog, object store, engine, speed
// layer and batch layer in one test process on a data directory, and checks
// the invariant: merged answers equal recomputation over every accepted row.
package lambdatest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
)

// Spec is the dataset the harness defines: events with a time, a key and a value.
var Spec = dataset.Spec{Name: "ev", TimeColumn: "ts", Columns: []dataset.Column{
	{Name: "ts", Type: dataset.Timestamp}, {Name: "k", Type: dataset.Varchar}, {Name: "v", Type: dataset.Bigint},
}}

// ViewSQL is the view "v" the harness maintains over Spec.
const ViewSQL = `SELECT date_trunc('hour', ts) AS hour, k, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi, avg(v) AS a, count_if(v > 10) AS big FROM ev GROUP BY 1, 2`

// InProcess runs executor tasks in this process: the real task code, without
// a child process, so the speed layer's handoffs can be tested on their own.
type InProcess struct{}

func (InProcess) Launch(ctx context.Context, dir string) error {
	return batchlayer.RunTask(ctx, dir)
}

// Node is one process's worth of duet state on a data directory.
type Node struct {
	t       *testing.T
	Cat     *catalog.Store
	DB      *sql.DB
	Bucket  *objstore.Filesystem
	Layer   *speedlayer.Layer
	Builder *batchlayer.Builder
	// Registry holds the speed layer's metrics.
	Registry *prometheus.Registry
	// Spec is the dataset as the catalog holds it (validated).
	Spec dataset.Spec
	Stop func()
}

// Options change how Start assembles a node.
type Options struct {
	SegmentRecords int64
	// Launcher runs executor tasks; InProcess when nil.
	Launcher batchlayer.Launcher
	// Bucket wraps the filesystem bucket the builder writes to (fault injection).
	Bucket func(*objstore.Filesystem) batchlayer.Bucket
	Batch  batchlayer.Config
	// Spec, when set, is the node's dataset instead of Spec and its view
	// "v": Views are created (as the server creates them) when the dataset
	// is, and a restart recovers every view of the catalog.
	Spec  *dataset.Spec
	Views []View
	// Threads is the engine's thread count; 2 when 0.
	Threads int
	// Archive wraps the filesystem bucket the speed layer archives to.
	Archive func(*objstore.Filesystem) speedlayer.Bucket
	// Speed adjusts the speed layer's configuration (budget, clock).
	Speed func(*speedlayer.Config)
}

// View is a view to create: a name and its SQL.
type View struct {
	Name, SQL string
}

// Start opens a node on dir, creating the dataset and view on first use.
func Start(t *testing.T, dir string, o Options) *Node {
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
	threads := 2
	if o.Threads > 0 {
		threads = o.Threads
	}
	db, err := engine.Open(ctx, engine.Config{AllowedDirectories: []string{dir}, Threads: threads, CacheFile: filepath.Join(dir, "view-cache.duckdb")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	scfg := speedlayer.Config{
		LogDir: filepath.Join(dir, "log"), ScratchDir: filepath.Join(dir, "scratch"),
		SegmentMaxRecords: max(o.SegmentRecords, 1), SegmentMaxAge: time.Hour, TickInterval: 5 * time.Millisecond,
		ViewCacheRows: 1_000_000,
	}
	if o.Speed != nil {
		o.Speed(&scfg)
	}
	var archive speedlayer.Bucket = bucket
	if o.Archive != nil {
		archive = o.Archive(bucket)
	}
	reg := prometheus.NewRegistry()
	layer, err := speedlayer.New(scfg, db, cat, archive, bucket, serving.NewMerger(bucket), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{t: t, Cat: cat, DB: db, Bucket: bucket, Layer: layer, Registry: reg}
	if o.Spec != nil {
		n.startCustom(ctx, *o.Spec, o.Views)
	} else {
		if _, err := cat.GetDataset(ctx, Spec.Name); errors.Is(err, catalog.ErrNotFound) {
			if err := cat.CreateDataset(ctx, catalog.Dataset{Spec: Spec}); err != nil {
				t.Fatal(err)
			}
			if err := cat.CreateView(ctx, catalog.View{Name: "v", Dataset: Spec.Name, SQL: ViewSQL}); err != nil {
				t.Fatal(err)
			}
		}
		if err := layer.AddDataset(ctx, Spec); err != nil {
			t.Fatal(err)
		}
		n.Spec = Spec
		plan, err := viewsql.Analyze(ctx, db, ViewSQL, &Spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.startView(ctx, "v", plan); err != nil {
			t.Fatal(err)
		}
	}
	var launcher batchlayer.Launcher = InProcess{}
	if o.Launcher != nil {
		launcher = o.Launcher
	}
	var bb batchlayer.Bucket = bucket
	if o.Bucket != nil {
		bb = o.Bucket(bucket)
	}
	bcfg := o.Batch
	bcfg.ScratchDir = filepath.Join(dir, "scratch")
	builder, err := batchlayer.NewBuilder(bcfg, cat, layer, bb, launcher, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- layer.Run(runCtx) }()
	n.Builder = builder
	n.Stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		db.Close()
		cat.Close()
	}
	return n
}

// startCustom creates spec and views on first use, or recovers the dataset
// and every view of the catalog, views over views after what they read.
func (n *Node) startCustom(ctx context.Context, spec dataset.Spec, views []View) {
	t := n.t
	_, err := n.Cat.GetDataset(ctx, spec.Name)
	fresh := errors.Is(err, catalog.ErrNotFound)
	if fresh {
		if err := n.Cat.CreateDataset(ctx, catalog.Dataset{Spec: spec}); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	// The server runs on the spec as the catalog keeps it: validated, with
	// defaults filled in.
	d, err := n.Cat.GetDataset(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	n.Spec = d.Spec
	if err := n.Layer.AddDataset(ctx, d.Spec); err != nil {
		t.Fatal(err)
	}
	if fresh {
		for _, v := range views {
			if err := n.CreateView(ctx, v.Name, v.SQL); err != nil {
				t.Fatalf("create view %q: %v", v.Name, err)
			}
		}
		return
	}
	pending, err := n.Cat.ListViews(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for len(pending) > 0 {
		var waiting []catalog.View
		for _, v := range pending {
			plan, err := n.planView(ctx, v.Name, v.SQL)
			if errors.Is(err, speedlayer.ErrUnknownView) {
				waiting = append(waiting, v)
				continue
			}
			if err != nil {
				t.Fatalf("recover view %q: %v", v.Name, err)
			}
			if err := n.startView(ctx, v.Name, plan); err != nil {
				t.Fatalf("recover view %q: %v", v.Name, err)
			}
		}
		if len(waiting) == len(pending) {
			t.Fatalf("recover view %q: it reads a view that cannot be started", waiting[0].Name)
		}
		pending = waiting
	}
}

// CreateView creates a view as the server does: analysed against the
// dataset or view it reads, recorded in the catalog, then maintained by the
// speed layer. SQL the analyser refuses gives a *viewsql.Error.
func (n *Node) CreateView(ctx context.Context, name, sqlText string) error {
	plan, err := n.planView(ctx, name, sqlText)
	if err != nil {
		return err
	}
	if err := n.Cat.CreateView(ctx, catalog.View{Name: name, Dataset: plan.Dataset, SQL: sqlText}); err != nil {
		return err
	}
	return n.startView(ctx, name, plan)
}

// planView mirrors the server's: a view reads a dataset, or another view
// the speed layer maintains (views.<name>; speedlayer.ErrUnknownView when
// it does not).
func (n *Node) planView(ctx context.Context, name, sqlText string) (*viewsql.Plan, error) {
	schema, table, err := viewsql.SourceTable(ctx, n.DB, sqlText)
	if err != nil {
		return nil, err
	}
	if schema != "views" {
		if d, err := n.Cat.GetDataset(ctx, table); err == nil {
			return viewsql.Analyze(ctx, n.DB, sqlText, &d.Spec)
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return nil, err
		}
	}
	if strings.EqualFold(table, name) {
		return nil, &viewsql.Error{Msg: fmt.Sprintf("view SQL: view %q cannot read itself", name)}
	}
	upstream, err := n.Layer.Plan(table)
	if err != nil {
		return nil, err
	}
	return viewsql.AnalyzeOver(ctx, n.DB, sqlText, table, upstream)
}

// startView hands a view to the speed layer with its current batch version.
func (n *Node) startView(ctx context.Context, name string, plan *viewsql.Plan) error {
	var version *catalog.ViewVersion
	switch cur, err := n.Cat.CurrentVersion(ctx, name); {
	case err == nil:
		version = &cur
	case !errors.Is(err, catalog.ErrNotFound):
		return err
	}
	return n.Layer.AddView(ctx, name, plan, version)
}

// Row is one event.
type Row struct {
	TS time.Time
	K  string
	V  *int64
}

// Record builds an Arrow record of rows with Spec's schema.
func Record(rows []Row) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, Spec.ArrowSchema())
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.TS.UnixMicro()))
		b.Field(1).(*array.StringBuilder).Append(r.K)
		if r.V == nil {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Int64Builder).Append(*r.V)
		}
	}
	return b.NewRecordBatch()
}

// RandomRows makes n events over two days in random order, some values null.
func RandomRows(rnd *rand.Rand, n int) []Row {
	base := time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC)
	out := make([]Row, n)
	for i := range out {
		var v *int64
		if rnd.IntN(8) != 0 {
			x := rnd.Int64N(40) - 5
			v = &x
		}
		// Spread over two days in random order: late and out-of-order data.
		out[i] = Row{TS: base.Add(time.Duration(rnd.IntN(48*60)) * time.Minute), K: string(rune('a' + rnd.IntN(4))), V: v}
	}
	return out
}

// IngestRandom ingests k RandomRows into Spec's dataset, failing the test
// on an error, and returns them.
func (n *Node) IngestRandom(rnd *rand.Rand, k int) []Row {
	n.t.Helper()
	rows := RandomRows(rnd, k)
	rec := Record(rows)
	defer rec.Release()
	if _, err := n.Layer.Ingest(context.Background(), Spec.Name, rec); err != nil {
		n.t.Fatal(err)
	}
	return rows
}

// Check asserts the invariant inside the engine: the merged view and the
// raw table equal the view SQL and the rows over everything accepted.
func (n *Node) Check(accepted []Row, step string) {
	n.t.Helper()
	ctx := context.Background()
	conn, err := n.DB.Conn(ctx)
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
			if r.V != nil {
				v = fmt.Sprint(*r.V)
			}
			vals[i] = fmt.Sprintf("(TIMESTAMP '%s', '%s', %s)", r.TS.Format("2006-01-02 15:04:05.999999"), r.K, v)
		}
		mustExec("INSERT INTO memory.main.expected VALUES " + strings.Join(vals, ", "))
	}
	cols := "hour, k, n, s, lo, hi, round(a, 9) AS a, big"
	want := fmt.Sprintf("SELECT %s FROM (%s)", cols, strings.Replace(ViewSQL, "FROM ev", "FROM memory.main.expected AS ev", 1))
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

// Querier runs a query: a *sql.DB or *sql.Conn.
type Querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// QueryAll runs q and returns every row as the driver scans it into any;
// a failing query fails the test.
func QueryAll(ctx context.Context, t testing.TB, db Querier, q string, args ...any) [][]any {
	t.Helper()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// ResidentBytes is the process's resident set (VmRSS), on Linux.
func ResidentBytes(t testing.TB) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
