package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/notebooks"
)

// A notebook without SQL cells runs without the SQL gateway: parameters,
// markdown and a Python cell the runner leaves unexecuted.
const paramsOnlyNotebook = `{
 "cells": [
  {"cell_type": "markdown", "id": "md", "metadata": {}, "source": "# Report"},
  {"cell_type": "code", "execution_count": null, "id": "params", "metadata": {"tags": ["parameters"]}, "outputs": [],
   "source": "day = \"2026-11-01\"\nmin_delay = 30"},
  {"cell_type": "code", "execution_count": 7, "id": "py", "metadata": {}, "outputs": [], "source": "print(day)"}
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
`

func TestNotebookRunWritesBesideItsInput(t *testing.T) {
	_, url := newFakeAPI(t)
	in := writeFile(t, "report.ipynb", paramsOnlyNotebook)
	r := runCLI(t, url, "", "notebook", "run", in, "-p", "min_delay=45")
	out := strings.TrimSuffix(in, ".ipynb") + ".out.ipynb"
	if r.code != 0 || !strings.HasPrefix(r.stdout, "wrote "+out+" (") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r.stderr != "cell 2  parameters\ncell 3  parameters\ncell 4  skipped  (not SQL)\n" {
		t.Fatalf("progress %q", r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := notebooks.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(nb.Cells) != 4 || nb.Cells[2].Source != "# Parameters\nmin_delay = 45\n" || nb.Cells[3].ExecutionCount != nil {
		t.Fatalf("executed notebook:\n%s", b)
	}

	// -o - writes the notebook to stdout and the summary to stderr.
	r = runCLI(t, url, "", "notebook", "run", in, "-o", "-")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "{\n \"cells\": [") || !strings.Contains(r.stderr, "wrote - (") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestNotebookRunRefusesBeforeConnecting(t *testing.T) {
	// Nothing listens here: each refusal must come before any connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	in := writeFile(t, "report.ipynb", paramsOnlyNotebook)
	out := filepath.Join(t.TempDir(), "out.ipynb")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"notebook", "run"}, `duet: missing IN.ipynb (usage: duet notebook run IN.ipynb)`},
		{[]string{"notebook", "run", in, "-p", "day"}, `duet: -p "day": give key=value`},
		{[]string{"notebook", "run", in, "-p", "dya=2026-11-02"}, `duet: ` + in + `: -p dya: the notebook has no parameter dya (its parameters: day, min_delay)`},
		{[]string{"notebook", "run", in, "-p", "min_delay=soon"}, `duet: ` + in + `: -p min_delay=soon: min_delay is an integer (default 30); "soon" is not one`},
		{[]string{"notebook", "run", in, "--max-rows", "0"}, `duet: --max-rows 0: give a positive number`},
	} {
		runCLI(t, url, paramsOnlyNotebook, append(c.args, "-o", out)...).wantFailure(t, c.want)
	}
	runCLI(t, url, paramsOnlyNotebook, "notebook", "run", "-").
		wantFailure(t, `duet: -o: give where the executed notebook goes when it is read from stdin`)
	v3 := writeFile(t, "v3.ipynb", `{"nbformat": 3, "worksheets": []}`)
	runCLI(t, url, "", "notebook", "run", v3, "-o", out).
		wantFailure(t, "duet: "+v3+": nbformat 3 notebooks are not supported: convert it to version 4 (jupyter nbconvert --to notebook --nbformat 4)")
	runCLI(t, url, "", "notebook", "run", in, "-o", out).
		wantFailure(t, `duet: cannot reach duet server at `+url+`: connection refused (start it with "duet serve")`)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused run wrote %s (%v)", out, err)
	}
}

func TestJobSubmitNotebook(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	in := writeFile(t, "report.ipynb", paramsOnlyNotebook)
	r := runCLI(t, url, "", "job", "submit", "--notebook", in, "-p", "day=2026-11-02", "--id", "nb1")
	if r.code != 0 || len(f.submitted) != 1 {
		t.Fatalf("exit %d, stderr %q, submitted %d", r.code, r.stderr, len(f.submitted))
	}
	req := f.submitted[0]
	if req.Kind != "notebook" || req.SQL != "" || req.Params["day"] != "2026-11-02" || req.ID != "nb1" {
		t.Fatalf("request %+v", req)
	}
	nb, err := notebooks.Read(bytes.NewReader(req.Notebook))
	if err != nil {
		t.Fatal(err)
	}
	// The earlier run's execution count is not sent.
	if len(nb.Cells) != 3 || nb.Cells[2].ExecutionCount != nil || nb.Cells[1].Source != "day = \"2026-11-01\"\nmin_delay = 30" {
		t.Fatalf("sent notebook %s", req.Notebook)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--notebook", in, "--sql", "SELECT 1"}, "--notebook runs a notebook: --sql, --sql-file and --output are for sql jobs"},
		{[]string{"--notebook", in, "--output", "jobs.x"}, "--notebook runs a notebook: --sql, --sql-file and --output are for sql jobs"},
		{[]string{"--kind", "backfill", "--view", "v", "--notebook", in}, "--notebook is for --kind notebook, not backfill"},
		{[]string{"--kind", "notebook"}, "--kind notebook: give the notebook with --notebook NB.ipynb"},
		{[]string{"--notebook", in, "-p", "dya=1"}, in + ": -p dya: the notebook has no parameter dya (its parameters: day, min_delay)"},
		{[]string{"--notebook", writeFile(t, "x.ipynb", "{}")}, "x.ipynb: not a notebook: no nbformat version"},
	} {
		r := runCLI(t, url, "", append([]string{"job", "submit"}, tc.args...)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "duet: ") || !strings.HasSuffix(r.stderr, tc.want+"\n") {
			t.Errorf("job submit %v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if len(f.submitted) != 1 {
		t.Errorf("bad flags still sent %+v", f.submitted[1:])
	}
}
