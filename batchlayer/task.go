package batchlayer

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/engine"
)

// Files an executor's working directory holds.
const (
	TaskFile   = "task.json"
	ResultFile = "result.json"
)

// Task is what the control plane asks an executor to do: run SQL and write
// its result as Parquet into Output, one Hive partition per value of
// PartitionExpr when it is set.
type Task struct {
	// SQL is the query; empty means an empty result (a backfill of days
	// without records).
	SQL             string `json:"sql"`
	Output          string `json:"output"`
	PartitionColumn string `json:"partition_column,omitempty"`
	PartitionExpr   string `json:"partition_expr,omitempty"`
	// RowGroupRows bounds the output's row groups; 0 means a million, large
	// groups for the small partial files of views.
	RowGroupRows int      `json:"row_group_rows,omitempty"`
	Memory       string   `json:"memory,omitempty"`
	Threads      int      `json:"threads,omitempty"`
	AllowedDirs  []string `json:"allowed_dirs"`

	// A script task (a sql job) runs Setup (the control plane's: the
	// relations the script reads), then Script's statements, binding
	// Params to their $name parameters; the last statement is the query
	// whose rows SQL stands for.
	Setup  []string          `json:"setup,omitempty"`
	Script string            `json:"script,omitempty"`
	Params map[string]string `json:"params,omitempty"`

	// Trino, when set, runs SQL on a Trino cluster; the executor writes
	// its answer.
	Trino *TrinoTask `json:"trino,omitempty"`
}

// Progress is told what a task is doing, for its heartbeats.
type Progress interface {
	Stage(stage string)
	Rows(n int64)
}

// Result is what the executor reports back.
type Result struct {
	Files []OutputFile `json:"files"`
}

// OutputFile is one written file, its path relative to the working directory.
type OutputFile struct {
	Path      string `json:"path"`
	Partition string `json:"partition,omitempty"`
	Rows      int64  `json:"rows"`
	Bytes     int64  `json:"bytes"`
}

// Executor is the engine of one executor process. It is opened before the
// task is known, so a standby executor can open and warm it while it waits;
// Run then applies the task's limits and locks the engine down.
type Executor struct {
	db   *sql.DB
	conn *sql.Conn
}

// OpenExecutor opens an executor's engine, without limits until Run.
func OpenExecutor(ctx context.Context) (*Executor, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	return &Executor{db: db, conn: conn}, nil
}

// Close releases the engine.
func (e *Executor) Close() error {
	return errors.Join(e.conn.Close(), e.db.Close())
}

// WarmUp runs a small build in a temporary directory: an aggregate written as
// partitioned ZSTD Parquet and read back. A fresh process pays tens of
// milliseconds the first time it runs each of these; a standby executor pays
// them while it waits instead of during its task.
func (e *Executor) WarmUp(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "duet-executor-warmup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out")
	stmts := []string{
		fmt.Sprintf(`COPY (SELECT range %% 4 AS p, date_trunc('hour', TIMESTAMP '2026-01-01' + to_seconds(range)) AS h,
			'k' || (range %% 97) AS k, count(*) AS n, sum(range) AS s, min(range) AS lo
			FROM range(10000) GROUP BY ALL) TO %s (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (p), RETURN_STATS)`, dataset.QuoteString(out)),
		fmt.Sprintf("SELECT h, k, sum(n), sum(s), min(lo) FROM read_parquet(%s, hive_partitioning = false) GROUP BY ALL",
			dataset.QuoteString(filepath.Join(out, "*", "*.parquet"))),
	}
	for _, q := range stmts {
		rows, err := e.conn.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("warm up: %w", err)
		}
		for rows.Next() {
		}
		err = errors.Join(rows.Err(), rows.Close())
		if err != nil {
			return fmt.Errorf("warm up: %w", err)
		}
	}
	return nil
}

// RunTask runs the task in dir on a fresh engine.
func RunTask(ctx context.Context, dir string) error {
	e, err := OpenExecutor(ctx)
	if err != nil {
		return err
	}
	defer e.Close()
	return e.Run(ctx, dir, nil)
}

// Run reads dir/task.json, runs its SQL with the task's limits, confined to
// its directories, writes ZSTD Parquet and reports dir/result.json. A nil
// progress reports nowhere.
func (e *Executor) Run(ctx context.Context, dir string, progress Progress) error {
	if progress == nil {
		progress = silent{}
	}
	var task Task
	if err := readJSON(filepath.Join(dir, TaskFile), &task); err != nil {
		return fmt.Errorf("read task: %w", err)
	}
	for _, s := range engine.Settings(engine.Config{
		MemoryLimit: task.Memory, Threads: task.Threads,
		AllowedDirectories: task.AllowedDirs, TempDirectory: filepath.Join(dir, "spill"),
	}) {
		if _, err := e.conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("engine setup %q: %w", s, err)
		}
	}
	var args []any
	if task.Trino != nil {
		var err error
		if task.SQL, err = e.fromTrino(ctx, task, progress); err != nil {
			return err
		}
	}
	if task.Script != "" && task.Trino == nil {
		var err error
		if task.SQL, args, err = e.runScript(ctx, task, progress); err != nil {
			return err
		}
	}
	res := Result{Files: []OutputFile{}}
	if task.SQL != "" {
		progress.Stage("writing the result")
		files, err := e.execute(ctx, dir, task, args)
		if err != nil && task.Script != "" {
			return fmt.Errorf("the script's last statement (its result): %w", err)
		}
		if err != nil {
			return err
		}
		res.Files = files
		var rows int64
		for _, f := range files {
			rows += f.Rows
		}
		progress.Rows(rows)
	}
	return writeJSON(filepath.Join(dir, ResultFile), res)
}

type silent struct{}

func (silent) Stage(string) {}
func (silent) Rows(int64)   {}

func (e *Executor) execute(ctx context.Context, dir string, task Task, args []any) ([]OutputFile, error) {
	rowGroup := task.RowGroupRows
	if rowGroup <= 0 {
		rowGroup = 1_000_000
	}
	// RETURN_STATS reports each written file with its row count and size.
	opts := fmt.Sprintf("FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d, RETURN_STATS", rowGroup)
	var q string
	if task.PartitionExpr != "" {
		q = fmt.Sprintf("COPY (SELECT *, %s AS %s FROM (%s)) TO %s (%s, PARTITION_BY (%s), FILENAME_PATTERN 'part-{i}')",
			task.PartitionExpr, dataset.QuoteIdent(task.PartitionColumn), task.SQL, dataset.QuoteString(task.Output), opts, dataset.QuoteIdent(task.PartitionColumn))
	} else {
		if err := os.MkdirAll(task.Output, 0o755); err != nil {
			return nil, err
		}
		q = fmt.Sprintf("COPY (%s) TO %s (%s)", task.SQL, dataset.QuoteString(filepath.Join(task.Output, "part-0.parquet")), opts)
	}
	rows, err := e.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("write output: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	at := map[string]int{}
	for i, c := range cols {
		ptrs[i], at[c] = &vals[i], i
	}
	var files []OutputFile
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("write output: %w", err)
		}
		path, _ := vals[at["filename"]].(string)
		var f OutputFile
		if f.Rows, err = toInt64(vals[at["count"]]); err != nil {
			return nil, fmt.Errorf("row count of %s: %w", path, err)
		}
		if f.Bytes, err = toInt64(vals[at["file_size_bytes"]]); err != nil {
			return nil, fmt.Errorf("size of %s: %w", path, err)
		}
		if f.Path, err = filepath.Rel(dir, path); err != nil {
			return nil, err
		}
		if task.PartitionColumn != "" {
			f.Partition = strings.TrimPrefix(filepath.Base(filepath.Dir(path)), task.PartitionColumn+"=")
		}
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("write output: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// toInt64 reads the integer columns of COPY's statistics, whatever their width.
func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case uint64:
		return int64(x), nil
	case int32:
		return int64(x), nil
	}
	return 0, fmt.Errorf("unexpected %T in COPY statistics", v)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
