package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
)

// paths are where a node keeps its state inside the data directory.
type paths struct{ flights.Paths }

// baseline holds the direct DuckDB results: inside the data directory, which
// the node's engine may read, so the checks can compare them with the view.
func (p paths) baseline() string  { return filepath.Join(p.Dir, "direct") }
func (p paths) directOut() string { return filepath.Join(p.baseline(), "delays.parquet") }

// node is one process's worth of duet on the data directory, assembled as
// the server does it, with executors as real `duet executor` processes.
type node struct {
	cat     *catalog.Store
	db      *sql.DB
	layer   *speedlayer.Layer
	builder *batchlayer.Builder
	cancel  context.CancelFunc
	done    chan error
}

// startNode opens a node whose builder runs executors with launcher and
// uploads through timer. Loading the speed layer computes the view's partials
// over every archived range its current version does not cover: startup
// work, not part of any build.
func startNode(ctx context.Context, p paths, launcher batchlayer.Launcher, timer *buildTimer, logger *slog.Logger) (n *node, err error) {
	n = &node{}
	defer func() {
		if err != nil {
			n.closeStores()
		}
	}()
	if n.cat, err = catalog.Open(ctx, p.Catalog(), logger); err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	bucket, err := objstore.NewFilesystem(p.Objects())
	if err != nil {
		return nil, err
	}
	if n.db, err = engine.Open(ctx, engine.Config{AllowedDirectories: []string{p.Dir}}, logger); err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	n.layer, err = speedlayer.New(speedlayer.Config{LogDir: p.Log(), ScratchDir: p.Scratch(), SegmentMaxAge: time.Hour},
		n.db, n.cat, bucket, bucket, serving.NewMerger(bucket), logger, nil)
	if err != nil {
		return nil, err
	}
	if err := n.loadView(ctx); err != nil {
		return nil, err
	}
	n.builder, err = batchlayer.NewBuilder(batchlayer.Config{ScratchDir: p.Scratch()}, n.cat, n.layer,
		&timedBucket{Bucket: bucket, timer: timer}, launcher, logger)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- n.layer.Run(runCtx) }()
	return n, nil
}

// loadView loads the dataset (its archive from the catalog) and the view
// with its current version into the speed layer.
func (n *node) loadView(ctx context.Context) error {
	spec := flights.Spec()
	if err := n.layer.AddDataset(ctx, spec); err != nil {
		return fmt.Errorf("load dataset: %w", err)
	}
	plan, err := viewsql.Analyze(ctx, n.db, flights.ViewSQL(), &spec)
	if err != nil {
		return fmt.Errorf("analyze view: %w", err)
	}
	var version *catalog.ViewVersion
	switch cur, err := n.cat.CurrentVersion(ctx, flights.View); {
	case err == nil:
		version = &cur
	case !errors.Is(err, catalog.ErrNotFound):
		return err
	}
	if err := n.layer.AddView(ctx, flights.View, plan, version); err != nil {
		return fmt.Errorf("load view: %w", err)
	}
	return nil
}

// Close stops the speed layer (closing its log) and the stores.
func (n *node) Close() error {
	var err error
	if n.cancel != nil {
		n.cancel()
		err = <-n.done
	}
	return errors.Join(err, n.closeStores())
}

func (n *node) closeStores() error {
	var errs []error
	if n.db != nil {
		errs = append(errs, n.db.Close())
	}
	if n.cat != nil {
		errs = append(errs, n.cat.Close())
	}
	return errors.Join(errs...)
}
