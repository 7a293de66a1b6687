package viewsql

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// TestPlanShape pins the columns, partial columns and keys users and the
// other layers rely on.
func TestPlanShape(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := flightsSpec(t)
	cases := []struct {
		sql              string
		kind             Kind
		columns, partial []Column
		keys             []string
	}{
		{
			sql:  views[0].sql,
			kind: Aggregate,
			columns: []Column{{"hour", "TIMESTAMP"}, {"origin", "VARCHAR"}, {"flights", "BIGINT"}, {"total_delay", "BIGINT"},
				{"min_delay", "INTEGER"}, {"max_delay", "INTEGER"}, {"avg_delay", "DOUBLE"}},
			partial: []Column{{"hour", "TIMESTAMP"}, {"origin", "VARCHAR"}, {"flights", "BIGINT"}, {"total_delay", "BIGINT"},
				{"min_delay", "INTEGER"}, {"max_delay", "INTEGER"}, {"avg_delay__sum", "DOUBLE"}, {"avg_delay__count", "BIGINT"}},
			keys: []string{"hour", "origin"},
		},
		{
			sql:     `SELECT origin, count(*) AS n, sum(distance) AS km FROM flights GROUP BY origin, dest`,
			kind:    Aggregate,
			columns: []Column{{"origin", "VARCHAR"}, {"n", "BIGINT"}, {"km", "DOUBLE"}},
			partial: []Column{{"origin", "VARCHAR"}, {"n", "BIGINT"}, {"km", "DOUBLE"}, {"__key_1", "VARCHAR"}},
			keys:    []string{"origin", "__key_1"},
		},
		{
			sql:     `SELECT count_if(cancelled) AS c, sum(seats) AS s FROM flights`,
			kind:    Aggregate,
			columns: []Column{{"c", "BIGINT"}, {"s", "BIGINT"}},
			partial: []Column{{"c", "BIGINT"}, {"s", "BIGINT"}},
		},
		{
			sql:     `SELECT date, upper(origin), delay + 1 AS d FROM flights WHERE delay > 0`,
			kind:    Projection,
			columns: []Column{{"date", "TIMESTAMP"}, {"upper(origin)", "VARCHAR"}, {"d", "INTEGER"}},
			partial: []Column{{"date", "TIMESTAMP"}, {"upper(origin)", "VARCHAR"}, {"d", "INTEGER"}},
		},
		{
			sql:     `SELECT DISTINCT origin, dest FROM flights`,
			kind:    Aggregate,
			columns: []Column{{"origin", "VARCHAR"}, {"dest", "VARCHAR"}},
			partial: []Column{{"origin", "VARCHAR"}, {"dest", "VARCHAR"}},
			keys:    []string{"origin", "dest"},
		},
	}
	for _, c := range cases {
		p, err := Analyze(ctx, conn, c.sql, spec)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if p.Dataset != "flights" || p.Kind != c.kind || !reflect.DeepEqual(p.Columns, c.columns) ||
			!reflect.DeepEqual(p.Partial, c.partial) || !reflect.DeepEqual(p.Keys, c.keys) {
			t.Errorf("%s\n got  %s %s %v %v %v\n want %s flights %v %v %v", c.sql,
				p.Kind, p.Dataset, p.Columns, p.Partial, p.Keys, c.kind, c.columns, c.partial, c.keys)
		}
	}
}

// TestStarFollowsSpec: SELECT * expands to the dataset's columns, and the
// partial form selects them by name, so a source with extra columns (or
// another column order) still yields exactly the view's columns.
func TestStarFollowsSpec(t *testing.T) {
	conn := openConn(t)
	spec := flightsSpec(t)
	p, err := Analyze(context.Background(), conn, `SELECT * EXCLUDE (seats) FROM flights`, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Columns) != len(spec.Columns)-1 || p.Columns[0] != (Column{"date", "TIMESTAMP"}) {
		t.Fatalf("columns %v", p.Columns)
	}
	mustExec(t, conn, "CREATE TEMP TABLE wide AS SELECT 7 AS extra, * FROM "+spec.EmptyRelation())
	if got := describeCols(t, conn, p.PartialSQL("wide")); !sameColumns(got, p.Partial) {
		t.Fatalf("partial over a wider source: %v, want %v", got, p.Partial)
	}
}

func BenchmarkPartialSQL(b *testing.B) {
	conn := openConn(b)
	p, err := Analyze(context.Background(), conn, views[0].sql, flightsSpec(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.FinalSQL("(" + p.PartialSQL(`"memory"."main"."mb_17"`) + ")")
	}
}

func TestSourceTable(t *testing.T) {
	db := openConn(t)
	for sql, want := range map[string]string{
		"SELECT count(*) AS n FROM flights":                       "flights",
		"SELECT origin FROM raw.flights WHERE delay > 0":          "flights",
		"SELECT count(*) AS n FROM duet.raw.Trains AS t":          "Trains",
		"SELECT o, count(*) AS n FROM (SELECT 1 AS o) GROUP BY o": "",
		"SELECT 1 AS x": "",
		"SELEC oops":    "",
	} {
		schema, got, err := SourceTable(context.Background(), db, sql)
		if schema == "views" {
			got = schema + "." + got
		}
		if want == "" {
			var verr *Error
			if !errors.As(err, &verr) {
				t.Errorf("%s: got %q, %v; want a *Error", sql, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", sql, got, err, want)
		}
	}
}

func TestTimeKey(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := flightsSpec(t)
	for sql, want := range map[string]string{
		"SELECT date_trunc('hour', date) AS hour, origin, count(*) AS n FROM flights GROUP BY 1, 2":     "hour",
		"SELECT origin, date_trunc('minute', f.date) AS m, sum(delay) AS s FROM flights f GROUP BY ALL": "m",
		"SELECT CAST(date AS DATE) AS d, count(*) AS n FROM flights GROUP BY 1":                         "d",
		"SELECT date, count(*) AS n FROM flights GROUP BY date":                                         "date",
		"SELECT origin, count(*) AS n FROM flights GROUP BY origin, date_trunc('day', date)":            "__key_1",
		"SELECT * FROM flights WHERE delay > 10":                                                        "date",
		"SELECT date AS t, origin FROM flights":                                                         "t",
		// Coarser than a day, or not the time column: no day partitioning.
		"SELECT date_trunc('month', date) AS m, count(*) AS n FROM flights GROUP BY 1": "",
		"SELECT day, count(*) AS n FROM flights GROUP BY day":                          "",
		"SELECT origin, count(*) AS n FROM flights GROUP BY origin":                    "",
		"SELECT date + INTERVAL 1 HOUR AS t, origin FROM flights":                      "",
		"SELECT count(*) AS n FROM flights":                                            "",
	} {
		p, err := Analyze(ctx, conn, sql, spec)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		if p.TimeKey != want {
			t.Errorf("%s: TimeKey %q, want %q", sql, p.TimeKey, want)
		}
	}
}
