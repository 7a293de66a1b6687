package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/notebooks"
)

func newNotebookCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notebook",
		Short: "Run Jupyter notebooks whose %%sql cells query the server",
	}
	cmd.AddCommand(newNotebookRunCmd(a))
	return cmd
}

// notebookRunOptions are the flags of "duet notebook run".
type notebookRunOptions struct {
	output  string
	params  []string
	user    string
	maxRows int
}

func newNotebookRunCmd(a *app) *cobra.Command {
	var o notebookRunOptions
	cmd := &cobra.Command{
		Use:   "run IN.ipynb [-p name=value]... [-o OUT.ipynb]",
		Short: "Execute a notebook's SQL cells in order and write the executed notebook",
		Long: `Execute a Jupyter notebook (nbformat 4) against the server, as Papermill does
for Python: its %%sql cells (JupySQL's cell magic) run in order through the
SQL gateway, and the executed notebook, each SQL cell with its result as a
text and an HTML table (and a Vega-Lite chart where the cell asks for one),
is written to -o (default IN.out.ipynb; - for stdout).

The cell tagged "parameters" holds defaults as Python assignments
(day = "2026-11-01", min_delay = 30); -p name=value overrides one, typed like
its default, and the output gets an "injected-parameters" cell after it. SQL
refers to a parameter as :name or {{name}}: its value is bound by the driver,
never pasted into the SQL. Code cells that are not SQL are left unexecuted.

A failing cell gets a Jupyter error output and stops the run; cells tagged
"check" fail the run when their query returns rows (the violations). Either
way the notebook is written and the command exits non-zero.

  duet notebook run daily_report.ipynb -p day=2026-11-02 -o report-2026-11-02.ipynb`,
		Args: argsExactly("IN.ipynb"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runNotebook(cmd, a, args[0], o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.output, "output", "o", "", "where the executed notebook goes (default IN.out.ipynb beside IN; - for stdout)")
	fl.StringArrayVarP(&o.params, "param", "p", nil, "override a parameter as name=value; repeat for more")
	fl.StringVar(&o.user, "user", "", "user the queries run as (default $DUET_USER, else the token's user with $DUET_TOKEN, else $USER, else duet)")
	fl.IntVar(&o.maxRows, "max-rows", 1000, "rows each result table shows (the others are counted)")
	return cmd
}

func runNotebook(cmd *cobra.Command, a *app, in string, o notebookRunOptions) error {
	if o.maxRows < 1 {
		return fmt.Errorf("--max-rows %d: give a positive number", o.maxRows)
	}
	overrides, err := parseJobParams(o.params)
	if err != nil {
		return err
	}
	src, err := readFileOrStdin(in, a.io.in)
	if err != nil {
		return err
	}
	nb, err := notebooks.Read(bytes.NewReader(src))
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	// Bad parameters are refused before anything connects.
	if _, _, err := nb.ApplyParameters(overrides); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	out := o.output
	if out == "" {
		if in == "-" {
			return errors.New("-o: give where the executed notebook goes when it is read from stdin")
		}
		out = strings.TrimSuffix(in, filepath.Ext(in)) + ".out.ipynb"
	}
	user := o.user
	if user == "" {
		user = defaultUser(a.getenv)
	}
	c, err := a.client(client.Config{})
	if err != nil {
		return err
	}
	// The driver retries refused connections for minutes; say at once when
	// nothing listens.
	if err := c.CheckReachable(cmd.Context()); err != nil {
		return err
	}
	db, err := sql.Open("trino", c.TrinoDSN(user))
	if err != nil {
		return fmt.Errorf("open SQL connection: %w", err)
	}
	defer db.Close()
	runner, err := notebooks.NewRunner(db, notebooks.Config{MaxRows: o.maxRows, Progress: func(r notebooks.CellReport) {
		fmt.Fprintln(a.io.err, cellReportLine(r))
	}})
	if err != nil {
		return err
	}
	start := time.Now()
	executed, runErr := runner.Run(cmd.Context(), nb, overrides)
	if executed == nil {
		return fmt.Errorf("%s: %w", in, runErr)
	}
	if err := writeNotebook(out, executed, a.io.out); err != nil {
		return err
	}
	summary := a.io.out
	if out == "-" {
		summary = a.io.err
	}
	if runErr != nil {
		return fmt.Errorf("%s: %w (the executed notebook %s shows it)", in, runErr, out)
	}
	fmt.Fprintf(summary, "wrote %s (%s)\n", out, formatDuration(time.Since(start)))
	return nil
}

// cellReportLine is the progress line of one code cell.
func cellReportLine(r notebooks.CellReport) string {
	line := fmt.Sprintf("cell %d  %s", r.Cell, r.Kind)
	if r.Kind == "sql" || r.Kind == "check" {
		line += "  " + plural(int64(r.Rows), "row") + "  " + formatDuration(r.Elapsed)
	}
	if r.Kind == "skipped" {
		line += "  (not SQL)"
	}
	if r.Err != nil {
		line += "  " + r.Err.Error()
	}
	return line
}

// writeNotebook writes the notebook to path, or to stdout for "-".
func writeNotebook(path string, nb *notebooks.Notebook, stdout io.Writer) error {
	if path == "-" {
		return nb.Write(stdout)
	}
	var b bytes.Buffer
	if err := nb.Write(&b); err != nil {
		return err
	}
	return writeFileAtomically(path, b.Bytes())
}

// writeFileAtomically writes to a temporary file renamed into place, so
// that a reader never sees half a file.
func writeFileAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Chmod(0o644), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
