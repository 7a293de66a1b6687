package notebooks

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/internal/testsvc"
)

// flightsDB is a real DuckDB holding a small flights table; the runner's
// statements reach it with their ? arguments bound by the driver, as they
// reach the gateway through trino-go-client.
func flightsDB(t *testing.T) *sql.DB {
	t.Helper()
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		"CREATE TABLE flights(date TIMESTAMP, delay BIGINT, origin VARCHAR)",
		`INSERT INTO flights VALUES
			('2026-11-01 06:00:00', 10, 'AMS'), ('2026-11-01 06:30:00', 45, 'AMS'),
			('2026-11-01 07:10:00', NULL, 'BER'), ('2026-11-02 08:00:00', 50, 'BER'),
			('2026-11-01 09:00:00', 5, '<b>&amp;'), ('2026-11-01 09:30:00', 41, '<b>&amp;')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func code(src string, tags []string, duet string) *Cell {
	c := &Cell{Type: CellCode, Source: src, Metadata: map[string]json.RawMessage{}}
	if tags != nil {
		c.Metadata["tags"] = mustJSON(tags)
	}
	if duet != "" {
		c.Metadata["duet"] = json.RawMessage(duet)
	}
	return c
}

func markdown(src string) *Cell {
	return &Cell{Type: CellMarkdown, Source: src, Metadata: map[string]json.RawMessage{}}
}

func notebook(cells ...*Cell) *Notebook {
	for i, c := range cells {
		c.ID = "c" + string(rune('a'+i))
	}
	return &Notebook{Cells: cells, Nbformat: 4, NbformatMinor: 5, Metadata: map[string]json.RawMessage{
		"kernelspec": json.RawMessage(`{"display_name": "Python 3", "language": "python", "name": "python3"}`)}}
}

// writeValid writes the notebook and checks it with Jupyter's validator.
func writeValid(t *testing.T, nb *Notebook) string {
	t.Helper()
	var b bytes.Buffer
	if err := nb.Write(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "out.ipynb")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	testsvc.ValidateNotebooks(t, path)
	return b.String()
}

func newTestRunner(t *testing.T, db Queryer, cfg Config) *Runner {
	t.Helper()
	cfg.Now = func() time.Time { return time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC) }
	r, err := NewRunner(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunNotebook(t *testing.T) {
	in := notebook(
		markdown("# Report"),
		code("day = \"2026-11-01\"\nmin_delay = 30\norigin = \"AMS\"", []string{"parameters"}, ""),
		code("import pandas as pd", nil, ""),
		code(`%%sql
SELECT origin, count(*) AS flights, count_if(delay > :min_delay) AS late
FROM flights WHERE CAST(date AS DATE) = CAST(:day AS DATE)
GROUP BY origin ORDER BY origin`, nil, `{"chart": {"mark": "bar", "x": "origin", "y": "late", "title": "Late <flights>"}}`),
		code("%%sql\nSELECT date, delay FROM flights WHERE origin = {{origin}} ORDER BY date", nil, ""),
		markdown("done"),
	)
	in.Cells[3].Outputs = []Output{{Type: OutputStream, Name: "stdout", Text: "stale output of an earlier run\n"}}
	var reports []CellReport
	r := newTestRunner(t, flightsDB(t), Config{Progress: func(c CellReport) { reports = append(reports, c) }})
	out, err := r.Run(context.Background(), in, map[string]string{"min_delay": "40", "origin": "x' OR '1'='1"})
	if err != nil {
		t.Fatal(err)
	}
	written := writeValid(t, out)

	kinds := []string{}
	for _, c := range out.Cells {
		n := "-"
		if c.ExecutionCount != nil {
			n = fmtCount(*c.ExecutionCount)
		}
		kinds = append(kinds, c.Type+":"+n)
	}
	if want := []string{"markdown:-", "code:1", "code:2", "code:-", "code:3", "code:4", "markdown:-"}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("cells %v, want %v", kinds, want)
	}
	inj := out.Cells[2]
	if inj.Source != "# Parameters\nmin_delay = 40\norigin = \"x' OR '1'='1\"\n" || !inj.HasTag(TagInjectedParameters) || inj.ID != TagInjectedParameters {
		t.Fatalf("injected cell %q tags %v id %q", inj.Source, inj.Tags(), inj.ID)
	}
	if len(out.Cells[3].Outputs) != 0 {
		t.Fatalf("the Python cell kept outputs: %+v", out.Cells[3].Outputs)
	}

	res := out.Cells[4].Outputs
	if len(res) != 1 || res[0].Type != OutputExecuteResult || *res[0].ExecutionCount != 3 {
		t.Fatalf("sql cell outputs %+v", res)
	}
	wantPlain := "" +
		"origin   | flights | late\n" +
		"---------+---------+-----\n" +
		"<b>&amp; |       2 |    1\n" +
		"AMS      |       2 |    1\n" +
		"BER      |       1 | NULL\n" + // DuckDB's count_if over only NULLs
		"(3 rows)"
	if got := res[0].DataText("text/plain"); got != wantPlain {
		t.Fatalf("text/plain:\n%s\nwant:\n%s", got, wantPlain)
	}
	html := res[0].DataText("text/html")
	if !strings.Contains(html, "<td>&lt;b&gt;&amp;amp;</td>") || strings.Contains(html, "<b>&amp;") {
		t.Fatalf("text/html does not escape the value:\n%s", html)
	}
	if !strings.Contains(html, "<th>origin</th><th>flights</th><th>late</th>") || !strings.Contains(html, `<td style="text-align: right">2</td>`) {
		t.Fatalf("text/html:\n%s", html)
	}
	var spec struct {
		Schema string `json:"$schema"`
		Title  string `json:"title"`
		Data   struct {
			Values []map[string]any `json:"values"`
		} `json:"data"`
		Mark     map[string]any            `json:"mark"`
		Encoding map[string]map[string]any `json:"encoding"`
	}
	if err := json.Unmarshal(res[0].Data[MIMEVegaLite], &spec); err != nil {
		t.Fatalf("%s: %v", MIMEVegaLite, err)
	}
	wantValues := []map[string]any{
		{"origin": "<b>&amp;", "flights": 2.0, "late": 1.0},
		{"origin": "AMS", "flights": 2.0, "late": 1.0},
		{"origin": "BER", "flights": 1.0, "late": nil},
	}
	if spec.Schema != "https://vega.github.io/schema/vega-lite/v5.json" || spec.Title != "Late <flights>" || spec.Mark["type"] != "bar" ||
		!reflect.DeepEqual(spec.Data.Values, wantValues) ||
		!reflect.DeepEqual(spec.Encoding["x"], map[string]any{"field": "origin", "type": "nominal", "title": "origin"}) ||
		!reflect.DeepEqual(spec.Encoding["y"], map[string]any{"field": "late", "type": "quantitative", "title": "late"}) {
		t.Fatalf("vega-lite spec %+v", spec)
	}

	// The quote in origin is part of the value: nothing matches it, where
	// the same text pasted into the SQL would have matched every row.
	if got := out.Cells[5].Outputs[0].DataText("text/plain"); got != "date | delay\n-----+------\n(0 rows)" {
		t.Fatalf("the quoted parameter matched rows:\n%s", got)
	}

	var meta struct {
		Parameters map[string]any `json:"parameters"`
		Status     string         `json:"status"`
		StartedAt  string         `json:"started_at"`
	}
	if err := json.Unmarshal(out.Metadata["duet"], &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Status != "succeeded" || meta.StartedAt != "2026-11-02T03:04:05Z" ||
		!reflect.DeepEqual(meta.Parameters, map[string]any{"day": "2026-11-01", "min_delay": 40.0, "origin": "x' OR '1'='1"}) {
		t.Fatalf("notebook metadata duet = %s", out.Metadata["duet"])
	}
	if !strings.Contains(written, `"kernelspec": {`) {
		t.Fatal("the kernelspec was lost")
	}
	if in.Cells[3].Outputs == nil || len(in.Cells) != 6 {
		t.Fatal("Run changed its input notebook")
	}

	var got []string
	for _, r := range reports {
		got = append(got, r.Kind+":"+fmtCount(r.Cell)+":"+fmtCount(r.Rows))
	}
	if want := []string{"parameters:2:0", "parameters:3:0", "skipped:4:0", "sql:5:3", "sql:6:0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("progress reports %v, want %v", got, want)
	}

	// Running the executed notebook again replaces its injected cell.
	again, err := r.Run(context.Background(), out, map[string]string{"min_delay": "5"})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Cells) != 7 || again.Cells[2].Source != "# Parameters\nmin_delay = 5\n" {
		t.Fatalf("re-run: %d cells, injected %q", len(again.Cells), again.Cells[2].Source)
	}
}

func fmtCount(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestRunStopsAtAFailingCell(t *testing.T) {
	in := notebook(
		code("%%sql\nSELECT count(*) AS n FROM flights", nil, ""),
		code("%%sql\nSELEC oops FROM flights", nil, ""),
		code("%%sql\nSELECT 1 AS never", nil, ""),
		markdown("after"),
	)
	in.Cells[2].Outputs = []Output{{Type: OutputStream, Name: "stdout", Text: "stale\n"}}
	in.Cells[2].ExecutionCount = new(int)
	r := newTestRunner(t, flightsDB(t), Config{})
	out, err := r.Run(context.Background(), in, nil)
	var ce *CellError
	if !errors.As(err, &ce) || ce.Cell != 2 || ce.Name != "QueryError" || !strings.Contains(ce.Message, "SELEC") {
		t.Fatalf("err = %v, want a *CellError at cell 2", err)
	}
	if out == nil {
		t.Fatal("no notebook for a failed run")
	}
	writeValid(t, out)
	failed := out.Cells[1].Outputs
	if len(failed) != 1 || failed[0].Type != OutputError || failed[0].Ename != "QueryError" || failed[0].Evalue != ce.Message ||
		failed[0].Traceback[1] != "statement 1 of 1:" || failed[0].Traceback[2] != "SELEC oops FROM flights" {
		t.Fatalf("error output %+v", failed)
	}
	if c := out.Cells[2]; c.ExecutionCount != nil || len(c.Outputs) != 0 {
		t.Fatalf("the cell after the failure looks run: %+v", c)
	}
	if out.Cells[3].Source != "after" {
		t.Fatal("markdown after the failure was lost")
	}
	if !strings.Contains(string(out.Metadata["duet"]), `"status":"failed"`) {
		t.Fatalf("metadata %s", out.Metadata["duet"])
	}
}

func TestRunChecks(t *testing.T) {
	in := notebook(
		code("max_delay = 44", []string{"parameters"}, ""),
		code("%%sql\nSELECT date, origin FROM flights WHERE delay IS NULL ORDER BY date", []string{"check"}, ""),
		code("%%sql\nSELECT origin FROM flights WHERE origin IS NULL", []string{"check"}, ""),
		code("%%sql\nSELECT date, delay FROM flights WHERE delay > :max_delay ORDER BY date", []string{"check"}, ""),
		code("%%sql\nSELECT count(*) AS n FROM flights", nil, ""),
	)
	r := newTestRunner(t, flightsDB(t), Config{})
	out, err := r.Run(context.Background(), in, nil)
	var cf *ChecksFailedError
	if !errors.As(err, &cf) || !reflect.DeepEqual(cf.Cells, []int{2, 4}) || cf.Violations != 3 {
		t.Fatalf("err = %#v, want checks 2 and 4 failed with 3 rows", err)
	}
	if err.Error() != "2 checks failed (cell 2, 4) with 3 violating rows" {
		t.Fatalf("message %q", err.Error())
	}
	writeValid(t, out)
	nulls := out.Cells[1].Outputs
	if len(nulls) != 2 || nulls[1].Type != OutputError || nulls[1].Ename != "CheckFailed" || nulls[1].Evalue != "1 row violates the check" {
		t.Fatalf("failed check outputs %+v", nulls)
	}
	if got := nulls[0].DataText("text/plain"); got != "date                | origin\n--------------------+-------\n2026-11-01 07:10:00 | BER\n(1 row)" {
		t.Fatalf("violations table:\n%s", got)
	}
	if passed := out.Cells[2].Outputs; len(passed) != 1 || passed[0].Type != OutputExecuteResult {
		t.Fatalf("passed check outputs %+v", passed)
	}
	if late := out.Cells[3].Outputs; len(late) != 2 || late[1].Evalue != "2 rows violate the check" {
		t.Fatalf("second failed check %+v", late)
	}
	if last := out.Cells[4]; last.ExecutionCount == nil || *last.ExecutionCount != 5 {
		t.Fatal("a failed check stopped the run")
	}
}

func TestRunCapsRowsShown(t *testing.T) {
	in := notebook(code("%%sql\nSELECT range AS n, 'v' || range AS label FROM range(2500) ORDER BY n", nil,
		`{"chart": {"mark": "point", "x": "n", "y": "n"}}`))
	r := newTestRunner(t, flightsDB(t), Config{MaxRows: 1000, MaxChartRows: 1500})
	out, err := r.Run(context.Background(), in, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeValid(t, out)
	o := out.Cells[0].Outputs[0]
	plain := strings.Split(o.DataText("text/plain"), "\n")
	if len(plain) != 2+1000+1 || plain[len(plain)-1] != "(showing the first 1000 of 2500 rows; at most 1000 are shown)" ||
		strings.TrimSpace(plain[len(plain)-2]) != "999 | v999" {
		t.Fatalf("text/plain: %d lines, ends %q", len(plain), plain[len(plain)-2:])
	}
	if html := o.DataText("text/html"); strings.Count(html, "<tr>") != 1001 || !strings.Contains(html, "<p>(showing the first 1000 of 2500 rows") {
		t.Fatalf("text/html has %d rows", strings.Count(html, "<tr>"))
	}
	var spec struct {
		Data struct{ Values []any } `json:"data"`
	}
	if err := json.Unmarshal(o.Data[MIMEVegaLite], &spec); err != nil || len(spec.Data.Values) != 1500 {
		t.Fatalf("chart holds %d rows (%v), want 1500", len(spec.Data.Values), err)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	db := flightsDB(t)
	r := newTestRunner(t, db, Config{})
	params := code("n = 1", []string{"parameters"}, "")
	for name, c := range map[string]struct {
		nb        *Notebook
		overrides map[string]string
		want      string
	}{
		"unknown parameter": {notebook(params), map[string]string{"m": "2"}, "-p m: the notebook has no parameter m (its parameters: n)"},
		"badly typed":       {notebook(params), map[string]string{"n": "two"}, `-p n=two: n is an integer (default 1); "two" is not one`},
		"bad defaults":      {notebook(code("n = compute()", []string{"parameters"}, "")), nil, "parameters cell (cell 1): line 1: n:"},
	} {
		out, err := r.Run(context.Background(), c.nb, c.overrides)
		if out != nil || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: notebook %v, err %v; want no notebook and %q", name, out != nil, err, c.want)
		}
	}
	// Errors inside a cell are the cell's error output.
	for name, c := range map[string]struct {
		cell  *Cell
		ename string
		want  string
	}{
		"unknown reference": {code("%%sql\nSELECT :m", nil, ""), "ParameterError", ":m is not a parameter of this notebook (its parameters: n)"},
		"unknown column":    {code("%%sql\nSELECT 1 AS a", nil, `{"chart": {"mark": "line", "x": "a", "y": "b"}}`), "ChartError", `chart y: the result has no column "b" (its columns: a)`},
		"bad mark":          {code("%%sql\nSELECT 1 AS a", nil, `{"chart": {"mark": "pie", "x": "a", "y": "a"}}`), "ChartError", `mark "pie": give one of arc, area, bar`},
		"unknown key":       {code("%%sql\nSELECT 1 AS a", nil, `{"chart": {"mark": "line", "x": "a", "y": "a", "colour": "a"}}`), "ChartError", `unknown field "colour"`},
	} {
		out, err := r.Run(context.Background(), notebook(code("n = 1", []string{"parameters"}, ""), c.cell), nil)
		var ce *CellError
		if !errors.As(err, &ce) || ce.Name != c.ename || !strings.Contains(ce.Message, c.want) {
			t.Errorf("%s: err = %v, want %s with %q", name, err, c.ename, c.want)
			continue
		}
		if o := out.Cells[1].Outputs; len(o) != 1 || o[0].Ename != c.ename {
			t.Errorf("%s: outputs %+v", name, o)
		}
	}
}
