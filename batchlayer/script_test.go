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
