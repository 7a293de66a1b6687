package viewsql

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/dataset"
)

// views are the view SQLs the invariant and type tests run over flightsSpec.
var views = []struct{ name, sql string }{
	{"flights example", `SELECT date_trunc('hour', date) AS hour, origin, count(*) AS flights, sum(delay) AS total_delay,
		min(delay) AS min_delay, max(delay) AS max_delay, avg(delay) AS avg_delay FROM flights GROUP BY 1, 2`},
	{"where and qualifier", `SELECT origin, dest, count(*) AS n, sum(distance) AS km, sum(delay * 0.5) AS half_delay, max(date) AS last_seen
		FROM flights WHERE NOT cancelled AND flights.delay > 0 GROUP BY origin, dest`},
	{"filter", `SELECT origin, count(*) FILTER (WHERE delay > 30) AS late, sum(seats) FILTER (WHERE cancelled) AS lost_seats,
		avg(distance) FILTER (WHERE dest = 'JFK') AS avg_km_to_jfk, min(day) FILTER (WHERE delay IS NULL) AS first_unknown
		FROM flights GROUP BY origin`},
	{"count_if", `SELECT dest, count_if(delay > 0) AS delayed, count(delay) AS known, count(*) AS n FROM flights GROUP BY dest`},
	{"hidden key", `SELECT origin, count(*) AS n, max(day) AS last_day, sum(seats) AS seats FROM flights GROUP BY origin, dest, cancelled`},
	{"global", `SELECT count(*) AS n, count(dest) AS with_dest, sum(delay) AS total, sum(seats) AS seats, sum(distance) AS km,
		min(date) AS first, max(origin) AS last_origin, avg(delay) AS avg_delay, mean(distance) AS avg_km FROM flights`},
	{"global over nothing", `SELECT count(*) AS n, sum(delay) AS total, avg(delay) AS a, min(day) AS d FROM flights WHERE delay > 100000`},
	{"projection", `SELECT date, origin, delay * 2 AS double_delay, upper(dest) AS dest FROM flights WHERE delay > 10 OR cancelled`},
	{"star", `SELECT * FROM flights WHERE origin = 'JFK'`},
	{"group by alias", `SELECT date_trunc('day', date) AS d, cancelled, sum(seats) AS seats, avg(delay) AS avg_delay FROM flights GROUP BY d, cancelled`},
	{"group by expression", `SELECT day + 1 AS next_day, upper(origin) AS o, count(*) AS n FROM flights GROUP BY day + 1, upper(origin)`},
	{"group by all", `SELECT origin, cancelled, sum(distance) AS km, min(date) AS first FROM flights GROUP BY ALL`},
	{"keys only", `SELECT origin, dest FROM flights GROUP BY origin, dest`},
	{"distinct", `SELECT DISTINCT origin, date_trunc('day', date) AS d FROM flights`},
	{"schema and alias", `SELECT f.origin, count(*) AS n, sum(f.delay) AS total FROM duet.raw.flights AS f GROUP BY f.origin`},
	{"date keys and nulls", `SELECT day, min(date) AS first, max(date) AS last, count(seats) AS n FROM flights GROUP BY day`},
	{"approx distinct", `SELECT origin, date_trunc('hour', date) AS hour, approx_distinct(dest) AS dests, approx_count_distinct(seats) AS seat_values,
		count(*) AS n, avg(delay) AS a FROM flights GROUP BY 1, 2`},
	{"approx distinct filter global", `SELECT approx_distinct(distance) FILTER (WHERE delay > 30) AS late_km, approx_count_distinct(date) AS times,
		approx_distinct(day) AS days, approx_distinct(delay) FILTER (WHERE cancelled) AS delays, sum(seats) AS seats FROM flights`},
}

// fromScratch is the answer of an approx_distinct view over all rows at
// once: sketches are not DuckDB's approx_count_distinct (which is not
// mergeable), so the invariant for them is that merging partial sketches
// gives exactly the sketch of all rows, and the same estimate.
func fromScratch(plan *Plan, sql, source string) (string, bool) {
	if !strings.Contains(sql, "approx_") {
		return sql, false
	}
	return plan.FinalSQL("(" + plan.PartialSQL(source) + ")"), true
}

// TestMergeInvariant checks final(partial(A) ∪ partial(B) ∪ ...) == view(A ∪ B ∪ ...)
// for random rows split randomly into chunks, some of them empty, and the
// same through combine and through partials written to Parquet.
func TestMergeInvariant(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := flightsSpec(t)
	mustExec(t, conn, "ATTACH ':memory:' AS duet")
	mustExec(t, conn, "CREATE SCHEMA duet.raw")
	plans := make([]*Plan, len(views))
	for i, v := range views {
		p, err := Analyze(ctx, conn, v.sql, spec)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		plans[i] = p
	}
	// No partial rows at all (nothing archived, nothing in the speed layer)
	// must answer like the view over no rows: count 0, sum NULL, no groups.
	loadTable(t, conn, spec, "TEMP TABLE", "flights", nil)
	loadTable(t, conn, spec, "TABLE", "duet.raw.flights", nil)
	for i, v := range views {
		none := plans[i].FinalSQL("(SELECT * FROM (" + plans[i].PartialSQL(spec.EmptyRelation()) + ") WHERE false)")
		// Over no rows DuckDB's own approx_count_distinct is exact (0).
		view := strings.ReplaceAll(v.sql, "approx_distinct(", "approx_count_distinct(")
		if d := diffRows(queryRows(t, conn, view), queryRows(t, conn, none)); d != "" {
			t.Errorf("%s: final over no partial rows differs from the view over no rows: %s", v.name, d)
		}
	}
	dir := t.TempDir()
	sizes := []int{0, 1, 3, 40, 150, 400}
	for seed := int64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewSource(seed))
		rows := genRows(rng, sizes[rng.Intn(len(sizes))])
		k := 1 + rng.Intn(5)
		chunks := make([][]string, k)
		for _, r := range rows {
			i := rng.Intn(k)
			chunks[i] = append(chunks[i], r)
		}
		loadTable(t, conn, spec, "TEMP TABLE", "flights", rows)
		loadTable(t, conn, spec, "TABLE", "duet.raw.flights", rows)
		for i, chunk := range chunks {
			loadTable(t, conn, spec, "TEMP TABLE", fmt.Sprintf("chunk_%d", i), chunk)
		}
		for vi, v := range views {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, v.name), func(t *testing.T) {
				plan := plans[vi]
				wantSQL, _ := fromScratch(plan, v.sql, "flights")
				want := queryRows(t, conn, wantSQL)
				var inline, stored []string
				for i := range chunks {
					chunk := fmt.Sprintf("chunk_%d", i)
					inline = append(inline, plan.PartialSQL(chunk))
					if i == 0 {
						// One partial goes through Parquet, as batch partials do.
						file := filepath.Join(dir, fmt.Sprintf("%d-%d.parquet", seed, vi))
						mustExec(t, conn, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", plan.PartialSQL(chunk), dataset.QuoteString(file)))
						stored = append(stored, "SELECT * FROM read_parquet("+dataset.QuoteString(file)+")")
					} else {
						part := fmt.Sprintf("part_%d", i)
						mustExec(t, conn, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS %s", part, plan.PartialSQL(chunk)))
						stored = append(stored, "SELECT * FROM "+part)
					}
				}
				direct := plan.FinalSQL("(" + strings.Join(inline, " UNION ALL ") + ")")
				if d := diffRows(want, queryRows(t, conn, direct)); d != "" {
					t.Fatalf("%d rows in %d chunks: final(partials) differs from the view: %s\nSQL: %s", len(rows), k, d, direct)
				}
				combined := plan.FinalSQL("(" + plan.CombineSQL("("+strings.Join(stored, " UNION ALL ")+")") + ")")
				if d := diffRows(want, queryRows(t, conn, combined)); d != "" {
					t.Fatalf("%d rows in %d chunks: final(combine(partials)) differs from the view: %s\nSQL: %s", len(rows), k, d, combined)
				}
			})
		}
	}
}
