package speedlayer

// Deduplication. A dataset whose spec names a dedup key ignores a record
// whose key equals that of a record accepted less than the dataset's window
// before, by arrival time, so a producer's retries do not count twice. It
// happens in Ingest, under the dataset's lock and before the log: a
// duplicate never gets an offset, so the log (the master dataset), raw.<ds>,
// the archive, batch builds and every view agree without further work, and
// rollbacks and builds cannot bring a duplicate back. Within one request the
// first occurrence of a key wins. A null key is never a duplicate (null
// equals nothing, as in SQL).
//
// The index maps each key accepted within the window to its arrival time,
// with a queue in arrival order from which expired keys are pruned on every
// ingest and every tick of the layer's loop. Integer keys are held as they
// are; a varchar key as a 128-bit fingerprint (two seeded 64-bit hashes),
// so an entry has a fixed size whatever the key's length, costs no
// allocation, and holds no pointer for the garbage collector to scan: with
// millions of keys in a window that is most of the index's cost. Two
// different keys share a fingerprint with probability about n²/2¹²⁹ for n
// keys in a window (1e-23 for 100 million), and the seeds are secret and
// new in every process, so no producer can aim for a collision. Its
// estimated size counts into the memory budget, and
// duet_speedlayer_dedup_keys reports its entries.
//
// Durability: an acknowledged key must still keep its duplicates out after a
// restart within the window. Arrival times are not stored per record, so
// recovery rebuilds the index with times no earlier than the true ones: a
// record replayed from the log arrived before the restart, and gets the
// restart time; a record in an archive file arrived before the file was
// written, and gets the file's CreatedAt (plus the millisecond the catalog
// truncates), and only files created within the window are read. After a
// restart a key's window can therefore only last longer than it would have,
// never end sooner; at most by the time between its arrival and the restart
// (log) or its archiving (archive files). Compaction replaces archive files
// with one created later, which lengthens the windows of its keys the same
// way.

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
)

// Ingested is what IngestBatch stored of a request.
type Ingested struct {
	// First is the offset of the first stored record, -1 when none was;
	// stored records have offsets First..First+Stored-1.
	First int64
	// Stored is how many records were appended to the log.
	Stored int64
	// Duplicates were ignored: their dedup key was accepted within the
	// dataset's window, earlier or in the same request.
	Duplicates int64
}

// Estimated bytes of one index entry: the map's slot (key, time, control
// byte, between Go's load factors of 7/16 and 7/8) and the queue's entry
// (key, time), with room for the queue's growth by doubling. Measured over
// one to one and a half million keys: 55 to 70 bytes (integer), 65 to 80
// (varchar), depending on where the map and the queue are in their growth.
const (
	dedupIntEntryBytes    = 64
	dedupStringEntryBytes = 80
)

// fingerprint stands for a varchar key in the index.
type fingerprint [2]uint64

// fingerprinter hashes varchar keys with two independent secret seeds.
type fingerprinter struct{ a, b maphash.Seed }

func newFingerprinter() fingerprinter {
	return fingerprinter{maphash.MakeSeed(), maphash.MakeSeed()}
}

func (f fingerprinter) of(s string) fingerprint {
	return fingerprint{maphash.String(f.a, s), maphash.String(f.b, s)}
}

// stamped is a key with its arrival time in Unix nanoseconds.
type stamped[K comparable] struct {
	key K
	at  int64
}

// keyIndex remembers when each key was last accepted, for one window.
type keyIndex[K comparable] struct {
	window int64
	seen   map[K]int64
	// order holds keys in the order they were accepted, which is arrival
	// order unless the clock steps back, so that pruning stops at the
	// first key still within the window. Lookups compare times, so a late
	// prune never lets a duplicate through.
	order []stamped[K]
	head  int

	// pending holds the keys the current request added, with their
	// previous time (absent: none), until commit or abort.
	pending []stamped[K]
	mark    int
}

// absent marks a pending key that had no previous time.
const absent = math.MinInt64

func newKeyIndex[K comparable](window time.Duration) *keyIndex[K] {
	return &keyIndex[K]{window: int64(window), seen: map[K]int64{}}
}

// offer reports whether k was accepted less than the window before now,
// and if not records it as accepted at now, pending commit.
func (ix *keyIndex[K]) offer(k K, now int64) (dup bool) {
	prev, ok := ix.seen[k]
	if ok && now-prev < ix.window {
		return true
	}
	if !ok {
		prev = absent
	}
	ix.pending = append(ix.pending, stamped[K]{k, prev})
	ix.seen[k] = now
	ix.order = append(ix.order, stamped[K]{k, now})
	return false
}

func (ix *keyIndex[K]) begin() { ix.mark, ix.pending = len(ix.order), ix.pending[:0] }

func (ix *keyIndex[K]) commit() { ix.pending = ix.pending[:0] }

// abort forgets the keys of a request that was not stored.
func (ix *keyIndex[K]) abort() {
	for i := len(ix.pending) - 1; i >= 0; i-- {
		p := ix.pending[i]
		if p.at == absent {
			delete(ix.seen, p.key)
		} else {
			ix.seen[p.key] = p.at
		}
	}
	ix.order = ix.order[:ix.mark]
	ix.commit()
}

// load records k as accepted at at during recovery; a later time already
// held for k wins.
func (ix *keyIndex[K]) load(k K, at int64) {
	if t, ok := ix.seen[k]; ok && t >= at {
		return
	}
	ix.seen[k] = at
	ix.order = append(ix.order, stamped[K]{k, at})
}

// prune forgets keys accepted a window or more before now.
func (ix *keyIndex[K]) prune(now int64) {
	for ix.head < len(ix.order) && now-ix.order[ix.head].at >= ix.window {
		e := ix.order[ix.head]
		if t, ok := ix.seen[e.key]; ok && t == e.at {
			delete(ix.seen, e.key)
		}
		ix.head++
	}
	live := len(ix.order) - ix.head
	switch {
	case live == 0:
		ix.order, ix.head = ix.order[:0], 0
		if cap(ix.order) > 1024 {
			ix.order = nil
		}
	case ix.head > 1024 && ix.head >= live:
		// Move the live tail to the front, in a smaller array when the
		// queue has shrunk to a quarter of its capacity.
		if cap(ix.order) > 4*live {
			ix.order = slices.Clone(ix.order[ix.head:])
		} else {
			n := copy(ix.order, ix.order[ix.head:])
			ix.order = ix.order[:n]
		}
		ix.head = 0
	}
}

func (ix *keyIndex[K]) len() int { return len(ix.seen) }

// bytes estimates the index's memory.
func (ix *keyIndex[K]) bytes(entry int64) int64 { return int64(len(ix.seen)) * entry }

// dedup is a dataset's deduplication state. Every method is called with the
// dataset's lock held.
type dedup struct {
	col    int
	name   string // the key column, for errors
	window time.Duration
	ints   *keyIndex[int64]       // integer and bigint keys
	strs   *keyIndex[fingerprint] // varchar keys
	fp     fingerprinter
	// reported is the size last added to the layer's budget.
	reported int64
	gauge    prometheus.Gauge
}

func newDedup(spec *dataset.Spec) *dedup {
	col := spec.DedupIndex()
	if col < 0 {
		return nil
	}
	d := &dedup{col: col, name: spec.Columns[col].Name, window: time.Duration(spec.DedupWindow)}
	if spec.Columns[col].Type == dataset.Varchar {
		d.strs, d.fp = newKeyIndex[fingerprint](d.window), newFingerprinter()
	} else {
		d.ints = newKeyIndex[int64](d.window)
	}
	return d
}

func (d *dedup) len() int {
	if d.strs != nil {
		return d.strs.len()
	}
	return d.ints.len()
}

func (d *dedup) bytes() int64 {
	if d.strs != nil {
		return d.strs.bytes(dedupStringEntryBytes)
	}
	return d.ints.bytes(dedupIntEntryBytes)
}

func (d *dedup) prune(now time.Time) {
	if d.strs != nil {
		d.strs.prune(now.UnixNano())
	} else {
		d.ints.prune(now.UnixNano())
	}
}

// check decides which rows of rec to keep at time now and remembers the
// kept rows' keys until commit or abort: a row is dropped when its key was
// accepted within the window, or earlier in rec. keep is nil when every row
// is kept.
func (d *dedup) check(rec arrow.RecordBatch, now time.Time) (keep []bool, dups int64, err error) {
	at := now.UnixNano()
	switch c := rec.Column(d.col).(type) {
	case *array.String:
		d.strs.begin()
		keep, dups = markRows(d.strs, c, func(i int) fingerprint { return d.fp.of(c.Value(i)) }, at)
	case *array.Int64:
		d.ints.begin()
		keep, dups = markRows(d.ints, c, c.Value, at)
	case *array.Int32:
		d.ints.begin()
		keep, dups = markRows(d.ints, c, func(i int) int64 { return int64(c.Value(i)) }, at)
	default:
		return nil, 0, fmt.Errorf("dedup key column %q holds %s values, not varchar, bigint or integer", d.name, c.DataType())
	}
	return keep, dups, nil
}

func markRows[K comparable](ix *keyIndex[K], col arrow.Array, key func(int) K, now int64) (keep []bool, dups int64) {
	n := col.Len()
	for i := range n {
		if col.IsNull(i) {
			if keep != nil {
				keep[i] = true
			}
			continue
		}
		if ix.offer(key(i), now) {
			if keep == nil {
				keep = make([]bool, n)
				for j := range i {
					keep[j] = true
				}
			}
			dups++
			continue
		}
		if keep != nil {
			keep[i] = true
		}
	}
	return keep, dups
}

func (d *dedup) commit() {
	if d.strs != nil {
		d.strs.commit()
	} else {
		d.ints.commit()
	}
}

func (d *dedup) abort() {
	if d.strs != nil {
		d.strs.abort()
	} else {
		d.ints.abort()
	}
}

// load adds the non-null keys of col, all accepted at at, during recovery.
func (d *dedup) load(col arrow.Array, at time.Time) error {
	t := at.UnixNano()
	switch c := col.(type) {
	case *array.String:
		for i := range c.Len() {
			if c.IsValid(i) {
				d.strs.load(d.fp.of(c.Value(i)), t)
			}
		}
	case *array.Int64:
		for i := range c.Len() {
			if c.IsValid(i) {
				d.ints.load(c.Value(i), t)
			}
		}
	case *array.Int32:
		for i := range c.Len() {
			if c.IsValid(i) {
				d.ints.load(int64(c.Value(i)), t)
			}
		}
	default:
		return fmt.Errorf("dedup key column %q holds %s values, not varchar, bigint or integer", d.name, col.DataType())
	}
	return nil
}

// filterRecord keeps the rows of rec marked in keep.
func filterRecord(ctx context.Context, rec arrow.RecordBatch, keep []bool) (arrow.RecordBatch, error) {
	b := array.NewBooleanBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(keep, nil)
	mask := b.NewBooleanArray()
	defer mask.Release()
	out, err := compute.FilterRecordBatch(ctx, rec, mask, compute.DefaultFilterOptions())
	if err != nil {
		return nil, fmt.Errorf("drop duplicate records: %w", err)
	}
	return out, nil
}

// dropDuplicates takes rec's duplicates out at time now. It returns the
// records to store (nil when none is left; released by the caller unless it
// is rec itself, returned as it is when nothing was dropped) and how many
// were dropped. Called with ds.mu held; the kept keys stay pending until
// d.commit (stored) or d.abort (not stored).
func (ds *datasetState) dropDuplicates(ctx context.Context, rec arrow.RecordBatch, now time.Time) (arrow.RecordBatch, int64, error) {
	d := ds.dedup
	d.prune(now)
	keep, dups, err := d.check(rec, now)
	if err != nil {
		return nil, 0, err
	}
	if dups == 0 {
		return rec, 0, nil
	}
	if dups == rec.NumRows() {
		return nil, dups, nil
	}
	out, err := filterRecord(ctx, rec, keep)
	if err != nil {
		d.abort()
		return nil, 0, err
	}
	return out, dups, nil
}

// dedupChanged reports the index's size to the budget and its gauge.
// Called with ds.mu held.
func (ds *datasetState) dedupChanged() {
	d := ds.dedup
	n := d.bytes()
	ds.l.budget.dedup.Add(n - d.reported)
	d.reported = n
	if d.gauge == nil {
		d.gauge = ds.l.dedupMetrics.keys.WithLabelValues(ds.spec.Name)
	}
	d.gauge.Set(float64(d.len()))
}

// pruneDedup forgets expired keys; the layer's loop calls it every tick so
// an idle dataset's index shrinks too.
func (ds *datasetState) pruneDedup(now time.Time) {
	if ds.dedup == nil {
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.dedup.prune(now)
	ds.dedupChanged()
}

// loadArchivedKeys adds the keys of the archive files created within the
// window before now, each at its file's creation time. Runs during recovery,
// before the log is replayed, so the queue stays in arrival order.
func (ds *datasetState) loadArchivedKeys(ctx context.Context, now time.Time) error {
	d := ds.dedup
	cutoff := now.Add(-d.window)
	var files []catalog.ArchiveFile
	for _, f := range ds.archive {
		if f.CreatedAt.Add(time.Millisecond).After(cutoff) {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Path
	}
	paths, err := ds.l.localPaths(names)
	if err != nil {
		return fmt.Errorf("dedup keys: %w", err)
	}
	// The catalog keeps milliseconds: a millisecond more is never earlier
	// than the file's true creation, which no record in it came after.
	created := make(map[string]int64, len(files))
	latest := int64(0)
	for i, f := range files {
		created[paths[i]] = f.CreatedAt.Add(time.Millisecond).UnixNano()
		latest = max(latest, created[paths[i]])
	}
	key := dataset.QuoteIdent(d.name)
	sel := key
	if d.ints != nil {
		sel = "CAST(" + key + " AS BIGINT)"
	}
	src := strings.TrimSuffix(dataset.ReadParquet(paths), ")") + ", filename = '__file')"
	rr, err := ds.ar.QueryContext(ctx, fmt.Sprintf("SELECT __file, %s FROM %s WHERE %s IS NOT NULL", sel, src, key))
	if err != nil {
		return fmt.Errorf("dedup keys from %d archive files: %w", len(files), err)
	}
	defer rr.Release()
	// The keys are loaded in time order, after the scan, so the queue is in
	// arrival order.
	var (
		strs []stamped[fingerprint]
		ints []stamped[int64]
	)
	for rr.Next() {
		rec := rr.RecordBatch()
		fc, ok := rec.Column(0).(*array.String)
		if !ok {
			return fmt.Errorf("dedup keys: the engine gave file names as %s", rec.Column(0).DataType())
		}
		at := func(i int) int64 {
			if t, ok := created[fc.Value(i)]; ok {
				return t
			}
			return latest // a name the engine spelt differently: the latest time is safe
		}
		switch c := rec.Column(1).(type) {
		case *array.String:
			for i := range c.Len() {
				strs = append(strs, stamped[fingerprint]{d.fp.of(c.Value(i)), at(i)})
			}
		case *array.Int64:
			for i := range c.Len() {
				ints = append(ints, stamped[int64]{c.Value(i), at(i)})
			}
		default:
			return fmt.Errorf("dedup keys: the engine gave column %q as %s", d.name, c.DataType())
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("dedup keys from %d archive files: %w", len(files), err)
	}
	loadSorted(d.strs, strs)
	loadSorted(d.ints, ints)
	return nil
}

func loadSorted[K comparable](ix *keyIndex[K], keys []stamped[K]) {
	if ix == nil {
		return
	}
	slices.SortStableFunc(keys, func(a, b stamped[K]) int { return cmp.Compare(a.at, b.at) })
	for _, k := range keys {
		ix.load(k.key, k.at)
	}
}

type dedupMetrics struct {
	keys       *prometheus.GaugeVec
	duplicates *prometheus.CounterVec
}

func newDedupMetrics(reg prometheus.Registerer) *dedupMetrics {
	m := &dedupMetrics{
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "duet_speedlayer_dedup_keys",
			Help: "Keys a deduplicating dataset remembers: accepted within its dedup window.",
		}, []string{"dataset"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_speedlayer_duplicates_total",
			Help: "Records ignored because their dedup key was accepted within the dataset's window.",
		}, []string{"dataset"}),
	}
	if reg != nil {
		reg.MustRegister(m.keys, m.duplicates)
	}
	return m
}
