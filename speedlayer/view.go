package speedlayer

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/viewsql"
)

type viewState struct {
	name string
	ds   *datasetState
	plan *viewsql.Plan
	// version is the published batch version (nil before the first build);
	// the partial table holds exactly the segments at or after its Covered offset.
	version *catalog.ViewVersion
	// batchTable is the engine's copy of version's partials (see
	// loadVersion), or "" when queries read its files.
	batchTable string
	// materialized: the user-visible view reads finalTable, not the live
	// merge (see materialize.go); skipMaterialize: materializing failed,
	// not retried until the view changes.
	materialized, skipMaterialize bool
}

func (v *viewState) partialTable() string {
	return engine.Table(engine.InternalSchema, "partial__"+v.name)
}

func (v *viewState) covered() int64 {
	if v.version == nil {
		return 0
	}
	return v.version.Covered
}

// AddView starts maintaining a view: its partials for every offset its batch
// version (nil before the first build) does not cover, and its merged view.
func (l *Layer) AddView(ctx context.Context, name string, plan *viewsql.Plan, version *catalog.ViewVersion) error {
	ds, err := l.dataset(plan.Dataset)
	if err != nil {
		return fmt.Errorf("view %q: %w", name, err)
	}
	v := &viewState{name: name, ds: ds, plan: plan, version: version, batchTable: l.loadVersion(ctx, name, version)}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	cols := []string{"__seg BIGINT NOT NULL"}
	for _, c := range plan.Partial {
		cols = append(cols, dataset.QuoteIdent(c.Name)+" "+c.Type)
	}
	if _, err := ds.conn.ExecContext(ctx, "CREATE OR REPLACE TABLE "+v.partialTable()+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return fmt.Errorf("view %q: create partial table: %w", name, err)
	}
	tx, err := ds.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := l.fillPartials(ctx, tx, v, v.covered()); err != nil {
		return fmt.Errorf("view %q: %w", name, err)
	}
	if err := l.defineView(ctx, tx, v); err != nil {
		l.dropCopy(v.batchTable)
		return fmt.Errorf("view %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		l.dropCopy(v.batchTable)
		return err
	}
	ds.views = append(ds.views, v)
	l.mu.Lock()
	l.views[name] = v
	l.mu.Unlock()
	return nil
}

// compactSegment replaces the segment's partial rows, one set per
// micro-batch, by one row per key. Until a batch version covers it, every
// merged query reads a segment's partials: without this they would grow
// with the number of requests (a thousand and more rows per segment under
// sustained ingest) instead of with the number of keys. Called in the
// transaction that archives the segment, with ds.mu held.
func (v *viewState) compactSegment(ctx context.Context, tx *sql.Tx, first int64) error {
	if v.plan.Kind == viewsql.Projection {
		return nil // its partial rows are its rows
	}
	// Rows appended in this transaction get rowids above every committed
	// one, so the combined rows are told apart from those they replace.
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT max(rowid) FROM %s WHERE __seg = %d", v.partialTable(), first)).Scan(&last); err != nil {
		return fmt.Errorf("view %q: compact partials of segment %d: %w", v.name, first, err)
	}
	if !last.Valid {
		return nil // covered by the batch version: nothing left
	}
	rows := fmt.Sprintf("(SELECT %s FROM %s WHERE __seg = %d)", v.plan.PartialColumns(), v.partialTable(), first)
	stmts := []string{
		fmt.Sprintf("INSERT INTO %s SELECT %d, * FROM (%s)", v.partialTable(), first, v.plan.CombineSQL(rows)),
		fmt.Sprintf("DELETE FROM %s WHERE __seg = %d AND rowid <= %d", v.partialTable(), first, last.Int64),
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("view %q: compact partials of segment %d: %w", v.name, first, err)
		}
	}
	return nil
}

// fillPartials computes the view's partials for every segment from offset
// `from` on: archived segments from their Parquet files, unarchived ones from
// the speed table. Called with ds.mu held.
func (l *Layer) fillPartials(ctx context.Context, tx *sql.Tx, v *viewState, from int64) error {
	for _, r := range archivedRanges(v.ds.archive, from) {
		paths, err := l.localPaths(r.names)
		if err != nil {
			return err
		}
		src := dataset.ReadParquet(paths)
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s SELECT %d, * FROM (%s)", v.partialTable(), r.first, v.plan.PartialSQL(src))); err != nil {
			return fmt.Errorf("partials of archived offsets %d-%d: %w", r.first, r.end, err)
		}
	}
	for _, s := range v.ds.segments {
		if s.first < from || s.records() == 0 {
			continue
		}
		src := fmt.Sprintf("(SELECT %s FROM %s)", v.ds.columnList(), v.ds.segTable(s))
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s SELECT %d, * FROM (%s)", v.partialTable(), s.first, v.plan.PartialSQL(src))); err != nil {
			return fmt.Errorf("partials of offsets %d-%d: %w", s.first, s.end, err)
		}
	}
	return nil
}

func (l *Layer) defineView(ctx context.Context, tx *sql.Tx, v *viewState) error {
	var partials string
	if v.batchTable != "" {
		partials = l.merger.PartialsOverTableSQL(v.plan, v.batchTable, v.partialTable())
	} else {
		var files []catalog.VersionFile
		if v.version != nil {
			files = v.version.Files
		}
		var err error
		if partials, err = l.merger.PartialsSQL(v.plan, files, v.partialTable()); err != nil {
			return fmt.Errorf("merged partials: %w", err)
		}
	}
	// The partial rows are a view of their own, redefined in the same
	// transaction as the merged view over them, so a rollup over fewer keys
	// reads the same snapshot as the view.
	if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE VIEW "+partialsRelation(v.name)+" AS "+partials); err != nil {
		return fmt.Errorf("define merged partials: %w", err)
	}
	return v.goLive(ctx, tx)
}

// loadVersion copies a published version's partials from its Parquet files
// into a new table of the engine's cache database and names it, when the
// version has at most cfg.ViewCacheRows rows. A dashboard query then
// aggregates a table instead of opening and decoding every file of the
// version (a third of the CPU per query, BENCHMARKS.md). It returns "" when
// the version is read from its files: too large, none, or the copy failed
// (logged; the files give the same answer).
func (l *Layer) loadVersion(ctx context.Context, view string, version *catalog.ViewVersion) string {
	if version == nil || l.cfg.ViewCacheRows <= 0 || len(version.Files) == 0 {
		return ""
	}
	var rows int64
	for _, f := range version.Files {
		rows += f.Rows
	}
	if rows > l.cfg.ViewCacheRows {
		return ""
	}
	paths, err := l.localPaths(catalog.VersionPaths(version.Files))
	if err == nil {
		table := engine.CacheCatalog + ".main." + dataset.QuoteIdent(fmt.Sprintf("batch__%s__%d", view, l.cacheSeq.Add(1)))
		_, err = l.db.ExecContext(ctx, "CREATE TABLE "+table+" AS SELECT * FROM "+dataset.ReadParquet(paths))
		if err == nil {
			return table
		}
	}
	l.logger.Warn("batch version not copied into the engine; queries read its files", "view", view, "version", version.Version, "err", err)
	return ""
}

// dropCopy drops a copy loadVersion made that no view definition names.
func (l *Layer) dropCopy(table string) {
	if table == "" {
		return
	}
	if _, err := l.db.Exec("DROP TABLE IF EXISTS " + table); err != nil {
		l.logger.Warn("drop engine copy of a batch version", "table", table, "err", err)
	}
}

type retiredCopy struct {
	table string
	at    time.Time
}

// retireCopy drops a copy a handoff replaced once CopyGrace has passed.
func (l *Layer) retireCopy(table string) {
	if table == "" {
		return
	}
	l.retiredMu.Lock()
	defer l.retiredMu.Unlock()
	l.retired = append(l.retired, retiredCopy{table: table, at: time.Now()})
}

func (l *Layer) dropRetiredCopies(now time.Time) {
	l.retiredMu.Lock()
	var due []string
	for len(l.retired) > 0 && now.Sub(l.retired[0].at) >= l.cfg.CopyGrace {
		due = append(due, l.retired[0].table)
		l.retired = l.retired[1:]
	}
	l.retiredMu.Unlock()
	for _, t := range due {
		l.dropCopy(t)
	}
}

func partialsRelation(view string) string {
	return engine.Table(engine.InternalSchema, "merged_partials__"+view)
}

// PartialsRelation names the engine view of a view's partial rows (batch
// UNION ALL speed, Plan.Partial's columns), which every handoff redefines
// in the same transaction as the merged view.
func (l *Layer) PartialsRelation(name string) (string, error) {
	if _, err := l.view(name); err != nil {
		return "", err
	}
	return partialsRelation(name), nil
}

// Publish hands offsets below version.Covered over to the batch layer: in one
// engine transaction the merged view switches to the version's files and the
// partials it covers are dropped. A version covering less than the current
// one (a rollback) recomputes the partials it no longer covers.
func (l *Layer) Publish(ctx context.Context, name string, version catalog.ViewVersion) error {
	v, err := l.view(name)
	if err != nil {
		return err
	}
	// Copied before the lock: ingest goes on meanwhile.
	table := l.loadVersion(ctx, name, &version)
	committed := false
	defer func() {
		if !committed {
			l.dropCopy(table)
		}
	}()
	ds := v.ds
	ds.mu.Lock()
	defer ds.mu.Unlock()
	tx, err := ds.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	old := v.covered()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE __seg < %d", v.partialTable(), max(old, version.Covered))); err != nil {
		return fmt.Errorf("view %q: drop covered partials: %w", name, err)
	}
	if version.Covered < old {
		if err := l.fillPartialsBetween(ctx, tx, v, version.Covered, old); err != nil {
			return fmt.Errorf("view %q: %w", name, err)
		}
	}
	prev, prevTable := v.version, v.batchTable
	v.version, v.batchTable = &version, table
	if err := l.defineView(ctx, tx, v); err != nil {
		v.version, v.batchTable = prev, prevTable
		return fmt.Errorf("view %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		v.version, v.batchTable = prev, prevTable
		return fmt.Errorf("view %q: commit handoff: %w", name, err)
	}
	committed = true
	v.materialized, v.skipMaterialize = false, false
	l.retireCopy(prevTable)
	return nil
}

// fillPartialsBetween recomputes archived partials in [from, to).
func (l *Layer) fillPartialsBetween(ctx context.Context, tx *sql.Tx, v *viewState, from, to int64) error {
	for _, r := range archivedRanges(v.ds.archive, from) {
		if r.first >= to {
			break
		}
		paths, err := l.localPaths(r.names)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s SELECT %d, * FROM (%s)", v.partialTable(), r.first, v.plan.PartialSQL(dataset.ReadParquet(paths)))); err != nil {
			return fmt.Errorf("partials of archived offsets %d-%d: %w", r.first, r.end, err)
		}
	}
	return nil
}

type offsetRange struct {
	first, end int64
	names      []string
}

// archivedRanges groups archive files by offset range (one range per
// segment, one file per day), in order, keeping ranges starting at or after from.
func archivedRanges(files []catalog.ArchiveFile, from int64) []offsetRange {
	byFirst := map[int64]*offsetRange{}
	for _, f := range files {
		if f.First < from {
			continue
		}
		r, ok := byFirst[f.First]
		if !ok {
			r = &offsetRange{first: f.First, end: f.End}
			byFirst[f.First] = r
		}
		r.names = append(r.names, f.Path)
	}
	out := make([]offsetRange, 0, len(byFirst))
	for _, r := range byFirst {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].first < out[j].first })
	return out
}

// SegmentStatus is one range of offsets the speed layer holds for a view.
type SegmentStatus struct {
	First, End int64
	Sealed     bool
	Archived   bool
}

// ViewStatus says what a view's merged answer is made of, and how fresh it is.
type ViewStatus struct {
	Version    *catalog.ViewVersion
	FromOffset int64 // the speed layer supplies offsets >= FromOffset
	LogEnd     int64
	Segments   []SegmentStatus
	LagRecords int64
	LagMillis  int64
	// Materialized: queries read the view's final rows computed once since
	// its last change, not merged at query time (see materialize.go).
	Materialized bool
}

// ViewStatus reports the view's batch version, speed segments and lag.
func (l *Layer) ViewStatus(name string, now time.Time) (ViewStatus, error) {
	v, err := l.view(name)
	if err != nil {
		return ViewStatus{}, err
	}
	ds := v.ds
	ds.mu.Lock()
	defer ds.mu.Unlock()
	st := ViewStatus{FromOffset: v.covered(), LogEnd: ds.open().end, Materialized: v.materialized}
	if v.version != nil {
		cp := *v.version
		st.Version = &cp
	}
	var oldest time.Time
	for _, f := range ds.archive {
		if f.First >= st.FromOffset && (oldest.IsZero() || f.Arrived().Before(oldest)) {
			oldest = f.Arrived()
		}
	}
	for _, r := range archivedRanges(ds.archive, st.FromOffset) {
		st.Segments = append(st.Segments, SegmentStatus{First: r.first, End: r.end, Sealed: true, Archived: true})
	}
	for _, s := range ds.segments {
		if s.records() == 0 {
			continue
		}
		st.Segments = append(st.Segments, SegmentStatus{First: s.first, End: s.end, Sealed: s.sealed})
		if oldest.IsZero() || (!s.arrived.IsZero() && s.arrived.Before(oldest)) {
			oldest = s.arrived
		}
	}
	st.LagRecords = st.LogEnd - st.FromOffset
	if st.LagRecords > 0 && !oldest.IsZero() {
		st.LagMillis = now.Sub(oldest).Milliseconds()
	}
	return st, nil
}

// DatasetStatus describes a dataset's log and archive.
type DatasetStatus struct {
	LogEnd, ArchivedEnd int64
	ArchiveFiles        int
}

// DatasetStatus reports a dataset's log end and archived offset.
func (l *Layer) DatasetStatus(name string) (DatasetStatus, error) {
	ds, err := l.dataset(name)
	if err != nil {
		return DatasetStatus{}, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return DatasetStatus{LogEnd: ds.open().end, ArchivedEnd: ds.archivedEnd(), ArchiveFiles: len(ds.archive)}, nil
}

// Plan returns the analysed SQL of a view the layer maintains.
func (l *Layer) Plan(name string) (*viewsql.Plan, error) {
	v, err := l.view(name)
	if err != nil {
		return nil, err
	}
	return v.plan, nil
}
