package batchlayer

import (
	"context"
	"fmt"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/objstore"
)

// gcPlan is what one garbage collection of a view removes.
type gcPlan struct {
	drop         []int64
	unreferenced []string
}

// planGC keeps the current version, the newest keep versions, and every
// version retired less than grace ago (a query may still read it); files only
// dropped versions name become garbage. Pure: versions are newest first.
func planGC(versions []catalog.ViewVersion, current int64, keep int, grace time.Duration, now time.Time) gcPlan {
	var p gcPlan
	referenced := map[string]bool{}
	var dropped []catalog.ViewVersion
	for i, v := range versions {
		recent := v.RetiredAt.IsZero() || now.Sub(v.RetiredAt) < grace
		if v.Version == current || i < keep || recent {
			for _, f := range v.Files {
				referenced[f.Path] = true
			}
			continue
		}
		dropped = append(dropped, v)
		p.drop = append(p.drop, v.Version)
	}
	seen := map[string]bool{}
	for _, v := range dropped {
		for _, f := range v.Files {
			if !referenced[f.Path] && !seen[f.Path] {
				seen[f.Path] = true
				p.unreferenced = append(p.unreferenced, f.Path)
			}
		}
	}
	return p
}

// collect drops the view's versions outside the retention, then deletes
// queued garbage older than the grace period. Catalog first, files after: a
// crash in between leaves files no version names, never a version without files.
func (b *Builder) collect(ctx context.Context, view string) error {
	versions, err := b.cat.ListVersions(ctx, view)
	if err != nil {
		return err
	}
	cur, err := b.cat.CurrentVersion(ctx, view)
	if err != nil {
		return err
	}
	now := time.Now()
	p := planGC(versions, cur.Version, b.cfg.KeepVersions, b.cfg.GCGrace, now)
	if len(p.drop) > 0 {
		// The dropped versions retired more than a grace period ago, so no
		// query reads their files any more: they may go at once.
		if err := b.cat.DeleteVersions(ctx, view, p.drop, p.unreferenced, now.Add(-b.cfg.GCGrace)); err != nil {
			return err
		}
		b.logger.Info("versions collected", "view", view, "versions", p.drop, "files", len(p.unreferenced))
	}
	_, err = b.Sweep(ctx)
	return err
}

// Sweep deletes objects queued for deletion more than a grace period ago,
// and before any running build or compaction started (it may read them).
func (b *Builder) Sweep(ctx context.Context) (int, error) {
	paths, err := b.cat.Garbage(ctx, b.sweepBefore(time.Now()))
	if err != nil {
		return 0, err
	}
	for _, p := range paths {
		if err := b.bucket.Delete(ctx, p); err != nil && !objstore.IsObjNotFoundErr(err) {
			return 0, fmt.Errorf("delete %s: %w", p, err)
		}
	}
	if err := b.cat.ForgetGarbage(ctx, paths); err != nil {
		return 0, err
	}
	return len(paths), nil
}
