package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchdoc"
	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/executor"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// The targets.
const (
	fullTarget        = 1.25 // full build time / direct DuckDB time, at most
	incrementalTarget = 20   // full build time / incremental build time, at least
)

// bench is one benchmark run's state.
type bench struct {
	cfg      Config
	paths    paths
	logger   *slog.Logger
	gen      *flights.Generator
	launcher *timedLauncher
	// warm keeps a standby executor, as a server does by default; cold
	// starts each executor with its task (--executor-standby 0).
	warm, cold *executor.Local
	stopWarm   context.CancelFunc
	warmDone   chan struct{}
	timer      *buildTimer
	node       *node
	// archive is every archive file recorded so far, in offset order.
	archive []catalog.ArchiveFile
	res     Results
}

func run(ctx context.Context, cfg Config, logger *slog.Logger) (err error) {
	dir, cleanup, err := benchenv.DataDir(cfg.WorkDir, "buildbench", cfg.Keep, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	b, err := newBench(ctx, cfg, paths{flights.Paths{Dir: dir}}, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	steps := []func(context.Context) error{
		b.generate, b.start, b.measureFull, b.checkAfterFull, b.measureIncremental, b.checkAfterIncremental, b.write,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func newBench(ctx context.Context, cfg Config, p paths, logger *slog.Logger) (*bench, error) {
	machine, err := benchenv.DescribeMachine(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe machine: %w", err)
	}
	warm, err := executor.NewLocal(executor.Config{Command: []string{cfg.Duet}, Standby: 1}, nil)
	if err != nil {
		return nil, err
	}
	cold, err := executor.NewLocal(executor.Config{Command: []string{cfg.Duet}}, nil)
	if err != nil {
		return nil, err
	}
	gen, err := flights.NewGenerator(ctx, flights.Config{Rows: cfg.Rows, Days: cfg.Days, Seed: cfg.Seed}, p.Objects(), filepath.Join(p.Dir, "stage"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.baseline(), 0o755); err != nil {
		gen.Close()
		return nil, err
	}
	timer := &buildTimer{}
	b := &bench{cfg: cfg, paths: p, logger: logger, gen: gen, launcher: &timedLauncher{inner: warm, timer: timer}, timer: timer,
		warm: warm, cold: cold, warmDone: make(chan struct{})}
	var warmCtx context.Context
	warmCtx, b.stopWarm = context.WithCancel(ctx)
	go func() {
		defer close(b.warmDone)
		_ = warm.Run(warmCtx)
	}()
	b.res.Machine = machine
	b.res.Data = DataInfo{
		Rows: cfg.Rows, Days: cfg.Days, Seed: cfg.Seed, SegmentRows: cfg.SegmentRows,
		IncrementRows: cfg.incrementRows(), LateDays: len(lateDays(cfg.Days)), Runs: cfg.Runs, ViewSQL: flights.ViewSQL(),
	}
	logger.Info("machine", "cpus", machine.CPUs, "cpu", machine.CPUModel, "memory_gib", gib(machine.MemoryBytes),
		"go", machine.GoVersion, "gomaxprocs", machine.GOMAXPROCS, "duckdb", machine.DuckDBVersion, "duckdb_threads", machine.DuckDBThreads)
	return b, nil
}

func (b *bench) Close() error {
	var err error
	if b.node != nil {
		err = b.node.Close()
		b.node = nil
	}
	b.stopWarm()
	<-b.warmDone
	return errors.Join(err, b.gen.Close())
}

// generate writes and records the master dataset.
func (b *bench) generate(ctx context.Context) error {
	start := time.Now()
	files, err := b.gen.Master(ctx, b.cfg.SegmentRows, func(first, end int64) {
		b.logger.Info("archived segment", "first", first, "end", end, "seconds", since(start))
	})
	if err != nil {
		return fmt.Errorf("generate master dataset: %w", err)
	}
	if err := flights.Archive(ctx, b.paths.Paths, files); err != nil {
		return fmt.Errorf("record master dataset: %w", err)
	}
	b.archive = files
	b.res.Data.Files = len(files)
	for _, f := range files {
		b.res.Data.Bytes += f.Bytes
	}
	b.logger.Info("master dataset archived", "rows", b.cfg.Rows, "files", len(files), "mib", mib(b.res.Data.Bytes), "seconds", since(start))
	return nil
}

// start loads a node on the data directory (not measured).
func (b *bench) start(ctx context.Context) error {
	start := time.Now()
	n, err := startNode(ctx, b.paths, b.launcher, b.timer, nil)
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	b.node = n
	b.logger.Info("speed layer loaded (startup partials, not measured)", "seconds", since(start))
	return nil
}

// write fills in the targets and writes the JSON file and the Markdown section.
func (b *bench) write(context.Context) error {
	r := &b.res
	r.GeneratedAt = time.Now().UTC().Truncate(time.Second)
	r.Targets = []Target{
		newTarget("full build time / direct DuckDB time", r.Full, r.Baseline, fullTarget, true),
		newTarget("full build time / incremental build time", r.Full, r.Incremental, incrementalTarget, false),
		newTarget("full build time / incremental build time on a cold executor", r.Full, r.IncrementalCold, incrementalTarget, false),
	}
	for _, t := range r.Targets {
		b.logger.Info("target", "name", t.Name, "ratio", fmt.Sprintf("%.2f", t.Ratio), "ratio_of_minimums",
			fmt.Sprintf("%.2f", t.RatioOfMinimums), "cpu_ratio", fmt.Sprintf("%.2f", t.CPURatio), "limit", t.Limit, "pass", t.Pass)
	}
	if err := benchdoc.WriteJSON(b.cfg.JSON, r); err != nil {
		return fmt.Errorf("write %s: %w", b.cfg.JSON, err)
	}
	if err := benchdoc.WriteSection(b.cfg.Out, section, renderSection(r)); err != nil {
		return fmt.Errorf("write %s: %w", b.cfg.Out, err)
	}
	b.logger.Info("results written", "markdown", b.cfg.Out, "json", b.cfg.JSON)
	return nil
}
