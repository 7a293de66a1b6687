package e2e

import (
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/lambdatest"
)

// TestSystemTablesThroughTrino: through a real Trino client, system.freshness
// reports what GET /v1/views/{name} reports, and the system schema is
// listed, typed and queryable as Trino clients expect (system.<table>,
// duet.system.<table>, or unqualified in session schema system).
func TestSystemTablesThroughTrino(t *testing.T) {
	p := startServer(t, t.TempDir())
	ctx := ctxT(t)
	createFlightsAndDelays(t, p)
	db := trinoDB(t, p)
	prod := newProducer(21)

	assertSystemFreshness(t, p, db, "empty")
	prod.ingest(t, p.client, 3, 300)
	assertSystemFreshness(t, p, db, "speed only")
	job := build(t, p)
	assertSystemFreshness(t, p, db, "after a build")
	prod.ingest(t, p.client, 1, 50)
	assertSystemFreshness(t, p, db, "batch and speed")

	// Versions and jobs, as the API lists them.
	versions, err := p.client.ListVersions(ctx, "delays")
	if err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, db, "SELECT version, covered_offset, rows, files, job_id, is_current FROM system.view_versions WHERE view = 'delays'")
	want := [][]any{}
	for _, v := range versions {
		want = append(want, []any{v.Version, v.CoveredOffset, v.Rows, int64(v.Files), v.JobID, v.Current})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("system.view_versions = %v, want %v", got, want)
	}
	if got := scanAll(t, db, "SELECT job_id, kind, view, state, attempt, version FROM duet.system.jobs"); !reflect.DeepEqual(got,
		[][]any{{job.ID, job.Kind, "delays", "succeeded", int64(1), int64(1)}}) {
		t.Fatalf("duet.system.jobs = %v, want the build %s", got, job.ID)
	}
	if got := scanAll(t, db, "SELECT dataset, time_column, log_end_offset FROM system.datasets"); !reflect.DeepEqual(got, [][]any{{"flights", "date", int64(950)}}) {
		t.Fatalf("system.datasets = %v", got)
	}

	// Listed and typed as Trino clients see them.
	tables := "datasets freshness jobs queries speed_segments view_versions views"
	if got := fmt.Sprint(scanAll(t, db, "SHOW TABLES FROM system")); got != fmt.Sprint(rowsOf(strings.Fields(tables))) {
		t.Fatalf("SHOW TABLES FROM system = %s, want %s", got, tables)
	}
	if got := fmt.Sprint(scanAll(t, db, "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'duet' AND table_schema = 'system' ORDER BY 1")); got != fmt.Sprint(rowsOf(strings.Fields(tables))) {
		t.Fatalf("information_schema.tables in system = %s, want %s", got, tables)
	}
	if !strings.Contains(fmt.Sprint(scanAll(t, db, "SHOW SCHEMAS")), "[system]") {
		t.Fatal("SHOW SCHEMAS does not list system")
	}
	types := map[string]string{}
	for _, r := range scanAll(t, db, "DESCRIBE system.freshness") {
		types[r[0].(string)] = r[1].(string)
	}
	for col, typ := range map[string]string{"view": "varchar", "batch_version": "bigint", "batch_published_at": "timestamp(6) with time zone", "lag_ms": "bigint"} {
		if types[col] != typ {
			t.Errorf("DESCRIBE system.freshness: %s is %q, want %s", col, types[col], typ)
		}
	}

	// Table references to system are qualified; column references through
	// an alias named system are not.
	for q, want := range map[string]string{
		"SELECT system.view FROM system.views AS system": "[[delays]]",
		`SELECT count(*) FROM "SYSTEM".Freshness`:        "[[1]]",
		"WITH f AS (SELECT * FROM system.freshness) SELECT v.view FROM system.views v JOIN f USING (view) WHERE v.view IN (SELECT view FROM system.view_versions)": "[[delays]]",
		"SELECT 'é€' AS e, view FROM system.views":                                        "[[é€ delays]]",
		"/* system */ SELECT 'system.views' AS s FROM duet.system.views, system.datasets": "[[system.views]]",
	} {
		if got := fmt.Sprint(scanAll(t, db, q)); got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
	var lag int64
	if err := db.QueryRowContext(ctx, "SELECT lag_records FROM system.freshness WHERE view = ?", "delays").Scan(&lag); err != nil || lag != 50 {
		t.Fatalf("prepared query over system.freshness: %d, %v; want 50", lag, err)
	}
	// SHOW CREATE VIEW gives the view's SQL as created, not the engine's
	// merge of batch files and speed tables.
	if got := scanAll(t, db, "SHOW CREATE VIEW views.delays"); fmt.Sprint(got) != fmt.Sprint([][]any{{"CREATE VIEW duet.views.delays AS\n" + viewSQL}}) {
		t.Fatalf("SHOW CREATE VIEW views.delays = %v", got)
	}

	// The gateway's query history, this test's own queries included.
	if _, err := db.ExecContext(ctx, "SELECT nosuch FROM system.views"); err == nil {
		t.Fatal("a query of a missing column succeeded")
	}
	got = scanAll(t, db, `SELECT "user", source, state, rows, error_name, started_at IS NOT NULL, ended_at >= created_at, elapsed_ms >= queued_ms
		FROM system.queries WHERE sql IN ('SELECT dataset, time_column, log_end_offset FROM system.datasets', 'SELECT nosuch FROM system.views') ORDER BY created_at`)
	if fmt.Sprint(got) != "[[e2e trino-go-client FINISHED 1 <nil> true true true] [e2e trino-go-client FAILED 0 COLUMN_NOT_FOUND true true true]]" {
		t.Fatalf("system.queries = %v", got)
	}
	if got := scanAll(t, db, "SELECT state, ended_at IS NULL FROM system.queries WHERE sql LIKE '%this very query%'"); fmt.Sprint(got) != "[[RUNNING true]]" {
		t.Fatalf("system.queries lists the running query as %v", got)
	}

	// The session schema system resolves unqualified names.
	sysDB, err := sql.Open("trino", strings.Replace(p.client.TrinoDSN("e2e"), "schema=views", "schema=system", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer sysDB.Close()
	if got := fmt.Sprint(scanAll(t, sysDB, "SELECT view, lag_records FROM freshness")); got != "[[delays 50]]" {
		t.Fatalf("freshness in session schema system = %s", got)
	}
}

func rowsOf(vals []string) [][]any {
	out := make([][]any, len(vals))
	for i, v := range vals {
		out[i] = []any{v}
	}
	return out
}

// scanAll runs q and returns its rows as the Trino client gives them.
func scanAll(t *testing.T, db *sql.DB, q string) [][]any {
	return lambdatest.QueryAll(ctxT(t), t, db, q)
}

// assertSystemFreshness compares system.freshness and system.speed_segments
// with GET /v1/views/delays read just before and just after. It first waits
// for every speed segment to be sealed and archived (the server seals them
// after 300ms), so the figures hold still between the reads, except the lag
// in milliseconds, which grows with the clock and must lie between the two.
func assertSystemFreshness(t *testing.T, p *proc, db *sql.DB, step string) {
	t.Helper()
	ctx := ctxT(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := p.client.GetView(ctx, "delays")
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.client.GetDataset(ctx, "flights")
		if err != nil {
			t.Fatal(err)
		}
		sealed := d.Log.ArchivedOffset == d.Log.EndOffset
		for _, s := range v.Speed.Segments {
			sealed = sealed && s.Sealed
		}
		if sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: speed segments not sealed and archived after 30s: %+v, %+v", step, v.Speed.Segments, d.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The server materializes an idle view in the background, which
	// changes its status: a comparison counts when the status held still
	// across the query.
	var (
		before, after                api.View
		view, ds                     string
		version, covered             sql.NullInt64
		published                    sql.NullTime
		from, end, segs, lagN, lagMs int64
		materialized                 bool
		segRows                      [][]any
		lagBefore, lagAfter          int64
	)
	for attempt := 1; ; attempt++ {
		var err error
		if before, err = p.client.GetView(ctx, "delays"); err != nil {
			t.Fatal(err)
		}
		err = db.QueryRowContext(ctx, `SELECT view, dataset, batch_version, batch_covered_offset, batch_published_at,
			speed_from_offset, log_end_offset, speed_segments, lag_records, lag_ms, materialized FROM system.freshness WHERE view = 'delays'`).
			Scan(&view, &ds, &version, &covered, &published, &from, &end, &segs, &lagN, &lagMs, &materialized)
		if err != nil {
			t.Fatalf("%s: system.freshness: %v", step, err)
		}
		segRows = scanAll(t, db, "SELECT first_offset, end_offset, sealed FROM system.speed_segments WHERE view = 'delays' ORDER BY first_offset")
		if after, err = p.client.GetView(ctx, "delays"); err != nil {
			t.Fatal(err)
		}
		lagBefore, lagAfter = before.Speed.LagMillis, after.Speed.LagMillis
		before.Speed.LagMillis, after.Speed.LagMillis = 0, 0
		if reflect.DeepEqual(before, after) {
			break
		}
		if attempt == 20 {
			t.Fatalf("%s: the view changed between two reads, %d times: %+v then %+v", step, attempt, before, after)
		}
	}
	sp := before.Speed
	got := fmt.Sprint(view, ds, from, end, segs, lagN, materialized)
	want := fmt.Sprint(before.Name, before.Dataset, sp.FromOffset, sp.LogEndOffset, len(sp.Segments), sp.LagRecords, sp.Materialized)
	if got != want {
		t.Fatalf("%s: system.freshness (view dataset from end segments lag_records materialized) = %s, GET /v1/views/delays = %s", step, got, want)
	}
	if lagMs < lagBefore || lagMs > lagAfter {
		t.Fatalf("%s: lag_ms %d not between the API's %d and %d", step, lagMs, lagBefore, lagAfter)
	}
	if b := before.Batch; b == nil {
		if version.Valid || covered.Valid || published.Valid {
			t.Fatalf("%s: batch columns %v %v %v before the first build, want NULL", step, version, covered, published)
		}
	} else if version.Int64 != b.Version || covered.Int64 != b.CoveredOffset || !published.Time.Equal(b.PublishedAt) {
		t.Fatalf("%s: batch %v %v %v, want %d %d %s", step, version, covered, published, b.Version, b.CoveredOffset, b.PublishedAt)
	}
	wantSegs := [][]any{}
	for _, s := range sp.Segments {
		wantSegs = append(wantSegs, []any{s.First, s.End, s.Sealed})
	}
	if len(segRows) == 0 {
		segRows = [][]any{}
	}
	if !reflect.DeepEqual(segRows, wantSegs) {
		t.Fatalf("%s: system.speed_segments = %v, GET /v1/views/delays segments = %v", step, segRows, wantSegs)
	}
}
