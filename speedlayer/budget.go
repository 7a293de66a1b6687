package speedlayer

// The memory budget bounds what the speed layer retains: the raw rows of
// unarchived segments and the view partials no batch version covers yet, all
// of it in-memory engine tables. What counts is the engine's own accounting
// of those tables (DuckDB's duckdb_memory(), tags IN_MEMORY_TABLE and
// OVERFLOW_STRINGS, resident or spilled to its temp directory): it sees
// DuckDB's block allocation, compression after a checkpoint, and rows
// deleted but not reclaimed yet, which no estimate of ours can. That query
// costs a few hundred microseconds, too much for every request, so a
// background loop runs it (every tick over budget, at most every
// measureEvery under it); between two measures each applied micro-batch adds
// an estimate of its uncompressed size, and each admitted request reserves
// an upper bound of its size until it is applied.
//
// Ingest is admitted while measure + estimates since + reservations are under
// the budget, and refused (*BudgetError, HTTP 429) before anything is
// appended to the log otherwise. A request admitted under the budget is
// applied whole even when it takes memory over it, so the engine may hold
// the budget plus one request plus its allocation granularity (a 256 KiB
// block per column of the raw and partial tables, which estimates miss
// until the next measure), never more.
//
// Over budget, the loop seals every open segment that holds records, so the
// archiver frees them without waiting for their size or age (an archived
// segment's table is dropped whole), and runs a CHECKPOINT of the engine's
// catalog, which compresses what stays and reclaims handed-off partials. While it runs the engine holds the
// rewritten row groups twice, compressed and not: room the engine's memory
// limit, not the budget, provides.
// Partials are freed only when a view build covers them.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/viewsql"
)

// measureEvery is the longest the engine goes unmeasured while under budget.
const measureEvery = 100 * time.Millisecond

// DefaultMemoryBudget is the budget when none is configured: a quarter of the
// engine's memory limit, leaving the rest to queries, archiving, checkpoints
// and partial recomputation, which share that limit.
const DefaultMemoryBudget = "25%"

// BudgetError refuses a request because the speed layer retains its memory
// budget's worth of state. Nothing of the request was stored; the same
// request may be sent again after RetryAfter.
type BudgetError struct {
	Dataset    string
	Records    int64
	Retained   int64
	Budget     int64
	RetryAfter time.Duration
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("dataset %q: request not accepted, none of its %d records were stored: "+
		"the speed layer holds %s of unarchived records and view partials, at or over its memory budget of %s; "+
		"retry in %s, once archiving and view builds have freed memory",
		e.Dataset, e.Records, FormatBytes(e.Retained), FormatBytes(e.Budget), e.RetryAfter)
}

func (e *BudgetError) Unwrap() error { return ErrOverBudget }

// MemoryBudget is a budget as configured: a size, or a share of the engine's
// memory limit.
type MemoryBudget struct {
	Bytes   int64
	Percent float64
}

// ParseMemoryBudget reads "512MiB", "2GB", "1073741824" (bytes) or "25%" (of
// the engine's memory limit); "" is DefaultMemoryBudget. KB, MB, GB and TB are
// powers of 1000, KiB, MiB, GiB and TiB of 1024, as in DuckDB.
func ParseMemoryBudget(s string) (MemoryBudget, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultMemoryBudget
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f <= 0 || f > 100 {
			return MemoryBudget{}, fmt.Errorf("%q: a share of the engine's memory limit must be a percentage above 0 and at most 100", s)
		}
		return MemoryBudget{Percent: f}, nil
	}
	n, err := ParseBytes(s)
	if err != nil {
		return MemoryBudget{}, err
	}
	if n <= 0 {
		return MemoryBudget{}, fmt.Errorf("%q: must be positive", s)
	}
	return MemoryBudget{Bytes: n}, nil
}

// Of resolves the budget against the engine's memory limit in bytes.
func (b MemoryBudget) Of(engineLimit int64) int64 {
	if b.Percent > 0 {
		return int64(float64(engineLimit) * b.Percent / 100)
	}
	return b.Bytes
}

var byteUnits = map[string]float64{
	"": 1, "b": 1, "byte": 1, "bytes": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseBytes reads a size such as "512MiB", "1.5GB", "3.7 GiB" or "4096".
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	f, err := strconv.ParseFloat(num, 64)
	mult, ok := byteUnits[unit]
	if err != nil || !ok {
		return 0, fmt.Errorf("%q: give a size such as 512MiB, 2GB or a number of bytes", s)
	}
	v := f * mult
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return int64(math.Round(v)), nil
}

// FormatBytes renders n in binary units, like DuckDB ("8.0 MiB").
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

// resolveBudget turns the configured budget into bytes against the
// engine's memory limit.
func resolveBudget(spec string, db *sql.DB, logger *slog.Logger) (int64, error) {
	mb, err := ParseMemoryBudget(spec)
	if err != nil {
		return 0, fmt.Errorf("speedlayer.memory_budget: %w", err)
	}
	engineLimit, err := engineMemoryLimit(context.Background(), db)
	if err != nil {
		return 0, fmt.Errorf("speedlayer.memory_budget %s: %w", spec, err)
	}
	limit := mb.Of(engineLimit)
	if limit <= 0 {
		return 0, fmt.Errorf("speedlayer.memory_budget %s: comes to %d bytes of the engine's %s", spec, limit, FormatBytes(engineLimit))
	}
	if limit >= engineLimit {
		logger.Warn("the speed layer's memory budget is not below the engine's memory limit: the engine will spill held records to its temp directory, and queries may run out of memory, before ingest is refused",
			"budget", FormatBytes(limit), "engine_memory_limit", FormatBytes(engineLimit))
	}
	logger.Info("speed layer memory budget", "budget", FormatBytes(limit), "engine_memory_limit", FormatBytes(engineLimit))
	return limit, nil
}

// engineMemoryLimit is the engine's memory limit in bytes, as DuckDB reports it.
func engineMemoryLimit(ctx context.Context, db *sql.DB) (int64, error) {
	var s string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('memory_limit')").Scan(&s); err != nil {
		return 0, fmt.Errorf("read the engine's memory limit: %w", err)
	}
	n, err := ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("the engine's memory limit: %w", err)
	}
	return n, nil
}

// measureSQL sums the engine's in-memory table data, resident or spilled.
const measureSQL = `SELECT coalesce(sum(memory_usage_bytes + temporary_storage_bytes), 0)::BIGINT
FROM duckdb_memory() WHERE tag IN ('IN_MEMORY_TABLE', 'OVERFLOW_STRINGS')`

// MeasureRetained asks the engine how many bytes its in-memory tables hold:
// the figure the budget bounds. It runs a query; Memory gives the cached one.
func MeasureRetained(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, measureSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("measure engine memory: %w", err)
	}
	return n, nil
}

// MemoryStatus is the speed layer's retained memory and its budget, in bytes.
type MemoryStatus struct {
	Retained, Budget int64
}

// Memory reports the retained memory as last measured (plus estimates of
// what was applied since) and the budget.
func (l *Layer) Memory() MemoryStatus {
	return MemoryStatus{Retained: l.budget.retained(), Budget: l.budget.limit}
}

type budget struct {
	limit      int64
	retryAfter time.Duration

	// measured is the engine's last measure; committed the estimated bytes
	// of micro-batches applied since; reserved the upper bounds of admitted
	// requests not applied yet; dedup the estimated bytes of the datasets'
	// dedup indexes (Go memory, outside the engine's measure).
	measured, committed, reserved, dedup atomic.Int64
	refreshMu                            sync.Mutex
	over, checkpointing                  atomic.Bool
	// checkpointMu is held while a checkpoint runs: mid-checkpoint the
	// engine holds the compressed copy of the row groups it rewrites beside
	// the originals, working memory that is not retained state.
	checkpointMu sync.Mutex

	refused     *prometheus.CounterVec
	checkpoints *prometheus.CounterVec
}

func newBudget(limit int64, retryAfter time.Duration, reg prometheus.Registerer) *budget {
	b := &budget{
		limit: limit, retryAfter: retryAfter,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_speedlayer_ingest_refused_total",
			Help: "Ingest requests refused (HTTP 429) because the speed layer was at its memory budget.",
		}, []string{"dataset"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_speedlayer_checkpoints_total",
			Help: "Engine checkpoints run over budget to reclaim deleted rows, by result (ok, failed).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(b.refused, b.checkpoints,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "duet_speedlayer_retained_bytes",
				Help: "Engine memory held by unarchived records and view partials (in-memory tables, resident or spilled), plus the estimated size of dedup indexes.",
			}, func() float64 { return float64(b.retained()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "duet_speedlayer_memory_budget_bytes",
				Help: "The speed layer's memory budget; ingest is refused at or above it.",
			}, func() float64 { return float64(b.limit) }))
	}
	return b
}

func (b *budget) retained() int64 {
	return b.measured.Load() + b.committed.Load() + b.dedup.Load()
}

// reservation holds an admitted request's upper bound until it is applied.
type reservation struct {
	b    *budget
	est  int64
	done bool
}

// admit reserves est bytes for a request of records into dataset, or refuses
// it when the retained state, with what admitted requests are adding, has
// reached the budget.
func (b *budget) admit(dataset string, records, est int64) (*reservation, error) {
	others := b.reserved.Add(est) - est
	if cur := b.retained() + others; b.limit > 0 && cur >= b.limit {
		b.reserved.Add(-est)
		b.refused.WithLabelValues(dataset).Inc()
		return nil, &BudgetError{Dataset: dataset, Records: records, Retained: cur, Budget: b.limit, RetryAfter: b.retryAfter}
	}
	return &reservation{b: b, est: est}, nil
}

// commit records that the request was applied, adding applied bytes.
func (r *reservation) commit(applied int64) {
	if r.done {
		return
	}
	// Add before releasing, so the sum never drops below the truth.
	r.b.committed.Add(applied)
	r.b.reserved.Add(-r.est)
	r.done = true
}

// release gives back the reservation of a request that was not applied.
func (r *reservation) release() {
	if !r.done {
		r.b.reserved.Add(-r.est)
		r.done = true
	}
}

// refresh replaces the estimates with the engine's measure. Estimates added
// while the measure runs may be counted twice until the next refresh, never
// missed: a batch is committed in the engine before its estimate is added.
func (b *budget) refresh(ctx context.Context, db *sql.DB) error {
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	before := b.committed.Load()
	n, err := MeasureRetained(ctx, db)
	if err != nil {
		return err
	}
	b.measured.Store(n)
	b.committed.Add(-before)
	return nil
}

// watchMemory measures the retained memory every tick and relieves it when
// over budget, until ctx is cancelled.
func (l *Layer) watchMemory(ctx context.Context) {
	t := time.NewTicker(l.cfg.TickInterval)
	defer t.Stop()
	// A checkpoint of a large state takes seconds: it runs apart, one at a
	// time. Mid-checkpoint the engine's figure dips below what the
	// checkpoint will hold when done, so the measure is not refreshed (and
	// ingest stays refused) until it is over.
	var checkpoints sync.WaitGroup
	defer checkpoints.Wait()
	b := l.budget
	var measured time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if b.checkpointing.Load() {
			continue
		}
		// Under budget the estimates keep the figure honest between
		// measures (they miss at most the unfilled part of each column's
		// last block), so the engine is asked at most every measureEvery.
		over := b.limit > 0 && b.retained() >= b.limit
		if over || time.Since(measured) >= measureEvery {
			l.remeasure(ctx)
			measured = time.Now()
			over = b.limit > 0 && b.retained() >= b.limit
		}
		if !over {
			continue
		}
		for _, ds := range l.allDatasets() {
			ds.sealForRelief()
		}
		b.checkpointing.Store(true)
		checkpoints.Go(func() {
			defer b.checkpointing.Store(false)
			l.checkpoint(ctx)
			l.remeasure(ctx)
		})
	}
}

// remeasure refreshes the measure of retained memory and logs crossings of
// the budget.
func (l *Layer) remeasure(ctx context.Context) {
	b := l.budget
	if err := b.refresh(ctx, l.db); err != nil {
		if ctx.Err() == nil {
			l.logger.Warn("measure speed layer memory", "err", err)
		}
		return
	}
	cur := b.retained()
	over := b.limit > 0 && cur >= b.limit
	if b.over.Swap(over) != over {
		if over {
			l.logger.Warn("speed layer at its memory budget: refusing ingest until archiving or view builds free memory",
				"retained", FormatBytes(cur), "budget", FormatBytes(b.limit))
		} else {
			l.logger.Info("speed layer under its memory budget again: accepting ingest",
				"retained", FormatBytes(cur), "budget", FormatBytes(b.limit))
		}
	}
}

// checkpoint makes the engine compress what it holds and reclaim the row
// groups of partials handed off to a build (deleted rows are otherwise freed
// lazily, on later appends, which never come while ingest is refused).
// DuckDB refuses while another write transaction is open; the
// next tick tries again.
func (l *Layer) checkpoint(ctx context.Context) {
	l.budget.checkpointMu.Lock()
	defer l.budget.checkpointMu.Unlock()
	if _, err := l.db.ExecContext(ctx, "CHECKPOINT "+engine.Catalog); err != nil {
		l.budget.checkpoints.WithLabelValues("failed").Inc()
		if ctx.Err() == nil {
			l.logger.Debug("checkpoint to reclaim memory; retried next tick", "err", err)
		}
		return
	}
	l.budget.checkpoints.WithLabelValues("ok").Inc()
}

// sealForRelief seals the open segment if it holds records, so the archiver
// frees them now rather than when the segment is full or old.
func (ds *datasetState) sealForRelief() {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.broken != nil || ds.open().records() == 0 {
		return
	}
	if err := ds.sealLocked(); err != nil {
		ds.l.logger.Error("seal segment over memory budget", "dataset", ds.spec.Name, "err", err)
	}
}

// admitBytes is the upper bound a request reserves: its raw rows, and one
// partial row per record for every view (a batch never has more groups than
// records). Called with ds.mu held.
func (ds *datasetState) admitBytes(rec arrow.RecordBatch) int64 {
	n := rawBytes(rec)
	for _, v := range ds.views {
		n += rec.NumRows() * partialRowBytes(v.plan)
	}
	return n
}

// rawBytes estimates what rec takes in the raw table before compression:
// DuckDB keeps fixed-width values at their width, strings as 16-byte headers
// plus their bytes, and a validity bit per value.
func rawBytes(rec arrow.RecordBatch) int64 {
	n := rec.NumRows()
	var size int64
	for _, col := range rec.Columns() {
		size += (n + 7) / 8
		switch c := col.(type) {
		case *array.String:
			size += 16*n + int64(len(c.ValueBytes()))
		case *array.Boolean:
			size += n
		default:
			if fw, ok := col.DataType().(arrow.FixedWidthDataType); ok && fw.BitWidth() >= 8 {
				size += n * int64(fw.BitWidth()/8)
			} else {
				size += 16 * n
			}
		}
	}
	return size
}

// partialRowBytes estimates one row of a view's partial table.
func partialRowBytes(plan *viewsql.Plan) int64 {
	w := int64(8) // __seg
	for _, c := range plan.Partial {
		w += 1 + typeBytes(c.Type)
	}
	return w
}

func typeBytes(t string) int64 {
	switch strings.ToUpper(t) {
	case "BOOLEAN", "TINYINT", "UTINYINT":
		return 1
	case "SMALLINT", "USMALLINT":
		return 2
	case "INTEGER", "UINTEGER", "DATE", "FLOAT":
		return 4
	case "BIGINT", "UBIGINT", "DOUBLE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIME":
		return 8
	}
	// HUGEINT, DECIMAL, INTERVAL, and strings up to 12 bytes (kept inline).
	return 16
}
