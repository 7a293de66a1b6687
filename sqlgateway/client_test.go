package sqlgateway

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trinodb/trino-go-client/trino"
)

// trinoError extracts the Trino error a failed statement carries.
func trinoError(t *testing.T, err error) *trino.ErrTrino {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	var qf *trino.ErrQueryFailed
	if !errors.As(err, &qf) {
		t.Fatalf("error %v (%T) is not a *trino.ErrQueryFailed", err, err)
	}
	var te *trino.ErrTrino
	if !errors.As(err, &te) {
		t.Fatalf("error %v does not carry a *trino.ErrTrino", err)
	}
	return te
}

// TestClientPagesOverAHundredThousandRows: the default page size, every row
// once and in order, through trino-go-client's paging.
func TestClientPagesOverAHundredThousandRows(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	rows, err := db.Query("SELECT range AS i, 'row ' || range AS s FROM range(150000) ORDER BY i")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var i int64
		var s string
		if err := rows.Scan(&i, &s); err != nil {
			t.Fatal(err)
		}
		if i != n || s != "row "+strconv.FormatInt(n, 10) {
			t.Fatalf("row %d: (%d, %q)", n, i, s)
		}
		n++
	}
	if err := rows.Err(); err != nil || n != 150000 {
		t.Fatalf("read %d rows, %v; want 150000", n, err)
	}
}

func TestClientMultiPageResultKeepsOrder(t *testing.T) {
	tg := startGateway(t, Config{PageRows: 7})
	db := tg.client(t, "")
	rows, err := db.Query("SELECT id, name FROM raw.events ORDER BY id DESC")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := int64(99)
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		if id != want || name != "name-"+strconv.FormatInt(want, 10) {
			t.Fatalf("row (%d, %q), want (%d, name-%d)", id, name, want, want)
		}
		want--
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want != -1 {
		t.Fatalf("got rows down to %d, want all 100", want+1)
	}
	if got := tg.metric(t, "duet_sqlgateway_queries_total", map[string]string{"state": "finished"}); got != 1 {
		t.Fatalf("queries_total{finished} = %v, want 1", got)
	}
}

func TestClientScansEveryType(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "timezone=UTC")
	const q = `SELECT
		true AS b,
		CAST(-5 AS TINYINT) AS ti, CAST(300 AS SMALLINT) AS si, CAST(70000 AS INTEGER) AS i, CAST(9007199254740993 AS BIGINT) AS bi,
		CAST('-9223372036854775808' AS HUGEINT) AS hi, CAST('170141183460469231731687303715884105727' AS UHUGEINT) AS uhi,
		CAST(18446744073709551615 AS UBIGINT) AS ubi, CAST(255 AS UTINYINT) AS uti, CAST(65535 AS USMALLINT) AS usi, CAST(4294967295 AS UINTEGER) AS ui,
		CAST(1.5 AS FLOAT) AS r, CAST(2.25 AS DOUBLE) AS d, CAST('NaN' AS DOUBLE) AS dnan, 1/0 AS dinf, CAST('-inf' AS FLOAT) AS rninf,
		CAST(123.45 AS DECIMAL(10,2)) AS dec, CAST(-0.05 AS DECIMAL(4,2)) AS decneg, CAST(12345678901234567890.123456 AS DECIMAL(38,6)) AS declong,
		'héllo "q"' || chr(10) AS v,
		from_hex('0001ff') AS blob,
		DATE '2024-02-29' AS dt,
		TIME '01:02:03.456789' AS tm,
		TIMESTAMP '2024-01-02 03:04:05.123456' AS ts,
		CAST(TIMESTAMP '2024-01-02 03:04:05.123' AS TIMESTAMP_MS) AS tsms,
		CAST(TIMESTAMP '2024-01-02 03:04:05' AS TIMESTAMP_S) AS tss,
		CAST('2024-01-02 03:04:05.123456789' AS TIMESTAMP_NS) AS tsns,
		TIMESTAMPTZ '2024-01-02 03:04:05.5+02:00' AS tstz,
		INTERVAL 1 DAY + INTERVAL 3 HOUR + INTERVAL 4 SECOND AS iv,
		[1, 2, NULL] AS lst,
		{'a': 1, 'b z': 'x'} AS st,
		MAP {'k1': 10, 'k2': 20} AS mp,
		CAST('5b3c1a9e-7f2d-4c8b-9a6e-0d1f2e3a4b5c' AS UUID) AS uu,
		CAST('{"a": [1, 2]}' AS JSON) AS js,
		CAST('y' AS ENUM('x', 'y')) AS en,
		NULL AS nul,
		[{'p': DATE '2024-01-01'}] AS nested,
		CAST(NULL AS INTEGER) AS nullint`
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := map[string]string{
		"b": "BOOLEAN", "ti": "TINYINT", "si": "SMALLINT", "i": "INTEGER", "bi": "BIGINT", "hi": "BIGINT", "uhi": "DECIMAL",
		"ubi": "DECIMAL", "uti": "SMALLINT", "usi": "INTEGER", "ui": "BIGINT", "r": "REAL", "d": "DOUBLE",
		"dec": "DECIMAL", "v": "VARCHAR", "blob": "VARBINARY", "dt": "DATE", "tm": "TIME", "ts": "TIMESTAMP",
		"tstz": "TIMESTAMP WITH TIME ZONE", "iv": "INTERVAL DAY TO SECOND", "lst": "ARRAY(INTEGER)",
		"st": `ROW(A INTEGER, "B Z" VARCHAR)`, "mp": "MAP(VARCHAR, INTEGER)", "uu": "UUID", "js": "JSON",
		"en": "VARCHAR", "nul": "UNKNOWN", "nullint": "INTEGER",
	}
	for _, ct := range cts {
		if want, ok := wantTypes[ct.Name()]; ok && ct.DatabaseTypeName() != want {
			t.Errorf("column %s: type %s, want %s", ct.Name(), ct.DatabaseTypeName(), want)
		}
	}
	if p, s, ok := cts[16].DecimalSize(); cts[16].Name() != "dec" || !ok || p != 10 || s != 2 {
		t.Errorf("dec precision/scale = %d,%d,%v, want 10,2", p, s, ok)
	}
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	vals := make([]any, len(cts))
	ptrs := make([]any, len(cts))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for i, ct := range cts {
		got[ct.Name()] = vals[i]
	}
	check := func(name string, want any) {
		t.Helper()
		if !reflect.DeepEqual(got[name], want) {
			t.Errorf("%s = %#v (%T), want %#v (%T)", name, got[name], got[name], want, want)
		}
	}
	check("b", true)
	check("ti", int64(-5))
	check("si", int64(300))
	check("i", int64(70000))
	check("bi", int64(9007199254740993))
	check("hi", int64(math.MinInt64))
	check("uhi", "170141183460469231731687303715884105727")
	check("ubi", "18446744073709551615")
	check("uti", int64(255))
	check("usi", int64(65535))
	check("ui", int64(4294967295))
	check("r", 1.5)
	check("d", 2.25)
	if f, ok := got["dnan"].(float64); !ok || !math.IsNaN(f) {
		t.Errorf("dnan = %#v, want NaN", got["dnan"])
	}
	check("dinf", math.Inf(1))
	check("rninf", math.Inf(-1))
	check("dec", "123.45")
	check("decneg", "-0.05")
	check("declong", "12345678901234567890.123456")
	check("v", "h\u00e9llo \"q\"\n")
	check("blob", []byte{0, 1, 0xff})
	check("dt", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC))
	check("tm", time.Date(0, 1, 1, 1, 2, 3, 456789000, time.UTC))
	check("ts", time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC))
	check("tsms", time.Date(2024, 1, 2, 3, 4, 5, 123000000, time.UTC))
	check("tss", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	check("tsns", time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC))
	if ts, ok := got["tstz"].(time.Time); !ok || !ts.Equal(time.Date(2024, 1, 2, 1, 4, 5, 500000000, time.UTC)) || ts.Location().String() != "UTC" {
		t.Errorf("tstz = %#v, want 2024-01-02 01:04:05.5 UTC", got["tstz"])
	}
	check("iv", "1 03:00:04.000")
	check("uu", "5b3c1a9e-7f2d-4c8b-9a6e-0d1f2e3a4b5c")
	check("js", `{"a":[1,2]}`)
	check("en", "y")
	check("nul", nil)
	check("nullint", nil)

	if l, ok := got["lst"].([]any); !ok || len(l) != 3 || l[0].(interface{ String() string }).String() != "1" || l[2] != nil {
		t.Errorf("lst = %#v, want [1 2 nil]", got["lst"])
	}
	if m, ok := got["mp"].(map[string]any); !ok || len(m) != 2 || m["k2"].(interface{ String() string }).String() != "20" {
		t.Errorf("mp = %#v, want map[k1:10 k2:20]", got["mp"])
	}
	st, ok := got["st"].(trino.Row)
	if !ok {
		t.Fatalf("st = %#v (%T), want a trino.Row", got["st"], got["st"])
	}
	if st.Len() != 2 || st.Name(0) != "a" || st.Value(0) != int64(1) || st.Name(1) != "b z" || st.Value(1) != "x" {
		t.Errorf("st = %#v, want row(a 1, \"b z\" 'x')", st)
	}
	nested, ok := got["nested"].([]any)
	if !ok || len(nested) != 1 {
		t.Fatalf("nested = %#v, want one row", got["nested"])
	}
	if p, _ := nested[0].(trino.Row).Field("p"); p != time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("nested[0].p = %#v, want 2024-01-01", p)
	}
}

func TestClientRendersTimestampWithTimeZoneInSessionZone(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "timezone=Asia/Kathmandu")
	var ts time.Time
	if err := db.QueryRow("SELECT TIMESTAMPTZ '2024-01-02 00:00:00+00:00'").Scan(&ts); err != nil {
		t.Fatal(err)
	}
	if ts.Location().String() != "Asia/Kathmandu" || ts.Hour() != 5 || ts.Minute() != 45 || !ts.Equal(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("got %s, want 2024-01-02 05:45 in Asia/Kathmandu", ts)
	}
}

func TestClientZeroRowsStillDescribesColumns(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	rows, err := db.Query("SELECT id, name, ts FROM raw.events WHERE id < 0")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ct := range cts {
		got = append(got, ct.Name()+" "+ct.DatabaseTypeName())
	}
	if want := []string{"id BIGINT", "name VARCHAR", "ts TIMESTAMP"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("columns %v, want %v", got, want)
	}
	if rows.Next() {
		t.Fatal("got a row from an empty result")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestClientErrors(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	cases := []struct {
		sql        string
		name       string
		code       int
		line, col  int
		msgContain string
	}{
		{"SELEC 1", "SYNTAX_ERROR", 1, 1, 1, `syntax error at or near "SELEC"`},
		{"SELECT 1,\n  2 +", "SYNTAX_ERROR", 1, 2, 6, "syntax error at end of input"},
		{"SELECT *\nFROM nosuch", "TABLE_NOT_FOUND", 46, 2, 6, "Table with name nosuch does not exist"},
		{"SELECT nosuch FROM raw.events", "COLUMN_NOT_FOUND", 47, 1, 8, `Referenced column "nosuch" not found`},
		{"SELECT nofunc(1)", "FUNCTION_NOT_FOUND", 6, 1, 8, "Scalar Function with name nofunc does not exist"},
		{"SELECT 'a' + 1", "TYPE_MISMATCH", 58, 1, 12, "Could not choose a best candidate function"},
		{"SELECT 1; SELECT 2", "SYNTAX_ERROR", 1, 0, 0, "multiple statements"},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			_, err := db.Query(c.sql)
			te := trinoError(t, err)
			if te.ErrorName != c.name || te.ErrorCode != c.code || te.ErrorType != "USER_ERROR" {
				t.Errorf("error %s(%d) %s, want %s(%d) USER_ERROR", te.ErrorName, te.ErrorCode, te.ErrorType, c.name, c.code)
			}
			if te.ErrorLocation.LineNumber != c.line || te.ErrorLocation.ColumnNumber != c.col {
				t.Errorf("location %d:%d, want %d:%d", te.ErrorLocation.LineNumber, te.ErrorLocation.ColumnNumber, c.line, c.col)
			}
			if !strings.Contains(te.Message, c.msgContain) || strings.Contains(te.Message, "\n") || strings.Contains(te.Message, "LINE") {
				t.Errorf("message %q: want one clean line containing %q", te.Message, c.msgContain)
			}
		})
	}
}

func TestClientRefusesWrites(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	for _, stmt := range []string{
		"INSERT INTO raw.events_data VALUES (1000, 'x', NULL)",
		"CREATE TABLE views.x (a INTEGER)",
		"DROP VIEW views.totals",
		"DELETE FROM raw.events_data",
		"UPDATE raw.events_data SET name = 'x'",
		"COPY raw.events_data TO '/tmp/out.csv'",
		"ATTACH ':memory:' AS other",
		"PRAGMA threads = 1",
		"SET threads = 1",
		"RESET threads",
		"CALL checkpoint()",
		"SELECT 1; DROP VIEW views.totals",
		"WITH x AS (SELECT 1) INSERT INTO raw.events_data SELECT 1, 'x', NULL",
		"EXPORT DATABASE '/tmp/x'",
	} {
		_, err := db.Exec(stmt)
		te := trinoError(t, err)
		if te.ErrorName != "PERMISSION_DENIED" || te.ErrorCode != 4 || !strings.HasPrefix(te.Message, "duet's SQL gateway is read-only: ") {
			t.Errorf("%s: got %s %q, want PERMISSION_DENIED", stmt, te.ErrorName, te.Message)
		}
	}
	var n int64
	if err := db.QueryRow("SELECT n FROM views.totals").Scan(&n); err != nil || n != 100 {
		t.Fatalf("views.totals after refused writes: n=%d err=%v, want 100", n, err)
	}
}

func TestClientMetadataStatements(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	strs := func(query string) [][]string {
		t.Helper()
		rows, err := db.Query(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out [][]string
		out = append(out, cols)
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := make([]string, len(cols))
			for i, v := range vals {
				row[i] = v.String
			}
			out = append(out, row)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	expect := func(query string, want [][]string) {
		t.Helper()
		if got := strs(query); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", query, got, want)
		}
	}
	expect("SHOW CATALOGS", [][]string{{"Catalog"}, {"duet"}})
	expect("SHOW SCHEMAS", [][]string{{"Schema"}, {"information_schema"}, {"main"}, {"raw"}, {"views"}})
	expect("SHOW CREATE TABLE raw.events_data", [][]string{{"Create Table"}, {"CREATE TABLE duet.raw.events_data (\n   id bigint,\n   name varchar,\n   ts timestamp(6)\n)"}})
	expect("SHOW TABLES FROM information_schema", [][]string{{"Table"}, {"columns"}, {"schemata"}, {"tables"}, {"views"}})
	expect("SELECT current_user, CURRENT_USER AS u", [][]string{{"'alice'", "u"}, {"alice", "alice"}})
	expect("SHOW SCHEMAS FROM duet LIKE 'v%'", [][]string{{"Schema"}, {"views"}})
	expect("SHOW TABLES", [][]string{{"Table"}, {"totals"}})
	expect(`SHOW TABLES FROM "duet".raw LIKE 'events\_%' ESCAPE '\'`, [][]string{{"Table"}, {"events_data"}})
	expect("SHOW TABLES IN raw", [][]string{{"Table"}, {"events"}, {"events_data"}})
	expect("DESCRIBE raw.events_data", [][]string{
		{"Column", "Type", "Extra", "Comment"},
		{"id", "bigint", "", ""}, {"name", "varchar", "", "the name"}, {"ts", "timestamp(6)", "", ""},
	})
	expect("SHOW COLUMNS FROM duet.views.totals", [][]string{
		{"Column", "Type", "Extra", "Comment"}, {"n", "bigint", "", ""}, {"top", "bigint", "", ""},
	})
	expect("SELECT version()", [][]string{{"_col0"}, {"476-duet"}})
	expect("select VERSION() AS v;", [][]string{{"v"}, {"476-duet"}})
	if got := strs("SHOW FUNCTIONS LIKE 'abs'"); len(got) < 2 || got[0][0] != "Function" || got[1][0] != "abs" {
		t.Errorf("SHOW FUNCTIONS LIKE 'abs': %q", got)
	}

	for query, wantName := range map[string]string{
		"SHOW TABLES FROM __duet_internal":       "SCHEMA_NOT_FOUND",
		"DESCRIBE __duet_internal.secrets":       "SCHEMA_NOT_FOUND",
		"DESCRIBE raw.nosuch":                    "TABLE_NOT_FOUND",
		"SHOW SCHEMAS FROM hive":                 "CATALOG_NOT_FOUND",
		"SHOW TABLES FROM hive.raw":              "CATALOG_NOT_FOUND",
		"USE nosuch":                             "SCHEMA_NOT_FOUND",
		"USE __duet_internal":                    "SCHEMA_NOT_FOUND",
		"USE hive.raw":                           "CATALOG_NOT_FOUND",
		"SHOW TABLES FROM":                       "SYNTAX_ERROR",
		"SHOW CREATE VIEW raw.events":            "NOT_SUPPORTED",
		"SHOW CREATE TABLE views.totals":         "NOT_SUPPORTED",
		"SHOW CREATE TABLE raw.nosuch":           "TABLE_NOT_FOUND",
		"SHOW CREATE INDEX x":                    "SYNTAX_ERROR",
		"SET SESSION time_zone_id = 'Mars/Base'": "GENERIC_USER_ERROR",
	} {
		_, err := db.Exec(query)
		if te := trinoError(t, err); te.ErrorName != wantName {
			t.Errorf("%s: %s %q, want %s", query, te.ErrorName, te.Message, wantName)
		}
	}
}

func TestClientUseChangesSchemaOfTheConnection(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err == nil {
		t.Fatal("events resolved in schema views; the test needs it to exist only in raw")
	}
	if _, err := conn.ExecContext(ctx, "USE raw"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil || n != 100 {
		t.Fatalf("after USE raw: n=%d err=%v, want 100", n, err)
	}
	// The gateway restored DuckDB's schema: other connections still start in views.
	other := tg.client(t, "")
	if err := other.QueryRow("SELECT n FROM totals").Scan(&n); err != nil || n != 100 {
		t.Fatalf("other connection: n=%d err=%v", n, err)
	}
	if _, err := conn.ExecContext(ctx, "USE duet.views"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT n FROM totals").Scan(&n); err != nil || n != 100 {
		t.Fatalf("after USE duet.views: n=%d err=%v", n, err)
	}
	// DuckDB's own connections keep their default schema.
	var schema string
	if err := tg.db.QueryRow("SELECT current_schema()").Scan(&schema); err != nil || schema != "main" {
		t.Fatalf("DuckDB pool schema = %q (%v), want main", schema, err)
	}
}

func TestClientUnknownCatalogOrSchemaInSession(t *testing.T) {
	tg := startGateway(t, Config{})
	for params, want := range map[string]string{
		"catalog=hive&schema=views":           "CATALOG_NOT_FOUND",
		"catalog=duet&schema=nosuch":          "SCHEMA_NOT_FOUND",
		"catalog=duet&schema=__duet_internal": "SCHEMA_NOT_FOUND",
	} {
		db, err := sql.Open("trino", strings.Replace(tg.srv.URL, "http://", "http://alice@", 1)+"?"+params)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec("SELECT 1")
		if te := trinoError(t, err); te.ErrorName != want {
			t.Errorf("%s: %s %q, want %s", params, te.ErrorName, te.Message, want)
		}
		_ = db.Close()
	}
}

func TestClientParametersAndTransactions(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "timezone=UTC")
	var name string
	if err := db.QueryRow("SELECT name FROM raw.events WHERE id = ? AND name <> ?", 42, "it's").Scan(&name); err != nil || name != "name-42" {
		t.Fatalf("explicit prepare: name=%q err=%v", name, err)
	}
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM raw.events WHERE ts >= ? AND name LIKE ?",
		time.Date(2024, 1, 1, 1, 30, 0, 0, time.UTC), "name-%").Scan(&n); err != nil || n != 10 {
		t.Fatalf("time parameter: n=%d err=%v, want 10", n, err)
	}
	var b []byte
	if err := db.QueryRow("SELECT ?", []byte{1, 2}).Scan(&b); err != nil || !reflect.DeepEqual(b, []byte{1, 2}) {
		t.Fatalf("binary parameter: %v %v", b, err)
	}
	immediate := tg.client(t, "explicitPrepare=false")
	if err := immediate.QueryRow("SELECT name FROM raw.events WHERE id = ?", 7).Scan(&name); err != nil || name != "name-7" {
		t.Fatalf("EXECUTE IMMEDIATE: name=%q err=%v", name, err)
	}
	if _, err := db.Exec("SELECT ? FROM raw.events WHERE id = ?", 1); err == nil {
		t.Fatal("a missing parameter was accepted")
	}
	if _, err := db.Exec("DELETE FROM raw.events_data WHERE id = ?", 1); err == nil {
		t.Fatal("a prepared DELETE was accepted")
	} else if te := trinoError(t, err); te.ErrorName != "PERMISSION_DENIED" {
		t.Fatalf("prepared DELETE: %s", te.ErrorName)
	}

	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow("SELECT count(*) FROM raw.events").Scan(&n); err != nil || n != 100 {
		t.Fatalf("in transaction: n=%d err=%v", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestClientCancellationStopsTheQuery(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		rows, err := db.QueryContext(ctx, "SELECT sum(a.range * b.range) FROM range(1000000) a CROSS JOIN range(1000000) b")
		if err == nil {
			rows.Close()
		}
		errc <- err
	}()
	eventually(t, 10*time.Second, "the query to run", func() bool {
		return tg.metric(t, "duet_sqlgateway_running_queries", nil) == 1
	})
	time.Sleep(200 * time.Millisecond) // let DuckDB get into the join
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("the cancelled query succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not return within 5s of cancelling")
	}
	eventually(t, 5*time.Second, "the running gauge to return to 0", func() bool {
		return tg.metric(t, "duet_sqlgateway_running_queries", nil) == 0
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the query stopped %s after cancellation", d)
	}
	eventually(t, 5*time.Second, "the query to count as canceled", func() bool {
		return tg.metric(t, "duet_sqlgateway_queries_total", map[string]string{"state": "canceled"}) == 1
	})
}

func TestClientSetTimeZoneFollowsTheSession(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "timezone=UTC")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET TIME ZONE 'America/New_York'"); err != nil {
		t.Fatal(err)
	}
	var ts time.Time
	if err := conn.QueryRowContext(ctx, "SELECT TIMESTAMPTZ '2024-07-01 12:00:00+00:00'").Scan(&ts); err != nil {
		t.Fatal(err)
	}
	if ts.Location().String() != "America/New_York" || ts.Hour() != 8 {
		t.Fatalf("after SET TIME ZONE: %s, want 08:00 America/New_York", ts)
	}
	if _, err := conn.ExecContext(ctx, "SET TIME ZONE LOCAL"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT TIMESTAMPTZ '2024-07-01 12:00:00+00:00'").Scan(&ts); err != nil {
		t.Fatal(err)
	}
	if ts.Location().String() != "UTC" || ts.Hour() != 12 {
		t.Fatalf("after SET TIME ZONE LOCAL: %s, want 12:00 UTC", ts)
	}
}

func TestHugeintBeyondBigintFailsClearly(t *testing.T) {
	tg := startGateway(t, Config{})
	db := tg.client(t, "")
	var x int64
	err := db.QueryRow("SELECT CAST('170141183460469231731687303715884105727' AS HUGEINT) AS big").Scan(&x)
	if err == nil || !strings.Contains(err.Error(), "out of range for bigint") {
		t.Fatalf("got %v, want an out-of-range error", err)
	}
	if err := db.QueryRow("SELECT sum(x) FROM (VALUES (9223372036854775807), (-1)) t(x)").Scan(&x); err != nil || x != math.MaxInt64-1 {
		t.Fatalf("sum over bigint: %d, %v", x, err)
	}
}
