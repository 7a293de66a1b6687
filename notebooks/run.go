package notebooks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/trinodb/trino-go-client/trino"

	"github.com/duet-analytics/duet/internal/resulttext"
)

// TagCheck marks a data-quality check: a SQL cell whose result lists the
// violations. Any row fails the run; later cells still run, so one run
// reports every failing check.
const TagCheck = "check"

// Queryer runs one SQL statement with arguments bound to its ? placeholders:
// a *sql.DB of trino-go-client (driver "trino") pointed at the duet gateway.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Config are a runner's settings; the zero value means the defaults.
type Config struct {
	// MaxRows is the number of rows a cell's tables show (default 1000);
	// the rest are counted and the table says so.
	MaxRows int
	// MaxChartRows is the number of rows a chart's data holds inline
	// (default 5000).
	MaxChartRows int
	// Progress, when set, is told about each code cell once it is done.
	Progress func(CellReport)
	// Now is the clock of the run's timestamps (default time.Now).
	Now func() time.Time
}

func (c *Config) applyDefaults() {
	if c.MaxRows == 0 {
		c.MaxRows = 1000
	}
	if c.MaxChartRows == 0 {
		c.MaxChartRows = 5000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	if c.MaxRows < 0 {
		return fmt.Errorf("MaxRows %d: give a positive number", c.MaxRows)
	}
	if c.MaxChartRows < 0 {
		return fmt.Errorf("MaxChartRows %d: give a positive number", c.MaxChartRows)
	}
	return nil
}

// CellReport tells what became of one code cell of a run.
type CellReport struct {
	// Cell is the cell's position in the output notebook, from 1.
	Cell int
	// Kind is "parameters", "sql", "check" or "skipped" (a code cell that
	// is not SQL: it is left unexecuted).
	Kind    string
	Rows    int
	Elapsed time.Duration
	// Err is the cell's error output, or a failed check, if any.
	Err error
}

// CellError is a cell that failed: the run stopped there.
type CellError struct {
	Cell    int    // position in the output notebook, from 1
	Name    string // the error's name, as the output's ename
	Message string
}

func (e *CellError) Error() string {
	return fmt.Sprintf("cell %d failed: %s: %s", e.Cell, e.Name, e.Message)
}

// ChecksFailedError lists the check cells that found violations.
type ChecksFailedError struct {
	Cells      []int // positions in the output notebook, from 1
	Violations int   // rows over all of them
}

func (e *ChecksFailedError) Error() string {
	cells := make([]string, len(e.Cells))
	for i, c := range e.Cells {
		cells[i] = fmt.Sprint(c)
	}
	noun := "check"
	if len(e.Cells) > 1 {
		noun = "checks"
	}
	return fmt.Sprintf("%d %s failed (cell %s) with %s", len(e.Cells), noun, strings.Join(cells, ", "), violatingRows(e.Violations))
}

func violatingRows(n int) string {
	if n == 1 {
		return "1 violating row"
	}
	return fmt.Sprintf("%d violating rows", n)
}

// Runner executes notebooks against a duet server.
type Runner struct {
	db  Queryer
	cfg Config
}

// NewRunner makes a runner that sends each SQL statement to db.
func NewRunner(db Queryer, cfg Config) (*Runner, error) {
	if db == nil {
		return nil, errors.New("notebooks: no SQL connection")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notebooks: %w", err)
	}
	cfg.applyDefaults()
	return &Runner{db: db, cfg: cfg}, nil
}

// Run executes the notebook's cells in order with the parameters overridden
// by overrides (name to text, typed like each default), and returns the
// executed notebook: markdown copied, SQL cells with their results, the
// injected-parameters cell after the parameters cell.
//
// A notebook that cannot start (bad parameters, overrides of unknown ones)
// returns a nil notebook and the error. Once it runs, the notebook is always
// returned; a failing cell gets an error output and stops the run (the error
// is a *CellError), and failed checks end it with a *ChecksFailedError.
func (r *Runner) Run(ctx context.Context, in *Notebook, overrides map[string]string) (*Notebook, error) {
	nb := cloneForRun(in)
	params, injected, err := nb.ApplyParameters(overrides)
	if err != nil {
		return nil, err
	}
	paramCell := nb.parametersCell()
	if len(injected) > 0 {
		cell := &Cell{ID: uniqueID(nb, TagInjectedParameters), Type: CellCode, Source: injectedSource(injected),
			Metadata: map[string]json.RawMessage{"tags": json.RawMessage(`["` + TagInjectedParameters + `"]`)}}
		nb.Cells = slices.Insert(nb.Cells, paramCell+1, cell)
	}

	started := r.cfg.Now()
	count := 0
	var (
		runErr    error
		checkErr  ChecksFailedError
		stoppedAt = -1
	)
	for i, c := range nb.Cells {
		if c.Type != CellCode {
			continue
		}
		c.Outputs, c.ExecutionCount = nil, nil
		if stoppedAt >= 0 {
			continue
		}
		report := CellReport{Cell: i + 1}
		body, isSQL := sqlBody(c)
		cellStart := time.Now()
		switch {
		case c.HasTag(TagParameters) || c.HasTag(TagInjectedParameters):
			count++
			c.ExecutionCount = intPtr(count)
			report.Kind = "parameters"
		case !isSQL:
			report.Kind = "skipped"
		default:
			count++
			c.ExecutionCount = intPtr(count)
			report.Kind = "sql"
			if c.HasTag(TagCheck) {
				report.Kind = "check"
			}
			rows, violations, err := r.runSQLCell(ctx, c, body, params, count, report.Kind == "check")
			report.Rows = rows
			switch {
			case err != nil:
				runErr, stoppedAt = &CellError{Cell: i + 1, Name: err.name, Message: err.message}, i
				report.Err = runErr
			case violations > 0:
				checkErr.Cells = append(checkErr.Cells, i+1)
				checkErr.Violations += violations
				report.Err = fmt.Errorf("check failed: %s", violatingRows(violations))
			}
		}
		report.Elapsed = time.Since(cellStart)
		if r.cfg.Progress != nil {
			r.cfg.Progress(report)
		}
	}
	if runErr == nil && len(checkErr.Cells) > 0 {
		runErr = &checkErr
	}
	status := "succeeded"
	if runErr != nil {
		status = "failed"
	}
	paramValues := make(map[string]any, len(params))
	for _, p := range params {
		paramValues[p.Name] = p.Value
	}
	meta, err := json.Marshal(map[string]any{
		"parameters":  paramValues,
		"started_at":  started.UTC().Format(time.RFC3339Nano),
		"finished_at": r.cfg.Now().UTC().Format(time.RFC3339Nano),
		"status":      status,
	})
	if err != nil {
		return nil, fmt.Errorf("run metadata: %w", err)
	}
	nb.Metadata["duet"] = meta
	return nb, runErr
}

// cellFailure is what a failed cell's error output says.
type cellFailure struct{ name, message string }

// runSQLCell runs the cell's statements and sets its outputs: the last
// statement's result as tables (and a chart if asked), or an error output.
// For a check, violations are the result's rows.
func (r *Runner) runSQLCell(ctx context.Context, c *Cell, body string, params []Param, count int, check bool) (rows, violations int, fail *cellFailure) {
	failWith := func(name, msg string, trace ...string) (int, int, *cellFailure) {
		c.Outputs = append(c.Outputs, Output{Type: OutputError, Ename: name, Evalue: msg,
			Traceback: append([]string{name + ": " + msg}, trace...)})
		return rows, 0, &cellFailure{name, msg}
	}
	chart, err := cellChart(c)
	if err != nil {
		return failWith("ChartError", err.Error())
	}
	stmts, err := compileSQL(body, params)
	if err != nil {
		return failWith("ParameterError", err.Error())
	}
	var res result
	for k, st := range stmts {
		res, err = r.query(ctx, st)
		if err != nil {
			name, msg := describeQueryError(err)
			where := fmt.Sprintf("statement %d of %d:", k+1, len(stmts))
			return failWith(name, msg, where, st.SQL)
		}
	}
	rows = res.Total
	shown := res.shown(r.cfg.MaxRows)
	data := map[string]json.RawMessage{
		"text/plain": mustJSON(lines(plainTable(shown, r.cfg.MaxRows))),
		"text/html":  mustJSON(lines(htmlTable(shown, r.cfg.MaxRows))),
	}
	if chart != nil {
		chartRows := res.Rows[:min(len(res.Rows), r.cfg.MaxChartRows)]
		spec, err := vegaLiteSpec(chart, res.Columns, chartRows)
		if err != nil {
			return failWith("ChartError", err.Error())
		}
		data[MIMEVegaLite] = mustJSON(spec)
	}
	c.Outputs = append(c.Outputs, Output{Type: OutputExecuteResult, ExecutionCount: intPtr(count), Data: data})
	if check && res.Total > 0 {
		msg := fmt.Sprintf("%d rows violate the check", res.Total)
		if res.Total == 1 {
			msg = "1 row violates the check"
		}
		c.Outputs = append(c.Outputs, Output{Type: OutputError, Ename: "CheckFailed", Evalue: msg,
			Traceback: []string{"CheckFailed: " + msg, "the rows above are the violations"}})
		return rows, res.Total, nil
	}
	return rows, 0, nil
}

// query runs one statement, keeping the first MaxRows rows (the rows after
// them, up to the server's own bound, are counted only) and an extra
// MaxChartRows for charts.
func (r *Runner) query(ctx context.Context, st statement) (result, error) {
	var res result
	rs, err := r.db.QueryContext(ctx, st.SQL, st.Args...)
	if err != nil {
		return res, err
	}
	defer rs.Close()
	types, err := rs.ColumnTypes()
	if err != nil {
		return res, fmt.Errorf("read result columns: %w", err)
	}
	res.Columns = resulttext.Columns(types)
	for i := range res.Columns {
		// A time's fraction is shown when it has one, not padded to the
		// column's precision: a report reads better so.
		res.Columns[i].Precision = -1
	}
	keep := max(r.cfg.MaxRows, r.cfg.MaxChartRows)
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rs.Next() {
		res.Total++
		if len(res.Rows) >= keep {
			continue
		}
		if err := rs.Scan(ptrs...); err != nil {
			return res, fmt.Errorf("read row %d: %w", res.Total, err)
		}
		res.Rows = append(res.Rows, slices.Clone(vals))
	}
	if err := rs.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// shown trims a result to the rows its tables show.
func (res result) shown(maxRows int) result {
	res.Rows = res.Rows[:min(len(res.Rows), maxRows)]
	return res
}

// describeQueryError names an error as the engine did (SYNTAX_ERROR,
// TABLE_NOT_FOUND...) with its message.
func describeQueryError(err error) (name, message string) {
	var te *trino.ErrTrino
	if errors.As(err, &te) && te.Message != "" {
		return firstNonEmpty(te.ErrorName, "QueryError"), te.Message
	}
	var tv trino.ErrTrino
	if errors.As(err, &tv) && tv.Message != "" {
		return firstNonEmpty(tv.ErrorName, "QueryError"), tv.Message
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "Canceled", err.Error()
	}
	return "QueryError", err.Error()
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// parametersCell is the index of the first code cell tagged parameters, or -1.
func (nb *Notebook) parametersCell() int {
	return slices.IndexFunc(nb.Cells, func(c *Cell) bool { return c.Type == CellCode && c.HasTag(TagParameters) })
}

// ApplyParameters reads the defaults of the notebook's parameters cell and
// applies overrides to them (see ApplyOverrides), so that a caller can
// refuse bad parameters before it connects anywhere.
func (nb *Notebook) ApplyParameters(overrides map[string]string) (all, injected []Param, err error) {
	var defaults []Param
	if i := nb.parametersCell(); i >= 0 {
		if defaults, err = ParseParameters(nb.Cells[i].Source); err != nil {
			return nil, nil, fmt.Errorf("parameters cell (cell %d): %w", i+1, err)
		}
	}
	return ApplyOverrides(defaults, overrides)
}

// cloneForRun copies the notebook so that a run does not change its input,
// and drops injected-parameters cells of an earlier run (Papermill does too).
func cloneForRun(in *Notebook) *Notebook {
	nb := &Notebook{Metadata: maps.Clone(in.Metadata), Nbformat: in.Nbformat, NbformatMinor: in.NbformatMinor}
	if nb.Metadata == nil {
		nb.Metadata = map[string]json.RawMessage{}
	}
	for _, c := range in.Cells {
		if c.Type == CellCode && c.HasTag(TagInjectedParameters) {
			continue
		}
		cc := *c
		cc.Metadata = maps.Clone(c.Metadata)
		cc.Outputs = slices.Clone(c.Outputs)
		nb.Cells = append(nb.Cells, &cc)
	}
	return nb
}

// uniqueID returns base, or base-2, base-3... whichever no cell has.
func uniqueID(nb *Notebook, base string) string {
	id := base
	for n := 2; slices.ContainsFunc(nb.Cells, func(c *Cell) bool { return c.ID == id }); n++ {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	return id
}

func intPtr(n int) *int { return &n }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("notebooks: encode output: %v", err))
	}
	return b
}
