// Package batchlayer builds views from the master dataset: it runs a view's
// partial form over the raw archive on an ephemeral executor, stores the
// result as Parquet under views/<name>/v<version>/dt=<day>/, and publishes
// the version (its files and the offsets it covers) in one catalog
// transaction. Builds are incremental: only the days the archive gained
// records for are rebuilt, the other partitions are carried over by reference.
// It also rolls views back, backfills days, compacts the raw archive and
// collects files no retained version names.
package batchlayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/internal/viewsql"
)

// Catalog is the metadata the batch layer reads and publishes.
type Catalog interface {
	ArchiveFiles(ctx context.Context, dataset string) ([]catalog.ArchiveFile, error)
	CurrentVersion(ctx context.Context, view string) (catalog.ViewVersion, error)
	ListVersions(ctx context.Context, view string) ([]catalog.ViewVersion, error)
	PublishVersion(ctx context.Context, v catalog.ViewVersion) (catalog.ViewVersion, error)
	SetCurrentVersion(ctx context.Context, view string, version int64) (catalog.ViewVersion, error)
	DeleteVersions(ctx context.Context, view string, versions []int64, unreferenced []string, retiredAt time.Time) error
	ListViews(ctx context.Context) ([]catalog.View, error)
	ReplaceArchive(ctx context.Context, dataset string, remove []string, add []catalog.ArchiveFile) error
	Garbage(ctx context.Context, retiredBefore time.Time) ([]string, error)
	AddGarbage(ctx context.Context, paths []string) error
	ForgetGarbage(ctx context.Context, paths []string) error
}

// Speed is the speed layer as the batch layer needs it.
type Speed interface {
	Plan(view string) (*viewsql.Plan, error)
	// Flush archives every record accepted so far.
	Flush(ctx context.Context, dataset string) error
	// Publish hands the offsets a version covers over from speed to batch.
	Publish(ctx context.Context, view string, v catalog.ViewVersion) error
	// ReplaceArchive makes queries read compacted archive files.
	ReplaceArchive(ctx context.Context, dataset string, remove []string, add []catalog.ArchiveFile) error
}

// Bucket stores outputs and exposes objects to the executor as local files.
type Bucket interface {
	Upload(ctx context.Context, name string, r io.Reader) error
	Delete(ctx context.Context, name string) error
	LocalPath(name string) (string, error)
}

// Launcher runs a task on a fresh executor process.
type Launcher interface {
	Launch(ctx context.Context, dir string) error
}

// Config for the batch layer.
type Config struct {
	// ScratchDir holds one working directory per task, removed afterwards.
	ScratchDir string `yaml:"scratch_dir"`
	// ExecutorMemory and ExecutorThreads bound each executor's engine.
	ExecutorMemory  string `yaml:"executor_memory"`
	ExecutorThreads int    `yaml:"executor_threads"`
	// KeepVersions is how many of a view's newest versions garbage
	// collection keeps (the current one is always kept).
	KeepVersions int `yaml:"keep_versions"`
	// GCGrace is how long a file stays after no retained version names it,
	// so queries that started on an older version finish on it. It must
	// exceed the longest query.
	GCGrace time.Duration `yaml:"gc_grace"`
	// CompactionTarget is the size compaction merges small archive files up to.
	CompactionTarget int64 `yaml:"compaction_target_bytes"`
}

// Validate fills defaults and names a bad field.
func (c *Config) Validate() error {
	if c.ScratchDir == "" {
		return errors.New("batchlayer.scratch_dir: required")
	}
	if c.KeepVersions == 0 {
		c.KeepVersions = 5
	}
	if c.GCGrace == 0 {
		c.GCGrace = 10 * time.Minute
	}
	if c.CompactionTarget == 0 {
		c.CompactionTarget = 128 << 20
	}
	if c.KeepVersions < 1 {
		return fmt.Errorf("batchlayer.keep_versions: must be at least 1, got %d", c.KeepVersions)
	}
	if c.GCGrace < 0 || c.CompactionTarget < 0 {
		return errors.New("batchlayer: gc_grace and compaction_target_bytes must be positive")
	}
	return nil
}

// Builder builds, publishes, rolls back and collects view versions.
type Builder struct {
	cfg      Config
	cat      Catalog
	speed    Speed
	bucket   Bucket
	launcher Launcher
	logger   *slog.Logger

	mu    sync.Mutex
	views map[string]*sync.Mutex
	// active holds the start times of running builds and compactions: a
	// file retired after one started may still be among its inputs.
	active map[*time.Time]bool
}

// begin records a running task until the returned func is first called.
func (b *Builder) begin() func() {
	t := time.Now()
	b.mu.Lock()
	b.active[&t] = true
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.active, &t)
		b.mu.Unlock()
	}
}

// sweepBefore is the retirement time before which garbage may go: a grace
// period ago, and before every running task started.
func (b *Builder) sweepBefore(now time.Time) time.Time {
	cutoff := now.Add(-b.cfg.GCGrace)
	b.mu.Lock()
	defer b.mu.Unlock()
	for t := range b.active {
		if t.Before(cutoff) {
			cutoff = *t
		}
	}
	return cutoff
}

// NewBuilder wires a builder.
func NewBuilder(cfg Config, cat Catalog, speed Speed, bucket Bucket, launcher Launcher, logger *slog.Logger) (*Builder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Builder{cfg: cfg, cat: cat, speed: speed, bucket: bucket, launcher: launcher, logger: logger, views: map[string]*sync.Mutex{}, active: map[*time.Time]bool{}}, nil
}

// lock serialises everything that changes a view's current version.
func (b *Builder) lock(view string) func() {
	b.mu.Lock()
	m, ok := b.views[view]
	if !ok {
		m = &sync.Mutex{}
		b.views[view] = m
	}
	b.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Build builds and publishes a new version of the view: incremental unless
// req.Full, a backfill when req.From/To are set. It returns ErrUpToDate, with
// the current version, when there is nothing new.
func (b *Builder) Build(ctx context.Context, req Request) (catalog.ViewVersion, error) {
	defer b.lock(req.View)()
	reading := b.begin()
	defer reading()
	start := time.Now()
	plan, err := b.speed.Plan(req.View)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	if req.Trino != nil {
		if req.From != "" || req.To != "" {
			return catalog.ViewVersion{}, fmt.Errorf("view %s: a backfill runs on a local cluster; on trino %s a build rebuilds every day", req.View, req.Trino.URL)
		}
		if err := trinoBuildable(plan); err != nil {
			return catalog.ViewVersion{}, fmt.Errorf("view %s cannot be built on trino %s: %w", req.View, req.Trino.URL, err)
		}
		req.Full = true
	}
	if req.From == "" && req.To == "" {
		if err := b.speed.Flush(ctx, plan.Dataset); err != nil {
			return catalog.ViewVersion{}, fmt.Errorf("archive recent records: %w", err)
		}
	}
	archive, err := b.cat.ArchiveFiles(ctx, plan.Dataset)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	var cur *catalog.ViewVersion
	switch v, err := b.cat.CurrentVersion(ctx, req.View); {
	case err == nil:
		cur = &v
	case !errors.Is(err, catalog.ErrNotFound):
		return catalog.ViewVersion{}, err
	}
	bp, err := planBuild(req, plan.TimeKey != "", cur, archive)
	if errors.Is(err, ErrUpToDate) && cur != nil {
		return *cur, err
	}
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	versions, err := b.cat.ListVersions(ctx, req.View)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	next := int64(1)
	if len(versions) > 0 {
		next = versions[0].Version + 1
	}
	files, err := b.execute(ctx, req, plan, bp, next)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	// The build read its inputs; its own garbage collection may take them.
	reading()
	v := catalog.ViewVersion{
		View: req.View, Covered: bp.covered, Files: append(bp.carried, files...), JobID: req.JobID,
		CreatedAt: time.Now().UTC(), BuildMillis: time.Since(start).Milliseconds(),
		Meta: catalog.VersionMeta{Kind: bp.kind, Rebuilt: bp.rebuilt},
	}
	if cur != nil && bp.kind != KindFull {
		v.Meta.Base = cur.Version
	}
	for _, f := range v.Files {
		v.Rows, v.Bytes = v.Rows+f.Rows, v.Bytes+f.Bytes
	}
	published, err := b.cat.PublishVersion(ctx, v)
	if err != nil {
		b.discard(files)
		return catalog.ViewVersion{}, fmt.Errorf("publish: %w", err)
	}
	if published.Version != next {
		// Builds of a view are serialised, so another control plane built
		// concurrently; its files would be shadowed by these.
		return published, fmt.Errorf("published as version %d but files were written for version %d", published.Version, next)
	}
	// The catalog is the commit: from here the version exists, and a restart
	// would hand it to the speed layer even if this call failed.
	if err := b.speed.Publish(ctx, req.View, published); err != nil {
		return published, fmt.Errorf("hand over version %d to serving: %w", published.Version, err)
	}
	b.logger.Info("view built", "view", req.View, "version", published.Version, "kind", bp.kind,
		"covered", bp.covered, "rebuilt", len(bp.rebuilt), "rows", published.Rows, "ms", published.BuildMillis)
	if err := b.collect(ctx, req.View); err != nil {
		b.logger.Warn("garbage collection after build", "view", req.View, "err", err)
	}
	return published, nil
}

// partitionColumn is the Hive partition column of view outputs: "dt",
// unless the view has a column of that name.
func partitionColumn(plan *viewsql.Plan) string {
	for _, c := range plan.Partial {
		if strings.EqualFold(c.Name, "dt") {
			return "duet_dt"
		}
	}
	return "dt"
}

// execute runs the build on an executor and uploads its output files.
func (b *Builder) execute(ctx context.Context, req Request, plan *viewsql.Plan, bp buildPlan, version int64) ([]catalog.VersionFile, error) {
	dir := filepath.Join(b.cfg.ScratchDir, "build-"+req.JobID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	inputs, err := b.localPaths(archivePaths(bp.inputs))
	if err != nil {
		return nil, err
	}
	merge, err := b.localPaths(catalog.VersionPaths(bp.merge))
	if err != nil {
		return nil, err
	}
	task := Task{
		Output: filepath.Join(dir, "out"), Memory: b.cfg.ExecutorMemory, Threads: b.cfg.ExecutorThreads,
		AllowedDirs: allowedDirs(append(inputs, merge...), dir),
	}
	switch {
	case req.Trino != nil:
		t := &TrinoTask{Source: *req.Trino, Table: req.Trino.relation(plan.Dataset), Columns: plan.Partial}
		for _, f := range bp.inputs {
			t.ExpectRows += f.Rows
		}
		task.Trino, task.SQL, task.AllowedDirs = t, plan.PartialSQL(t.Table), []string{dir}
	// A backfill of days without records has no inputs: the partitions become empty.
	case len(inputs) > 0:
		task.SQL = plan.PartialSQL(dataset.ReadParquet(inputs))
	}
	if len(merge) > 0 {
		base := "SELECT " + plan.PartialColumns() + " FROM " + dataset.ReadParquet(merge)
		if task.SQL != "" {
			base = task.SQL + " UNION ALL " + base
		}
		task.SQL = plan.CombineSQL("(" + base + ")")
	}
	if plan.TimeKey != "" {
		task.PartitionColumn = partitionColumn(plan)
		task.PartitionExpr = fmt.Sprintf("strftime(CAST(%s AS DATE), '%%Y-%%m-%%d')", dataset.QuoteIdent(plan.TimeKey))
	}
	res, err := b.run(ctx, req.LogPrefix, dir, task)
	if err != nil {
		return nil, err
	}
	out := make([]catalog.VersionFile, len(res.Files))
	for i, f := range res.Files {
		name := fmt.Sprintf("views/%s/v%d/part-%05d.parquet", req.View, version, i)
		if f.Partition != "" {
			name = fmt.Sprintf("views/%s/v%d/%s=%s/part-%05d.parquet", req.View, version, task.PartitionColumn, f.Partition, i)
		}
		out[i] = catalog.VersionFile{Path: name, Partition: f.Partition, Rows: f.Rows, Bytes: f.Bytes}
	}
	// Each upload syncs its file; a few at a time hide most of that latency.
	errs := make([]error, len(out))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = b.upload(ctx, out[i].Path, res.Files[i].Path)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.discard(out)
		return nil, fmt.Errorf("upload output: %w", err)
	}
	return out, nil
}

// run launches one executor for task in dir, keeps its output under
// logPrefix, and reads its result.
func (b *Builder) run(ctx context.Context, logPrefix, dir string, task Task) (Result, error) {
	if err := writeJSON(filepath.Join(dir, TaskFile), task); err != nil {
		return Result{}, err
	}
	err := b.launcher.Launch(ctx, dir)
	if logPrefix != "" {
		keepCtx, cancel := KeepOutputContext(ctx)
		for _, name := range []string{"stdout", "stderr"} {
			if uerr := b.upload(keepCtx, logPrefix+name, filepath.Join(dir, name)); uerr != nil && !errors.Is(uerr, os.ErrNotExist) {
				b.logger.Warn("keep executor output", "file", name, "err", uerr)
			}
		}
		cancel()
	}
	if err != nil {
		return Result{}, fmt.Errorf("executor: %w", err)
	}
	var res Result
	if err := readJSON(filepath.Join(dir, ResultFile), &res); err != nil {
		return Result{}, fmt.Errorf("executor result: %w", err)
	}
	for i := range res.Files {
		res.Files[i].Path = filepath.Join(dir, res.Files[i].Path)
	}
	return res, nil
}

func (b *Builder) upload(ctx context.Context, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return b.bucket.Upload(ctx, name, f)
}

// discard deletes files of a build that will not be published. Readers never
// see them (no version names them); this only saves the space early.
func (b *Builder) discard(files []catalog.VersionFile) {
	ctx, cancel := KeepOutputContext(context.Background())
	defer cancel()
	var left []string
	for _, f := range files {
		if err := b.bucket.Delete(ctx, f.Path); err != nil && !objstore.IsObjNotFoundErr(err) {
			b.logger.Warn("delete unpublished file; queued for garbage collection", "path", f.Path, "err", err)
			left = append(left, f.Path)
		}
	}
	// No version names them, so only the garbage queue can find them again.
	if len(left) > 0 {
		if err := b.cat.AddGarbage(ctx, left); err != nil {
			b.logger.Error("unpublished files stay in the object store", "files", left, "err", err)
		}
	}
}

// Rollback makes an older version current again. The speed layer then holds
// the offsets that version does not cover, so merged answers stay exact.
func (b *Builder) Rollback(ctx context.Context, view string, version int64) (catalog.ViewVersion, error) {
	defer b.lock(view)()
	v, err := b.cat.SetCurrentVersion(ctx, view, version)
	if err != nil {
		return catalog.ViewVersion{}, err
	}
	if err := b.speed.Publish(ctx, view, v); err != nil {
		return v, fmt.Errorf("hand version %d to serving: %w", version, err)
	}
	b.logger.Info("view rolled back", "view", view, "version", version, "covered", v.Covered)
	return v, nil
}

func (b *Builder) localPaths(names []string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		p, err := b.bucket.LocalPath(n)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func archivePaths(files []catalog.ArchiveFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
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

// keepOutputTimeout bounds keeping an attempt's logs and manifest.
const keepOutputTimeout = 15 * time.Second

// KeepOutputContext is the context an attempt's output is kept under: it
// outlives ctx, since a killed or timed-out attempt's logs matter most, but
// only by keepOutputTimeout, since with the object store down its retries
// would otherwise hold the attempt, and its view, for their whole budget.
func KeepOutputContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), keepOutputTimeout)
}
