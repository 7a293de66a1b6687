package sqlgateway

import (
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

func TestTrinoTypeOf(t *testing.T) {
	cases := []struct {
		duck, display, signature string
	}{
		{"INTEGER", "integer", `{"rawType":"integer","arguments":[]}`},
		{"UINTEGER", "bigint", `{"rawType":"bigint","arguments":[]}`},
		{"HUGEINT", "bigint", `{"rawType":"bigint","arguments":[]}`},
		{"UHUGEINT", "decimal(38,0)", `{"rawType":"decimal","arguments":[{"kind":"LONG","value":38},{"kind":"LONG","value":0}]}`},
		{"DECIMAL(10,2)", "decimal(10,2)", `{"rawType":"decimal","arguments":[{"kind":"LONG","value":10},{"kind":"LONG","value":2}]}`},
		{"VARCHAR", "varchar", `{"rawType":"varchar","arguments":[{"kind":"LONG","value":2147483647}]}`},
		{"TIMESTAMP_NS", "timestamp(9)", `{"rawType":"timestamp","arguments":[{"kind":"LONG","value":9}]}`},
		{"TIMESTAMP WITH TIME ZONE", "timestamp(6) with time zone", `{"rawType":"timestamp with time zone","arguments":[{"kind":"LONG","value":6}]}`},
		{"TIMETZ", "time(6) with time zone", `{"rawType":"time with time zone","arguments":[{"kind":"LONG","value":6}]}`},
		{"INTEGER[]", "array(integer)", `{"rawType":"array","arguments":[{"kind":"TYPE","value":{"rawType":"integer","arguments":[]}}]}`},
		{"DOUBLE[3][]", "array(array(double))", ""},
		{"MAP(VARCHAR, DECIMAL(4,1))", "map(varchar, decimal(4,1))", ""},
		{`STRUCT("a b" INTEGER, c VARCHAR[], "q""x" BOOLEAN)`, `row("a b" integer, c array(varchar), "q""x" boolean)`,
			`{"rawType":"row","arguments":[{"kind":"NAMED_TYPE","value":{"fieldName":{"name":"a b"},"typeSignature":{"rawType":"integer","arguments":[]}}},` +
				`{"kind":"NAMED_TYPE","value":{"fieldName":{"name":"c"},"typeSignature":{"rawType":"array","arguments":[{"kind":"TYPE","value":{"rawType":"varchar","arguments":[{"kind":"LONG","value":2147483647}]}}]}}},` +
				`{"kind":"NAMED_TYPE","value":{"fieldName":{"name":"q\"x"},"typeSignature":{"rawType":"boolean","arguments":[]}}}]}`},
		{"ENUM('a', 'b)')", "varchar", ""},
		{"UNION(n INTEGER, s VARCHAR)", "varchar", `{"rawType":"varchar","arguments":[{"kind":"LONG","value":2147483647}]}`},
		{"JSON", "json", ""},
		{"INTERVAL", "interval day to second", ""},
	}
	for _, c := range cases {
		tt, err := trinoTypeOf(c.duck)
		if err != nil {
			t.Errorf("%s: %v", c.duck, err)
			continue
		}
		if tt.String() != c.display {
			t.Errorf("%s: display %q, want %q", c.duck, tt.String(), c.display)
		}
		if c.signature != "" {
			sig, _ := json.Marshal(tt.signature())
			if string(sig) != c.signature {
				t.Errorf("%s: signature\n %s\nwant\n %s", c.duck, sig, c.signature)
			}
		}
	}
	for _, bad := range []string{"BIT", "VARINT", "STRUCT(a", "MAP(INTEGER)", "DECIMAL(x)", "INTEGER junk"} {
		if _, err := trinoTypeOf(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func encode(t *testing.T, duckType string, z zone, v any) string {
	t.Helper()
	tt, err := trinoTypeOf(duckType)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newEncoder(tt, z)(nil, v)
	if err != nil {
		t.Fatalf("%s %#v: %v", duckType, v, err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s %#v: invalid JSON %s", duckType, v, b)
	}
	return string(b)
}

func TestEncoders(t *testing.T) {
	berlin, err := resolveZone("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	huge, _ := new(big.Int).SetString("-170141183460469231731687303715884105728", 10)
	ts := time.Date(2024, 7, 1, 12, 30, 45, 123456789, time.UTC)
	cases := []struct {
		duck string
		z    zone
		v    any
		want string
	}{
		{"BOOLEAN", utcZone, false, `false`},
		{"UTINYINT", utcZone, uint8(255), `255`},
		{"BIGINT", utcZone, int64(math.MinInt64), `-9223372036854775808`},
		{"UBIGINT", utcZone, uint64(math.MaxUint64), `"18446744073709551615"`},
		{"UHUGEINT", utcZone, huge, `"-170141183460469231731687303715884105728"`},
		{"HUGEINT", utcZone, big.NewInt(-42), `-42`},
		{"FLOAT", utcZone, float32(0.1), `0.1`},
		{"DOUBLE", utcZone, math.NaN(), `"NaN"`},
		{"DOUBLE", utcZone, 1e300, `1e+300`},
		{"DECIMAL(5,3)", utcZone, duckdb.Decimal{Width: 5, Scale: 3, Value: big.NewInt(-5)}, `"-0.005"`},
		{"DECIMAL(5,0)", utcZone, duckdb.Decimal{Width: 5, Value: big.NewInt(12345)}, `"12345"`},
		{"DECIMAL(6,2)", utcZone, duckdb.Decimal{Width: 6, Scale: 2, Value: big.NewInt(100)}, `"1.00"`},
		{"VARCHAR", utcZone, "a\"b\\c\x01\u2028é\xff", `"a\"b\\c\u0001` + "\u2028é" + `\ufffd"`},
		{"BLOB", utcZone, []byte("hi"), `"aGk="`},
		{"DATE", utcZone, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), `"2024-02-29"`},
		{"TIME", utcZone, time.Date(1, 1, 1, 1, 2, 3, 4000, time.UTC), `"01:02:03.000004"`},
		{"TIMETZ", utcZone, time.Date(1, 1, 1, 1, 2, 3, 0, time.FixedZone("", 5*3600+45*60)), `"01:02:03.000000+05:45"`},
		{"TIMESTAMP_S", utcZone, ts, `"2024-07-01 12:30:45"`},
		{"TIMESTAMP_MS", utcZone, ts, `"2024-07-01 12:30:45.123"`},
		{"TIMESTAMP_NS", utcZone, ts, `"2024-07-01 12:30:45.123456789"`},
		{"TIMESTAMPTZ", berlin, ts, `"2024-07-01 14:30:45.123456 Europe/Berlin"`},
		{"TIMESTAMPTZ", utcZone, ts, `"2024-07-01 12:30:45.123456 UTC"`},
		{"INTERVAL", utcZone, duckdb.Interval{Months: 1, Days: 2, Micros: 3_723_004_000}, `"32 01:02:03.004"`},
		{"INTERVAL", utcZone, duckdb.Interval{Micros: -1_500_000}, `"-0 00:00:01.500"`},
		{"UUID", utcZone, []byte{0x5b, 0x3c, 0x1a, 0x9e, 0x7f, 0x2d, 0x4c, 0x8b, 0x9a, 0x6e, 0x0d, 0x1f, 0x2e, 0x3a, 0x4b, 0x5c}, `"5b3c1a9e-7f2d-4c8b-9a6e-0d1f2e3a4b5c"`},
		{"JSON", utcZone, map[string]any{"a": []any{1.0, "x"}}, `"{\"a\":[1,\"x\"]}"`},
		{"JSON", utcZone, "s", `"\"s\""`},
		{"INTEGER[]", utcZone, []any{int32(1), nil}, `[1,null]`},
		{`STRUCT(b VARCHAR, a INTEGER)`, utcZone, map[string]any{"a": int32(1), "b": "x"}, `["x",1]`},
		{"MAP(INTEGER, VARCHAR)", utcZone, duckdb.Map{int32(2): "b", int32(10): "a"}, `{"10":"a","2":"b"}`},
		{"MAP(VARCHAR, DOUBLE[])", utcZone, duckdb.Map{"k": []any{1.5}}, `{"k":[1.5]}`},
		{"UNION(n INTEGER, s VARCHAR)", utcZone, duckdb.Union{Tag: "n", Value: int32(7)}, `"7"`},
		{"VARCHAR[]", utcZone, []any{map[string]any{"nested": "json"}}, `["{\"nested\":\"json\"}"]`},
		{"INTEGER", utcZone, nil, `null`},
	}
	for _, c := range cases {
		if got := encode(t, c.duck, c.z, c.v); got != c.want {
			t.Errorf("%s %#v: %s, want %s", c.duck, c.v, got, c.want)
		}
	}
	tt, _ := trinoTypeOf("BIGINT")
	if _, err := newEncoder(tt, utcZone)(nil, "not a number"); err == nil {
		t.Error("a string was encoded as a bigint")
	}
}

func TestParseStatement(t *testing.T) {
	str := func(s string) *string { return &s }
	cases := []struct {
		sql  string
		want statement
	}{
		{"SHOW CATALOGS", statement{kind: stmtShowCatalogs}},
		{"show schemas from \"duet\" like 'v%' ;", statement{kind: stmtShowSchemas, name: []string{"duet"}, like: str("v%")}},
		{"SHOW TABLES IN duet.raw LIKE 'a\\_%' ESCAPE '\\'", statement{kind: stmtShowTables, name: []string{"duet", "raw"}, like: str(`a\_%`), escape: str(`\`)}},
		{"-- comment\nDESCRIBE \"Raw\".\"my \"\"t\"\"\"", statement{kind: stmtShowColumns, name: []string{"Raw", `my "t"`}}},
		{"SHOW COLUMNS FROM t", statement{kind: stmtShowColumns, name: []string{"t"}}},
		{"DESCRIBE SELECT 1", statement{kind: stmtQuery}},
		{"SHOW ALL TABLES", statement{kind: stmtQuery}},
		{"USE duet.views", statement{kind: stmtUse, name: []string{"duet", "views"}}},
		{"SET SESSION a.b = 'x''y'", statement{kind: stmtSetSession, name: []string{"a", "b"}, value: "x'y"}},
		{"SET SESSION flag = TRUE", statement{kind: stmtSetSession, name: []string{"flag"}, value: "true"}},
		{"RESET SESSION a", statement{kind: stmtResetSession, name: []string{"a"}}},
		{"SET TIME ZONE LOCAL", statement{kind: stmtSetTimeZone}},
		{"SET TIME ZONE '+05:30'", statement{kind: stmtSetTimeZone, value: "+05:30"}},
		{"SET threads = 1", statement{kind: stmtDenied}},
		{"SET SESSION AUTHORIZATION bob", statement{kind: stmtDenied}},
		{"RESET threads", statement{kind: stmtDenied}},
		{"START TRANSACTION READ ONLY", statement{kind: stmtStartTransaction}},
		{"COMMIT WORK", statement{kind: stmtCommit}},
		{"ROLLBACK", statement{kind: stmtRollback}},
		{"PREPARE q FROM SELECT * FROM t WHERE a = ?", statement{kind: stmtPrepare, name: []string{"q"}, value: "SELECT * FROM t WHERE a = ?"}},
		{"DEALLOCATE PREPARE q", statement{kind: stmtDeallocate, name: []string{"q"}}},
		{"EXECUTE q USING 1, 'a,b', ARRAY[1, 2], X'0aff', TIMESTAMP '2024-01-02 03:04:05.5 Z'", statement{kind: stmtExecute, name: []string{"q"},
			params: []string{"1", "'a,b'", "ARRAY[1, 2]", "from_hex('0aff')", "TIMESTAMPTZ '2024-01-02 03:04:05.5+00:00'"}}},
		{"EXECUTE IMMEDIATE 'SELECT ?' USING TIMESTAMP '2024-01-02 03:04:05 America/New_York'", statement{kind: stmtExecute, value: "SELECT ?",
			params: []string{"TIMESTAMPTZ '2024-01-02 03:04:05 America/New_York'"}}},
		{"SELECT version()", statement{kind: stmtVersion, alias: "_col0"}},
		{"SELECT version() v", statement{kind: stmtVersion, alias: "v"}},
		{"SELECT version(), 1", statement{kind: stmtQuery}},
		{"SELECT 'unterminated", statement{kind: stmtQuery}},
	}
	for _, c := range cases {
		got, qe := parseStatement(c.sql)
		if qe != nil {
			t.Errorf("%q: %v", c.sql, qe)
			continue
		}
		got.sql = ""
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.sql, *got, c.want)
		}
	}
	for sql, col := range map[string]int{
		"SHOW TABLES FROM":              17,
		"USE a b":                       7,
		"SHOW COLUMNS t":                14,
		"SET SESSION x 1":               15,
		"EXECUTE q USING 1,":            19,
		"DEALLOCATE q":                  12,
		"PREPARE q AS SELECT 1":         11,
		"SET SESSION x = (1)":           17,
		"SHOW CATALOGS LIKE 'x' ESCAPE": 30,
	} {
		_, qe := parseStatement(sql)
		if qe == nil || qe.code != errSyntax || qe.line != 1 || qe.column != col {
			t.Errorf("%q: got %+v, want a syntax error at 1:%d", sql, qe, col)
		}
	}
}

func TestBindParameters(t *testing.T) {
	got, qe := bindParameters("SELECT '?', \"?\", ? /* ? */ -- ?\n + ?", []string{"1", "'x'"})
	if qe != nil || got != "SELECT '?', \"?\", 1 /* ? */ -- ?\n + 'x'" {
		t.Fatalf("got %q, %v", got, qe)
	}
	if _, qe := bindParameters("SELECT ?", nil); qe == nil || !strings.Contains(qe.message, "expected 1 but found 0") {
		t.Fatalf("missing parameter: %v", qe)
	}
}

func TestLocate(t *testing.T) {
	sql := "SELECT 1,\n  x FROM t"
	msg := "Binder Error: Referenced column \"x\" not found\n\nLINE 2:   x FROM t\n          ^"
	if l, c := locate(msg, sql); l != 2 || c != 3 {
		t.Errorf("plain context: %d:%d, want 2:3", l, c)
	}
	long := "SELECT " + strings.Repeat("a, ", 100) + "zz FROM t"
	shown := "..." + long[200:] // DuckDB shortens long lines around the position
	caretAt := strings.Index(long, "zz") - 200 + 3
	msg = "Binder Error: x\n\nLINE 1: " + shown + "\n" + strings.Repeat(" ", len("LINE 1: ")+caretAt) + "^"
	if l, c := locate(msg, long); l != 1 || c != strings.Index(long, "zz")+1 {
		t.Errorf("shortened context: %d:%d, want 1:%d", l, c, strings.Index(long, "zz")+1)
	}
	if l, c := locate("Parser Error: syntax error at end of input", sql); l != 0 || c != 0 {
		t.Errorf("no context: %d:%d", l, c)
	}
	if l, c := locate(msg, "SELECT something else"); l != 0 || c != 0 {
		t.Errorf("context from another text: %d:%d", l, c)
	}
}

func TestLikePattern(t *testing.T) {
	esc := `!`
	cases := []struct {
		pattern string
		escape  *string
		in      string
		match   bool
	}{
		{"v%", nil, "views", true},
		{"v%", nil, "raw", false},
		{"r_w", nil, "raw", true},
		{"a.b", nil, "axb", false},
		{"a!_b", &esc, "a_b", true},
		{"a!_b", &esc, "axb", false},
		{"100!%", &esc, "100%", true},
	}
	for _, c := range cases {
		re, err := likePattern(c.pattern, c.escape)
		if err != nil {
			t.Fatal(err)
		}
		if re.MatchString(c.in) != c.match {
			t.Errorf("%q LIKE %q = %v, want %v", c.in, c.pattern, !c.match, c.match)
		}
	}
	if _, err := likePattern("a!", &esc); err == nil {
		t.Error("a dangling escape was accepted")
	}
}

func TestParseTrinoDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"10m": 10 * time.Minute, "1.5h": 90 * time.Minute, "250ms": 250 * time.Millisecond, "2d": 48 * time.Hour} {
		if got, err := parseTrinoDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10", "10 parsecs", "m"} {
		if _, err := parseTrinoDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseStatement(f *testing.F) {
	for _, s := range []string{"SHOW TABLES FROM a.b LIKE 'x'", "EXECUTE q USING X'00', ARRAY[1,(2)]", "SET SESSION a = 'b'", "/* x", "'", `"a""b"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		st, qe := parseStatement(sql)
		if (st == nil) == (qe == nil) {
			t.Fatalf("parseStatement(%q) = %v, %v", sql, st, qe)
		}
		if qe != nil && qe.line > 0 {
			lines := strings.Split(sql, "\n")
			if qe.line > len(lines) || qe.column > len([]rune(lines[qe.line-1]))+1 {
				t.Fatalf("location %d:%d outside %q", qe.line, qe.column, sql)
			}
		}
		if st != nil && st.kind == stmtExecute {
			_, _ = bindParameters("SELECT ?, ?", st.params)
		}
	})
}

func FuzzTrinoTypeOf(f *testing.F) {
	for _, s := range []string{`STRUCT("a" INTEGER[], b MAP(VARCHAR, DECIMAL(3,1)))`, "ENUM('x')", "TIMESTAMP WITH TIME ZONE"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tt, err := trinoTypeOf(s)
		if err != nil {
			return
		}
		_ = tt.String()
		if _, err := json.Marshal(tt.signature()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSchemaCacheForgetsAfterTTL(t *testing.T) {
	var c schemaCache
	now := time.Now()
	if _, ok := c.get("Views", now); ok {
		t.Fatal("an empty cache resolved a schema")
	}
	c.put("Views", "views", now)
	if got, ok := c.get("Views", now.Add(schemaTTL-time.Millisecond)); !ok || got != "views" {
		t.Fatalf("get within the TTL = %q, %v; want views", got, ok)
	}
	if _, ok := c.get("views", now); ok {
		t.Fatal("a name resolved under another spelling: the catalog's case rules are DuckDB's, not the cache's")
	}
	if _, ok := c.get("Views", now.Add(schemaTTL)); ok {
		t.Fatal("a schema resolved after its TTL: a dropped schema would resolve forever")
	}
}
