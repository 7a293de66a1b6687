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
	const opts = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000"
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
	res, err := db.ExecContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("write output: %w", err)
	}
	total, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	var files []OutputFile
	err = filepath.WalkDir(task.Output, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		f := OutputFile{Path: rel, Bytes: st.Size()}
		if task.PartitionColumn != "" {
			f.Partition = strings.TrimPrefix(filepath.Base(filepath.Dir(path)), task.PartitionColumn+"=")
		}
		// Parquet footers hold row counts; reading them costs no data scan.
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM read_parquet("+dataset.QuoteString(path)+", hive_partitioning = false)").Scan(&f.Rows); err != nil {
			return fmt.Errorf("count rows of %s: %w", rel, err)
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var counted int64
	for _, f := range files {
		counted += f.Rows
	}
	if counted != total {
		return nil, fmt.Errorf("wrote %d rows but the files hold %d", total, counted)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
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
