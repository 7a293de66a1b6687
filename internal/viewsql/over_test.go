package viewsql

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

const hourly = `SELECT date_trunc('hour', date) AS hour, origin, count(*) AS n, sum(delay) AS total, min(delay) AS lo, max(delay) AS hi, avg(delay) AS a FROM flights GROUP BY 1, 2`

// TestRollupOverViewEqualsViewOverView: a view over a view, kept through
// partials composed over the dataset, equals its SQL over the upstream's
// answer over all rows, however the rows are split.
func TestRollupOverViewEqualsViewOverView(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := flightsSpec(t)
	up, err := Analyze(ctx, conn, hourly, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"SELECT date_trunc('day', hour) AS day, sum(n) AS n, sum(total) AS total, min(lo) AS lo, max(hi) AS hi FROM views.hourly GROUP BY 1",
		"SELECT origin, sum(n) FILTER (WHERE origin <> 'JFK') AS n, max(hi) AS hi FROM views.hourly WHERE hour >= TIMESTAMP '2024-03-02' GROUP BY origin",
		"SELECT sum(total) AS total FROM hourly",
		"SELECT DISTINCT origin FROM views.hourly",
	} {
		p, err := AnalyzeOver(ctx, conn, sql, "hourly", up)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if p.Dataset != "flights" {
			t.Fatalf("%s: reads %q, want the upstream's dataset", sql, p.Dataset)
		}
		rng := rand.New(rand.NewSource(int64(len(sql))))
		rows := genRows(rng, 300)
		loadTable(t, conn, spec, "TEMP TABLE", "flights", rows)
		viewOverView := strings.Replace(strings.Replace(sql, "views.hourly", "("+hourly+") AS hourly", 1), "FROM hourly", "FROM ("+hourly+") AS hourly", 1)
		want := queryRows(t, conn, "SELECT * FROM ("+viewOverView+") ORDER BY ALL")
		var parts []string
		for i := range 4 {
			chunk := rows[i*75 : (i+1)*75]
			name := fmt.Sprintf("chunk%d", i)
			loadTable(t, conn, spec, "TEMP TABLE", name, chunk)
			parts = append(parts, p.PartialSQL(name))
		}
		got := queryRows(t, conn, "SELECT * FROM ("+p.FinalSQL("("+strings.Join(parts, " UNION ALL ")+")")+") ORDER BY ALL")
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s:\n got %v\nwant %v", sql, got, want)
		}
	}
}

func TestViewOverViewRejectsInexactRollups(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	up, err := Analyze(ctx, conn, hourly, flightsSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	for sql, mention := range map[string]string{
		"SELECT origin, count(*) AS groups FROM views.hourly GROUP BY origin":  "count(*)",
		"SELECT origin, avg(a) AS a FROM views.hourly GROUP BY origin":         "avg",
		"SELECT origin, sum(hi) AS s FROM views.hourly GROUP BY origin":        "sum over view",
		"SELECT n, count(*) AS c FROM views.hourly GROUP BY n":                 "\"n\", which is not a key",
		"SELECT origin, sum(n) AS n FROM views.hourly WHERE lo > 0 GROUP BY 1": "\"lo\", which is not a key",
		"SELECT hour, origin, n FROM views.hourly":                             "which is not a key",
		"SELECT origin, sum(n) AS n FROM raw.hourly GROUP BY origin":           "unknown table",
	} {
		_, err := AnalyzeOver(ctx, conn, sql, "hourly", up)
		var verr *Error
		if !errors.As(err, &verr) || !strings.Contains(verr.Msg, mention) {
			t.Errorf("%s: got %v, want an error mentioning %q", sql, err, mention)
		}
	}
}
