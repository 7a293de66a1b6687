// Package speedlayer holds the records the batch layer has not covered yet.
//
// Each dataset's accepted records go to its durable log and, as Arrow
// micro-batches, into the engine: the raw rows of unarchived segments, and per
// view the partial aggregates of every segment its batch version does not
// cover. Segments are ranges of log offsets [first, end); a sealed segment is
// archived to the master dataset as Parquet, and a view's segments are dropped
// whole when a batch version covering them is published. Every handoff is one
// engine transaction that also redefines the user-visible view, so a query
// sees either the state before or after it, never a gap or an overlap.
package speedlayer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/viewsql"
)

var (
	// ErrUnknownDataset is returned for a dataset the layer does not hold.
	ErrUnknownDataset = errors.New("unknown dataset")
	// ErrUnknownView is returned for a view the layer does not hold.
	ErrUnknownView = errors.New("unknown view")
	// ErrUnavailable means the dataset cannot accept records until the
	// server restarts and recovers it from its log.
	ErrUnavailable = errors.New("dataset unavailable")
	// ErrOverBudget refuses records while the layer retains its memory
	// budget's worth of state; the error is a *BudgetError.
	ErrOverBudget = errors.New("speed layer memory budget reached")
)

// Catalog is the metadata the speed layer reads and writes.
type Catalog interface {
	ArchiveFiles(ctx context.Context, dataset string) ([]catalog.ArchiveFile, error)
	RecordArchive(ctx context.Context, files []catalog.ArchiveFile) error
	// RecordSourcedArchive is RecordArchive that also records, in the same
	// transaction, where the dataset's source stood at the files' end.
	RecordSourcedArchive(ctx context.Context, files []catalog.ArchiveFile, src catalog.SourcePositions) error
	// ArchivedSource is what RecordSourcedArchive last recorded (nil
	// positions when nothing).
	ArchivedSource(ctx context.Context, dataset string) (end int64, positions []byte, err error)
	// ClaimLog and LogClaims record and list which leader owns a dataset's
	// log since which offset (see claim.go).
	ClaimLog(ctx context.Context, c catalog.LogClaim) error
	LogClaims(ctx context.Context, dataset string, since int64) ([]catalog.LogClaim, error)
}

// Bucket receives archive files.
type Bucket interface {
	Upload(ctx context.Context, name string, r io.Reader) error
}

// Files resolves object names to files the engine can read.
type Files interface {
	LocalPath(name string) (string, error)
}

// Merger renders the user-visible views: a dataset's raw table over its
// archive plus the speed layer's unarchived rows, and a view's final form over
// its batch partials plus the speed layer's partials.
type Merger interface {
	RawSQL(spec *dataset.Spec, archive []catalog.ArchiveFile, speedTable string) (string, error)
	ViewSQL(plan *viewsql.Plan, batch []catalog.VersionFile, speedTable string) (string, error)
	// PartialsSQL is the partial rows ViewSQL merges.
	PartialsSQL(plan *viewsql.Plan, batch []catalog.VersionFile, speedTable string) (string, error)
	// PartialsOverTableSQL is PartialsSQL over a copy of the batch files.
	PartialsOverTableSQL(plan *viewsql.Plan, batchTable, speedTable string) string
}

// Config tunes segment sizes and the background loop.
type Config struct {
	// LogDir holds one event log directory per dataset.
	LogDir string `yaml:"log_dir"`
	// ScratchDir stages archive files before upload.
	ScratchDir string `yaml:"scratch_dir"`
	// SegmentMaxRecords seals a segment once it holds this many records.
	SegmentMaxRecords int64 `yaml:"segment_max_records"`
	// SegmentMaxAge seals a non-empty segment this long after its first record.
	SegmentMaxAge time.Duration `yaml:"segment_max_age"`
	// TickInterval is how often the background loop looks for work.
	TickInterval time.Duration `yaml:"tick_interval"`
	// MemoryBudget bounds the engine memory of unarchived records and view
	// partials: a size ("512MiB") or a share of the engine's memory limit
	// ("25%", the default). See budget.go.
	MemoryBudget string `yaml:"memory_budget"`
	// ViewCacheRows: a batch version of at most this many rows is copied
	// into a table of the engine's cache database (engine.CacheCatalog) when
	// it is published, and queries read that instead of its Parquet files;
	// 0 reads the files.
	ViewCacheRows int64 `yaml:"view_cache_rows"`
	// MaterializeAfter: once a dataset has taken no records for this long,
	// each of its aggregate views is materialized, its merged answer
	// computed once into an engine table that queries read until the next
	// records arrive (see materialize.go); 0 never materializes.
	MaterializeAfter time.Duration `yaml:"materialize_after"`
	// CopyGrace is how long a version's engine copy stays after a handoff
	// replaced it: a query that bound the merged view before the handoff
	// opens the copy's database only when it reads it, so it must be there
	// for as long as a query may run.
	CopyGrace time.Duration `yaml:"copy_grace"`
	// Epoch is the leadership epoch this process writes the logs under when
	// replicas share the catalog (see claim.go); 0 when one process owns it.
	Epoch int64 `yaml:"-"`
	// NoSync skips fsync in the log; benchmarks only.
	NoSync bool `yaml:"-"`
	// Now is the clock deduplication windows are measured on; time.Now
	// when nil (tests move it forward instead of waiting).
	Now func() time.Time `yaml:"-"`
}

// DefaultConfig holds the defaults Validate fills in.
func DefaultConfig() Config {
	return Config{SegmentMaxRecords: 100_000, SegmentMaxAge: 30 * time.Second, TickInterval: 200 * time.Millisecond, CopyGrace: 5 * time.Minute}
}

// Validate fills defaults and names a bad field.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.LogDir == "" {
		return errors.New("speedlayer.log_dir: required")
	}
	if c.ScratchDir == "" {
		return errors.New("speedlayer.scratch_dir: required")
	}
	if c.SegmentMaxRecords == 0 {
		c.SegmentMaxRecords = d.SegmentMaxRecords
	}
	if c.SegmentMaxAge == 0 {
		c.SegmentMaxAge = d.SegmentMaxAge
	}
	if c.TickInterval == 0 {
		c.TickInterval = d.TickInterval
	}
	if c.CopyGrace == 0 {
		c.CopyGrace = d.CopyGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SegmentMaxRecords < 0 {
		return fmt.Errorf("speedlayer.segment_max_records: must be positive, got %d", c.SegmentMaxRecords)
	}
	if c.SegmentMaxAge < 0 || c.TickInterval < 0 || c.CopyGrace < 0 || c.MaterializeAfter < 0 {
		return errors.New("speedlayer: durations must be positive")
	}
	if _, err := ParseMemoryBudget(c.MemoryBudget); err != nil {
		return fmt.Errorf("speedlayer.memory_budget: %w", err)
	}
	return nil
}

// Layer is the speed layer of all datasets of one server.
type Layer struct {
	cfg     Config
	db      *sql.DB
	cat     Catalog
	bucket  Bucket
	files   Files
	merger  Merger
	logger  *slog.Logger
	metrics *metrics
	budget  *budget

	dedupMetrics *dedupMetrics

	kick chan struct{}

	// cacheSeq numbers the tables batch versions are copied into.
	cacheSeq atomic.Int64
	// retired holds the copies handoffs replaced, dropped after CopyGrace.
	retiredMu sync.Mutex
	retired   []retiredCopy

	mu       sync.RWMutex
	datasets map[string]*datasetState
	views    map[string]*viewState
}

// New creates an empty layer; AddDataset and AddView load its state.
func New(cfg Config, db *sql.DB, cat Catalog, bucket Bucket, files Files, merger Merger, logger *slog.Logger, reg prometheus.Registerer) (*Layer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	limit, err := resolveBudget(cfg.MemoryBudget, db, logger)
	if err != nil {
		return nil, err
	}
	if cfg.ViewCacheRows > 0 {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", engine.CacheCatalog).Scan(&n); err != nil {
			return nil, fmt.Errorf("look for the engine's cache database: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("view cache of %d rows: the engine has no cache database (engine.Config.CacheFile)", cfg.ViewCacheRows)
		}
	}
	return &Layer{
		cfg: cfg, db: db, cat: cat, bucket: bucket, files: files, merger: merger,
		logger: logger, metrics: newMetrics(reg), dedupMetrics: newDedupMetrics(reg),
		budget:   newBudget(limit, max(time.Second, 2*cfg.TickInterval), reg),
		kick:     make(chan struct{}, 1),
		datasets: map[string]*datasetState{},
		views:    map[string]*viewState{},
	}, nil
}

func (l *Layer) dataset(name string) (*datasetState, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ds, ok := l.datasets[name]
	if !ok {
		return nil, fmt.Errorf("dataset %q: %w", name, ErrUnknownDataset)
	}
	return ds, nil
}

func (l *Layer) view(name string) (*viewState, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	v, ok := l.views[name]
	if !ok {
		return nil, fmt.Errorf("view %q: %w", name, ErrUnknownView)
	}
	return v, nil
}

func (l *Layer) allDatasets() []*datasetState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*datasetState, 0, len(l.datasets))
	for _, ds := range l.datasets {
		out = append(out, ds)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

// Run seals segments that reached their age and archives sealed segments
// until ctx is cancelled; then it closes every dataset's log.
func (l *Layer) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.TickInterval)
	defer t.Stop()
	defer l.close()
	// Memory is watched apart from archiving, which may be stuck on an upload.
	var wg sync.WaitGroup
	wg.Go(func() { l.watchMemory(ctx) })
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.kick:
		}
		for _, ds := range l.allDatasets() {
			if len(ds.restage) > 0 {
				if err := l.restagePending(ctx, ds); err != nil && ctx.Err() == nil {
					l.logger.Warn("restage a superseded log; will retry", "dataset", ds.spec.Name, "err", err)
				}
			}
			ds.sealIfOld(time.Now())
			ds.pruneDedup(l.cfg.Now())
			if _, err := l.archivePending(ctx, ds); err != nil && ctx.Err() == nil {
				l.logger.Error("archive failed; will retry", "dataset", ds.spec.Name, "err", err)
				l.metrics.archiveFailures.Inc()
			}
			l.materializeIdle(ctx, ds, time.Now())
		}
		l.dropRetiredCopies(time.Now())
	}
}

func (l *Layer) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Flush seals the dataset's open segment and archives every sealed segment,
// so that a batch build started now covers every record accepted before.
func (l *Layer) Flush(ctx context.Context, name string) error {
	ds, err := l.dataset(name)
	if err != nil {
		return err
	}
	ds.mu.Lock()
	ds.sealLocked()
	ds.mu.Unlock()
	_, err = l.archivePending(ctx, ds)
	return err
}

func (l *Layer) close() {
	for _, ds := range l.allDatasets() {
		ds.mu.Lock()
		if err := ds.log.Close(); err != nil {
			l.logger.Error("close log", "dataset", ds.spec.Name, "err", err)
		}
		ds.closeEngine()
		ds.mu.Unlock()
	}
}

// Healthy reports the first dataset that cannot accept records.
func (l *Layer) Healthy() error {
	for _, ds := range l.allDatasets() {
		ds.mu.Lock()
		err := ds.broken
		ds.mu.Unlock()
		if err != nil {
			return fmt.Errorf("dataset %q: %w", ds.spec.Name, err)
		}
	}
	return nil
}

type metrics struct {
	records         *prometheus.CounterVec
	applySeconds    prometheus.Histogram
	groupRequests   prometheus.Histogram
	archived        prometheus.Counter
	archiveFailures prometheus.Counter
	materialized    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_speedlayer_records_total", Help: "Records accepted into the speed layer.",
		}, []string{"dataset"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "duet_speedlayer_apply_seconds", Help: "Time to fold one micro-batch into the speed layer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		groupRequests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "duet_speedlayer_commit_requests", Help: "Ingest requests stored by one log write and one engine transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_speedlayer_segments_archived_total", Help: "Segments archived to the master dataset.",
		}),
		archiveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_speedlayer_archive_failures_total", Help: "Failed archive attempts (retried).",
		}),
		materialized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_speedlayer_views_materialized_total", Help: "Times a view's merged answer was computed into a table while its dataset took no records.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.applySeconds, m.groupRequests, m.archived, m.archiveFailures, m.materialized)
	}
	return m
}
