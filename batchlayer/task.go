package batchlayer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/engine"
)

// Files an executor's working directory holds.
const (
	TaskFile   = "task.json"
	ResultFile = "result.json"
)

// BuildTask is what the control plane asks an executor to build.
type BuildTask struct {
	SQL         string   `json:"sql"`
	Output      string   `json:"output"`
	Memory      string   `json:"memory,omitempty"`
	Threads     int      `json:"threads,omitempty"`
	AllowedDirs []string `json:"allowed_dirs"`
}

// BuildResult is what the executor reports back.
type BuildResult struct {
	Rows  int64 `json:"rows"`
	Bytes int64 `json:"bytes"`
}

// RunBuildTask is the executor side of a build: it reads dir/task.json, runs
// the SQL in a fresh engine confined to the task's directories, writes the
// output as ZSTD Parquet and reports dir/result.json.
func RunBuildTask(ctx context.Context, dir string) error {
	var task BuildTask
	if err := readJSON(filepath.Join(dir, TaskFile), &task); err != nil {
		return fmt.Errorf("read task: %w", err)
	}
	db, err := engine.Open(ctx, engine.Config{
		MemoryLimit: task.Memory, Threads: task.Threads,
		AllowedDirectories: task.AllowedDirs, TempDirectory: filepath.Join(dir, "spill"),
	}, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	var rows int64
	q := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)", task.SQL, dataset.QuoteString(task.Output))
	res, err := db.ExecContext(ctx, q)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	if rows, err = res.RowsAffected(); err != nil {
		return err
	}
	st, err := os.Stat(task.Output)
	if err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, ResultFile), BuildResult{Rows: rows, Bytes: st.Size()})
}
