// Package batchlayer builds views from the master dataset: it runs a view's
// partial form over the raw archive on an ephemeral executor, stores the
// result as Parquet under views/<name>/v<version>/, and publishes the version
// (its files and the offsets it covers) in one catalog transaction.
package batchlayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/viewsql"
)

// ErrUpToDate means the current version already covers every archived record.
var ErrUpToDate = errors.New("view is up to date")

// Catalog is the metadata a build reads and publishes.
type Catalog interface {
	ArchiveFiles(ctx context.Context, dataset string) ([]catalog.ArchiveFile, error)
	CurrentVersion(ctx context.Context, view string) (catalog.ViewVersion, error)
	ListVersions(ctx context.Context, view string) ([]catalog.ViewVersion, error)
	PublishVersion(ctx context.Context, v catalog.ViewVersion) (catalog.ViewVersion, error)
}

// Speed is the speed layer as a build needs it.
type Speed interface {
	Plan(view string) (*viewsql.Plan, error)
	// Flush archives every record accepted so far.
	Flush(ctx context.Context, dataset string) error
	// Publish hands the offsets a version covers over from speed to batch.
	Publish(ctx context.Context, view string, v catalog.ViewVersion) error
}

// Bucket stores build outputs and exposes archive files to the executor.
type Bucket interface {
	Upload(ctx context.Context, name string, r io.Reader) error
	LocalPath(name string) (string, error)
}

// Launcher runs a task on a fresh executor process.
type Launcher interface {
	Launch(ctx context.Context, dir string, args ...string) error
}

// Config for builds.
type Config struct {
	// ScratchDir holds one working directory per build, removed afterwards.
	ScratchDir string `yaml:"scratch_dir"`
	// ExecutorMemory and ExecutorThreads bound each executor's engine.
	ExecutorMemory  string `yaml:"executor_memory"`
	ExecutorThreads int    `yaml:"executor_threads"`
}

// Builder builds and publishes view versions.
type Builder struct {
	cfg      Config
	cat      Catalog
	speed    Speed
	bucket   Bucket
	launcher Launcher
	logger   *slog.Logger
}

// NewBuilder wires a builder.
func NewBuilder(cfg Config, cat Catalog, speed Speed, bucket Bucket, launcher Launcher, logger *slog.Logger) (*Builder, error) {
	if cfg.ScratchDir == "" {
		return nil, errors.New("batchlayer.scratch_dir: required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Builder{cfg: cfg, cat: cat, speed: speed, bucket: bucket, launcher: launcher, logger: logger}, nil
}

// Build rebuilds the view from every archived record and publishes the result.
// It returns ErrUpToDate, with the current version, when there is nothing new.
func (b *Builder) Build(ctx context.Context, jobID, view string) (catalog.ViewVersion, error) {
	start := time.Now()
	plan, err := b.speed.Plan(view)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	if err := b.speed.Flush(ctx, plan.Dataset); err != nil {
		return catalog.ViewVersion{}, fmt.Errorf("archive recent records: %w", err)
	}
	archive, err := b.cat.ArchiveFiles(ctx, plan.Dataset)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	var covered int64
	inputs := make([]string, 0, len(archive))
	for _, f := range archive {
		covered = max(covered, f.End)
		p, err := b.bucket.LocalPath(f.Path)
		if err != nil {
			return catalog.ViewVersion{}, err
		}
		inputs = append(inputs, p)
	}
	cur, err := b.cat.CurrentVersion(ctx, view)
	switch {
	case err == nil && cur.Covered == covered:
		return cur, ErrUpToDate
	case err != nil && !errors.Is(err, catalog.ErrNotFound):
		return catalog.ViewVersion{}, err
	}
	if len(inputs) == 0 {
		return catalog.ViewVersion{}, ErrUpToDate
	}
	versions, err := b.cat.ListVersions(ctx, view)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	next := int64(1)
	if len(versions) > 0 {
		next = versions[0].Version + 1
	}

	dir := filepath.Join(b.cfg.ScratchDir, "build-"+jobID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return catalog.ViewVersion{}, err
	}
	defer os.RemoveAll(dir)
	task := BuildTask{
		SQL:         plan.PartialSQL("read_parquet(" + sqlList(inputs) + ")"),
		Output:      filepath.Join(dir, "part-00000.parquet"),
		Memory:      b.cfg.ExecutorMemory,
		Threads:     b.cfg.ExecutorThreads,
		AllowedDirs: allowedDirs(inputs, dir),
	}
	if err := writeJSON(filepath.Join(dir, TaskFile), task); err != nil {
		return catalog.ViewVersion{}, err
	}
	if err := b.launcher.Launch(ctx, dir, "executor", "build", "--dir", dir); err != nil {
		return catalog.ViewVersion{}, fmt.Errorf("executor: %w", err)
	}
	var res BuildResult
	if err := readJSON(filepath.Join(dir, ResultFile), &res); err != nil {
		return catalog.ViewVersion{}, fmt.Errorf("executor result: %w", err)
	}

	name := fmt.Sprintf("views/%s/v%d/part-00000.parquet", view, next)
	f, err := os.Open(task.Output)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	err = b.bucket.Upload(ctx, name, f)
	f.Close()
	if err != nil {
		return catalog.ViewVersion{}, fmt.Errorf("upload %s: %w", name, err)
	}
	v, err := b.cat.PublishVersion(ctx, catalog.ViewVersion{
		View: view, Covered: covered,
		Files: []catalog.VersionFile{{Path: name, Rows: res.Rows, Bytes: res.Bytes}},
		Rows:  res.Rows, Bytes: res.Bytes, JobID: jobID,
		CreatedAt: time.Now().UTC(), BuildMillis: time.Since(start).Milliseconds(),
	})
	if err != nil {
		return catalog.ViewVersion{}, fmt.Errorf("publish: %w", err)
	}
	if v.Version != next {
		// Builds of a view are serialised by the scheduler, so this means a
		// second control plane built concurrently; its files would be shadowed.
		return v, fmt.Errorf("published as version %d but files were written for version %d", v.Version, next)
	}
	if err := b.speed.Publish(ctx, view, v); err != nil {
		return v, fmt.Errorf("hand over version %d to serving: %w", v.Version, err)
	}
	b.logger.Info("view built", "view", view, "version", v.Version, "covered", covered, "rows", res.Rows, "ms", v.BuildMillis)
	return v, nil
}

// allowedDirs are the directories the executor's engine may touch.
func allowedDirs(inputs []string, scratch string) []string {
	seen := map[string]bool{scratch: true}
	out := []string{scratch}
	for _, p := range inputs {
		d := filepath.Dir(p)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func sqlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = dataset.QuoteString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
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
