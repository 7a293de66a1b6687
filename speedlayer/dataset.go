package speedlayer

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/eventlog"
)

// segment is a range of log offsets [first, end). Only the last segment of a
// dataset is open; log files are rolled at the same boundaries.
type segment struct {
	first, end int64
	sealed     bool
	// arrived is when its first record was accepted (since this process started).
	arrived time.Time
	// stored is how many rows its engine table holds (created with the
	// first); they are its records, in offset order.
	stored int64
	// source is where the dataset's source stood after the segment's last
	// record (nil while the dataset has read nothing from one): archiving
	// the segment records it (see sourced.go).
	source []byte
}

func (s *segment) records() int64 { return s.end - s.first }

type datasetState struct {
	l      *Layer
	spec   dataset.Spec
	schema *arrow.Schema // spec's, as records are carried
	log    *eventlog.Log

	// Ingest requests queue here; whoever holds leader commits the queue
	// as a group (see ingest).
	queueMu sync.Mutex
	queue   []*pendingIngest
	leader  chan struct{}

	// archiving serialises archive passes; mu is never held across uploads.
	archiving sync.Mutex

	mu sync.Mutex
	// conn is the dataset's writer: every change to its engine tables goes
	// through it under mu, so the dataset's changes are serialised.
	conn     *sql.Conn
	ar       *duckdb.Arrow
	appender *engine.ArrowAppender // micro-batches into segment tables, on conn
	segments []*segment            // unarchived, in offset order; the last one is open
	archive  []catalog.ArchiveFile
	views    []*viewState
	broken   error
	// changed is when a micro-batch was last applied, or the dataset
	// loaded: views are materialized once it is MaterializeAfter old.
	changed time.Time
	// dedup drops records whose key was accepted within the window; nil
	// when the dataset names no dedup key (see dedup.go).
	dedup *dedup
	// source is where the dataset's source stands after the last record
	// of the log, archivedSource where it stood at the archive's end (see
	// sourced.go); nil for a dataset that never read from a source.
	source, archivedSource []byte
	// restage lists superseded logs whose records are to be ingested again
	// (see claim.go).
	restage []restage
}

// rawTable is the view of every unarchived record, with the first offset
// of its segment as __seg. Each segment's records are a table of their own
// (segTable): only appended to, so a micro-batch's rows are the rowids from
// the table's count before it, and dropped whole once archived, which frees
// their memory at once. One shared table cost a third more per event: two
// more columns to fill, a scan for the batch's rows, and deleted rows the
// engine reclaims only at a checkpoint.
func (ds *datasetState) rawTable() string {
	return engine.Table(engine.InternalSchema, "raw__"+ds.spec.Name)
}

func (ds *datasetState) segTable(s *segment) string {
	return engine.Table(engine.InternalSchema, ds.segTableName(s))
}

func (ds *datasetState) segTableName(s *segment) string {
	return fmt.Sprintf("raw__%s__%d", ds.spec.Name, s.first)
}

// defineRawTable points rawTable at the tables of segs that have one, and
// at with's, which is being created.
func (ds *datasetState) defineRawTable(ctx context.Context, tx *sql.Tx, segs []*segment, with *segment) error {
	var parts []string
	for _, s := range segs {
		if s.stored > 0 || s == with {
			parts = append(parts, fmt.Sprintf("SELECT %d::BIGINT AS __seg, %s FROM %s", s.first, ds.columnList(), ds.segTable(s)))
		}
	}
	if len(parts) == 0 {
		typed := make([]string, len(ds.spec.Columns))
		for i, c := range ds.spec.Columns {
			typed[i] = fmt.Sprintf("NULL::%s AS %s", c.Type.DuckDBType(), dataset.QuoteIdent(c.Name))
		}
		parts = []string{"SELECT NULL::BIGINT AS __seg, " + strings.Join(typed, ", ") + " WHERE false"}
	}
	if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE VIEW "+ds.rawTable()+" AS "+strings.Join(parts, " UNION ALL ")); err != nil {
		return fmt.Errorf("define speed table view: %w", err)
	}
	return nil
}

func (ds *datasetState) columnList() string {
	names := make([]string, len(ds.spec.Columns))
	for i, c := range ds.spec.Columns {
		names[i] = dataset.QuoteIdent(c.Name)
	}
	return strings.Join(names, ", ")
}

func (ds *datasetState) open() *segment { return ds.segments[len(ds.segments)-1] }

func (ds *datasetState) archivedEnd() int64 { return archiveEnd(ds.archive) }

func archiveEnd(files []catalog.ArchiveFile) int64 {
	var end int64
	for _, f := range files {
		end = max(end, f.End)
	}
	return end
}

// AddDataset opens the dataset's log and rebuilds its speed state: archived
// offsets come from the catalog, everything after them is replayed from the log.
func (l *Layer) AddDataset(ctx context.Context, spec dataset.Spec) error {
	archive, err := l.cat.ArchiveFiles(ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("dataset %q: read archive: %w", spec.Name, err)
	}
	var restages []restage
	if l.cfg.Epoch > 0 {
		if restages, err = l.claimLog(ctx, spec, archiveEnd(archive)); err != nil {
			return fmt.Errorf("dataset %q: claim log: %w", spec.Name, err)
		}
	}
	log, err := eventlog.Open(filepath.Join(l.cfg.LogDir, spec.Name), spec.ArrowSchema(), eventlog.Config{NoSync: l.cfg.NoSync}, l.logger.With("dataset", spec.Name))
	if err != nil {
		return fmt.Errorf("dataset %q: open log: %w", spec.Name, err)
	}
	_, positions, err := l.cat.ArchivedSource(ctx, spec.Name)
	if err != nil {
		log.Close()
		return fmt.Errorf("dataset %q: read archived source positions: %w", spec.Name, err)
	}
	ds := &datasetState{l: l, spec: spec, schema: spec.ArrowSchema(), log: log, archive: archive, dedup: newDedup(&spec),
		source: positions, archivedSource: positions, restage: restages, leader: make(chan struct{}, 1),
		// Loading counts as a change: idle is measured from here.
		changed: time.Now()}
	if err := l.recover(ctx, ds); err != nil {
		log.Close()
		ds.closeEngine()
		return fmt.Errorf("dataset %q: %w", spec.Name, err)
	}
	l.mu.Lock()
	l.datasets[spec.Name] = ds
	l.mu.Unlock()
	// Ingest may start before the background loop first measures memory.
	if err := l.budget.refresh(ctx, l.db); err != nil {
		l.logger.Warn("measure speed layer memory", "err", err)
	}
	return nil
}

func (l *Layer) recover(ctx context.Context, ds *datasetState) error {
	archived := ds.archivedEnd()
	if end := ds.log.EndOffset(); end < archived {
		switch {
		case ds.spec.Source != nil:
			// The source is the system of record: what followed the archive
			// is read from it again, from the positions archived with it.
			l.logger.Warn("event log ends before the archive: continuing it at the archive's end, the source resends what followed",
				"dataset", ds.spec.Name, "log_end", end, "archived_end", archived)
		case l.cfg.Epoch > 0:
			// Another replica led meanwhile and archived what it accepted;
			// claimLog moved aside whatever this log held that it had not.
			l.logger.Info("event log continues at the archive's end, written by another leader",
				"dataset", ds.spec.Name, "log_end", end, "archived_end", archived)
		default:
			return fmt.Errorf("event log ends at offset %d but the archive holds offsets up to %d: the log directory was lost or replaced", end, archived)
		}
		if err := ds.log.Restart(archived); err != nil {
			return fmt.Errorf("restart log at the archived offset %d: %w", archived, err)
		}
	}
	// A crash after archiving but before truncating leaves covered log files.
	if err := ds.log.TruncateBefore(archived); err != nil {
		return fmt.Errorf("truncate log: %w", err)
	}
	now := time.Now()
	for _, s := range ds.log.Segments() {
		if s.End <= archived {
			continue
		}
		if s.First < archived {
			return fmt.Errorf("log segment [%d,%d) straddles the archived offset %d", s.First, s.End, archived)
		}
		ds.segments = append(ds.segments, &segment{first: s.First, end: s.End, sealed: true, arrived: now})
	}
	if n := len(ds.segments); n == 0 || ds.segments[n-1].end != ds.log.EndOffset() {
		ds.segments = append(ds.segments, &segment{first: ds.log.EndOffset(), end: ds.log.EndOffset()})
	} else {
		ds.segments[n-1].sealed = false
	}
	if ds.open().records() == 0 {
		ds.open().arrived = time.Time{}
	}

	conn, err := l.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("engine connection: %w", err)
	}
	ds.conn = conn
	if ds.ar, err = engine.Arrow(conn); err != nil {
		return err
	}
	if ds.appender, err = engine.NewArrowAppender(conn, ds.schema); err != nil {
		return err
	}
	// Replayed records arrived before this restart: now is a safe arrival
	// time for their dedup keys (see dedup.go).
	restart := l.cfg.Now()
	if ds.dedup != nil {
		if err := ds.loadArchivedKeys(ctx, restart); err != nil {
			return err
		}
	}
	err = ds.log.ReplaySourced(archived, func(first int64, rec arrow.RecordBatch, source []byte) error {
		if ds.dedup != nil {
			if err := ds.dedup.load(rec.Column(ds.dedup.col), restart); err != nil {
				return err
			}
		}
		seg := ds.segmentOf(first)
		if _, err := ds.apply(ctx, seg, []arrow.RecordBatch{rec}, true); err != nil {
			return err
		}
		if source != nil {
			ds.source = bytes.Clone(source)
			seg.source = ds.source
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay log from offset %d: %w", archived, err)
	}
	// A segment without sourced records stands where the one before it did.
	carry := ds.archivedSource
	for _, s := range ds.segments {
		if s.source == nil {
			s.source = carry
		}
		carry = s.source
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := ds.defineRawTable(ctx, tx, ds.segments, nil); err != nil {
		return err
	}
	if err := ds.defineRaw(ctx, tx, ds.archive); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if ds.dedup != nil {
		ds.dedupChanged()
	}
	return nil
}

// closeEngine releases the dataset's engine connection and what lives on it.
func (ds *datasetState) closeEngine() {
	if ds.appender != nil {
		ds.appender.Close()
	}
	if ds.conn != nil {
		ds.conn.Close()
	}
}

func (ds *datasetState) segmentOf(off int64) *segment {
	for _, s := range ds.segments {
		if off >= s.first && (off < s.end || !s.sealed) {
			return s
		}
	}
	return ds.open()
}

func (ds *datasetState) defineRaw(ctx context.Context, tx *sql.Tx, archive []catalog.ArchiveFile) error {
	q, err := ds.l.merger.RawSQL(&ds.spec, archive, ds.rawTable())
	if err != nil {
		return fmt.Errorf("raw view: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE VIEW "+engine.Table(engine.RawSchema, ds.spec.Name)+" AS "+q); err != nil {
		return fmt.Errorf("define raw view: %w", err)
	}
	return nil
}

// Ingest makes rec durable in the dataset's log and visible in every merged
// view, and returns the offset of its first row (-1 when every row was a
// duplicate; see IngestBatch). Once Ingest returns without error the records
// are acknowledged: they survive crashes and restarts.
func (l *Layer) Ingest(ctx context.Context, name string, rec arrow.RecordBatch) (int64, error) {
	res, err := l.IngestBatch(ctx, name, rec)
	if err != nil {
		return 0, err
	}
	return res.First, nil
}

// IngestBatch is Ingest reporting what was stored: on a dataset with a dedup
// key, records whose key was accepted within its window (or earlier in rec)
// are ignored, and when all are, nothing is stored and the answer is still
// success.
func (l *Layer) IngestBatch(ctx context.Context, name string, rec arrow.RecordBatch) (Ingested, error) {
	return l.ingest(ctx, name, rec, nil)
}

// ingest is IngestBatch for records read from the dataset's source when
// source (the positions after them, see sourced.go) is not nil.
//
// Concurrent requests to one dataset commit as a group: the request that
// takes the dataset's leader slot appends every queued request to the log
// with one fsync and applies them to the engine in one transaction, then
// answers each. A micro-batch's cost in the engine is mostly per statement
// (BENCHMARKS.md), so eight producers' requests cost little more than one.
// Each request is still admitted, refused or deduplicated on its own, in
// arrival order, and is acknowledged only once durable and visible.
func (l *Layer) ingest(ctx context.Context, name string, rec arrow.RecordBatch, source []byte) (Ingested, error) {
	ds, err := l.dataset(name)
	if err != nil {
		return Ingested{First: -1}, err
	}
	p := &pendingIngest{ctx: ctx, rec: rec, source: source, start: time.Now(), done: make(chan struct{})}
	ds.queueMu.Lock()
	ds.queue = append(ds.queue, p)
	ds.queueMu.Unlock()
	for {
		select {
		case <-p.done:
			return p.res, p.err
		case ds.leader <- struct{}{}:
			ds.queueMu.Lock()
			group := ds.queue
			ds.queue = nil
			ds.queueMu.Unlock()
			ds.mu.Lock()
			ds.commitGroup(group)
			ds.mu.Unlock()
			<-ds.leader
		}
	}
}

// pendingIngest is one request waiting in its dataset's queue.
type pendingIngest struct {
	ctx    context.Context
	rec    arrow.RecordBatch
	source []byte
	start  time.Time

	done chan struct{} // closed once res and err are set
	res  Ingested
	err  error

	// Set once admitted: the records to store (rec without duplicates) and
	// their memory reservation.
	kept    arrow.RecordBatch
	dups    int64
	reserve *reservation
}

func (p *pendingIngest) finish(res Ingested, err error) {
	if p.kept != nil && p.kept != p.rec {
		p.kept.Release()
	}
	if p.reserve != nil {
		p.reserve.release()
	}
	p.res, p.err = res, err
	close(p.done)
}

// commitGroup stores the requests of a group in order: consecutive
// admitted requests of one segment share a log write and an engine
// transaction. Called with ds.mu held.
func (ds *datasetState) commitGroup(group []*pendingIngest) {
	var run []*pendingIngest
	var runRows int64
	for _, p := range group {
		if !ds.admit(p) {
			continue
		}
		if ds.open().records()+runRows >= ds.l.cfg.SegmentMaxRecords {
			ds.store(run)
			run, runRows = nil, 0
			if err := ds.sealLocked(); err != nil {
				ds.refuse(p, err)
				continue
			}
		}
		run = append(run, p)
		runRows += p.kept.NumRows()
		if ds.dedup != nil {
			// A duplicate is recognised only against keys the log holds:
			// the next request's keys are checked after this one is stored.
			ds.store(run)
			run, runRows = nil, 0
		}
	}
	ds.store(run)
}

// admit deduplicates p and reserves its memory, or answers it: when it was
// all duplicates, refused, or its client has gone away (nothing is stored
// then). It reports whether p is to be stored.
func (ds *datasetState) admit(p *pendingIngest) bool {
	l, name := ds.l, ds.spec.Name
	if ds.broken != nil {
		p.finish(Ingested{First: -1}, fmt.Errorf("dataset %q: %w: %v", name, ErrUnavailable, ds.broken))
		return false
	}
	// A client that has gone away is refused while nothing is stored yet.
	if err := p.ctx.Err(); err != nil {
		p.finish(Ingested{First: -1}, fmt.Errorf("dataset %q: %w", name, err))
		return false
	}
	p.kept = p.rec
	if ds.dedup != nil {
		// Before the budget: a request of retries only needs no memory.
		kept, n, err := ds.dropDuplicates(p.ctx, p.rec, l.cfg.Now())
		if err != nil {
			p.kept = nil
			p.finish(Ingested{First: -1}, fmt.Errorf("dataset %q: %w", name, err))
			return false
		}
		if n > 0 {
			l.dedupMetrics.duplicates.WithLabelValues(name).Add(float64(n))
		}
		p.kept, p.dups = kept, n
		if kept == nil {
			ds.dedup.abort()
			ds.dedupChanged()
			ds.advanceSourceLocked(p.source)
			p.finish(Ingested{First: -1, Duplicates: n}, nil)
			return false
		}
	}
	// Refused here, before the log, a request leaves no trace.
	res, err := l.budget.admit(name, p.kept.NumRows(), ds.admitBytes(p.kept))
	if err != nil {
		ds.refuse(p, err)
		return false
	}
	p.reserve = res
	return true
}

// refuse answers an admitted request that was not stored.
func (ds *datasetState) refuse(p *pendingIngest, err error) {
	if ds.dedup != nil {
		ds.dedup.abort()
		ds.dedupChanged()
	}
	p.finish(Ingested{First: -1}, err)
}

// store appends run (admitted requests, in order, all for the open segment)
// to the log and applies them, then answers each.
func (ds *datasetState) store(run []*pendingIngest) {
	if len(run) == 0 {
		return
	}
	l, name := ds.l, ds.spec.Name
	seg := ds.open()
	batches := make([]eventlog.Batch, len(run))
	recs := make([]arrow.RecordBatch, len(run))
	for i, p := range run {
		batches[i] = eventlog.Batch{Rec: p.kept, Source: p.source}
		recs[i] = p.kept
	}
	firsts, err := ds.log.AppendBatches(batches)
	if err != nil && len(run) > 1 && ds.log.Err() == nil {
		// The log refused one request's records (their schema or size), not
		// the log: each is stored on its own, so only that one is refused.
		for _, p := range run {
			ds.store([]*pendingIngest{p})
		}
		return
	}
	if err != nil {
		for _, p := range run {
			ds.refuse(p, fmt.Errorf("dataset %q: append to log: %w", name, err))
		}
		return
	}
	if ds.dedup != nil {
		// The kept keys count once the log holds them.
		ds.dedup.commit()
		ds.dedupChanged()
	}
	for _, p := range run {
		ds.advanceSourceLocked(p.source)
	}
	if seg.records() == 0 {
		seg.arrived = l.cfg.Now()
	}
	// Once the records are in the log they must become visible even if
	// their clients hang up now: a failed apply would stop the dataset until
	// a restart.
	partialBytes, err := ds.apply(context.WithoutCancel(run[0].ctx), seg, recs, false)
	if err != nil {
		// The records are durable but not visible: refuse more until a
		// restart replays the log, rather than serve answers missing them.
		ds.broken = err
		l.logger.Error("speed layer diverged from log; restart to recover", "dataset", name, "err", err)
		for _, p := range run {
			p.finish(Ingested{First: -1}, fmt.Errorf("dataset %q: %w: %v", name, ErrUnavailable, err))
		}
		return
	}
	l.metrics.groupRequests.Observe(float64(len(run)))
	last := run[len(run)-1]
	seg.end = firsts[len(run)-1] + last.kept.NumRows()
	var rows int64
	for _, p := range run {
		rows += p.kept.NumRows()
	}
	for i, p := range run {
		n := p.kept.NumRows()
		// The partial rows are shared by the run: each request is charged
		// its share, by records.
		p.reserve.commit(rawBytes(p.kept) + partialBytes*n/rows)
		l.metrics.records.WithLabelValues(name).Add(float64(n))
		l.metrics.applySeconds.Observe(time.Since(p.start).Seconds())
		p.finish(Ingested{First: firsts[i], Stored: n, Duplicates: p.dups}, nil)
	}
}

// apply folds one micro-batch (the records of one request, or of a group of
// requests) into its segment's table and, unless rawOnly, into every view's
// partials, in one engine transaction. The records are appended to the table
// in full (engine.ArrowAppender); the partials are computed from the rows
// just appended, so every view reads them through the engine's table scan.
// It returns an estimate of the bytes the partial rows take, for the memory
// budget.
func (ds *datasetState) apply(ctx context.Context, seg *segment, recs []arrow.RecordBatch, rawOnly bool) (int64, error) {
	// Under the dataset's own schema, so producers' nullability or metadata
	// differences do not matter to the appender.
	var rows int64
	same := make([]arrow.RecordBatch, len(recs))
	for i, rec := range recs {
		same[i] = array.NewRecordBatch(ds.schema, rec.Columns(), rec.NumRows())
		defer same[i].Release()
		rows += rec.NumRows()
	}
	tx, err := ds.conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if seg.stored == 0 {
		if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE TABLE "+ds.segTable(seg)+" ("+ds.columnDefs()+")"); err != nil {
			return 0, fmt.Errorf("create segment table: %w", err)
		}
		if err := ds.defineRawTable(ctx, tx, ds.segments, seg); err != nil {
			return 0, err
		}
	}
	if err := ds.appender.Append(engine.Catalog, engine.InternalSchema, ds.segTableName(seg), same); err != nil {
		return 0, fmt.Errorf("append micro-batch: %w", err)
	}
	var partialBytes int64
	if !rawOnly {
		batch := fmt.Sprintf("(SELECT %s FROM %s WHERE rowid >= %d)", ds.columnList(), ds.segTable(seg), seg.stored)
		for _, v := range ds.views {
			r, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s SELECT %d, * FROM (%s)", v.partialTable(), seg.first, v.plan.PartialSQL(batch)))
			if err != nil {
				return 0, fmt.Errorf("view %q partials: %w", v.name, err)
			}
			if n, err := r.RowsAffected(); err == nil {
				partialBytes += n * partialRowBytes(v.plan)
			}
			if v.materialized {
				if err := v.goLive(ctx, tx); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	seg.stored += rows
	ds.changed = time.Now()
	if !rawOnly {
		for _, v := range ds.views {
			v.materialized, v.skipMaterialize = false, false
		}
	}
	return partialBytes, nil
}

func (ds *datasetState) columnDefs() string {
	defs := make([]string, len(ds.spec.Columns))
	for i, c := range ds.spec.Columns {
		defs[i] = dataset.QuoteIdent(c.Name) + " " + c.Type.DuckDBType()
	}
	return strings.Join(defs, ", ")
}

// sealLocked closes the open segment (when it holds records) and rolls the log
// at the same offset, so log files and segments share boundaries.
func (ds *datasetState) sealLocked() error {
	open := ds.open()
	if open.records() == 0 {
		return nil
	}
	if err := ds.log.Roll(); err != nil {
		return fmt.Errorf("dataset %q: roll log at offset %d: %w", ds.spec.Name, open.end, err)
	}
	open.sealed = true
	ds.segments = append(ds.segments, &segment{first: open.end, end: open.end, source: open.source})
	ds.l.wake()
	return nil
}

func (ds *datasetState) sealIfOld(now time.Time) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	open := ds.open()
	if open.records() > 0 && !open.arrived.IsZero() && now.Sub(open.arrived) >= ds.l.cfg.SegmentMaxAge {
		if err := ds.sealLocked(); err != nil {
			ds.l.logger.Error("seal segment", "dataset", ds.spec.Name, "err", err)
		}
	}
}
