package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/internal/testsvc"
	"github.com/duet-analytics/duet/notebooks"
)

const examplesDir = "../notebooks/examples"

// notebookFlights are the events the notebook tests run on: the first six
// are in a batch version of views.delays, the rest only in the speed layer
// (the last one late, for the first day).
var notebookFlights = [][]byte{
	[]byte(`{"date": "2026-11-01T06:05:00Z", "delay": 12, "origin": "AMS"}` + "\n"),
	[]byte(`{"date": "2026-11-01T06:40:00Z", "delay": 45, "origin": "AMS"}` + "\n"),
	[]byte(`{"date": "2026-11-01T06:50:00Z", "delay": -3, "origin": "BER"}` + "\n"),
	[]byte(`{"date": "2026-11-01T07:15:00Z", "delay": 31, "origin": "BER"}` + "\n"),
	[]byte(`{"date": "2026-11-01T07:20:00Z", "delay": 30, "origin": "CDG"}` + "\n"),
	[]byte(`{"date": "2026-11-01T08:00:00Z", "delay": 95, "origin": "AMS"}` + "\n"),
	[]byte(`{"date": "2026-11-01T08:30:00Z", "delay": 5, "origin": "CDG"}` + "\n"),
	[]byte(`{"date": "2026-11-02T06:10:00Z", "delay": 60, "origin": "AMS"}` + "\n"),
	[]byte(`{"date": "2026-11-02T07:00:00Z", "delay": 0, "origin": "BER"}` + "\n"),
	[]byte(`{"date": "2026-11-01T06:55:00Z", "delay": 33, "origin": "CDG"}` + "\n"),
}

// loadNotebookFlights creates flights and views.delays on p and takes
// notebookFlights in: the first six built into a batch version, the rest
// left in the speed layer.
func loadNotebookFlights(t *testing.T, p *proc) {
	t.Helper()
	createFlightsAndDelays(t, p)
	ingestLines(t, p, notebookFlights[:6])
	buildView(t, p, "delays")
	ingestLines(t, p, notebookFlights[6:])
}

// runNotebook runs `duet notebook run` on a notebook file and reads the
// executed notebook back after checking it with Jupyter's validator.
func runNotebook(t *testing.T, p *proc, in string, args ...string) (*notebooks.Notebook, string, int) {
	t.Helper()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(in), ".ipynb")+".out.ipynb")
	stdout, stderr, code := duet(t, p, "", append([]string{"notebook", "run", in, "-o", out}, args...)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("duet notebook run %s (exit %d) wrote no notebook: %v\n%s%s", in, code, err, stdout, stderr)
	}
	testsvc.ValidateNotebooks(t, out)
	nb, err := notebooks.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return nb, stdout + stderr, code
}

// cellByID finds a cell of an executed notebook by the id it had.
func cellByID(t *testing.T, nb *notebooks.Notebook, id string) *notebooks.Cell {
	t.Helper()
	for _, c := range nb.Cells {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no cell %q", id)
	return nil
}

// result returns the text/plain table of a cell's execute_result.
func resultText(t *testing.T, c *notebooks.Cell) string {
	t.Helper()
	for _, o := range c.Outputs {
		if o.Type == notebooks.OutputExecuteResult {
			return o.DataText("text/plain")
		}
	}
	t.Fatalf("cell %s has no result: %+v", c.ID, c.Outputs)
	return ""
}

// chartValues returns the rows inline in a cell's Vega-Lite spec, and the
// mark and x, y, color fields it encodes.
func chartValues(t *testing.T, c *notebooks.Cell) (values []map[string]any, enc string) {
	t.Helper()
	var spec struct {
		Data struct {
			Values []map[string]any `json:"values"`
		} `json:"data"`
		Mark     struct{ Type string } `json:"mark"`
		Encoding map[string]struct {
			Field string `json:"field"`
			Type  string `json:"type"`
		} `json:"encoding"`
	}
	for _, o := range c.Outputs {
		if raw, ok := o.Data[notebooks.MIMEVegaLite]; ok {
			if err := json.Unmarshal(raw, &spec); err != nil {
				t.Fatal(err)
			}
			enc = spec.Mark.Type
			for _, ch := range []string{"x", "y", "color"} {
				if e, ok := spec.Encoding[ch]; ok {
					enc += " " + ch + "=" + e.Field + ":" + e.Type
				}
			}
			return spec.Data.Values, enc
		}
	}
	t.Fatalf("cell %s has no %s output", c.ID, notebooks.MIMEVegaLite)
	return nil, ""
}

// TestExampleNotebooks runs the three example notebooks through the CLI
// against a real server holding the demo dataset's schema, and checks every
// result exactly.
func TestExampleNotebooks(t *testing.T) {
	p := startServer(t, t.TempDir())
	loadNotebookFlights(t, p)

	t.Run("exploration", func(t *testing.T) {
		nb, log, code := runNotebook(t, p, filepath.Join(examplesDir, "exploration.ipynb"))
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, log)
		}
		if got, want := resultText(t, cellByID(t, nb, "size")), ""+
			"events | with_delay | origins | first_event         | last_event\n"+
			"-------+------------+---------+---------------------+--------------------\n"+
			"    10 |         10 |       3 | 2026-11-01 06:05:00 | 2026-11-02 07:00:00\n"+
			"(1 row)"; got != want {
			t.Fatalf("size:\n%s\nwant\n%s", got, want)
		}
		values, enc := chartValues(t, cellByID(t, nb, "hourly"))
		if enc != "line x=hour:temporal y=flights:quantitative color=origin:nominal" || len(values) != 9 {
			t.Fatalf("hourly chart %s with %d rows: %v", enc, len(values), values)
		}
		if got, want := resultText(t, cellByID(t, nb, "origins")), ""+
			"origin | flights | avg_delay | min_delay | max_delay\n"+
			"-------+---------+-----------+-----------+----------\n"+
			"AMS    |       4 |        53 |        12 |        95\n"+
			"BER    |       3 |      9.33 |        -3 |        31\n"+
			"CDG    |       3 |     22.67 |         5 |        33\n"+
			"(3 rows)"; got != want {
			t.Fatalf("origins:\n%s\nwant\n%s", got, want)
		}
		if got := resultText(t, cellByID(t, nb, "worst")); !strings.HasPrefix(got, ""+
			"date                | origin | delay\n"+
			"--------------------+--------+------\n"+
			"2026-11-01 08:00:00 | AMS    |    95\n"+
			"2026-11-02 06:10:00 | AMS    |    60\n") || !strings.HasSuffix(got, "2026-11-01 06:50:00 | BER    |    -3\n(10 rows)") {
			t.Fatalf("worst:\n%s", got)
		}
		if c := cellByID(t, nb, "setup"); c.ExecutionCount != nil || len(c.Outputs) != 0 {
			t.Fatalf("the Python setup cell looks executed: %+v", c)
		}
	})

	t.Run("daily report with parameters", func(t *testing.T) {
		nb, log, code := runNotebook(t, p, filepath.Join(examplesDir, "daily_report.ipynb"), "-p", "min_delay=40")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, log)
		}
		inj := nb.Cells[2]
		if !inj.HasTag(notebooks.TagInjectedParameters) || inj.Source != "# Parameters\nmin_delay = 40\n" || nb.Cells[1].ID != "parameters" {
			t.Fatalf("cell 3 is not the injected parameters: %q %v", inj.Source, inj.Tags())
		}
		if got, want := resultText(t, cellByID(t, nb, "summary")), ""+
			"flights | late | late_pct | avg_delay\n"+
			"--------+------+----------+----------\n"+
			"      8 |    2 |       25 |        31\n"+
			"(1 row)"; got != want {
			t.Fatalf("summary:\n%s\nwant\n%s", got, want)
		}
		values, enc := chartValues(t, cellByID(t, nb, "hourly"))
		wantHourly := []map[string]any{
			{"hour": "2026-11-01T06:00:00", "origin": "AMS", "flights": 2.0, "total_delay": 57.0},
			{"hour": "2026-11-01T06:00:00", "origin": "BER", "flights": 1.0, "total_delay": -3.0},
			{"hour": "2026-11-01T06:00:00", "origin": "CDG", "flights": 1.0, "total_delay": 33.0},
			{"hour": "2026-11-01T07:00:00", "origin": "BER", "flights": 1.0, "total_delay": 31.0},
			{"hour": "2026-11-01T07:00:00", "origin": "CDG", "flights": 1.0, "total_delay": 30.0},
			{"hour": "2026-11-01T08:00:00", "origin": "AMS", "flights": 1.0, "total_delay": 95.0},
			{"hour": "2026-11-01T08:00:00", "origin": "CDG", "flights": 1.0, "total_delay": 5.0},
		}
		if enc != "line x=hour:temporal y=flights:quantitative color=origin:nominal" || !reflect.DeepEqual(values, wantHourly) {
			t.Fatalf("hourly chart %s:\n%v\nwant\n%v", enc, values, wantHourly)
		}
		values, enc = chartValues(t, cellByID(t, nb, "late"))
		wantLate := []map[string]any{
			{"origin": "AMS", "flights": 3.0, "late": 2.0, "worst_delay": 95.0},
			{"origin": "BER", "flights": 2.0, "late": 0.0, "worst_delay": 31.0},
			{"origin": "CDG", "flights": 3.0, "late": 0.0, "worst_delay": 33.0},
		}
		if enc != "bar x=origin:nominal y=late:quantitative" || !reflect.DeepEqual(values, wantLate) {
			t.Fatalf("late chart %s:\n%v\nwant\n%v", enc, values, wantLate)
		}

		// Another day through its parameter: the second day's flights.
		nb, log, code = runNotebook(t, p, filepath.Join(examplesDir, "daily_report.ipynb"), "-p", "day=2026-11-02")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, log)
		}
		if got := resultText(t, cellByID(t, nb, "summary")); !strings.Contains(got, "      2 |    1 |       50 |        30\n") {
			t.Fatalf("summary of 2026-11-02:\n%s", got)
		}

		_, log, code = runNotebook2(t, p, filepath.Join(examplesDir, "daily_report.ipynb"), "-p", "min_delay=late")
		if code == 0 || !strings.Contains(log, `-p min_delay=late: min_delay is an integer (default 30); "late" is not one`) {
			t.Fatalf("a badly typed parameter: exit %d\n%s", code, log)
		}
	})

	t.Run("data quality", func(t *testing.T) {
		dq := filepath.Join(examplesDir, "data_quality.ipynb")
		nb, log, code := runNotebook(t, p, dq)
		if code != 0 {
			t.Fatalf("checks failed on clean data: exit %d\n%s", code, log)
		}
		for _, id := range []string{"nulls", "range", "origin", "duplicates", "view"} {
			c := cellByID(t, nb, id)
			if len(c.Outputs) != 1 || !strings.HasSuffix(resultText(t, c), "(0 rows)") {
				t.Fatalf("check %s on clean data: %+v", id, c.Outputs)
			}
		}
	})

	// The dirty events stay for the rest of the test: the data quality
	// notebook must now fail, naming each violation.
	t.Run("data quality finds violations", func(t *testing.T) {
		ingestLines(t, p, [][]byte{
			[]byte(`{"date": "2026-11-02T09:00:00Z", "delay": null, "origin": "BER"}` + "\n"),
			[]byte(`{"date": "2026-11-02T09:10:00Z", "delay": 2000, "origin": "CDG"}` + "\n"),
			[]byte(`{"date": "2026-11-02T09:20:00Z", "delay": 7, "origin": "ams1"}` + "\n"),
			notebookFlights[3],
		})
		nb, log, code := runNotebook(t, p, filepath.Join(examplesDir, "data_quality.ipynb"))
		if code == 0 || !strings.Contains(log, "4 checks failed (cell 7, 9, 11, 13) with 4 violating rows") {
			t.Fatalf("exit %d, want the failed checks named:\n%s", code, log)
		}
		want := map[string]string{
			"nulls": "" +
				"date                | origin\n" +
				"--------------------+-------\n" +
				"2026-11-02 09:00:00 | BER\n" +
				"(1 row)",
			"range": "" +
				"date                | origin | delay\n" +
				"--------------------+--------+------\n" +
				"2026-11-02 09:10:00 | CDG    |  2000\n" +
				"(1 row)",
			"origin": "" +
				"origin | events\n" +
				"-------+-------\n" +
				"ams1   |      1\n" +
				"(1 row)",
			"duplicates": "" +
				"date                | origin | delay | copies\n" +
				"--------------------+--------+-------+-------\n" +
				"2026-11-01 07:15:00 | BER    |    31 |      2\n" +
				"(1 row)",
		}
		for id, table := range want {
			c := cellByID(t, nb, id)
			if got := resultText(t, c); got != table {
				t.Errorf("check %s:\n%s\nwant\n%s", id, got, table)
			}
			if len(c.Outputs) != 2 || c.Outputs[1].Type != notebooks.OutputError || c.Outputs[1].Ename != "CheckFailed" ||
				c.Outputs[1].Evalue != "1 row violates the check" {
				t.Errorf("check %s outputs %+v", id, c.Outputs)
			}
		}
		if c := cellByID(t, nb, "view"); len(c.Outputs) != 1 || !strings.HasSuffix(resultText(t, c), "(0 rows)") {
			t.Errorf("the view check failed: %+v", c.Outputs)
		}
		var meta struct{ Status string }
		if err := json.Unmarshal(nb.Metadata["duet"], &meta); err != nil || meta.Status != "failed" {
			t.Errorf("notebook metadata %s", nb.Metadata["duet"])
		}
	})
}

// runNotebook2 runs the CLI where it may write no notebook.
func runNotebook2(t *testing.T, p *proc, in string, args ...string) (string, string, int) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.ipynb")
	stdout, stderr, code := duet(t, p, "", append([]string{"notebook", "run", in, "-o", out}, args...)...)
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("a run refused before it started wrote %s", out)
	}
	return stdout, stdout + stderr, code
}

// writeTestNotebook writes a notebook of the given cells (source, tags).
func writeTestNotebook(t *testing.T, cells ...*notebooks.Cell) string {
	t.Helper()
	for i, c := range cells {
		c.ID = "cell-" + string(rune('a'+i))
		if c.Metadata == nil {
			c.Metadata = map[string]json.RawMessage{}
		}
	}
	nb := &notebooks.Notebook{Cells: cells, Nbformat: 4, NbformatMinor: 5, Metadata: map[string]json.RawMessage{}}
	path := filepath.Join(t.TempDir(), "test.ipynb")
	var b bytes.Buffer
	if err := nb.Write(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNotebookParametersAndErrors checks typed parameters through the
// gateway (a quote in a value stays in the value), and that a failing cell
// is an error output, stops the run and fails the command, with the
// executed notebook still written.
func TestNotebookParametersAndErrors(t *testing.T) {
	p := startServer(t, t.TempDir())
	createFlightsAndDelays(t, p)
	ingestLines(t, p, notebookFlights)

	params := &notebooks.Cell{Type: notebooks.CellCode, Source: "origin = \"AMS\"\nratio = 0.25\nflag = True\nn = 41\nlabel = \"it's\"",
		Metadata: map[string]json.RawMessage{"tags": json.RawMessage(`["parameters"]`)}}
	path := writeTestNotebook(t,
		params,
		&notebooks.Cell{Type: notebooks.CellCode, Source: "%%sql\nSELECT count(*) AS n FROM raw.flights WHERE origin = :origin"},
		&notebooks.Cell{Type: notebooks.CellCode, Source: "%%sql\nSELECT :ratio * 2 AS r, NOT {{flag}} AS f, :n + 1 AS m, :label AS l, length(:label) AS len"},
	)

	nb, log, code := runNotebook(t, p, path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, log)
	}
	if got := resultText(t, nb.Cells[1]); got != "n\n-\n4\n(1 row)" {
		t.Fatalf("origin = AMS:\n%s", got)
	}
	if got := resultText(t, nb.Cells[2]); got != "r   | f     | m  | l    | len\n----+-------+----+------+----\n0.5 | false | 42 | it's |   4\n(1 row)" {
		t.Fatalf("typed parameters:\n%s", got)
	}

	// Pasted into the SQL, this value would match every row; bound, it is
	// an origin no flight has.
	nb, log, code = runNotebook(t, p, path, "-p", "origin=AMS' OR '1'='1", "-p", "label=x'); DROP TABLE t; --", "-p", "ratio=1.5", "-p", "flag=false")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, log)
	}
	if got := resultText(t, nb.Cells[2]); got != "n\n-\n0\n(1 row)" {
		t.Fatalf("a quote in a parameter changed the query:\n%s", got)
	}
	if got := resultText(t, nb.Cells[3]); got != "r | f    | m  | l                     | len\n--+------+----+-----------------------+----\n3 | true | 42 | x'); DROP TABLE t; -- |  21\n(1 row)" {
		t.Fatalf("overridden parameters:\n%s", got)
	}

	// A failing cell: the error output names the engine's error, the cell
	// after it does not run, and the command exits non-zero.
	bad := writeTestNotebook(t,
		&notebooks.Cell{Type: notebooks.CellMarkdown, Source: "# Broken"},
		&notebooks.Cell{Type: notebooks.CellCode, Source: "%%sql\nSELECT count(*) AS n FROM raw.flights"},
		&notebooks.Cell{Type: notebooks.CellCode, Source: "%%sql\nSELECT * FROM views.no_such_view"},
		&notebooks.Cell{Type: notebooks.CellCode, Source: "%%sql\nSELECT 1 AS never"},
	)
	nb, log, code = runNotebook(t, p, bad)
	if code != 1 || !strings.Contains(log, "duet: "+bad+": cell 3 failed: ") || !strings.Contains(log, "no_such_view") {
		t.Fatalf("exit %d, want 1 and the failed cell named:\n%s", code, log)
	}
	if got := resultText(t, nb.Cells[1]); got != "n\n--\n10\n(1 row)" {
		t.Fatalf("cell before the failure:\n%s", got)
	}
	failed := nb.Cells[2]
	if len(failed.Outputs) != 1 || failed.Outputs[0].Type != notebooks.OutputError || failed.Outputs[0].Ename != "TABLE_NOT_FOUND" ||
		!strings.Contains(failed.Outputs[0].Evalue, "no_such_view") || *failed.ExecutionCount != 2 {
		t.Fatalf("failed cell %+v", failed.Outputs)
	}
	t.Logf("error output: %s: %s", failed.Outputs[0].Ename, failed.Outputs[0].Evalue)
	if never := nb.Cells[3]; never.ExecutionCount != nil || len(never.Outputs) != 0 {
		t.Fatalf("the cell after the failure ran: %+v", never)
	}
}

// TestNotebookJobs runs notebooks as jobs on executors: submitted from the
// CLI and the API, the executed notebook fetched as the job's output, a
// failing cell failing the job, bad parameters refused at submission.
func TestNotebookJobs(t *testing.T) {
	p := startServer(t, t.TempDir(), "--executor-standby", "1")
	loadNotebookFlights(t, p)

	out, errOut, code := duet(t, p, "", "job", "submit", "--notebook", filepath.Join(examplesDir, "daily_report.ipynb"), "-p", "min_delay=40", "--wait", "--poll", "50ms")
	m := regexp.MustCompile(`executed notebook: duet job output (\S+) notebook\.ipynb`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("job submit --notebook: exit %d\n%s%s", code, out, errOut)
	}
	id := m[1]
	j, err := p.client.GetJob(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Kind != "notebook" || j.State != "succeeded" || j.SQL != "" || j.Params["min_delay"] != "40" || j.Executor == nil || j.Executor.Cluster != "local" {
		t.Fatalf("job %+v", j)
	}
	path := filepath.Join(t.TempDir(), "report.ipynb")
	mustDuet(t, p, "", "job", "output", id, "notebook.ipynb", "-o", path)
	testsvc.ValidateNotebooks(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := notebooks.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if nb.Cells[2].Source != "# Parameters\nmin_delay = 40\n" {
		t.Fatalf("injected cell %q", nb.Cells[2].Source)
	}
	if got, want := resultText(t, cellByID(t, nb, "summary")), ""+
		"flights | late | late_pct | avg_delay\n"+
		"--------+------+----------+----------\n"+
		"      8 |    2 |       25 |        31\n"+
		"(1 row)"; got != want {
		t.Fatalf("summary of the job's notebook:\n%s\nwant\n%s", got, want)
	}
	if values, _ := chartValues(t, cellByID(t, nb, "late")); len(values) != 3 || values[0]["late"] != 2.0 {
		t.Fatalf("late chart of the job's notebook: %v", values)
	}
	files, err := p.client.JobOutputFiles(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if !reflect.DeepEqual(names, []string{"stdout", "stderr", "manifest.json", "notebook.ipynb"}) {
		t.Fatalf("output files %v", names)
	}
	if status, body := getOutput(t, p, id, "stderr", ""); status != 200 || !strings.Contains(body, "cell 8 (sql)") {
		t.Fatalf("executor stderr (%d):\n%s", status, body)
	}

	// Through the API: a notebook whose second SQL cell fails.
	bad := &notebooks.Notebook{Nbformat: 4, NbformatMinor: 5, Metadata: map[string]json.RawMessage{}, Cells: []*notebooks.Cell{
		{ID: "p", Type: notebooks.CellCode, Source: "origin = \"AMS\"", Metadata: map[string]json.RawMessage{"tags": json.RawMessage(`["parameters"]`)}},
		{ID: "ok", Type: notebooks.CellCode, Source: "%%sql\nSELECT count(*) AS n FROM raw.flights WHERE origin = :origin", Metadata: map[string]json.RawMessage{}},
		{ID: "bad", Type: notebooks.CellCode, Source: "%%sql\nSELECT * FROM views.no_such_view", Metadata: map[string]json.RawMessage{}},
	}}
	var doc bytes.Buffer
	if err := bad.Write(&doc); err != nil {
		t.Fatal(err)
	}
	req := api.JobRequest{Kind: "notebook", Notebook: doc.Bytes(), Params: map[string]string{"origin": "CDG"}}
	j = waitJob(t, p, mustPostJob(t, p, req).ID)
	if j.State != "failed" || !strings.Contains(j.Error, "cell 4 failed: TABLE_NOT_FOUND") {
		t.Fatalf("failing notebook job: %s %q", j.State, j.Error)
	}
	status, body := getOutput(t, p, j.ID, "notebook.ipynb", "")
	if status != 200 {
		t.Fatalf("GET notebook.ipynb of the failed job: %d %s", status, body)
	}
	failed := filepath.Join(t.TempDir(), "failed.ipynb")
	if err := os.WriteFile(failed, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	testsvc.ValidateNotebooks(t, failed)
	nb, err = notebooks.Read(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := resultText(t, cellByID(t, nb, "ok")); got != "n\n-\n3\n(1 row)" {
		t.Fatalf("cell before the failure:\n%s", got)
	}
	if o := cellByID(t, nb, "bad").Outputs; len(o) != 1 || o[0].Ename != "TABLE_NOT_FOUND" {
		t.Fatalf("failed cell outputs %+v", o)
	}

	// Refused at submission: a parameter the notebook lacks, a notebook
	// that is none, and a notebook for another kind.
	for _, c := range []struct {
		req  api.JobRequest
		want string
	}{
		{api.JobRequest{Kind: "notebook", Notebook: doc.Bytes(), Params: map[string]string{"origni": "AMS"}}, "the notebook has no parameter origni (its parameters: origin)"},
		{api.JobRequest{Kind: "notebook", Notebook: json.RawMessage(`{"cells": []}`)}, "notebook: not a notebook: no nbformat version"},
		{api.JobRequest{Kind: "notebook"}, "a notebook job needs its notebook"},
		{api.JobRequest{Kind: "sql", SQL: "SELECT 1", Notebook: doc.Bytes()}, "only notebook jobs take a notebook"},
	} {
		if _, status, body := postJob(t, p, c.req); status != 400 || !strings.Contains(body, c.want) {
			t.Errorf("POST /v1/jobs %s: %d %s, want 400 with %q", c.req.Kind, status, body, c.want)
		}
	}
}

// TestNotebookJobsRunAsTheSubmitter checks that a notebook job's queries
// run as the user who submitted it, under the read rules: the executor gets
// no credential of its own, only its job's gateway socket.
func TestNotebookJobsRunAsTheSubmitter(t *testing.T) {
	dir := t.TempDir()
	const secret = "duet-notebook-test-secret-of-at-least-32-bytes"
	secretFile, authzFile := filepath.Join(dir, "jwt-secret"), filepath.Join(dir, "authz.json")
	for name, content := range map[string]string{
		secretFile: secret + "\n",
		authzFile: `{"read": [{"user": "alice", "tables": ["views.*", "raw.*"]}, {"user": "bob", "tables": ["raw.*"]}],
			"ingest": [{"user": "alice", "datasets": ["*"]}], "admin": [{"user": "alice"}, {"user": "bob"}]}`,
	} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := startServer(t, filepath.Join(dir, "data"), "--auth-jwt-secret-file", secretFile, "--authz-file", authzFile)
	as := func(user string) *client.Client {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.NewWithConfig(p.base, nil, client.Config{Credentials: client.Credentials{Token: tok}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob := as("alice"), as("bob")
	ctx := ctxT(t)
	if _, err := alice.CreateDataset(ctx, flightsSpec); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateView(ctx, api.ViewRequest{Name: "delays", SQL: viewSQL}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Ingest(ctx, "flights", client.ContentTypeNDJSON, bytes.Join(notebookFlights, nil)); err != nil {
		t.Fatal(err)
	}
	nb, err := os.ReadFile(filepath.Join(examplesDir, "exploration.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	for user, c := range map[string]*client.Client{"alice": alice, "bob": bob} {
		j, err := c.SubmitJob(ctx, api.JobRequest{Kind: api.JobKindNotebook, Notebook: nb})
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if j, err = c.WaitJob(ctx, j.ID, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		switch {
		case j.User != user:
			t.Errorf("%s's job belongs to %q", user, j.User)
		case user == "alice" && j.State != api.JobSucceeded:
			t.Errorf("alice's notebook job: %s %q", j.State, j.Error)
		case user == "bob" && (j.State != api.JobFailed || !strings.Contains(j.Error, "PERMISSION_DENIED") || !strings.Contains(j.Error, "views.delays")):
			t.Errorf("bob may not read views.delays, yet his notebook job: %s %q", j.State, j.Error)
		}
		var out bytes.Buffer
		if _, err := c.JobOutput(ctx, j.ID, "notebook.ipynb", 0, &out); err != nil {
			t.Fatalf("%s's executed notebook: %v", user, err)
		}
		executed, err := notebooks.Read(&out)
		if err != nil {
			t.Fatal(err)
		}
		// raw.flights is readable by both: the first query answers either way.
		if got := resultText(t, cellByID(t, executed, "size")); !strings.HasPrefix(got, "events | with_delay") || !strings.Contains(got, "    10 |         10 |") {
			t.Errorf("%s's first cell:\n%s", user, got)
		}
	}
}
