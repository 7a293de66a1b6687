package speedlayer_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/speedlayer"
)

// gatedBucket is the real filesystem bucket behind a gate: uploads wait
// until the test opens it, so the archiver is stuck as on a dead object store.
type gatedBucket struct {
	*objstore.Filesystem
	open    chan struct{}
	blocked atomic.Int64 // uploads that had to wait
}

func (g *gatedBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	select {
	case <-g.open:
	default:
		g.blocked.Add(1)
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Filesystem.Upload(ctx, name, r)
}

// The budget test's events carry a payload that compresses poorly, so the
// budget is reached in a few hundred thousand rows, and few groups per batch,
// so the raw rows dominate the retained memory (archiving frees them).
var budgetSpec = dataset.Spec{Name: "ev", TimeColumn: "ts", Columns: []dataset.Column{
	{Name: "ts", Type: dataset.Timestamp}, {Name: "k", Type: dataset.Varchar},
	{Name: "v", Type: dataset.Bigint}, {Name: "note", Type: dataset.Varchar},
}}

const budgetViewSQL = `SELECT date_trunc('hour', ts) AS hour, k, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi, count_if(v > 500000) AS big FROM ev GROUP BY 1, 2`

// genRecord makes n events of request req over four hours around midnight;
// each note starts with the request's id ("r00012:").
func genRecord(rnd *rand.Rand, req, n int) arrow.RecordBatch {
	base := time.Date(2026, 11, 1, 22, 0, 0, 0, time.UTC)
	b := array.NewRecordBuilder(memory.DefaultAllocator, budgetSpec.ArrowSchema())
	defer b.Release()
	buf := make([]byte, 24)
	for i := range n {
		for j := range buf {
			buf[j] = byte(rnd.Uint32())
		}
		ts := base.Add(time.Duration(rnd.Int64N(int64(4*time.Hour/time.Microsecond))) * time.Microsecond)
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		b.Field(1).(*array.StringBuilder).Append(string(rune('a' + rnd.IntN(4))))
		b.Field(2).(*array.Int64Builder).Append(rnd.Int64N(1_000_000))
		b.Field(3).(*array.StringBuilder).Append(fmt.Sprintf("%s:%d:%s", reqID(req), i, hex.EncodeToString(buf)))
	}
	return b.NewRecordBatch()
}

func reqID(req int) string { return fmt.Sprintf("r%05d", req) }

func startBudgetNode(t *testing.T, dir, budget string, bucket func(*objstore.Filesystem) speedlayer.Bucket) (*lambdatest.Node, *speedlayerDB) {
	t.Helper()
	spec := budgetSpec
	n := lambdatest.Start(t, dir, lambdatest.Options{
		Spec: &spec, Views: []lambdatest.View{{Name: "v", SQL: budgetViewSQL}}, SegmentRecords: 20_000,
		Archive: bucket, Speed: func(c *speedlayer.Config) { c.MemoryBudget = budget },
	})
	return n, &speedlayerDB{t: t, db: n.DB}
}

// TestMemoryBudgetBackpressure fills the speed layer while its archiver is
// stuck: ingest is refused once the budget is reached, the engine's memory
// stays within the budget plus the slack the design allows, refused requests
// leave no trace, and once the archiver is released ingest resumes and every
// acknowledged event is in raw.ev and in the view, also after a build and a
// restart.
func TestMemoryBudgetBackpressure(t *testing.T) {
	const (
		budget    = 16 << 20
		batchRows = 4000
		// The slack the design allows: a request admitted under the budget
		// may take the engine over it by its own size (about 0.5 MiB here,
		// raw rows and partials; 2 MiB allowed) plus the engine's allocation
		// granularity, which the layer's estimates do not see until the next
		// measure: DuckDB gives each column of a table, and its validity
		// mask, a fresh 256 KiB block when one fills or a new row group
		// starts (after a checkpoint, all at once), here the 6 columns of
		// the raw table and the 8 of the view's partial table.
		slack = 2*(6+8)*256<<10 + 2<<20
	)
	dir := t.TempDir()
	gate := &gatedBucket{open: make(chan struct{})}
	n, eng := startBudgetNode(t, dir, "16MiB", func(fs *objstore.Filesystem) speedlayer.Bucket {
		gate.Filesystem = fs
		return gate
	})
	defer func() { n.Stop() }()
	ctx := context.Background()
	if got := n.Layer.Memory().Budget; got != budget {
		t.Fatalf("budget = %d, want %d", got, budget)
	}

	rnd := rand.New(rand.NewPCG(4, 4))
	var (
		accepted []arrow.RecordBatch
		rows     int64
		refused  []string
		peak     int64
		req      int
	)
	defer func() {
		for _, rec := range accepted {
			rec.Release()
		}
	}()
	// ingest sends one request and checks the engine's memory after it.
	ingest := func() error {
		req++
		rec := genRecord(rnd, req, batchRows)
		_, err := n.Layer.Ingest(ctx, budgetSpec.Name, rec)
		if err == nil {
			accepted = append(accepted, rec)
			rows += rec.NumRows()
		} else {
			rec.Release()
		}
		var be *speedlayer.BudgetError
		switch {
		case errors.As(err, &be):
			refused = append(refused, reqID(req))
			if be.Dataset != "ev" || be.Budget != budget || be.Records != batchRows || be.RetryAfter < time.Second || be.Retained < budget ||
				!strings.Contains(be.Error(), `dataset "ev": request not accepted, none of its 4000 records were stored`) ||
				!strings.Contains(be.Error(), "memory budget of 16.0 MiB") {
				t.Fatalf("refusal: %+v: %v", be, err)
			}
			if st, err := n.Layer.DatasetStatus("ev"); err != nil || st.LogEnd != rows {
				t.Fatalf("after a refusal the log ends at %d (%v), want %d: a refused request left records", st.LogEnd, err, rows)
			}
		case err != nil:
			t.Fatal(err)
		}
		// Measured between checkpoints: mid-checkpoint the engine also
		// holds the compressed copies it is writing, which the budget does
		// not bound.
		m, err2 := speedlayer.MeasureSettled(ctx, n.Layer)
		if err2 != nil {
			t.Fatal(err2)
		}
		peak = max(peak, m)
		if m > budget+slack {
			t.Fatalf("request %d: the engine holds %d bytes, over the budget %d plus slack %d", req, m, budget, slack)
		}
		return err
	}

	for len(refused) < 30 {
		if req > 1000 {
			t.Fatalf("ingest never refused in %d requests (%d rows accepted); retained %d, budget %d", req, rows, n.Layer.Memory().Retained, budget)
		}
		if ingest() != nil {
			// As a client waiting Retry-After would, only sooner; the layer
			// keeps relieving memory meanwhile (with the archiver stuck, by
			// checkpoints that compress what it holds).
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("archiver stuck: %d requests, %d rows accepted, %d requests refused, peak engine memory %.1f MiB (budget %.1f MiB)",
		req, rows, len(refused), float64(peak)/(1<<20), float64(budget)/(1<<20))
	if gate.blocked.Load() == 0 {
		t.Fatal("the archiver never tried to upload: the test did not block it")
	}
	if got := counterSum(t, n.Registry, "duet_speedlayer_ingest_refused_total"); got != float64(len(refused)) {
		t.Errorf("duet_speedlayer_ingest_refused_total = %v, want %d", got, len(refused))
	}

	// Released, the archiver frees the raw rows and ingest resumes.
	close(gate.open)
	deadline := time.Now().Add(time.Minute) // a guard against hanging, not a timing assertion
	for resumed := 0; resumed < 10; {
		switch err := ingest(); {
		case err == nil:
			resumed++
		case time.Now().After(deadline):
			t.Fatalf("ingest still refused a minute after the archiver was released: %v", err)
		default:
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("archiver released: %d requests, %d rows accepted, %d refused, peak engine memory %.1f MiB", req, rows, len(refused), float64(peak)/(1<<20))
	eng.check(accepted, rows, refused, "after the archiver was released")

	if err := n.Layer.Flush(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Builder.Build(ctx, batchlayer.Request{JobID: "b1", View: "v"}); err != nil {
		t.Fatal(err)
	}
	n.Stop()
	n, eng = startBudgetNode(t, dir, "16MiB", func(fs *objstore.Filesystem) speedlayer.Bucket { return fs })
	eng.check(accepted, rows, refused, "after a build and a restart")
}

// counterSum sums a counter's series in the registry.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestParseMemoryBudget(t *testing.T) {
	for in, want := range map[string]int64{
		"512MiB": 512 << 20, "2GB": 2e9, "1.5 GiB": 3 << 29, "4096": 4096, "25%": 1 << 28, "": 1 << 28, "100%": 1 << 30,
	} {
		b, err := speedlayer.ParseMemoryBudget(in)
		if err != nil || b.Of(1<<30) != want {
			t.Errorf("ParseMemoryBudget(%q).Of(1GiB) = %d, %v; want %d", in, b.Of(1<<30), err, want)
		}
	}
	for _, in := range []string{"lots", "0", "-1MiB", "0%", "150%", "12 parsecs"} {
		if _, err := speedlayer.ParseMemoryBudget(in); err == nil {
			t.Errorf("ParseMemoryBudget(%q) accepted", in)
		}
	}
	if got := speedlayer.FormatBytes(16 << 20); got != "16.0 MiB" {
		t.Errorf("FormatBytes(16MiB) = %q", got)
	}
}

// speedlayerDB checks a node's engine from the outside.
type speedlayerDB struct {
	t  *testing.T
	db *sql.DB
}

// measure asks the engine what its in-memory tables hold now.
// check compares raw.ev and views.v with recomputation over the accepted
// records, and looks for events of refused requests.
func (e *speedlayerDB) check(accepted []arrow.RecordBatch, rows int64, refused []string, step string) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := e.db.Conn(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	mustExec := func(q string) {
		e.t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			e.t.Fatalf("%s: %s: %v", step, q, err)
		}
	}
	ar, err := engine.Arrow(conn)
	if err != nil {
		e.t.Fatal(err)
	}
	rr, err := array.NewRecordReader(budgetSpec.ArrowSchema(), accepted)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rr.Release()
	mustExec("USE memory.main")
	release, err := ar.RegisterView(rr, "sent")
	if err != nil {
		e.t.Fatal(err)
	}
	mustExec("CREATE OR REPLACE TABLE memory.main.expected AS SELECT * FROM memory.main.sent")
	release()
	defer mustExec("DROP TABLE memory.main.expected")

	// Raw rows as multisets: count and a sum of row hashes, one scan each.
	fingerprint := func(rel string) (n int64, sum string) {
		e.t.Helper()
		q := "SELECT count(*), coalesce(sum(hash(ts, k, v, note)::HUGEINT), 0)::VARCHAR FROM " + rel
		if err := conn.QueryRowContext(ctx, q).Scan(&n, &sum); err != nil {
			e.t.Fatalf("%s: %s: %v", step, q, err)
		}
		return n, sum
	}
	wn, ws := fingerprint("memory.main.expected")
	gn, gs := fingerprint("duet.raw.ev")
	if wn != rows || gn != wn || gs != ws {
		e.t.Fatalf("%s: raw.ev holds %d rows (hash sum %s), want the %d acknowledged (hash sum %s)", step, gn, gs, wn, ws)
	}
	want := "SELECT * FROM (" + strings.Replace(budgetViewSQL, "FROM ev", "FROM memory.main.expected AS ev", 1) + ")"
	got := "SELECT * FROM duet.views.v"
	var diff int
	q := fmt.Sprintf("SELECT count(*) FROM ((%[1]s EXCEPT ALL %[2]s) UNION ALL (%[2]s EXCEPT ALL %[1]s))", want, got)
	if err := conn.QueryRowContext(ctx, q).Scan(&diff); err != nil {
		e.t.Fatalf("%s: %v", step, err)
	}
	if diff != 0 {
		e.t.Fatalf("%s: %d rows differ between views.v and its SQL recomputed over the %d acknowledged events", step, diff, rows)
	}
	quoted := make([]string, len(refused))
	for i, r := range refused {
		quoted[i] = dataset.QuoteString(r)
	}
	var leaked int
	q = "SELECT count(*) FROM duet.raw.ev WHERE split_part(note, ':', 1) IN (" + strings.Join(quoted, ", ") + ")"
	if err := conn.QueryRowContext(ctx, q).Scan(&leaked); err != nil {
		e.t.Fatalf("%s: %v", step, err)
	}
	if leaked != 0 {
		e.t.Fatalf("%s: raw.ev holds %d events of refused requests", step, leaked)
	}
}
