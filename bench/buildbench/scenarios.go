package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/executor"
)

// measureFull alternates full builds with the direct DuckDB baseline, so
// both see the same machine state.
func (b *bench) measureFull(ctx context.Context) error {
	rows := flights.SumRows(b.archive)
	var full, direct timings
	for i := range b.cfg.Runs {
		v, s, err := b.build(ctx, fmt.Sprintf("full-%d", i+1), true)
		if err != nil {
			return err
		}
		if v.Meta.Kind != batchlayer.KindFull {
			return fmt.Errorf("full build published a %q version %d", v.Meta.Kind, v.Version)
		}
		s.rowsRead = rows
		full = append(full, s)
		b.logger.Info("full build", "run", i+1, "version", v.Version, "seconds", s.wall.Seconds(), "cpu_seconds", s.cpu.Seconds(),
			"executor_seconds", s.parts.executor.Seconds(), "upload_seconds", s.parts.uploads.Seconds(),
			"rows_per_s", rate(rows, s.wall), "output_files", len(v.Files))
		wall, cpu, err := measure(func() error { return runBaseline(ctx, b.localPaths(b.archive), b.paths.directOut()) })
		if err != nil {
			return err
		}
		direct = append(direct, sample{wall: wall, cpu: cpu, rowsRead: rows})
		b.logger.Info("direct duckdb", "run", i+1, "seconds", wall.Seconds(), "cpu_seconds", cpu.Seconds(), "rows_per_s", rate(rows, wall))
	}
	b.res.Full = full.scenario(rows, true)
	b.res.Baseline = direct.scenario(rows, false)
	return nil
}

func (b *bench) checkAfterFull(ctx context.Context) error {
	return b.check(ctx, "after the full builds", b.paths.directOut(), flights.SumRows(b.archive))
}

// measureIncremental appends new data, restarts the node on it (so the speed
// layer loads the new archive files) and builds incrementally, each run: on
// a standby executor as a server does, then on executors started with
// their task.
func (b *bench) measureIncremental(ctx context.Context) error {
	var err error
	if b.res.Incremental, err = b.incrementalRuns(ctx, "incremental", b.warm); err != nil {
		return err
	}
	b.res.IncrementalCold, err = b.incrementalRuns(ctx, "incremental-cold", b.cold)
	return err
}

func (b *bench) incrementalRuns(ctx context.Context, name string, launcher *executor.Local) (Scenario, error) {
	b.launcher.inner = launcher
	defer func() { b.launcher.inner = b.warm }()
	var inc timings
	for i := range b.cfg.Runs {
		prev, err := b.node.cat.CurrentVersion(ctx, flights.View)
		if err != nil {
			return Scenario{}, err
		}
		added, err := b.appendIncrement(ctx)
		if err != nil {
			return Scenario{}, err
		}
		v, s, err := b.build(ctx, fmt.Sprintf("%s-%d", name, i+1), false)
		if err != nil {
			return Scenario{}, err
		}
		if err := b.verifyIncremental(v, prev, added); err != nil {
			return Scenario{}, err
		}
		// An incremental build reads the new records and the base
		// version's partial rows of the days they touch.
		s.rowsRead = flights.SumRows(added) + partialRowsOnDays(prev, v.Meta.Rebuilt)
		inc = append(inc, s)
		b.logger.Info(name+" build", "run", i+1, "version", v.Version, "seconds", s.wall.Seconds(), "cpu_seconds", s.cpu.Seconds(),
			"executor_seconds", s.parts.executor.Seconds(), "upload_seconds", s.parts.uploads.Seconds(),
			"new_rows", flights.SumRows(added), "rows_read", s.rowsRead, "rebuilt", v.Meta.Rebuilt)
	}
	return inc.scenario(b.cfg.incrementRows(), true), nil
}

// appendIncrement stops the node, archives another increment and starts
// the node again.
func (b *bench) appendIncrement(ctx context.Context) ([]catalog.ArchiveFile, error) {
	if err := b.node.Close(); err != nil {
		return nil, fmt.Errorf("stop node: %w", err)
	}
	b.node = nil
	start := time.Now()
	added, err := b.gen.Increment(ctx, archivedEnd(b.archive), b.cfg.incrementRows(), lateDays(b.cfg.Days))
	if err != nil {
		return nil, fmt.Errorf("generate increment: %w", err)
	}
	if err := flights.Archive(ctx, b.paths.Paths, added); err != nil {
		return nil, fmt.Errorf("record increment: %w", err)
	}
	b.archive = append(b.archive, added...)
	b.logger.Info("increment archived", "rows", flights.SumRows(added), "files", len(added), "seconds", since(start))
	return added, b.start(ctx)
}

// verifyIncremental checks the version rebuilt exactly the days the
// increment touched, on top of the previous version.
func (b *bench) verifyIncremental(v, prev catalog.ViewVersion, added []catalog.ArchiveFile) error {
	want := days(added)
	switch {
	case v.Meta.Kind != batchlayer.KindIncremental:
		return fmt.Errorf("version %d: kind %q, want %q", v.Version, v.Meta.Kind, batchlayer.KindIncremental)
	case v.Meta.Base != prev.Version:
		return fmt.Errorf("version %d: base %d, want %d", v.Version, v.Meta.Base, prev.Version)
	case !slices.Equal(v.Meta.Rebuilt, want):
		return fmt.Errorf("version %d: rebuilt %v, want the increment's days %v", v.Version, v.Meta.Rebuilt, want)
	case v.Covered != archivedEnd(b.archive):
		return fmt.Errorf("version %d: covers offsets < %d, want < %d", v.Version, v.Covered, archivedEnd(b.archive))
	}
	b.res.Versions = append(b.res.Versions, Versions{Version: v.Version, Base: v.Meta.Base, Kind: v.Meta.Kind, Rebuilt: v.Meta.Rebuilt, Covered: v.Covered})
	return nil
}

// checkAfterIncremental recomputes the view directly over the whole
// archive (not timed) and compares it with the merged view.
func (b *bench) checkAfterIncremental(ctx context.Context) error {
	out := filepath.Join(b.paths.baseline(), "final.parquet")
	if err := runBaseline(ctx, b.localPaths(b.archive), out); err != nil {
		return err
	}
	return b.check(ctx, "after the incremental builds", out, flights.SumRows(b.archive))
}

// build runs one build and times it. A standby executor is given time to
// warm up first, as it has between a server's scheduled builds.
func (b *bench) build(ctx context.Context, job string, full bool) (catalog.ViewVersion, sample, error) {
	if b.launcher.inner == b.warm {
		for b.warm.Standing() == 0 {
			select {
			case <-ctx.Done():
				return catalog.ViewVersion{}, sample{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	b.timer.reset()
	var v catalog.ViewVersion
	wall, cpu, err := measure(func() (err error) {
		v, err = b.node.builder.Build(ctx, batchlayer.Request{JobID: job, View: flights.View, Full: full})
		return err
	})
	if err != nil {
		return catalog.ViewVersion{}, sample{}, fmt.Errorf("build %s: %w", job, err)
	}
	return v, sample{wall: wall, cpu: cpu, parts: b.timer.snapshot()}, nil
}

func (b *bench) localPaths(files []catalog.ArchiveFile) []string { return b.gen.LocalPaths(files) }
