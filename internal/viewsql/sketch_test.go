package viewsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/dataset"
)

func eventsSpec(t testing.TB) *dataset.Spec {
	t.Helper()
	s := &dataset.Spec{Name: "ev", TimeColumn: "ts", Columns: []dataset.Column{
		{Name: "ts", Type: "timestamp"},
		{Name: "k", Type: "varchar"},
		{Name: "v", Type: "bigint"},
		{Name: "x", Type: "double"},
		{Name: "d", Type: "date"},
		{Name: "g", Type: "integer"},
	}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// loadDistinct fills table ev with n distinct values in every column but g,
// each value twice, plus NULL rows; rid numbers the rows in an order that
// scatters the two copies of a value.
func loadDistinct(t testing.TB, conn *sql.Conn, n int) {
	t.Helper()
	mustExec(t, conn, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE ev_rows AS
		SELECT (i * 7 + c * 3) %% 11 AS rid,
			TIMESTAMP '2024-03-01' + to_microseconds(i * 1000003) AS ts, 'user-' || i AS k, i * 7919 - 50000 AS v,
			i / 8.0 - 100 AS x, DATE '1900-01-01' + CAST(i AS INTEGER) AS d, CAST(i %% 3 AS INTEGER) AS g
		FROM range(%d) r(i), range(2) c(c)
		UNION ALL SELECT i %% 11, NULL, NULL, NULL, NULL, NULL, 1 FROM range(5) r(i)`, n))
	mustExec(t, conn, "CREATE OR REPLACE TEMP TABLE ev AS SELECT ts, k, v, x, d, g FROM ev_rows")
	for c := range 3 {
		mustExec(t, conn, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE ev_%d AS SELECT ts, k, v, x, d, g FROM ev_rows WHERE rid %% 3 = %d", c, c))
	}
}

// TestApproxDistinctAccuracyAndExactMerge checks, over several
// cardinalities, that merging partial sketches (inline, through combine and
// through Parquet) gives exactly the sketch of all rows at once and the same
// estimates, and that the estimates are within four standard errors of
// count(DISTINCT ...), exact for the smallest.
func TestApproxDistinctAccuracyAndExactMerge(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := eventsSpec(t)
	const view = `SELECT approx_distinct(k) AS ks, approx_count_distinct(v) AS vs, approx_distinct(x) AS xs,
		approx_distinct(ts) AS tss, approx_distinct(d) AS ds FROM ev`
	plan, err := Analyze(ctx, conn, view, spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []int{0, 1, 2, 10, 100, 1000, 10_000, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			loadDistinct(t, conn, n)
			stored := filepath.Join(dir, fmt.Sprintf("%d.parquet", n))
			mustExec(t, conn, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", plan.PartialSQL("ev_0"), dataset.QuoteString(stored)))
			mustExec(t, conn, "CREATE OR REPLACE TEMP TABLE p_1 AS "+plan.PartialSQL("ev_1"))
			mustExec(t, conn, "CREATE OR REPLACE TEMP TABLE p_2 AS "+plan.PartialSQL("ev_2"))
			mustExec(t, conn, "CREATE OR REPLACE TEMP TABLE p_all AS "+plan.PartialSQL("ev"))
			parts := "(SELECT * FROM read_parquet(" + dataset.QuoteString(stored) + ") UNION ALL SELECT * FROM p_1 UNION ALL SELECT * FROM p_2)"

			if d := diffRows(queryRows(t, conn, "SELECT * FROM p_all"), queryRows(t, conn, plan.CombineSQL(parts))); d != "" {
				t.Fatalf("combined sketches differ from the sketch of all rows: %s", d)
			}
			scratch := queryRows(t, conn, plan.FinalSQL("p_all"))
			if d := diffRows(scratch, queryRows(t, conn, plan.FinalSQL(parts))); d != "" {
				t.Fatalf("merged estimates differ from the estimates over all rows: %s", d)
			}
			if d := diffRows(scratch, queryRows(t, conn, plan.FinalSQL("("+plan.CombineSQL(parts)+")"))); d != "" {
				t.Fatalf("estimates over combined sketches differ from the estimates over all rows: %s", d)
			}

			exact := queryRows(t, conn, "SELECT count(DISTINCT k), count(DISTINCT v), count(DISTINCT x), count(DISTINCT ts), count(DISTINCT d) FROM ev")
			for i, col := range plan.Columns {
				var got, want float64
				fmt.Sscan(scratch[0][i].(string), &got)
				fmt.Sscan(exact[0][i].(string), &want)
				if want != float64(n) {
					t.Fatalf("test data: %s has %v distinct values, want %d", col.Name, want, n)
				}
				bound := 4 * SketchStandardError * want
				if n <= 10 {
					bound = 0
				}
				if math.Abs(got-want) > bound {
					t.Errorf("%s: estimate %v for %v distinct values, off by more than %v", col.Name, got, want, bound)
				}
			}
		})
	}
}

// TestApproxDistinctCountsLikeDistinct: values count(DISTINCT ...) treats as
// one (-0.0 and 0.0, NaNs) are one to approx_distinct, NULLs are not counted,
// and FILTER applies.
func TestApproxDistinctCountsLikeDistinct(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := eventsSpec(t)
	plan, err := Analyze(ctx, conn, `SELECT g, approx_distinct(x) AS xs, approx_distinct(k) FILTER (WHERE v > 0) AS ks FROM ev GROUP BY g`, spec)
	if err != nil {
		t.Fatal(err)
	}
	loadTable(t, conn, spec, "TEMP TABLE", "ev", []string{
		"(TIMESTAMP '2024-03-01', 'a', 1, CAST('-0.0' AS DOUBLE), NULL, 1)",
		"(TIMESTAMP '2024-03-01', 'b', 2, CAST('0.0' AS DOUBLE), NULL, 1)",
		"(TIMESTAMP '2024-03-01', 'c', -1, CAST('nan' AS DOUBLE), NULL, 1)",
		"(TIMESTAMP '2024-03-01', NULL, 3, CAST('-nan' AS DOUBLE), NULL, 1)",
		"(TIMESTAMP '2024-03-01', 'a', NULL, NULL, NULL, 1)",
		"(TIMESTAMP '2024-03-01', NULL, NULL, NULL, NULL, 2)",
	})
	want := queryRows(t, conn, "SELECT g, count(DISTINCT x) AS xs, count(DISTINCT k) FILTER (WHERE v > 0) AS ks FROM ev GROUP BY g")
	if d := diffRows(want, queryRows(t, conn, plan.FinalSQL("("+plan.PartialSQL("ev")+")"))); d != "" {
		t.Fatal(d)
	}
}

// TestApproxDistinctOverView: over a view, approx_distinct of its
// approx_distinct column merges the sketches, exactly the sketch the same
// rollup computes over the dataset; approx_distinct of its keys hashes them.
func TestApproxDistinctOverView(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := flightsSpec(t)
	const hourly = `SELECT origin, date_trunc('hour', date) AS hour, approx_distinct(dest) AS dests, approx_distinct(seats) AS seat_values, count(*) AS n FROM flights GROUP BY 1, 2`
	up, err := Analyze(ctx, conn, hourly, spec)
	if err != nil {
		t.Fatal(err)
	}
	for over, direct := range map[string]string{
		`SELECT date_trunc('day', hour) AS day, approx_distinct(dests) AS dests, approx_distinct(seat_values) FILTER (WHERE origin <> 'JFK') AS s, approx_distinct(origin) AS origins, sum(n) AS n FROM views.hourly GROUP BY 1`: `SELECT date_trunc('day', date) AS day, approx_distinct(dest) AS dests, approx_distinct(seats) FILTER (WHERE origin <> 'JFK') AS s, approx_distinct(origin) AS origins, count(*) AS n FROM flights GROUP BY 1`,
		`SELECT approx_count_distinct(seat_values) AS s FROM views.hourly`: `SELECT approx_distinct(seats) AS s FROM flights`,
	} {
		p, err := AnalyzeOver(ctx, conn, over, "hourly", up)
		if err != nil {
			t.Fatalf("%s: %v", over, err)
		}
		d, err := Analyze(ctx, conn, direct, spec)
		if err != nil {
			t.Fatalf("%s: %v", direct, err)
		}
		loadTable(t, conn, spec, "TEMP TABLE", "flights", genRows(rand.New(rand.NewSource(7)), 3000))
		loadTable(t, conn, spec, "TEMP TABLE", "half1", nil)
		mustExec(t, conn, "INSERT INTO half1 SELECT * FROM flights USING SAMPLE 50 PERCENT (bernoulli, 3)")
		loadTable(t, conn, spec, "TEMP TABLE", "half2", nil)
		mustExec(t, conn, "INSERT INTO half2 SELECT * FROM flights EXCEPT ALL SELECT * FROM half1")
		want := queryRows(t, conn, d.FinalSQL("("+d.PartialSQL("flights")+")"))
		got := queryRows(t, conn, p.FinalSQL("("+p.PartialSQL("half1")+" UNION ALL "+p.PartialSQL("half2")+")"))
		if diff := diffRows(want, got); diff != "" {
			t.Fatalf("%s: %s", over, diff)
		}
	}
	for sql, mention := range map[string]string{
		`SELECT origin, approx_distinct(n) AS x FROM views.hourly GROUP BY origin`:                          "merges the sketches of one of its approx_distinct columns (dests, seat_values)",
		`SELECT origin, approx_distinct(dests) FILTER (WHERE n > 1) AS x FROM views.hourly GROUP BY origin`: `"n", which is not a key`,
		`SELECT origin, max(dests) AS x FROM views.hourly GROUP BY origin`:                                  "approx_distinct(<approx_distinct column>)",
		`SELECT origin, dests FROM views.hourly GROUP BY origin, dests`:                                     `"dests", which is not a key`,
	} {
		_, err := AnalyzeOver(ctx, conn, sql, "hourly", up)
		var verr *Error
		if !errors.As(err, &verr) || !strings.Contains(verr.Msg, mention) {
			t.Errorf("%s: got %v, want an error mentioning %q", sql, err, mention)
		}
	}
}

// BenchmarkApproxDistinctMicroBatch measures the partial form the speed
// layer runs per ingest request over a 10,000-row micro-batch, with and
// without an approx_distinct column.
func BenchmarkApproxDistinctMicroBatch(b *testing.B) {
	ctx := context.Background()
	conn := openConn(b)
	spec := flightsSpec(b)
	loadTable(b, conn, spec, "TEMP TABLE", "mb", genRows(rand.New(rand.NewSource(1)), 10_000))
	for name, view := range map[string]string{
		"count":           `SELECT origin, date_trunc('hour', date) AS hour, count(*) AS n FROM flights GROUP BY 1, 2`,
		"approx_distinct": `SELECT origin, date_trunc('hour', date) AS hour, count(*) AS n, approx_distinct(seats) AS seat_values FROM flights GROUP BY 1, 2`,
	} {
		b.Run(name, func(b *testing.B) {
			plan, err := Analyze(ctx, conn, view, spec)
			if err != nil {
				b.Fatal(err)
			}
			q := "SELECT count(*) FROM (" + plan.PartialSQL("mb") + ")"
			for b.Loop() {
				var n int
				if err := conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/batch")
		})
	}
}

// BenchmarkSketchHash compares md5 (stable, used) with DuckDB's hash()
// (faster, not promised stable across versions) over a million strings.
func BenchmarkSketchHash(b *testing.B) {
	ctx := context.Background()
	conn := openConn(b)
	mustExec(b, conn, "CREATE TEMP TABLE s AS SELECT 'user-' || i AS k FROM range(1000000) r(i)")
	for name, q := range map[string]string{
		"md5":  "SELECT sum(md5_number(k) >> 116) FROM s",
		"hash": "SELECT sum(hash(k) >> 52) FROM s",
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var x any
				if err := conn.QueryRowContext(ctx, q).Scan(&x); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/1M")
		})
	}
}
