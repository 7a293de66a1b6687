package notebooks

import (
	"reflect"
	"strings"
	"testing"
)

var testParams = []Param{{"day", "2026-11-01"}, {"min_delay", int64(30)}, {"origin", "x' OR '1'='1"}}

func TestSQLBody(t *testing.T) {
	for src, want := range map[string]string{
		"%%sql\nSELECT 1": "SELECT 1",
		"\n  %%sql trino://duet@host/duet/views\nSELECT 2": "SELECT 2",
		"%%sql --save x\nSELECT 3\n":                       "SELECT 3\n",
	} {
		got, ok := sqlBody(&Cell{Type: CellCode, Source: src})
		if !ok || got != want {
			t.Errorf("sqlBody(%q) = %q, %v; want %q", src, got, ok, want)
		}
	}
	for _, c := range []*Cell{
		{Type: CellCode, Source: "%sql SELECT 1"},
		{Type: CellCode, Source: "%%sqlx\nSELECT 1"},
		{Type: CellCode, Source: "x = 1\n%%sql\nSELECT 1"},
		{Type: CellMarkdown, Source: "%%sql\nSELECT 1"},
	} {
		if _, ok := sqlBody(c); ok {
			t.Errorf("sqlBody(%s %q) took it for a SQL cell", c.Type, c.Source)
		}
	}
}

func TestCompileSQLBindsParameters(t *testing.T) {
	body := `-- the day's flights, :not_a_param in a comment
SELECT date, delay::int AS d, '12:30 {{x}} :day' AS lit, "odd "":day"" name"
FROM raw.flights /* :min_delay {{ day }} */
WHERE CAST(date AS DATE) = CAST(:day AS DATE) AND delay > {{ min_delay }} AND origin <> :origin;

SELECT :day, {{day}};
-- only a comment;
`
	got, err := compileSQL(body, testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []statement{
		{
			SQL: `-- the day's flights, :not_a_param in a comment
SELECT date, delay::int AS d, '12:30 {{x}} :day' AS lit, "odd "":day"" name"
FROM raw.flights /* :min_delay {{ day }} */
WHERE CAST(date AS DATE) = CAST(? AS DATE) AND delay > ? AND origin <> ?`,
			Args:   []any{"2026-11-01", int64(30), "x' OR '1'='1"},
			Params: []string{"day", "min_delay", "origin"},
		},
		{SQL: "SELECT ?, ?", Args: []any{"2026-11-01", "2026-11-01"}, Params: []string{"day", "day"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("compileSQL:\n got %#v\nwant %#v", got, want)
	}
}

func TestCompileSQLErrors(t *testing.T) {
	for body, want := range map[string]string{
		"SELECT :dya":                 ":dya is not a parameter of this notebook (its parameters: day, min_delay, origin)",
		"SELECT {{ nope }}":           "{{nope}} is not a parameter",
		"SELECT '{{day}}'":            "{{day}} inside the string literal '{{day}}': parameters are bound as values, not pasted into text",
		"SELECT * FROM t WHERE a = ?": "a ? placeholder: refer to parameters by name",
		"SELECT 'open":                "unterminated ' literal",
		"SELECT 1 /* open":            "unterminated /* comment",
		"-- nothing\n;  ;":            "the cell has no SQL statement",
		"SELECT {{day":                `cannot read "{{day": write a parameter as {{name}}`,
	} {
		if _, err := compileSQL(body, testParams); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("compileSQL(%q) = %v, want an error with %q", body, err, want)
		}
	}
	if _, err := compileSQL("SELECT :day", nil); err == nil || !strings.Contains(err.Error(), `the notebook has none (no cell tagged "parameters")`) {
		t.Errorf("no parameters: %v", err)
	}
}

func FuzzCompileSQL(f *testing.F) {
	f.Add("SELECT :day, '{{x}}' -- :y\n; SELECT {{min_delay}}::int")
	f.Fuzz(func(t *testing.T, body string) {
		stmts, err := compileSQL(body, testParams)
		if err != nil {
			return
		}
		for _, st := range stmts {
			// Every placeholder has its argument, and a value never
			// reaches the text.
			if n := strings.Count(st.SQL, "?"); n < len(st.Args) {
				t.Fatalf("%q: %d placeholders for %d args in %q", body, n, len(st.Args), st.SQL)
			}
			if strings.Contains(st.SQL, "x' OR '1'='1") && !strings.Contains(body, "x' OR '1'='1") {
				t.Fatalf("%q: a value was pasted: %q", body, st.SQL)
			}
		}
	})
}
