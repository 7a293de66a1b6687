package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	_ "github.com/trinodb/trino-go-client/trino"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
)

const viewSQL = `SELECT date_trunc('hour', date) AS hour, origin, count(*) AS flights, sum(delay) AS total_delay, min(delay) AS min_delay, max(delay) AS max_delay, avg(delay) AS avg_delay FROM flights GROUP BY 1, 2`

var flightsSpec = api.Dataset{Name: "flights", TimeColumn: "date", Columns: []dataset.Column{
	{Name: "date", Type: dataset.Timestamp}, {Name: "delay", Type: dataset.Bigint}, {Name: "origin", Type: dataset.Varchar},
}}

// createFlightsAndDelays creates dataset flights and view delays over it.
func createFlightsAndDelays(t *testing.T, p *proc) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := p.client.CreateDataset(ctx, flightsSpec); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.CreateView(ctx, api.ViewRequest{Name: "delays", SQL: viewSQL}); err != nil {
		t.Fatal(err)
	}
}

// flight is one event as the test produced it; the test keeps every accepted
// one to recompute the view from scratch.
type flight struct {
	Date   time.Time
	Delay  *int64
	Origin string
}

type producer struct {
	rnd   *rand.Rand
	clock time.Time
	all   []flight
}

func newProducer(seed uint64) *producer {
	return &producer{rnd: rand.New(rand.NewPCG(seed, 7)), clock: time.Date(2026, 11, 1, 22, 0, 0, 0, time.UTC)}
}

// next makes n events: the clock moves forward (across midnight, so archives
// span day partitions), a fifth are late by up to a day, and the batch is
// shuffled; some delays are null.
func (p *producer) next(n int) []flight {
	origins := []string{"AMS", "BER", "CDG", "JFK", "LHR"}
	out := make([]flight, n)
	for i := range out {
		p.clock = p.clock.Add(time.Duration(p.rnd.IntN(30)) * time.Second)
		t := p.clock.Add(time.Duration(p.rnd.IntN(1000)) * time.Microsecond)
		if p.rnd.IntN(5) == 0 {
			t = t.Add(-time.Duration(p.rnd.IntN(24*60)) * time.Minute)
		}
		var d *int64
		if p.rnd.IntN(20) != 0 {
			v := int64(p.rnd.IntN(300)) - 60
			d = &v
		}
		out[i] = flight{Date: t, Delay: d, Origin: origins[p.rnd.IntN(len(origins))]}
	}
	p.rnd.Shuffle(n, func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func ndjson(fs []flight) []byte {
	var b bytes.Buffer
	for i, f := range fs {
		m := map[string]any{"origin": f.Origin, "delay": f.Delay}
		// Exercise every accepted timestamp form.
		switch i % 3 {
		case 0:
			m["date"] = f.Date.Format(time.RFC3339Nano)
		case 1:
			m["date"] = f.Date.Format("2006-01-02 15:04:05.999999")
		default:
			if f.Date.Nanosecond()%int(time.Millisecond) == 0 {
				m["date"] = f.Date.UnixMilli()
			} else {
				m["date"] = f.Date.Format("2006-01-02T15:04:05.999999Z07:00")
			}
		}
		line, _ := json.Marshal(m)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (p *producer) ingest(t *testing.T, c *client.Client, requests, rows int) {
	t.Helper()
	ctx := ctxT(t)
	for range requests {
		fs := p.next(rows)
		res, err := c.Ingest(ctx, "flights", client.ContentTypeNDJSON, ndjson(fs))
		if err != nil {
			t.Fatalf("ingest: %v", err)
		}
		if res.Accepted != int64(rows) || res.FirstOffset != int64(len(p.all)) || res.LastOffset != int64(len(p.all)+rows-1) {
			t.Fatalf("ingest result %+v, want %d rows from offset %d", res, rows, len(p.all))
		}
		p.all = append(p.all, fs...)
	}
}

// recompute evaluates the view SQL from scratch, in a DuckDB of the test's
// own, over every event the test has had acknowledged.
func recompute(t *testing.T, all []flight, query string) [][]any {
	t.Helper()
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx := ctxT(t)
	if _, err := db.ExecContext(ctx, "CREATE TABLE flights(date TIMESTAMP, delay BIGINT, origin VARCHAR)"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(*duckdb.Conn), "", "flights")
		if err != nil {
			return err
		}
		for _, f := range all {
			var d any
			if f.Delay != nil {
				d = *f.Delay
			}
			if err := app.AppendRow(f.Date.UTC(), d, f.Origin); err != nil {
				return err
			}
		}
		return app.Close()
	})
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	return queryRows(t, db, query)
}

func queryRows(t *testing.T, db *sql.DB, query string) [][]any {
	t.Helper()
	rows := lambdatest.QueryAll(ctxT(t), t, db, query)
	for _, row := range rows {
		for i, v := range row {
			row[i] = canonical(v)
		}
	}
	return rows
}

// canonical maps both drivers' values onto one representation: integers as
// int64, timestamps as UTC wall-clock text (trino-go-client parses zone-less
// timestamps in time.Local), floats as float64.
func canonical(v any) any {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case *big.Int:
		return x.Int64()
	case time.Time:
		return x.Format("2006-01-02 15:04:05.000000")
	case float32:
		return float64(x)
	}
	return v
}

// sameRows compares exactly, except floats, which agree to 1e-9 relative
// (avg is sum/count merged from partials, not one division over all rows).
func sameRows(want, got [][]any) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if len(want[i]) != len(got[i]) {
			return fmt.Errorf("row %d: %d columns, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			w, g := want[i][j], got[i][j]
			wf, wok := w.(float64)
			gf, gok := g.(float64)
			if wok && gok {
				if math.Abs(wf-gf) > 1e-9*math.Max(1, math.Abs(wf)) {
					return fmt.Errorf("row %d col %d: %v, want %v", i, j, g, w)
				}
				continue
			}
			if fmt.Sprint(w) != fmt.Sprint(g) {
				return fmt.Errorf("row %d col %d: %v (%T), want %v (%T)\n got row %v\nwant row %v", i, j, g, g, w, w, got[i], want[i])
			}
		}
	}
	return nil
}

func trinoDB(t *testing.T, p *proc) *sql.DB {
	t.Helper()
	db, err := sql.Open("trino", p.client.TrinoDSN("e2e"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// assertExact checks the invariant through the Trino protocol: the merged
// view equals recomputation, and raw.flights holds every accepted event.
func assertExact(t *testing.T, p *proc, prod *producer, step string) {
	t.Helper()
	db := trinoDB(t, p)
	want := recompute(t, prod.all, "SELECT * FROM ("+viewSQL+") ORDER BY hour, origin")
	got := queryRows(t, db, "SELECT * FROM views.delays ORDER BY hour, origin")
	if err := sameRows(want, got); err != nil {
		t.Fatalf("%s: views.delays differs from recomputation over %d events: %v", step, len(prod.all), err)
	}
	const rawQ = "SELECT date, delay, origin FROM %s ORDER BY date, origin, delay NULLS FIRST"
	if err := sameRows(recompute(t, prod.all, fmt.Sprintf(rawQ, "flights")), queryRows(t, db, fmt.Sprintf(rawQ, "raw.flights"))); err != nil {
		t.Fatalf("%s: raw.flights differs from the %d accepted events: %v", step, len(prod.all), err)
	}
}

func build(t *testing.T, p *proc) api.Job {
	t.Helper()
	return buildView(t, p, "delays")
}

func buildView(t *testing.T, p *proc, view string) api.Job {
	t.Helper()
	ctx := ctxT(t)
	j, err := p.client.TriggerBuild(ctx, view)
	if err != nil {
		t.Fatal(err)
	}
	j, err = p.client.WaitJob(ctx, j.ID, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobSucceeded {
		t.Fatalf("build %s: %s: %s", j.ID, j.State, j.Error)
	}
	return j
}

func TestMergedViewEqualsRecomputationThroughBuildsAndRestart(t *testing.T) {
	mergedViewThroughBuildsAndRestart(t, serveOpts{dataDir: t.TempDir()})
}

// mergedViewThroughBuildsAndRestart is the walking skeleton's test: events,
// builds, a restart, and the invariant checked after every step.
func mergedViewThroughBuildsAndRestart(t *testing.T, o serveOpts) {
	p := startDuet(t, o)
	ctx := ctxT(t)
	spec := flightsSpec
	if o.source != nil {
		spec.Source = &o.source.spec
	}
	if _, err := p.client.CreateDataset(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.CreateView(ctx, api.ViewRequest{Name: "delays", SQL: viewSQL, Schedule: "@every 1h"}); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(1)
	assertExact(t, p, prod, "empty")

	var lastVersion int64
	for step := 1; step <= 6; step++ {
		prod.feed(t, p, o, 3, 150)
		assertExact(t, p, prod, fmt.Sprintf("step %d after ingest", step))
		if step%2 == 0 {
			j := build(t, p)
			if j.Version == nil || j.Version.Version <= lastVersion || j.Version.CoveredOffset != int64(len(prod.all)) {
				t.Fatalf("step %d: build published %+v; want a new version covering all %d offsets", step, j.Version, len(prod.all))
			}
			lastVersion = j.Version.Version
			assertExact(t, p, prod, fmt.Sprintf("step %d after build", step))
		}
	}
	// Some events only in the speed layer, some segments archived but not built.
	prod.feed(t, p, o, 2, 300)
	time.Sleep(time.Second) // let segments seal by age and archive
	assertExact(t, p, prod, "before restart")

	v, err := p.client.GetView(ctx, "delays")
	if err != nil {
		t.Fatal(err)
	}
	if v.Batch == nil || v.Batch.Version != lastVersion || v.Speed.LogEndOffset != int64(len(prod.all)) ||
		v.Speed.FromOffset != v.Batch.CoveredOffset || v.Speed.LagRecords != int64(len(prod.all))-v.Batch.CoveredOffset {
		t.Fatalf("freshness %+v batch %+v inconsistent with %d accepted events", v.Speed, v.Batch, len(prod.all))
	}
	d, err := p.client.GetDataset(ctx, "flights")
	if err != nil {
		t.Fatal(err)
	}
	if d.Log.EndOffset != int64(len(prod.all)) || d.Log.ArchivedOffset == 0 || d.Log.ArchiveFiles == 0 {
		t.Fatalf("dataset log status %+v after %d events with small segments", d.Log, len(prod.all))
	}

	p.stop(t)
	p = startDuet(t, o)
	assertExact(t, p, prod, "after restart")
	prod.feed(t, p, o, 2, 100)
	assertExact(t, p, prod, "ingest after restart")
	j := build(t, p)
	if j.Version.Version != lastVersion+1 {
		t.Fatalf("build after restart published version %d, want %d", j.Version.Version, lastVersion+1)
	}
	assertExact(t, p, prod, "build after restart")
	p.stop(t)
}

func TestRestartRecoversUnarchivedEvents(t *testing.T) {
	// Large segments and a long age: everything stays in the log, unarchived,
	// so a restart must rebuild the speed layer from the log alone.
	dataDir := t.TempDir()
	p := startServer(t, dataDir, "--segment-max-records", "1000000", "--segment-max-age", "1h")
	ctx := ctxT(t)
	createFlightsAndDelays(t, p)
	prod := newProducer(2)
	prod.ingest(t, p.client, 5, 97)
	p.stop(t)
	p = startServer(t, dataDir, "--segment-max-records", "1000000", "--segment-max-age", "1h")
	assertExact(t, p, prod, "after restart")
	d, err := p.client.GetDataset(ctx, "flights")
	if err != nil {
		t.Fatal(err)
	}
	if d.Log.ArchivedOffset != 0 || d.Log.EndOffset != int64(len(prod.all)) {
		t.Fatalf("log status %+v: want nothing archived and all %d events in the log", d.Log, len(prod.all))
	}
	p.stop(t)
}

func TestSQLGatewaySeesNewEventsImmediately(t *testing.T) {
	p := startServer(t, t.TempDir())
	ctx := ctxT(t)
	createFlightsAndDelays(t, p)
	db := trinoDB(t, p)
	for i := range 5 {
		body := fmt.Sprintf(`{"date":"2026-11-0%dT10:00:00Z","delay":%d,"origin":"AMS"}`, i+1, i)
		if _, err := p.client.Ingest(ctx, "flights", client.ContentTypeNDJSON, []byte(body)); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT sum(flights) FROM views.delays").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != int64(i+1) {
			t.Fatalf("after %d acknowledged events the view counts %d", i+1, n)
		}
	}
	p.stop(t)
}
