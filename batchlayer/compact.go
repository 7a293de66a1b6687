package batchlayer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
)

// planCompaction groups small archive files of one day into runs to merge:
// consecutive in offset order, up to target bytes, at least two files. A
// merged file covers [first of the run, end of the run); no run may span a
// cut (the covered offset of any stored version), so every version and the
// speed layer keep splitting the archive exactly where they did. Pure.
func planCompaction(files []catalog.ArchiveFile, cuts []int64, target int64) [][]catalog.ArchiveFile {
	byDay := map[string][]catalog.ArchiveFile{}
	for _, f := range files {
		byDay[f.Partition] = append(byDay[f.Partition], f)
	}
	parts := make([]string, 0, len(byDay))
	for p := range byDay {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	cutBetween := func(end, first int64) bool {
		for _, c := range cuts {
			if c >= end && c <= first {
				return true
			}
		}
		return false
	}
	var groups [][]catalog.ArchiveFile
	for _, p := range parts {
		fs := byDay[p]
		sort.Slice(fs, func(i, j int) bool { return fs[i].First < fs[j].First })
		var run []catalog.ArchiveFile
		var size int64
		flush := func() {
			if len(run) >= 2 {
				groups = append(groups, run)
			}
			run, size = nil, 0
		}
		for _, f := range fs {
			if f.Bytes >= target {
				flush()
				continue
			}
			if len(run) > 0 && (cutBetween(run[len(run)-1].End, f.First) || size+f.Bytes > target) {
				flush()
			}
			run = append(run, f)
			size += f.Bytes
		}
		flush()
	}
	return groups
}

// CompactionName is the object name of a merged archive file; like every
// archive name it is a function of its range, so a retried compaction
// overwrites what a failed one left.
func CompactionName(ds, partition string, first, end int64) string {
	return fmt.Sprintf("raw/%s/%s/%020d-%020d.parquet", ds, partition, first, end-1)
}

// Compact merges the dataset's small archive files. Each merge is written by
// an executor, recorded in the catalog in one transaction (the commit), then
// swapped into what queries read; the replaced files are deleted after the
// grace period. It returns the number of files merged away.
func (b *Builder) Compact(ctx context.Context, jobID, ds string, spec *dataset.Spec, logPrefix string) (int, error) {
	defer b.begin()()
	files, err := b.cat.ArchiveFiles(ctx, ds)
	if err != nil {
		return 0, err
	}
	cuts, err := b.cuts(ctx, ds)
	if err != nil {
		return 0, err
	}
	merged := 0
	for i, group := range planCompaction(files, cuts, b.cfg.CompactionTarget) {
		if err := b.compactGroup(ctx, fmt.Sprintf("%s-%d", jobID, i), ds, spec, logPrefix, group); err != nil {
			return merged, err
		}
		merged += len(group)
	}
	return merged, nil
}

// cuts are the covered offsets of every stored version of every view of ds.
func (b *Builder) cuts(ctx context.Context, ds string) ([]int64, error) {
	views, err := b.cat.ListViews(ctx)
	if err != nil {
		return nil, err
	}
	var cuts []int64
	for _, v := range views {
		if v.Dataset != ds {
			continue
		}
		// Hold the view still while its versions are read.
		unlock := b.lock(v.Name)
		versions, err := b.cat.ListVersions(ctx, v.Name)
		unlock()
		if err != nil {
			return nil, err
		}
		for _, vv := range versions {
			cuts = append(cuts, vv.Covered)
		}
	}
	return cuts, nil
}

func (b *Builder) compactGroup(ctx context.Context, taskID, ds string, spec *dataset.Spec, logPrefix string, group []catalog.ArchiveFile) error {
	dir := filepath.Join(b.cfg.ScratchDir, "compact-"+taskID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	paths := make([]string, len(group))
	var rows int64
	for i, f := range group {
		p, err := b.bucket.LocalPath(f.Path)
		if err != nil {
			return err
		}
		paths[i], rows = p, rows+f.Rows
	}
	cols := make([]string, len(spec.Columns))
	for i, c := range spec.Columns {
		cols[i] = dataset.QuoteIdent(c.Name)
	}
	task := Task{
		SQL:    "SELECT " + strings.Join(cols, ", ") + " FROM " + dataset.ReadParquet(paths),
		Output: filepath.Join(dir, "out"), Memory: b.cfg.ExecutorMemory, Threads: b.cfg.ExecutorThreads,
		AllowedDirs: allowedDirs(paths, dir), RowGroupRows: dataset.ArchiveRowGroupRows,
	}
	res, err := b.run(ctx, logPrefix, dir, task)
	if err != nil {
		return err
	}
	if len(res.Files) != 1 || res.Files[0].Rows != rows {
		return fmt.Errorf("compaction of %d files holding %d rows wrote %d files", len(group), rows, len(res.Files))
	}
	first, end := group[0].First, group[len(group)-1].End
	merged := catalog.ArchiveFile{
		Dataset: ds, Path: CompactionName(ds, group[0].Partition, first, end), Partition: group[0].Partition,
		First: first, End: end, Rows: rows, Bytes: res.Files[0].Bytes, ArrivedAt: group[0].Arrived(),
	}
	for _, f := range group {
		if f.Arrived().Before(merged.ArrivedAt) {
			merged.ArrivedAt = f.Arrived()
		}
	}
	if err := b.upload(ctx, merged.Path, res.Files[0].Path); err != nil {
		return fmt.Errorf("upload %s: %w", merged.Path, err)
	}
	remove := make([]string, len(group))
	for i, f := range group {
		remove[i] = f.Path
	}
	if err := b.cat.ReplaceArchive(ctx, ds, remove, []catalog.ArchiveFile{merged}); err != nil {
		return err
	}
	if err := b.speed.ReplaceArchive(ctx, ds, remove, []catalog.ArchiveFile{merged}); err != nil {
		return fmt.Errorf("swap compacted files into serving: %w", err)
	}
	b.logger.Info("archive compacted", "dataset", ds, "partition", merged.Partition, "files", len(group), "rows", rows, "first", first, "end", end)
	return nil
}
