package batchlayer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/internal/viewsql"
)

const approxView = `SELECT date_trunc('hour', ts) AS hour, approx_distinct(k) AS ks, approx_count_distinct(v) AS vs,
	approx_distinct(v) FILTER (WHERE v % 2 = 0) AS even_vs, count(*) AS n FROM ev GROUP BY 1`

// distinctRows makes n events over two days with k and v drawn from about
// 10n values, so an hour holds some hundreds of distinct ones.
func distinctRows(rnd *rand.Rand, n int) []lambdatest.Row {
	base := time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC)
	out := make([]lambdatest.Row, n)
	for i := range out {
		var v *int64
		if rnd.IntN(10) != 0 {
			x := rnd.Int64N(int64(10 * n))
			v = &x
		}
		out[i] = lambdatest.Row{TS: base.Add(time.Duration(rnd.IntN(48*60)) * time.Minute), K: fmt.Sprint("user-", rnd.IntN(10*n)), V: v}
	}
	return out
}

// TestApproxDistinctMergesExactlyAcrossLayers runs an approx_distinct view
// through speed-layer ingest, batch builds (full, then incremental, which
// combines new partials with the base version's Parquet sketches), more
// ingest and a restart; after each step the merged view must equal, value
// for value, the sketches computed from scratch over every accepted row,
// and be within four standard errors of count(DISTINCT ...).
func TestApproxDistinctMergesExactlyAcrossLayers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n := lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 300})
	defer func() { n.Stop() }()
	if err := n.Cat.CreateView(ctx, catalog.View{Name: "d", Dataset: lambdatest.Spec.Name, SQL: approxView}); err != nil {
		t.Fatal(err)
	}
	plan, err := viewsql.Analyze(ctx, n.DB, approxView, &lambdatest.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Layer.AddView(ctx, "d", plan, nil); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(4, 4))
	var accepted []lambdatest.Row
	ingest := func(count int) {
		t.Helper()
		for range count {
			rows := distinctRows(rnd, 400)
			rec := lambdatest.Record(rows)
			_, err := n.Layer.Ingest(ctx, lambdatest.Spec.Name, rec)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
			accepted = append(accepted, rows...)
		}
	}
	build := func(full bool) catalog.ViewVersion {
		t.Helper()
		v, err := n.Builder.Build(ctx, batchlayer.Request{JobID: fmt.Sprint("d", len(accepted), full), View: "d", Full: full})
		if err != nil && !errors.Is(err, batchlayer.ErrUpToDate) {
			t.Fatal(err)
		}
		return v
	}

	ingest(3)
	checkApprox(t, n, plan, accepted, "speed only")
	if v := build(true); v.Covered != int64(len(accepted)) {
		t.Fatalf("full build covered %d of %d", v.Covered, len(accepted))
	}
	checkApprox(t, n, plan, accepted, "after a full build")
	ingest(4)
	checkApprox(t, n, plan, accepted, "batch and speed")
	if v := build(false); v.Meta.Kind != batchlayer.KindIncremental {
		t.Fatalf("second build is %s, want incremental over the first", v.Meta.Kind)
	}
	checkApprox(t, n, plan, accepted, "after an incremental build")
	ingest(2)
	n.Stop()
	n = lambdatest.Start(t, dir, lambdatest.Options{SegmentRecords: 300})
	cur, err := n.Cat.CurrentVersion(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Layer.AddView(ctx, "d", plan, &cur); err != nil {
		t.Fatal(err)
	}
	checkApprox(t, n, plan, accepted, "after a restart")
	n.Check(accepted, "view v alongside")
}

func checkApprox(t *testing.T, n *lambdatest.Node, plan *viewsql.Plan, accepted []lambdatest.Row, step string) {
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
	exec("CREATE OR REPLACE TABLE memory.main.accepted(ts TIMESTAMP, k VARCHAR, v BIGINT)")
	defer exec("DROP TABLE memory.main.accepted")
	vals := make([]string, len(accepted))
	for i, r := range accepted {
		v := "NULL"
		if r.V != nil {
			v = fmt.Sprint(*r.V)
		}
		vals[i] = fmt.Sprintf("(TIMESTAMP '%s', '%s', %s)", r.TS.Format("2006-01-02 15:04:05.999999"), r.K, v)
	}
	exec("INSERT INTO memory.main.accepted VALUES " + strings.Join(vals, ", "))

	scratch := plan.FinalSQL("(" + plan.PartialSQL("memory.main.accepted") + ")")
	var diff int
	q := fmt.Sprintf("SELECT count(*) FROM ((%[1]s EXCEPT ALL %[2]s) UNION ALL (%[2]s EXCEPT ALL %[1]s))", scratch, "SELECT * FROM duet.views.d")
	if err := conn.QueryRowContext(ctx, q).Scan(&diff); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if diff != 0 {
		t.Fatalf("%s: %d rows of views.d differ from the sketches over all %d accepted rows", step, diff, len(accepted))
	}

	// And the estimates are estimates of the distinct counts.
	rows, err := conn.QueryContext(ctx, `SELECT d.ks, d.vs, d.even_vs, e.ks, e.vs, e.even_vs FROM duet.views.d AS d JOIN
		(SELECT date_trunc('hour', ts) AS hour, count(DISTINCT k) AS ks, count(DISTINCT v) AS vs, count(DISTINCT v) FILTER (WHERE v % 2 = 0) AS even_vs
		 FROM memory.main.accepted GROUP BY 1) AS e USING (hour)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	groups := 0
	for rows.Next() {
		var got, want [3]int64
		if err := rows.Scan(&got[0], &got[1], &got[2], &want[0], &want[1], &want[2]); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if bound := 4 * viewsql.SketchStandardError * float64(want[i]); math.Abs(float64(got[i]-want[i])) > max(bound, 1) {
				t.Errorf("%s: estimate %d for %d distinct values", step, got[i], want[i])
			}
		}
		groups++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if groups != 48 {
		t.Fatalf("%s: %d hours in views.d, want 48", step, groups)
	}
}
