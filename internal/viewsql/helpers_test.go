package viewsql

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/duet-analytics/duet/dataset"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// openConn opens an in-memory DuckDB and returns one connection of it, so
// temp tables stay visible across statements.
func openConn(t testing.TB) *sql.Conn {
	t.Helper()
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		db.Close()
	})
	return conn
}

func flightsSpec(t testing.TB) *dataset.Spec {
	t.Helper()
	s := &dataset.Spec{Name: "flights", TimeColumn: "date", Columns: []dataset.Column{
		{Name: "date", Type: "timestamp"},
		{Name: "day", Type: "date"},
		{Name: "origin", Type: "varchar"},
		{Name: "dest", Type: "varchar"},
		{Name: "delay", Type: "integer"},
		{Name: "distance", Type: "double"},
		{Name: "cancelled", Type: "boolean"},
		{Name: "seats", Type: "bigint"},
	}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustExec(t testing.TB, conn *sql.Conn, query string) {
	t.Helper()
	if _, err := conn.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("%v\nSQL: %s", err, query)
	}
}

// genRows makes n rows of flightsSpec as SQL literals, with NULLs in every
// nullable column. Doubles are multiples of 0.25 so that their sums are exact
// in any order, as integer sums are.
func genRows(rng *rand.Rand, n int) []string {
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	places := []string{"JFK", "LAX", "SFO", "ORD"}
	maybe := func(p float64, v string) string {
		if rng.Float64() < p {
			return "NULL"
		}
		return v
	}
	rows := make([]string, n)
	for i := range rows {
		ts := base.Add(time.Duration(rng.Int63n(int64(72 * time.Hour))).Truncate(time.Microsecond))
		vals := []string{
			"TIMESTAMP '" + ts.Format("2006-01-02 15:04:05.000000") + "'",
			maybe(0.1, "DATE '"+ts.Format("2006-01-02")+"'"),
			maybe(0.1, dataset.QuoteString(places[rng.Intn(len(places))])),
			maybe(0.1, dataset.QuoteString(places[rng.Intn(len(places))])),
			maybe(0.15, strconv.Itoa(rng.Intn(200)-15)),
			maybe(0.1, strconv.FormatFloat(float64(rng.Intn(40000))*0.25, 'f', -1, 64)),
			maybe(0.1, strconv.FormatBool(rng.Intn(4) == 0)),
			maybe(0.1, strconv.FormatInt(rng.Int63n(1<<40), 10)),
		}
		rows[i] = "(" + strings.Join(vals, ", ") + ")"
	}
	return rows
}

// loadTable (re)creates table name with spec's columns and the given rows.
func loadTable(t testing.TB, conn *sql.Conn, spec *dataset.Spec, create, name string, rows []string) {
	t.Helper()
	mustExec(t, conn, fmt.Sprintf("CREATE OR REPLACE %s %s AS SELECT * FROM %s", create, name, spec.EmptyRelation()))
	if len(rows) > 0 {
		mustExec(t, conn, fmt.Sprintf("INSERT INTO %s VALUES %s", name, strings.Join(rows, ", ")))
	}
}

// queryRows runs query and returns its rows with values normalised for
// comparison: integers of any width as decimal strings, times in UTC.
func queryRows(t testing.TB, conn *sql.Conn, query string) [][]any {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), query)
	if err != nil {
		t.Fatalf("%v\nSQL: %s", err, query)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			switch x := v.(type) {
			case nil, float64:
			case time.Time:
				vals[i] = x.UTC().Format(time.RFC3339Nano)
			default:
				vals[i] = fmt.Sprint(x)
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%v\nSQL: %s", err, query)
	}
	return out
}

func sameValue(a, b any) bool {
	fa, aok := a.(float64)
	fb, bok := b.(float64)
	if aok && bok {
		if fa == fb {
			return true
		}
		return math.Abs(fa-fb) <= 1e-9*math.Max(math.Abs(fa), math.Abs(fb))
	}
	return a == b
}

func sameRow(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameValue(a[i], b[i]) {
			return false
		}
	}
	return true
}

// diffRows compares two results as multisets of rows (doubles to 1e-9
// relative) and describes the first difference, or returns "".
func diffRows(want, got [][]any) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d rows, want %d\nwant %v\ngot  %v", len(got), len(want), want, got)
	}
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for j, g := range got {
			if !used[j] && sameRow(w, g) {
				used[j] = true
				continue next
			}
		}
		return fmt.Sprintf("row %v is missing\nwant %v\ngot  %v", w, want, got)
	}
	return ""
}

// describeCols binds query and returns its output columns as DuckDB names them.
func describeCols(t testing.TB, conn *sql.Conn, query string) []Column {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), "DESCRIBE "+query)
	if err != nil {
		t.Fatalf("%v\nSQL: %s", err, query)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []Column
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, Column{Name: vals[0].(string), Type: vals[1].(string)})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
