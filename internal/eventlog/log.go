// Package eventlog is duet's built-in durable event log: one append-only,
// segmented write-ahead log per dataset, addressed by offsets 0, 1, 2, ...
// with one offset per row. Append returns only after the batch is fsynced, so
// an acknowledged write survives a crash; Open recovers by dropping a torn
// tail of the last segment (writes that were never acknowledged).
//
// A batch read from an external source (Kafka, NATS JetStream) is appended
// with AppendSourced together with the source's positions after it, in one
// frame: after a crash the log holds both or neither, so a consumer resumes
// exactly after the last batch it made durable.
//
// Segments roll only when the caller says so (the speed layer rolls the log
// when it seals a speed segment, so both share boundaries) and are deleted
// whole by TruncateBefore once archived.
package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/internal/durable"
)

// Errors callers may test for with errors.Is.
var (
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("event log is closed")
	// ErrTruncated means a Replay asked for offsets already deleted by
	// TruncateBefore; they must come from the archive instead.
	ErrTruncated = errors.New("offsets were truncated from the event log")
	// ErrOutOfRange means a Replay asked to start beyond the end of the log.
	ErrOutOfRange = errors.New("offset is beyond the end of the event log")
	// ErrCorrupt means a sealed part of the log failed validation; the log
	// cannot be opened until the damaged segment is repaired or restored.
	ErrCorrupt = errors.New("event log is corrupt")
	// ErrFailed means an earlier write or fsync failed, so what is on disk is
	// unknown; the log refuses further appends until it is reopened.
	ErrFailed = errors.New("event log failed an earlier write; reopen it to recover")
)

// Config holds the log's optional settings.
type Config struct {
	// NoSync skips fsync; only for benchmarks. Default false (fsync every Append).
	NoSync bool
	// Allocator allocates decoded batches in Replay; nil means
	// memory.DefaultAllocator.
	Allocator memory.Allocator
}

// Validate checks the config. Every field's zero value is valid.
func (c Config) Validate() error { return nil }

// Segment is one segment file's offset range [First, End).
type Segment struct {
	First, End int64
}

// segment is a segment file as the log tracks it.
type segment struct {
	first, end int64
	path       string
	size       int64 // bytes of whole frames
}

// Log is one dataset's event log. Its methods are safe for concurrent use.
type Log struct {
	dir    string
	schema *arrow.Schema
	cfg    Config
	mem    memory.Allocator
	logger *slog.Logger

	mu      sync.Mutex
	segs    []segment    // in offset order; the active segment is last
	active  *os.File     // open for appending; nil after Close
	buf     bytes.Buffer // the frames of one write
	closed  bool
	failErr error // sticky: the first failed write or fsync
	// lastSource is the source positions of the last sourced frame read at
	// Open or appended since, and lastSourceEnd the offset after that frame.
	lastSource    []byte
	lastSourceEnd int64
}

// Open opens or creates the log in dir (one directory per dataset). schema is
// the dataset's Arrow schema. See the package doc for how it recovers.
func Open(dir string, schema *arrow.Schema, cfg Config, logger *slog.Logger) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if schema == nil {
		return nil, fmt.Errorf("open event log %s: schema is required", dir)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mem := cfg.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	l := &Log{dir: dir, schema: schema, cfg: cfg, mem: mem, logger: logger.With("log_dir", dir)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	segs, err := l.recoverSegments()
	if err != nil {
		return nil, fmt.Errorf("open event log %s: %w", dir, err)
	}
	if len(segs) == 0 {
		// A fresh log: create the first segment now, so Segments always has
		// an active segment and offsets are named on disk from the start.
		if err := createSegment(dir, 0); err != nil {
			return nil, fmt.Errorf("open event log %s: %w", dir, err)
		}
		segs = []segment{{first: 0, end: 0, path: segmentPath(dir, 0)}}
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("open event log segment %d: %w", last.first, err)
	}
	l.segs = segs
	l.active = f
	l.logger.Debug("event log opened", "segments", len(segs), "first_offset", segs[0].first, "end_offset", last.end)
	return l, nil
}

// Append writes rec to the log and returns the offset of its first row; its
// rows get offsets first..first+rows-1. The batch is durable on return unless
// Config.NoSync is set. rec must have the log's column names and types.
func (l *Log) Append(rec arrow.RecordBatch) (first int64, err error) {
	return l.append(rec, nil)
}

// AppendSourced is Append for a batch read from an external source: source
// is where that source stands after the batch's last row (opaque to the
// log, not empty, at most 1 MiB). It is stored in the batch's frame, so it is
// durable exactly when the batch is; ReplaySourced and LastSource return it.
func (l *Log) AppendSourced(rec arrow.RecordBatch, source []byte) (first int64, err error) {
	if len(source) == 0 {
		return 0, errors.New("append to event log: source positions are empty (use Append for a batch without a source)")
	}
	return l.append(rec, source)
}

func (l *Log) append(rec arrow.RecordBatch, source []byte) (first int64, err error) {
	firsts, err := l.AppendBatches([]Batch{{Rec: rec, Source: source}})
	if err != nil {
		return 0, err
	}
	return firsts[0], nil
}

// Batch is one record batch for AppendBatches, with the source positions
// after it (nil for a batch without a source; see AppendSourced).
type Batch struct {
	Rec    arrow.RecordBatch
	Source []byte
}

// AppendBatches appends each batch as its own frame, in order, with one
// write and one fsync for all of them (group commit: concurrent producers
// share the fsync), and returns the offset of each batch's first row. Either
// every batch is appended or, on error, none.
func (l *Log) AppendBatches(batches []Batch) (firsts []int64, err error) {
	recs := make([]arrow.RecordBatch, len(batches))
	for i, b := range batches {
		rec := b.Rec
		if rec == nil || rec.NumRows() == 0 {
			return nil, errors.New("append to event log: record batch has no rows")
		}
		if rec.NumRows() > maxRowsPerFrame {
			return nil, fmt.Errorf("append to event log: %d rows in one batch, more than %d; split the batch", rec.NumRows(), int64(maxRowsPerFrame))
		}
		if b.Source != nil && len(b.Source) == 0 {
			return nil, errors.New("append to event log: source positions are empty (use Append for a batch without a source)")
		}
		if err := l.checkSchema(rec.Schema()); err != nil {
			return nil, fmt.Errorf("append to event log: %w", err)
		}
		// Carry the batch under the log's own schema, so nullability or metadata
		// differences in the producer's schema do not reach the file.
		recs[i] = array.NewRecordBatch(l.schema, rec.Columns(), rec.NumRows())
		defer recs[i].Release()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return nil, err
	}
	seg := &l.segs[len(l.segs)-1]
	firsts = make([]int64, len(recs))
	end := seg.end
	l.buf.Reset()
	for i, rec := range recs {
		firsts[i] = end
		if err := encodeFrame(&l.buf, l.schema, l.mem, rec, end, batches[i].Source); err != nil {
			return nil, fmt.Errorf("append to event log at offset %d: %w", end, err)
		}
		end += rec.NumRows()
	}
	n, werr := l.active.Write(l.buf.Bytes())
	if werr == nil && !l.cfg.NoSync {
		werr = l.active.Sync()
	}
	if werr != nil {
		// Undo a partial write so the file ends at a frame boundary; the
		// state on disk is still uncertain after a failed fsync, so refuse
		// further appends until a reopen re-validates the file.
		if n > 0 {
			_ = l.active.Truncate(seg.size)
		}
		l.failErr = fmt.Errorf("%w: append at offset %d to %s: %v", ErrFailed, firsts[0], seg.path, werr)
		l.logger.Error("event log append failed", "offset", firsts[0], "err", werr)
		return nil, fmt.Errorf("append to event log at offset %d: %w", firsts[0], werr)
	}
	seg.size += int64(n)
	seg.end = end
	for i := len(batches) - 1; i >= 0; i-- {
		if batches[i].Source != nil {
			l.lastSource, l.lastSourceEnd = bytes.Clone(batches[i].Source), firsts[i]+recs[i].NumRows()
			break
		}
	}
	return firsts, nil
}

// maxRowsPerFrame is what the frame header's row count holds.
const maxRowsPerFrame = 1<<32 - 1

func (l *Log) checkSchema(s *arrow.Schema) error {
	if s.NumFields() != l.schema.NumFields() {
		return fmt.Errorf("record batch has %d columns, the log's schema has %d", s.NumFields(), l.schema.NumFields())
	}
	for i, f := range s.Fields() {
		want := l.schema.Field(i)
		if f.Name != want.Name || !arrow.TypeEqual(f.Type, want.Type) {
			return fmt.Errorf("column %d is %s %s, the log's schema has %s %s", i, f.Name, f.Type, want.Name, want.Type)
		}
	}
	return nil
}

// Err is why the log takes no more appends (closed, or a failed write or
// fsync until a reopen), nil while it does. An append refused for its own
// records (schema, size) leaves it nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usable()
}

func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.failErr
}

// EndOffset is the offset the next appended row gets.
func (l *Log) EndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[len(l.segs)-1].end
}

// Roll seals the active segment and starts a new, empty one named by
// EndOffset. It does nothing when the active segment is empty.
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	cur := l.segs[len(l.segs)-1]
	if cur.end == cur.first {
		return nil
	}
	if l.cfg.NoSync {
		// Sealed segments are always synced, even in benchmarks, so that
		// recovery's "only the last segment may be torn" holds.
		if err := l.active.Sync(); err != nil {
			l.failErr = fmt.Errorf("%w: sync %s: %v", ErrFailed, cur.path, err)
			return fmt.Errorf("roll event log: sync segment %d: %w", cur.first, err)
		}
	}
	if err := createSegment(l.dir, cur.end); err != nil {
		return fmt.Errorf("roll event log: %w", err)
	}
	f, err := os.OpenFile(segmentPath(l.dir, cur.end), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("roll event log: open segment %d: %w", cur.end, err)
	}
	if err := l.active.Close(); err != nil {
		l.logger.Warn("closing sealed event log segment", "segment", cur.path, "err", err)
	}
	l.active = f
	l.segs = append(l.segs, segment{first: cur.end, end: cur.end, path: segmentPath(l.dir, cur.end)})
	return nil
}

// LastSource returns the source positions of the last sourced frame (see
// AppendSourced) among those the log read at Open or appended since, and the
// offset just after that frame; ok is false when there is none. Frames
// deleted by TruncateBefore or Restart before Open are not read, so a caller
// that truncates keeps the positions of what it truncated elsewhere.
func (l *Log) LastSource() (source []byte, end int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastSource == nil {
		return nil, 0, false
	}
	return bytes.Clone(l.lastSource), l.lastSourceEnd, true
}

// Segments lists the segment files in offset order, the active one last.
func (l *Log) Segments() []Segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Segment, len(l.segs))
	for i, s := range l.segs {
		out[i] = Segment{First: s.first, End: s.end}
	}
	return out
}

// TruncateBefore deletes the segment files whose offsets all lie below off
// (End <= off). The active segment is never deleted, so the next offset
// survives a restart through its file name.
func (l *Log) TruncateBefore(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	n := 0
	for n < len(l.segs)-1 && l.segs[n].end <= off {
		n++
	}
	if n == 0 {
		return nil
	}
	// Oldest first, so a crash part-way leaves a contiguous log.
	for i := 0; i < n; i++ {
		if err := os.Remove(l.segs[i].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.segs = l.segs[i:]
			return fmt.Errorf("truncate event log: delete segment %d: %w", l.segs[0].first, err)
		}
	}
	l.segs = append([]segment(nil), l.segs[n:]...)
	if err := durable.SyncDir(l.dir); err != nil {
		return fmt.Errorf("truncate event log: %w", err)
	}
	l.logger.Debug("event log truncated", "before", off, "segments_deleted", n, "first_offset", l.segs[0].first)
	return nil
}

// Restart deletes every segment file and continues the log, empty, at offset
// at, which must not be below EndOffset. It is for a log whose records are
// all kept elsewhere (archived) up to at, when its own files were lost or
// are older than that: the next Append gets offset at. Segments are deleted
// oldest first and the new one created last, so a crash part-way leaves a
// contiguous log (or none, which opens at 0) that a caller restarts again.
func (l *Log) Restart(at int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	if end := l.segs[len(l.segs)-1].end; at < end {
		return fmt.Errorf("restart event log at offset %d: it already holds offsets up to %d", at, end)
	}
	if err := l.active.Close(); err != nil {
		l.logger.Warn("closing event log segment", "segment", l.segs[len(l.segs)-1].path, "err", err)
	}
	l.active = nil
	// Whatever happens next, the files no longer match l.segs until a reopen.
	fail := func(err error) error {
		l.failErr = fmt.Errorf("%w: restart at offset %d: %v", ErrFailed, at, err)
		return fmt.Errorf("restart event log at offset %d: %w", at, err)
	}
	for _, s := range l.segs {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(fmt.Errorf("delete segment %d: %w", s.first, err))
		}
	}
	if err := durable.SyncDir(l.dir); err != nil {
		return fail(err)
	}
	if err := createSegment(l.dir, at); err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(segmentPath(l.dir, at), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fail(fmt.Errorf("open segment %d: %w", at, err))
	}
	l.active = f
	l.segs = []segment{{first: at, end: at, path: segmentPath(l.dir, at)}}
	l.logger.Warn("event log restarted", "offset", at)
	return nil
}

// Close syncs and closes the active segment. Further calls return ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.closed = true
	if l.active == nil { // a failed Restart closed it
		return nil
	}
	var err error
	if l.cfg.NoSync && l.failErr == nil {
		err = l.active.Sync()
	}
	if cerr := l.active.Close(); err == nil {
		err = cerr
	}
	l.active = nil
	if err != nil {
		return fmt.Errorf("close event log %s: %w", l.dir, err)
	}
	return nil
}
