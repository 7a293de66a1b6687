package batchlayer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	SQL             string   `json:"sql"`
	Output          string   `json:"output"`
	PartitionColumn string   `json:"partition_column,omitempty"`
	PartitionExpr   string   `json:"partition_expr,omitempty"`
	Memory          string   `json:"memory,omitempty"`
	Threads         int      `json:"threads,omitempty"`
	AllowedDirs     []string `json:"allowed_dirs"`
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

// RunTask is the executor side: it reads dir/task.json, runs the SQL in a
// fresh engine confined to the task's directories, writes ZSTD Parquet with
// row groups of up to a million rows and reports dir/result.json.
func RunTask(ctx context.Context, dir string) error {
	var task Task
	if err := readJSON(filepath.Join(dir, TaskFile), &task); err != nil {
		return fmt.Errorf("read task: %w", err)
	}
	res := Result{Files: []OutputFile{}}
	if task.SQL != "" {
		files, err := execute(ctx, dir, task)
		if err != nil {
			return err
		}
		res.Files = files
	}
	return writeJSON(filepath.Join(dir, ResultFile), res)
}

func execute(ctx context.Context, dir string, task Task) ([]OutputFile, error) {
	db, err := engine.Open(ctx, engine.Config{
		MemoryLimit: task.Memory, Threads: task.Threads,
		AllowedDirectories: task.AllowedDirs, TempDirectory: filepath.Join(dir, "spill"),
	}, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// RETURN_STATS reports each written file with its row count and size.
	const opts = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000, RETURN_STATS"
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
	rows, err := db.QueryContext(ctx, q)
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
