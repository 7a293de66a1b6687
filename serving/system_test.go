package serving_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
)

// startSystem runs a node (catalog, locked engine, speed and batch layer)
// with the system tables registered, measuring lag against a fixed clock
// so the figures of a query and of the speed layer can be compared exactly.
func startSystem(t *testing.T) (*lambdatest.Node, time.Time) {
	t.Helper()
	n := lambdatest.Start(t, t.TempDir(), lambdatest.Options{SegmentRecords: 10, Speed: func(c *speedlayer.Config) {
		c.MaterializeAfter = 50 * time.Millisecond
	}})
	t.Cleanup(n.Stop)
	now := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	err := serving.RegisterSystem(context.Background(), n.DB, serving.SystemConfig{Catalog: n.Cat, Speed: n.Layer, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return n, now
}

func build(t *testing.T, n *lambdatest.Node, job string) catalog.ViewVersion {
	t.Helper()
	ctx := context.Background()
	if err := n.Layer.Flush(ctx, lambdatest.Spec.Name); err != nil {
		t.Fatal(err)
	}
	v, err := n.Builder.Build(ctx, batchlayer.Request{JobID: job, View: "v"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// queryRows runs q and returns its rows with NULL as nil, times in UTC.
func queryRows(t *testing.T, db lambdatest.Querier, q string, args ...any) [][]any {
	t.Helper()
	rows := lambdatest.QueryAll(context.Background(), t, db, q, args...)
	for _, row := range rows {
		for i, v := range row {
			if tm, ok := v.(time.Time); ok {
				row[i] = tm.UTC()
			}
		}
	}
	return rows
}

func assertRows(t *testing.T, what string, got, want [][]any) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// freshnessOf is the system.freshness row the speed layer's status implies.
func freshnessOf(t *testing.T, n *lambdatest.Node, now time.Time) [][]any {
	t.Helper()
	st, err := n.Layer.ViewStatus("v", now)
	if err != nil {
		t.Fatal(err)
	}
	row := []any{"v", "ev", nil, nil, nil, st.FromOffset, st.LogEnd, int64(len(st.Segments)), st.LagRecords, st.LagMillis, st.Materialized}
	if st.Version != nil {
		row[2], row[3], row[4] = st.Version.Version, st.Version.Covered, st.Version.CreatedAt.UTC()
	}
	return [][]any{row}
}

func segmentsOf(t *testing.T, n *lambdatest.Node, now time.Time) [][]any {
	t.Helper()
	st, err := n.Layer.ViewStatus("v", now)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for _, s := range st.Segments {
		out = append(out, []any{"v", "ev", s.First, s.End, s.End - s.First, s.Sealed, s.Archived})
	}
	return out
}

func TestSystemFreshnessIsTheSpeedLayersStatus(t *testing.T) {
	n, now := startSystem(t)
	rnd := rand.New(rand.NewPCG(4, 5))
	// The layer archives sealed segments in the background, which changes
	// their status; a comparison counts when the status held still across
	// the query.
	stable := func(step, q string, status func(*testing.T, *lambdatest.Node, time.Time) [][]any) [][]any {
		t.Helper()
		for range 100 {
			before := status(t, n, now)
			got := queryRows(t, n.DB, q)
			if after := status(t, n, now); reflect.DeepEqual(before, after) {
				assertRows(t, step+": "+q, got, before)
				return got
			}
		}
		t.Fatalf("%s: the speed layer's status never held still across a query", step)
		return nil
	}
	check := func(step string, wantLag int64) {
		t.Helper()
		got := stable(step, "SELECT * FROM duet.system.freshness", freshnessOf)
		if lag := got[0][8]; lag != wantLag {
			t.Fatalf("%s: lag_records %v, want %d", step, lag, wantLag)
		}
		stable(step, "SELECT * FROM duet.system.speed_segments ORDER BY first_offset", segmentsOf)
	}
	check("empty", 0)
	n.IngestRandom(rnd, 25)
	check("after 25 records", 25)
	if got := queryRows(t, n.DB, "SELECT batch_version, lag_ms > 0 FROM duet.system.freshness"); !reflect.DeepEqual(got, [][]any{{nil, true}}) {
		t.Fatalf("before the first build: batch_version, lag_ms > 0 = %v", got)
	}
	v1 := build(t, n, "job1")
	check("after build 1", 0)
	if got := queryRows(t, n.DB, "SELECT batch_version, batch_covered_offset, speed_from_offset, lag_ms FROM duet.system.freshness"); !reflect.DeepEqual(got, [][]any{{v1.Version, int64(25), int64(25), int64(0)}}) {
		t.Fatalf("after build 1: %v", got)
	}
	n.IngestRandom(rnd, 7)
	check("after 7 more", 7)
	if _, err := n.Builder.Rollback(context.Background(), "v", v1.Version); err != nil {
		t.Fatal(err)
	}
	build(t, n, "job2")
	n.IngestRandom(rnd, 3)
	check("after build 2 and 3 more", 3)
	// Idle, the view is materialized, and the table says so.
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := n.Layer.ViewStatus("v", now); !st.Materialized; st, _ = n.Layer.ViewStatus("v", now) {
		if time.Now().After(deadline) {
			t.Fatal("the idle view was not materialized within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := queryRows(t, n.DB, "SELECT materialized FROM duet.system.freshness"); !reflect.DeepEqual(got, [][]any{{true}}) {
		t.Fatalf("idle: materialized = %v, want true", got)
	}
}

func TestSystemCatalogTables(t *testing.T) {
	n, now := startSystem(t)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(6, 7))
	n.IngestRandom(rnd, 12)
	v1 := build(t, n, "job-1")
	n.IngestRandom(rnd, 5)
	v2 := build(t, n, "job-2")
	if _, err := n.Builder.Rollback(ctx, "v", v1.Version); err != nil {
		t.Fatal(err)
	}
	started := now.Add(-time.Minute).UTC()
	jobs := []catalog.Job{
		{ID: "j-a", Kind: "view-build", View: "v", State: "succeeded", Params: map[string]string{"full": "true"},
			CreatedAt: started.Add(-time.Second), StartedAt: started, FinishedAt: started.Add(1500 * time.Millisecond),
			Version: v2.Version, Attempt: 1, MaxAttempts: 3, LogPrefix: "logs/jobs/j-a/attempt-1/", Timeout: time.Hour, User: "alice", Cluster: "local"},
		{ID: "j-b", Kind: "compaction", State: "queued", CreatedAt: started, Error: "executor exited 1",
			NextAttemptAt: started.Add(time.Minute), Attempt: 1, MaxAttempts: 2},
	}
	for _, j := range jobs {
		if err := n.Cat.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}

	ds, err := n.Cat.GetDataset(ctx, "ev")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := n.Layer.DatasetStatus("ev")
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, "system.datasets", queryRows(t, n.DB, "SELECT * FROM duet.system.datasets"), [][]any{{
		"ev", "ts", "ts timestamp, k varchar, v bigint", ds.CreatedAt.UTC(), int64(17), dst.ArchivedEnd, int64(dst.ArchiveFiles)}})

	view, err := n.Cat.GetView(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	assertRows(t, "system.views", queryRows(t, n.DB, "SELECT * FROM duet.system.views"), [][]any{{
		"v", "ev", lambdatest.ViewSQL, nil, nullable(view.Catchup), int64(view.MaxRetries), nil, view.CreatedAt.UTC(), v1.Version}})

	versions, err := n.Cat.ListVersions(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	var want [][]any
	for i := len(versions) - 1; i >= 0; i-- {
		vv := versions[i]
		parts := map[string]bool{}
		for _, f := range vv.Files {
			parts[f.Partition] = true
		}
		var base, retired any
		if vv.Meta.Base > 0 {
			base = vv.Meta.Base
		}
		if !vv.RetiredAt.IsZero() {
			retired = vv.RetiredAt.UTC()
		}
		want = append(want, []any{"v", vv.Version, vv.Covered, vv.CreatedAt.UTC(), vv.Rows, vv.Bytes, int64(len(vv.Files)),
			int64(len(parts)), vv.Meta.Kind, base, vv.JobID, vv.BuildMillis, retired, vv.Version == v1.Version})
	}
	got := queryRows(t, n.DB, "SELECT * FROM duet.system.view_versions")
	assertRows(t, "system.view_versions", got, want)
	if len(got) != 2 || got[0][13] != true || got[1][13] != false || got[1][12] == nil || got[1][2] != int64(17) {
		t.Fatalf("after rolling back to v1, view_versions (is_current, retired_at, covered) = %v", got)
	}

	assertRows(t, "system.jobs", queryRows(t, n.DB, "SELECT * FROM duet.system.jobs"), [][]any{
		{"j-b", "compaction", nil, "queued", int64(1), int64(2), started, nil, nil, nil, started.Add(time.Minute), nil, nil, "executor exited 1", nil, nil, nil, nil, nil},
		{"j-a", "view-build", "v", "succeeded", int64(1), int64(3), started.Add(-time.Second), started, started.Add(1500 * time.Millisecond),
			int64(1500), nil, int64(3600000), v2.Version, nil, `{"full":"true"}`, "logs/jobs/j-a/attempt-1/", "alice", "local", nil},
	})
	var params map[string]string
	if err := json.Unmarshal([]byte(queryRows(t, n.DB, "SELECT params FROM duet.system.jobs WHERE job_id = 'j-a'")[0][0].(string)), &params); err != nil || params["full"] != "true" {
		t.Fatalf("params do not decode as JSON: %v, %v", params, err)
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestSystemTablesTypesAndListing checks what clients see of the tables:
// typed columns with comments, listed by information_schema, and DuckDB's
// own metadata views still working beside a schema named like its system
// catalog.
func TestSystemTablesTypesAndListing(t *testing.T) {
	n, _ := startSystem(t)
	got := queryRows(t, n.DB, `SELECT table_name, table_type FROM information_schema.tables
		WHERE table_catalog = 'duet' AND table_schema = 'system' ORDER BY table_name`)
	want := [][]any{{"datasets", "VIEW"}, {"freshness", "VIEW"}, {"jobs", "VIEW"}, {"queries", "VIEW"}, {"speed_segments", "VIEW"}, {"view_versions", "VIEW"}, {"views", "VIEW"}}
	assertRows(t, "information_schema.tables", got, want)

	types := map[string]string{}
	for _, r := range queryRows(t, n.DB, `SELECT table_name || '.' || column_name, data_type, coalesce(comment, '')
		FROM duckdb_columns() WHERE database_name = 'duet' AND schema_name = 'system'`) {
		types[r[0].(string)] = r[1].(string)
		if r[2] == "" {
			t.Errorf("column %s has no comment", r[0])
		}
		if name := r[0].(string); name != strings.ToLower(name) {
			t.Errorf("column %s is not snake_case", name)
		}
	}
	for col, typ := range map[string]string{
		"freshness.view": "VARCHAR", "freshness.batch_version": "BIGINT", "freshness.batch_published_at": "TIMESTAMP WITH TIME ZONE",
		"freshness.lag_ms": "BIGINT", "speed_segments.sealed": "BOOLEAN", "view_versions.is_current": "BOOLEAN",
		"jobs.started_at": "TIMESTAMP WITH TIME ZONE", "datasets.log_end_offset": "BIGINT",
	} {
		if types[col] != typ {
			t.Errorf("%s has type %q, want %s", col, types[col], typ)
		}
	}
	if len(types) < 60 {
		t.Errorf("only %d columns listed: %v", len(types), types)
	}

	// Every internal view of DuckDB still binds with the schema in place.
	for _, r := range queryRows(t, n.DB, "SELECT database_name, schema_name, view_name FROM duckdb_views() WHERE internal") {
		q := fmt.Sprintf(`SELECT count(*) FROM "%s"."%s"."%s"`, r[0], r[1], r[2])
		queryRows(t, n.DB, q)
	}
	// The functions behind the tables are hidden from SHOW FUNCTIONS by
	// their prefix.
	if got := queryRows(t, n.DB, "SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE ?", serving.SystemFunctionPrefix+"%"); got[0][0] != int64(7) {
		t.Fatalf("%s* functions: %v, want 7", serving.SystemFunctionPrefix, got)
	}
}

// TestSystemTablesLiveOnEveryConnection queries the tables from several
// pooled connections of the locked engine while records arrive and builds
// publish, and re-executes one prepared statement across changes.
func TestSystemTablesLiveOnEveryConnection(t *testing.T) {
	n, _ := startSystem(t)
	ctx := context.Background()
	if got := queryRows(t, n.DB, "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"); !reflect.DeepEqual(got, [][]any{{false, true}}) {
		t.Fatalf("engine not locked down: %v", got)
	}
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, "SELECT log_end_offset, lag_records FROM duet.system.freshness")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	prepared := func() (int64, int64) {
		var end, lag int64
		if err := stmt.QueryRowContext(ctx).Scan(&end, &lag); err != nil {
			t.Fatal(err)
		}
		return end, lag
	}
	if end, lag := prepared(); end != 0 || lag != 0 {
		t.Fatalf("prepared statement on an empty node: %d, %d", end, lag)
	}

	// Readers go on until the writer is done (at most maxReads each), so
	// their queries overlap ingest, archiving and handoffs.
	const readers, maxReads = 4, 2000
	var wg sync.WaitGroup
	writing := make(chan struct{})
	errs := make(chan error, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := n.DB.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var last int64
			for range maxReads {
				select {
				case <-writing:
					return
				default:
				}
				var end, from, lag, segs int64
				err := c.QueryRowContext(ctx, `SELECT f.log_end_offset, f.speed_from_offset, f.lag_records, f.speed_segments
					FROM duet.system.freshness f JOIN duet.system.views v USING (view)`).Scan(&end, &from, &lag, &segs)
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				if end < last || lag != end-from {
					errs <- fmt.Errorf("reader %d: log end %d after %d, lag %d with offsets %d..%d", r, end, last, lag, from, end)
					return
				}
				last = end
			}
		}()
	}
	rnd := rand.New(rand.NewPCG(8, 9))
	for i := range 6 {
		n.IngestRandom(rnd, 15)
		if i%2 == 1 {
			build(t, n, fmt.Sprint("job", i))
		}
	}
	close(writing)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n.IngestRandom(rnd, 4)
	if end, lag := prepared(); end != 94 || lag != 4 {
		t.Fatalf("prepared statement re-executed after the last ingest: log end %d, lag %d; want 94, 4", end, lag)
	}
}

// TestSystemTablesReportSourceErrors: a catalog that fails fails the query,
// naming the table.
func TestSystemTablesReportSourceErrors(t *testing.T) {
	n, _ := startSystem(t)
	if err := n.Cat.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := n.DB.QueryContext(context.Background(), "SELECT * FROM duet.system.views")
	if err == nil || !strings.Contains(err.Error(), "system.views: list views") {
		t.Fatalf("query over a closed catalog: %v, want an error naming system.views", err)
	}
}

func TestSystemConfigValidate(t *testing.T) {
	n, _ := startSystem(t)
	for _, tc := range []struct {
		cfg  serving.SystemConfig
		want string
	}{
		{serving.SystemConfig{Speed: n.Layer}, "catalog is required"},
		{serving.SystemConfig{Catalog: n.Cat}, "speed layer is required"},
	} {
		if err := serving.RegisterSystem(context.Background(), n.DB, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RegisterSystem(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

var _ serving.SystemSpeed = (*speedlayer.Layer)(nil)
var _ serving.SystemCatalog = (*catalog.Store)(nil)
