package speedlayer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
)

// clock is the layer's dedup clock, moved by the test. It starts at the
// real time, because archive files are stamped with it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

const dedupWindow = 10 * time.Minute

// dedupSpec's events carry an order id, the dedup key.
func dedupSpec(keyType dataset.Type) dataset.Spec {
	return dataset.Spec{Name: "orders", TimeColumn: "ts", DedupKey: "id", DedupWindow: dataset.Duration(dedupWindow),
		Columns: []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "id", Type: keyType}, {Name: "v", Type: dataset.Bigint}}}
}

const dedupViewSQL = `SELECT date_trunc('hour', ts) AS hour, count(*) AS n, sum(v) AS s, count(id) AS ids FROM orders GROUP BY 1`

// dedupNode is a node whose dataset has a dedup key, with the helpers the
// tests below share.
type dedupNode struct{ *lambdatest.Node }

func startDedupNode(t *testing.T, dir string, spec dataset.Spec, clk *clock) *dedupNode {
	t.Helper()
	return &dedupNode{lambdatest.Start(t, dir, lambdatest.Options{
		Spec: &spec, Views: []lambdatest.View{{Name: "v", SQL: dedupViewSQL}}, SegmentRecords: 1000,
		Speed: func(c *speedlayer.Config) { c.Now = clk.Now },
	})}
}

// order is one event; a nil id is a null key.
type order struct {
	ts time.Time
	id *string
	v  int64
}

var orderBase = time.Date(2026, 11, 1, 22, 0, 0, 0, time.UTC)

// orders makes one event per id ("" is a null key), values 1, 2, ... from v.
func orders(v int64, ids ...string) []order {
	out := make([]order, len(ids))
	for i, id := range ids {
		out[i] = order{ts: orderBase.Add(time.Duration(v+int64(i)) * 17 * time.Minute), v: v + int64(i)}
		if id != "" {
			out[i].id = &id
		}
	}
	return out
}

func (n *dedupNode) record(rows []order) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, n.Spec.ArrowSchema())
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts.UnixMicro()))
		switch kb := b.Field(1).(type) {
		case *array.StringBuilder:
			if r.id == nil {
				kb.AppendNull()
			} else {
				kb.Append(*r.id)
			}
		case *array.Int64Builder:
			if r.id == nil {
				kb.AppendNull()
			} else {
				kb.Append(int64(mustAtoi(*r.id)))
			}
		case *array.Int32Builder:
			if r.id == nil {
				kb.AppendNull()
			} else {
				kb.Append(int32(mustAtoi(*r.id)))
			}
		}
		b.Field(2).(*array.Int64Builder).Append(r.v)
	}
	return b.NewRecordBatch()
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// ingest sends rows and checks what was stored: the rows at keep.
func (n *dedupNode) ingest(t *testing.T, rows []order, wantFirst int64, keep ...int) []order {
	t.Helper()
	rec := n.record(rows)
	defer rec.Release()
	res, err := n.Layer.IngestBatch(context.Background(), n.Spec.Name, rec)
	if err != nil {
		t.Fatal(err)
	}
	want := speedlayer.Ingested{First: wantFirst, Stored: int64(len(keep)), Duplicates: int64(len(rows) - len(keep))}
	if len(keep) == 0 {
		want.First = -1
	}
	if res != want {
		t.Fatalf("ingest of %d rows: got %+v, want %+v", len(rows), res, want)
	}
	kept := make([]order, len(keep))
	for i, k := range keep {
		kept[i] = rows[k]
	}
	return kept
}

// check asserts that raw.orders holds exactly the accepted rows, in offset
// order, and that the merged view equals its SQL over them.
func (n *dedupNode) check(t *testing.T, accepted []order, step string) {
	t.Helper()
	ctx := context.Background()
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(fmt.Sprintf("CREATE OR REPLACE TABLE memory.main.expected(ts TIMESTAMP, id %s, v BIGINT)", n.Spec.Columns[1].Type.DuckDBType()))
	defer exec("DROP TABLE memory.main.expected")
	if len(accepted) > 0 {
		vals := make([]string, len(accepted))
		for i, r := range accepted {
			id := "NULL"
			if r.id != nil {
				id = dataset.QuoteString(*r.id)
			}
			vals[i] = fmt.Sprintf("(TIMESTAMP '%s', %s, %d)", r.ts.Format("2006-01-02 15:04:05"), id, r.v)
		}
		exec("INSERT INTO memory.main.expected VALUES " + strings.Join(vals, ", "))
	}
	want := strings.Replace(dedupViewSQL, "FROM orders", "FROM memory.main.expected AS orders", 1)
	for _, pair := range [][2]string{{"SELECT * FROM memory.main.expected", "SELECT ts, id, v FROM duet.raw.orders"}, {want, "SELECT * FROM duet.views.v"}} {
		var diff int
		q := fmt.Sprintf("SELECT count(*) FROM ((%[1]s EXCEPT ALL %[2]s) UNION ALL (%[2]s EXCEPT ALL %[1]s))", pair[0], pair[1])
		if err := conn.QueryRowContext(ctx, q).Scan(&diff); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if diff != 0 {
			t.Fatalf("%s: %d rows differ between %q and %q over %d accepted rows", step, diff, pair[1], pair[0], len(accepted))
		}
	}
	st, err := n.Layer.DatasetStatus(n.Spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.LogEnd != int64(len(accepted)) {
		t.Fatalf("%s: the log ends at offset %d, want %d: duplicates must get no offset", step, st.LogEnd, len(accepted))
	}
}

// gauge reads a metric with a dataset label from the node's registry.
func (n *dedupNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := n.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != n.Spec.Name {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s{dataset=%q}", name, n.Spec.Name)
	return 0
}

// TestDedupIgnoresRepeatsWithinWindow: repeats of a key within one request
// and across requests within the window are ignored and get no offset; after
// the window the key is accepted again; null keys are never duplicates; raw
// and the view equal recomputation over the accepted rows, also after a
// build. Both key kinds (varchar, and bigint through the integer index).
func TestDedupIgnoresRepeatsWithinWindow(t *testing.T) {
	for _, kt := range []dataset.Type{dataset.Varchar, dataset.Bigint, dataset.Integer} {
		t.Run(string(kt), func(t *testing.T) {
			clk := &clock{t: time.Now()}
			t0 := clk.Now()
			n := startDedupNode(t, t.TempDir(), dedupSpec(kt), clk)
			defer func() { n.Stop() }()
			var acc []order

			// Within one request the first occurrence wins.
			acc = append(acc, n.ingest(t, orders(1, "1", "2", "1", "3", "2"), 0, 0, 1, 3)...)
			n.check(t, acc, "one request")
			// Across requests.
			acc = append(acc, n.ingest(t, orders(10, "2", "4"), 3, 1)...)
			n.check(t, acc, "second request")
			// A request of duplicates only stores nothing and succeeds.
			acc = append(acc, n.ingest(t, orders(20, "1", "2", "3", "4", "4"), -1)...)
			n.check(t, acc, "only duplicates")
			// Null keys are kept, each time.
			acc = append(acc, n.ingest(t, orders(30, "", "", "5"), 4, 0, 1, 2)...)
			acc = append(acc, n.ingest(t, orders(40, "", "5"), 7, 0)...)
			n.check(t, acc, "null keys")
			if got := n.metric(t, "duet_speedlayer_dedup_keys"); got != 5 {
				t.Fatalf("dedup_keys gauge %v, want 5", got)
			}
			if got := n.metric(t, "duet_speedlayer_duplicates_total"); got != 2+1+5+1 {
				t.Fatalf("duplicates_total %v, want 9", got)
			}

			// A build hands the records to the batch layer: no duplicate comes back.
			if _, err := n.Builder.Build(context.Background(), batchlayer.Request{JobID: "b1", View: "v"}); err != nil {
				t.Fatal(err)
			}
			n.check(t, acc, "after a build")

			// Just inside the window: still duplicates (key 5 arrived at t0 too).
			clk.set(t0.Add(dedupWindow - time.Millisecond))
			acc = append(acc, n.ingest(t, orders(50, "1", "5"), -1)...)
			// At the window's end the keys are accepted again, and count anew.
			clk.set(t0.Add(dedupWindow))
			acc = append(acc, n.ingest(t, orders(60, "1", "6", "1"), 8, 0, 1)...)
			n.check(t, acc, "after the window")
			clk.set(t0.Add(dedupWindow + time.Minute))
			acc = append(acc, n.ingest(t, orders(70, "1", "2"), 10, 1)...)
			n.check(t, acc, "within the new window of key 1")
			// The layer's tick prunes expired keys: 1, 6 and 2 remain.
			deadline := time.Now().Add(10 * time.Second)
			for n.metric(t, "duet_speedlayer_dedup_keys") != 3 {
				if time.Now().After(deadline) {
					t.Fatalf("dedup_keys gauge %v, want 3 once expired keys are pruned", n.metric(t, "duet_speedlayer_dedup_keys"))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestDedupSurvivesRestart: after a restart within the window, retries of
// acknowledged records are ignored, whether their segment was archived or is
// replayed from the log; once the archive's window has passed they are
// accepted, while replayed keys keep the restart as their (later) arrival.
func TestDedupSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	t0 := clk.Now()
	n := startDedupNode(t, dir, dedupSpec(dataset.Varchar), clk)
	defer func() { n.Stop() }()
	ctx := context.Background()
	var acc []order
	acc = append(acc, n.ingest(t, orders(1, "a", "b"), 0, 0, 1)...)
	if err := n.Layer.Flush(ctx, n.Spec.Name); err != nil {
		t.Fatal(err)
	}
	if st, _ := n.Layer.DatasetStatus(n.Spec.Name); st.ArchivedEnd != 2 {
		t.Fatalf("archived up to %d, want 2", st.ArchivedEnd)
	}
	acc = append(acc, n.ingest(t, orders(5, "c"), 2, 0)...)

	n.Stop()
	clk.set(t0.Add(5 * time.Minute))
	n = startDedupNode(t, dir, dedupSpec(dataset.Varchar), clk)
	n.check(t, acc, "after restart")
	// a and b come from the archive file, c from the log.
	acc = append(acc, n.ingest(t, orders(10, "a", "b", "c", "d"), 3, 3)...)
	n.check(t, acc, "retries after restart")
	if got := n.metric(t, "duet_speedlayer_dedup_keys"); got != 4 {
		t.Fatalf("dedup_keys gauge %v after restart, want 4", got)
	}

	// Past the window of the archive file (created about t0), a and b are
	// accepted again; c, replayed at the first restart (t0+5m) and again
	// now, is held from this restart on: the window only ever gets longer.
	n.Stop()
	clk.set(t0.Add(dedupWindow + time.Minute))
	n = startDedupNode(t, dir, dedupSpec(dataset.Varchar), clk)
	acc = append(acc, n.ingest(t, orders(20, "a", "c", "d", "b"), 4, 0, 3)...)
	n.check(t, acc, "after the window, restarted")
	// (A build archives what the log holds. Archive files are stamped by the
	// real clock, which this test has left behind, so it comes last.)
	if _, err := n.Builder.Build(ctx, batchlayer.Request{JobID: "b1", View: "v"}); err != nil {
		t.Fatal(err)
	}
	n.check(t, acc, "after a build")
}

// TestDedupRefusedRequestLeavesNoKeys: a request the budget refuses stores
// nothing, so its keys must not keep its retry out.
func TestDedupRefusedRequestLeavesNoKeys(t *testing.T) {
	clk := &clock{t: time.Now()}
	n := startDedupNode(t, t.TempDir(), dedupSpec(dataset.Varchar), clk)
	defer func() { n.Stop() }()
	rec := n.record(orders(1, "a"))
	defer rec.Release()
	// A dataset the layer does not hold: refused before the index.
	if _, err := n.Layer.IngestBatch(context.Background(), "nope", rec); !errors.Is(err, speedlayer.ErrUnknownDataset) {
		t.Fatalf("got %v", err)
	}
	// A record with the wrong schema passes the index, then the log refuses it.
	bad := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}, {Name: "id", Type: arrow.BinaryTypes.String}, {Name: "w", Type: arrow.PrimitiveTypes.Int64},
	}, nil), rec.Columns(), rec.NumRows())
	defer bad.Release()
	if _, err := n.Layer.IngestBatch(context.Background(), n.Spec.Name, bad); err == nil {
		t.Fatal("a record with a wrong column name was accepted")
	}
	if got := n.metric(t, "duet_speedlayer_dedup_keys"); got != 0 {
		t.Fatalf("dedup_keys gauge %v after a refused request, want 0", got)
	}
	acc := n.ingest(t, orders(1, "a"), 0, 0)
	n.check(t, acc, "retry of a refused request")
}

// BenchmarkDedupFilter measures what deduplication adds to a request of
// 10,000 ten-column events: finding its duplicates (10%) in an index of a
// window's keys, and filtering the record (arrow compute). The whole ingest
// with and without a dedup key is in BenchmarkDedupIngest.
func BenchmarkDedupFilter(b *testing.B) {
	const rows = 10_000
	rec := wideRecord(rows, 0)
	defer rec.Release()
	keep := make([]bool, rows)
	for i := range keep {
		keep[i] = i%10 != 0
	}
	mb := array.NewBooleanBuilder(memory.DefaultAllocator)
	mb.AppendValues(keep, nil)
	mask := mb.NewBooleanArray()
	mb.Release()
	defer mask.Release()
	b.ReportAllocs()
	for b.Loop() {
		out, err := compute.FilterRecordBatch(context.Background(), rec, mask, compute.DefaultFilterOptions())
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/rows, "ns/row")
}

// BenchmarkDedupIngest ingests 10,000-event requests of ten columns, one
// in ten a retry of the previous request's key, into a layer with and without
// a dedup key.
func BenchmarkDedupIngest(b *testing.B) {
	for _, key := range []string{"", "id"} {
		b.Run("key="+key, func(b *testing.B) {
			const rows = 10_000
			dir := b.TempDir()
			ctx := context.Background()
			cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer cat.Close()
			fs, err := objstore.NewFilesystem(filepath.Join(dir, "objects"))
			if err != nil {
				b.Fatal(err)
			}
			db, err := engine.Open(ctx, engine.Config{AllowedDirectories: []string{dir}, Threads: 2}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			layer, err := speedlayer.New(speedlayer.Config{
				LogDir: filepath.Join(dir, "log"), ScratchDir: filepath.Join(dir, "scratch"), NoSync: true,
				SegmentMaxRecords: 1 << 40, MemoryBudget: "100%",
			}, db, cat, fs, fs, serving.NewMerger(fs), nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			spec := wideSpec(key)
			if err := cat.CreateDataset(ctx, catalog.Dataset{Spec: spec}); err != nil {
				b.Fatal(err)
			}
			if err := spec.Validate(); err != nil {
				b.Fatal(err)
			}
			if err := layer.AddDataset(ctx, spec); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var stored int64
			i := 0
			for b.Loop() {
				b.StopTimer()
				rec := wideRecord(rows, i)
				b.StartTimer()
				res, err := layer.IngestBatch(ctx, spec.Name, rec)
				b.StopTimer()
				rec.Release()
				if err != nil {
					b.Fatal(err)
				}
				stored += res.Stored
				i++
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/rows, "ns/row")
		})
	}
}

func wideSpec(key string) dataset.Spec {
	s := dataset.Spec{Name: "wide", TimeColumn: "ts", DedupKey: key, Columns: []dataset.Column{
		{Name: "ts", Type: dataset.Timestamp}, {Name: "id", Type: dataset.Varchar}}}
	for i := range 8 {
		t := dataset.Bigint
		if i%2 == 1 {
			t = dataset.Double
		}
		s.Columns = append(s.Columns, dataset.Column{Name: fmt.Sprintf("c%d", i), Type: t})
	}
	return s
}

// wideRecord is request req of rows events; every tenth id repeats one of
// request req-1.
func wideRecord(rows, req int) arrow.RecordBatch {
	spec := wideSpec("")
	b := array.NewRecordBuilder(memory.DefaultAllocator, spec.ArrowSchema())
	defer b.Release()
	rnd := rand.New(rand.NewPCG(uint64(req), 1))
	for i := range rows {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(orderBase.UnixMicro() + int64(i)))
		id := fmt.Sprintf("order-%08d-%06d", req, i)
		if i%10 == 0 && req > 0 {
			id = fmt.Sprintf("order-%08d-%06d", req-1, i)
		}
		b.Field(1).(*array.StringBuilder).Append(id)
		for c := range 8 {
			if c%2 == 0 {
				b.Field(2 + c).(*array.Int64Builder).Append(rnd.Int64())
			} else {
				b.Field(2 + c).(*array.Float64Builder).Append(rnd.Float64())
			}
		}
	}
	return b.NewRecordBatch()
}
