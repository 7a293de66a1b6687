package batchlayer

import (
	"reflect"
	"testing"
)

func TestSplitScript(t *testing.T) {
	script := `-- daily totals
CREATE TEMP TABLE t AS SELECT 'a;b' AS s, "x;y" FROM range(3);
/* a comment; with a semicolon
   over lines */
SELECT $$it's; fine$$ AS d,
  s -- trailing; comment
FROM t;;
  -- only a comment;
SELECT 'it''s;' AS q`
	got := splitScript(script)
	want := []statement{
		{sql: `-- daily totals
CREATE TEMP TABLE t AS SELECT 'a;b' AS s, "x;y" FROM range(3)`, line: 1},
		{sql: `/* a comment; with a semicolon
   over lines */
SELECT $$it's; fine$$ AS d,
  s -- trailing; comment
FROM t`, line: 3},
		{sql: `-- only a comment;
SELECT 'it''s;' AS q`, line: 8},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("splitScript:\n got %+v\nwant %+v", got, want)
	}
	if got := splitScript(" ; -- nothing\n ;"); len(got) != 0 {
		t.Fatalf("empty script: %+v", got)
	}
}

func TestParamValue(t *testing.T) {
	for in, want := range map[string]any{
		"42": int64(42), "-7": int64(-7), "1.5": 1.5, "2e3": 2000.0, "true": true, "FALSE": false,
		"2026-01-02": "2026-01-02", "NaN": "NaN", "Inf": "Inf", "o'brien; DROP TABLE x": "o'brien; DROP TABLE x", "": "",
	} {
		if got := ParamValue(in); got != want {
			t.Errorf("ParamValue(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func TestPositional(t *testing.T) {
	q, args, err := positional(`SELECT '$a', "$a", $a, $b_2 -- $a
/* $b_2 */ FROM t WHERE x = $$ $a $$ AND y > $a`, map[string]string{"a": "7", "b_2": "o'k"})
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT '$a', "$a", ?, ? -- $a
/* $b_2 */ FROM t WHERE x = $$ $a $$ AND y > ?`
	if q != want || !reflect.DeepEqual(args, []any{int64(7), "o'k", int64(7)}) {
		t.Fatalf("positional:\n%s\n%#v", q, args)
	}
	if _, _, err := positional("SELECT $missing", nil); err == nil || err.Error() != "parameter $missing has no value: give -p missing=..." {
		t.Fatalf("a parameter without a value: %v", err)
	}
}
