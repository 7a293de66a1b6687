package serving

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/speedlayer"
	"github.com/duet-analytics/duet/sqlgateway"
)

// The system schema (duet.system) holds duet's own metadata as tables that
// SQL users query like any other: datasets, views, their versions, jobs and
// the freshness of every view.
//
// Each table is an engine view over a table function implemented in Go, so a
// query reads the live state at the moment it runs (the catalog and the speed
// layer, the same sources as the HTTP API), never a copy that could lag. The
// functions live in the engine's system catalog, so one registration serves
// every pooled connection; they only read Go state, so they run under the
// engine's lockdown (no external access, locked configuration).

// SystemCatalog is the catalog metadata the system tables read.
type SystemCatalog interface {
	ListDatasets(ctx context.Context) ([]catalog.Dataset, error)
	ListViews(ctx context.Context) ([]catalog.View, error)
	ListVersions(ctx context.Context, view string) ([]catalog.ViewVersion, error)
	CurrentVersion(ctx context.Context, view string) (catalog.ViewVersion, error)
	ListJobs(ctx context.Context, filter catalog.JobFilter) ([]catalog.Job, error)
}

// SystemSpeed is the speed layer state the system tables read.
type SystemSpeed interface {
	ViewStatus(name string, now time.Time) (speedlayer.ViewStatus, error)
	DatasetStatus(name string) (speedlayer.DatasetStatus, error)
}

// SystemQueries is the SQL gateway's record of queries.
type SystemQueries interface {
	Queries() []sqlgateway.QueryInfo
}

// SystemConfig holds what the system tables read.
type SystemConfig struct {
	Catalog SystemCatalog
	Speed   SystemSpeed
	// Queries feeds system.queries; without it the table is empty.
	Queries SystemQueries
	// Now is the clock lag is measured against; time.Now when nil.
	Now func() time.Time
}

// Validate names a missing source.
func (c *SystemConfig) Validate() error {
	switch {
	case c.Catalog == nil:
		return errors.New("system tables: catalog is required")
	case c.Speed == nil:
		return errors.New("system tables: speed layer is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// SystemFunctionPrefix starts the name of every system table's function;
// the leading "__" keeps them out of SHOW FUNCTIONS.
const SystemFunctionPrefix = "__duet_system_"

// RegisterSystem creates duet.system and its tables on the engine db, once
// per engine: DuckDB refuses to register the functions a second time.
func RegisterSystem(ctx context.Context, db *sql.DB, cfg SystemConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("system tables: get an engine connection: %w", err)
	}
	defer conn.Close()
	schema := engine.Catalog + "." + dataset.QuoteIdent(engine.SystemSchema)
	if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("system tables: create schema %s: %w", schema, err)
	}
	for _, t := range systemTables(cfg) {
		if err := t.register(ctx, conn); err != nil {
			return fmt.Errorf("system table %s.%s: %w", engine.SystemSchema, t.name, err)
		}
	}
	return nil
}

// systemColumn is one typed column of a system table.
type systemColumn struct {
	name, comment string
	typ           duckdb.Type
}

// systemTable is a table of duet.system: its columns and how to read its
// rows now. Each row holds one value per column: int64, string, bool,
// time.Time or nil for NULL.
type systemTable struct {
	name, comment string
	columns       []systemColumn
	rows          func(ctx context.Context) ([][]any, error)
	// where, when set, filters the view's rows.
	where string
}

func (t *systemTable) whereClause() string {
	if t.where == "" {
		return ""
	}
	return " WHERE " + t.where
}

func (t *systemTable) register(ctx context.Context, conn *sql.Conn) error {
	infos := make([]duckdb.ColumnInfo, len(t.columns))
	for i, c := range t.columns {
		ti, err := duckdb.NewTypeInfo(c.typ)
		if err != nil {
			return fmt.Errorf("column %s: %w", c.name, err)
		}
		infos[i] = duckdb.ColumnInfo{Name: c.name, T: ti}
	}
	fn := SystemFunctionPrefix + t.name
	err := duckdb.RegisterTableUDF(conn, fn, duckdb.ChunkTableFunction{
		BindArgumentsContext: func(ctx context.Context, _ map[string]any, _ ...any) (duckdb.ChunkTableSource, error) {
			// A prepared statement may run after the context it was
			// bound under ends; the reads are local and short.
			return &systemRows{table: t, infos: infos, ctx: context.WithoutCancel(ctx)}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("register function %s: %w", fn, err)
	}
	view := engine.Table(engine.SystemSchema, t.name)
	stmts := []string{
		"CREATE OR REPLACE VIEW " + view + " AS SELECT * FROM " + fn + "()" + t.whereClause(),
		"COMMENT ON VIEW " + view + " IS " + dataset.QuoteString(t.comment),
	}
	for _, c := range t.columns {
		stmts = append(stmts, "COMMENT ON COLUMN "+view+"."+dataset.QuoteIdent(c.name)+" IS "+dataset.QuoteString(c.comment))
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// systemRows is one scan of a system table. It reads the rows when the
// scan starts (Init), not when the query is bound, so a prepared statement
// executed again sees the state of its new execution.
type systemRows struct {
	table *systemTable
	infos []duckdb.ColumnInfo
	ctx   context.Context
	rows  [][]any
	err   error
	next  int
}

func (s *systemRows) ColumnInfos() []duckdb.ColumnInfo     { return s.infos }
func (s *systemRows) Cardinality() *duckdb.CardinalityInfo { return nil }

// Init may wait for a speed layer dataset lock, which the layer holds
// while it runs engine transactions; those never wait for this scan's
// transaction (DuckDB is MVCC), so the wait ends.
func (s *systemRows) Init() {
	s.rows, s.err = s.table.rows(s.ctx)
	s.next = 0
}

// FillChunk writes the next rows; a chunk left empty ends the scan.
func (s *systemRows) FillChunk(chunk duckdb.DataChunk) error {
	if s.err != nil {
		return fmt.Errorf("system.%s: %w", s.table.name, s.err)
	}
	n := min(len(s.rows)-s.next, duckdb.GetDataChunkCapacity())
	for r := range n {
		for c, v := range s.rows[s.next+r] {
			if err := chunk.SetValue(c, r, v); err != nil {
				return fmt.Errorf("system.%s column %s: %w", s.table.name, s.table.columns[c].name, err)
			}
		}
	}
	s.next += n
	return chunk.SetSize(n)
}

// Column types, spelled as Trino clients will see them.
const (
	tBigint    = duckdb.TYPE_BIGINT
	tVarchar   = duckdb.TYPE_VARCHAR
	tBoolean   = duckdb.TYPE_BOOLEAN
	tTimestamp = duckdb.TYPE_TIMESTAMP_TZ // instants: Trino's timestamp(6) with time zone
)

func systemTables(cfg SystemConfig) []*systemTable {
	s := &systemSources{cat: cfg.Catalog, speed: cfg.Speed, queryLog: cfg.Queries, now: cfg.Now}
	return []*systemTable{
		{
			name:    "freshness",
			comment: "One row per view: the batch version its answers merge, the speed layer's share and the lag; the figures of GET /v1/views/{name}",
			columns: []systemColumn{
				{"view", "view name", tVarchar},
				{"dataset", "dataset the view reads", tVarchar},
				{"batch_version", "published batch version merged into answers; NULL before the first build", tBigint},
				{"batch_covered_offset", "the batch version covers exactly the log offsets below this", tBigint},
				{"batch_published_at", "when the batch version was published", tTimestamp},
				{"speed_from_offset", "the speed layer supplies offsets from here on (the batch covered offset, 0 before the first build)", tBigint},
				{"log_end_offset", "offset the next accepted record of the dataset will get", tBigint},
				{"speed_segments", "number of speed-layer segments (offset ranges) merged into answers; see system.speed_segments", tBigint},
				{"lag_records", "accepted records the batch version does not cover", tBigint},
				{"lag_ms", "age in milliseconds of the oldest record the batch version does not cover; 0 when it covers everything", tBigint},
				{"materialized", "queries read the view's answer computed once since records last arrived, rather than merging at every query", tBoolean},
			},
			rows: s.freshness,
		},
		{
			name:    "speed_segments",
			comment: "One row per view and speed-layer segment: the offset ranges the speed layer merges into the view's answers",
			columns: []systemColumn{
				{"view", "view name", tVarchar},
				{"dataset", "dataset the view reads", tVarchar},
				{"first_offset", "first log offset of the segment", tBigint},
				{"end_offset", "the segment holds offsets below this", tBigint},
				{"records", "records in the segment (end_offset - first_offset)", tBigint},
				{"sealed", "the segment takes no more records", tBoolean},
				{"archived", "the segment is archived to the master dataset", tBoolean},
			},
			rows: s.speedSegments,
		},
		{
			name:    "datasets",
			comment: "One row per dataset, with its event log's live offsets",
			columns: []systemColumn{
				{"dataset", "dataset name", tVarchar},
				{"time_column", "the dataset's event time column", tVarchar},
				{"columns", "the dataset's columns as name type, comma-separated", tVarchar},
				{"created_at", "when the dataset was created", tTimestamp},
				{"log_end_offset", "offset the next accepted record will get; NULL if the dataset is not loaded", tBigint},
				{"archived_offset", "every record below this offset is in the raw archive", tBigint},
				{"archive_files", "Parquet files in the raw archive", tBigint},
			},
			rows: s.datasets,
		},
		{
			name:    "views",
			comment: "One row per view: its SQL, schedule and build policy",
			columns: []systemColumn{
				{"view", "view name", tVarchar},
				{"dataset", "dataset the view reads", tVarchar},
				{"sql", "the view's SQL", tVarchar},
				{"schedule", "cron schedule of its builds; NULL when built on demand only", tVarchar},
				{"catchup", "what the schedule does about fires missed while the server was down", tVarchar},
				{"max_retries", "retries of a failed build", tBigint},
				{"timeout_ms", "bound of one build attempt in milliseconds; NULL for the default", tBigint},
				{"created_at", "when the view was created", tTimestamp},
				{"current_version", "the current batch version; NULL before the first build", tBigint},
			},
			rows: s.views,
		},
		{
			name:    "view_versions",
			comment: "One row per stored version of every view",
			columns: []systemColumn{
				{"view", "view name", tVarchar},
				{"version", "version number", tBigint},
				{"covered_offset", "the version holds exactly the records with smaller log offsets", tBigint},
				{"published_at", "when the version was published", tTimestamp},
				{"rows", "rows in the version's files", tBigint},
				{"bytes", "bytes of the version's files", tBigint},
				{"files", "Parquet files of the version", tBigint},
				{"partitions", "days of the view's time key the files hold (0 without a time key)", tBigint},
				{"kind", "how it was built: full, incremental or backfill", tVarchar},
				{"base_version", "version an incremental build or backfill started from; NULL for a full build", tBigint},
				{"job_id", "job that built it", tVarchar},
				{"build_ms", "build time in milliseconds", tBigint},
				{"retired_at", "when it stopped being current; NULL if it is current or never stopped", tTimestamp},
				{"is_current", "it is the version queries read", tBoolean},
			},
			rows: s.viewVersions,
		},
		{
			name:    "jobs",
			comment: "One row per job (view builds, backfills, compactions, sql jobs), newest first; times are the latest attempt's",
			columns: []systemColumn{
				{"job_id", "job id", tVarchar},
				{"kind", "what the job does", tVarchar},
				{"view", "view it builds; NULL for jobs on a dataset", tVarchar},
				{"state", "queued, running, succeeded, failed, killed or timed_out", tVarchar},
				{"attempt", "attempts started so far", tBigint},
				{"max_attempts", "attempts allowed", tBigint},
				{"created_at", "when the job was queued", tTimestamp},
				{"started_at", "when the latest attempt started", tTimestamp},
				{"finished_at", "when the latest attempt finished", tTimestamp},
				{"duration_ms", "duration of the latest finished attempt in milliseconds", tBigint},
				{"next_attempt_at", "a queued job waiting to retry starts no sooner", tTimestamp},
				{"timeout_ms", "bound of one attempt in milliseconds; NULL when unbounded", tBigint},
				{"version", "view version a successful build published", tBigint},
				{"error", "why the latest attempt failed", tVarchar},
				{"params", "the job's parameters as a JSON object", tVarchar},
				{"log_prefix", "object-store prefix of the latest attempt's output", tVarchar},
				{"user", "who submitted the job; NULL for the scheduler's own", tVarchar},
				{"cluster", "where the latest attempt runs or ran", tVarchar},
				{"output", "a sql job's output: an object path or jobs.<table>; NULL for the default", tVarchar},
			},
			rows: s.jobs,
		},
		{
			name:    "queries",
			comment: "Queries of the SQL gateway, newest first: those queued or running and the latest finished ones (the gateway keeps its history_size, since it started)",
			columns: []systemColumn{
				{"query_id", "query id, as clients see it", tVarchar},
				{"user", "the session user", tVarchar},
				{"source", "the client's X-Trino-Source", tVarchar},
				{"sql", "the statement", tVarchar},
				{"state", "QUEUED, RUNNING, FINISHED, FAILED or CANCELED", tVarchar},
				{"created_at", "when it was submitted", tTimestamp},
				{"started_at", "when it started running, after waiting for a query slot; NULL while queued", tTimestamp},
				{"ended_at", "when it ended; NULL until then", tTimestamp},
				{"queued_ms", "time spent waiting for a query slot, in milliseconds", tBigint},
				{"elapsed_ms", "time from submission to its end (or now), in milliseconds", tBigint},
				{"rows", "result rows produced", tBigint},
				{"error_name", "Trino error name of a failed or cancelled query", tVarchar},
				{"error", "its error message", tVarchar},
			},
			rows: s.queries,
			// A user who is no admin sees their own queries only: the
			// gateway names them in this connection variable.
			where: fmt.Sprintf(`getvariable('%[1]s') IS NULL OR "user" = getvariable('%[1]s')`, sqlgateway.QueriesUserVariable),
		},
	}
}

// systemSources reads the rows of every system table.
type systemSources struct {
	cat      SystemCatalog
	speed    SystemSpeed
	queryLog SystemQueries
	now      func() time.Time
}

func (s *systemSources) queries(context.Context) ([][]any, error) {
	if s.queryLog == nil {
		return nil, nil
	}
	now := s.now()
	var rows [][]any
	for _, q := range s.queryLog.Queries() {
		end := q.Ended
		if end.IsZero() {
			end = now
		}
		queued := end.Sub(q.Created)
		if !q.Started.IsZero() {
			queued = q.Started.Sub(q.Created)
		}
		rows = append(rows, []any{q.ID, q.User, nullString(q.Source), q.SQL, q.State, q.Created,
			nullTime(q.Started), nullTime(q.Ended), queued.Milliseconds(), end.Sub(q.Created).Milliseconds(), q.Rows,
			nullString(q.ErrorName), nullString(q.Error)})
	}
	return rows, nil
}

func (s *systemSources) freshness(ctx context.Context) ([][]any, error) {
	views, err := s.cat.ListViews(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]any
	for _, v := range views {
		st, ok, err := s.viewStatus(v.Name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		row := []any{v.Name, v.Dataset, nil, nil, nil, st.FromOffset, st.LogEnd, int64(len(st.Segments)), st.LagRecords, st.LagMillis, st.Materialized}
		if b := st.Version; b != nil {
			row[2], row[3], row[4] = b.Version, b.Covered, b.CreatedAt
		}
		out = append(out, row)
	}
	return out, nil
}

func (s *systemSources) speedSegments(ctx context.Context) ([][]any, error) {
	views, err := s.cat.ListViews(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]any
	for _, v := range views {
		st, ok, err := s.viewStatus(v.Name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		for _, seg := range st.Segments {
			out = append(out, []any{v.Name, v.Dataset, seg.First, seg.End, seg.End - seg.First, seg.Sealed, seg.Archived})
		}
	}
	return out, nil
}

// viewStatus is the speed layer's status of a view, as GET /v1/views/{name}
// reports it; ok is false for a view the speed layer does not hold (yet): a
// view being created is in the catalog a moment before.
func (s *systemSources) viewStatus(name string) (speedlayer.ViewStatus, bool, error) {
	st, err := s.speed.ViewStatus(name, s.now())
	if errors.Is(err, speedlayer.ErrUnknownView) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	return st, true, nil
}

func (s *systemSources) datasets(ctx context.Context) ([][]any, error) {
	all, err := s.cat.ListDatasets(ctx)
	if err != nil {
		return nil, err
	}
	out := make([][]any, 0, len(all))
	for _, d := range all {
		cols := make([]string, len(d.Spec.Columns))
		for i, c := range d.Spec.Columns {
			cols[i] = c.Name + " " + string(c.Type)
		}
		row := []any{d.Spec.Name, d.Spec.TimeColumn, strings.Join(cols, ", "), d.CreatedAt, nil, nil, nil}
		st, err := s.speed.DatasetStatus(d.Spec.Name)
		switch {
		case err == nil:
			row[4], row[5], row[6] = st.LogEnd, st.ArchivedEnd, int64(st.ArchiveFiles)
		case !errors.Is(err, speedlayer.ErrUnknownDataset):
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

func (s *systemSources) views(ctx context.Context) ([][]any, error) {
	all, err := s.cat.ListViews(ctx)
	if err != nil {
		return nil, err
	}
	out := make([][]any, 0, len(all))
	for _, v := range all {
		row := []any{v.Name, v.Dataset, v.SQL, nullString(v.Schedule), nullString(v.Catchup), int64(v.MaxRetries),
			nullMillis(v.Timeout), v.CreatedAt, nil}
		cur, err := s.cat.CurrentVersion(ctx, v.Name)
		switch {
		case err == nil:
			row[8] = cur.Version
		case !errors.Is(err, catalog.ErrNotFound):
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

func (s *systemSources) viewVersions(ctx context.Context) ([][]any, error) {
	views, err := s.cat.ListViews(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]any
	for _, v := range views {
		versions, err := s.cat.ListVersions(ctx, v.Name)
		if errors.Is(err, catalog.ErrNotFound) {
			continue // dropped since it was listed
		}
		if err != nil {
			return nil, err
		}
		var current int64
		cur, err := s.cat.CurrentVersion(ctx, v.Name)
		switch {
		case err == nil:
			current = cur.Version
		case !errors.Is(err, catalog.ErrNotFound):
			return nil, err
		}
		slices.SortFunc(versions, func(a, b catalog.ViewVersion) int { return cmp.Compare(a.Version, b.Version) })
		for _, vv := range versions {
			parts := map[string]bool{}
			for _, f := range vv.Files {
				if f.Partition != "" {
					parts[f.Partition] = true
				}
			}
			var base any
			if vv.Meta.Base > 0 {
				base = vv.Meta.Base
			}
			out = append(out, []any{vv.View, vv.Version, vv.Covered, vv.CreatedAt, vv.Rows, vv.Bytes,
				int64(len(vv.Files)), int64(len(parts)), nullString(vv.Meta.Kind), base, nullString(vv.JobID),
				vv.BuildMillis, nullTime(vv.RetiredAt), vv.Version == current})
		}
	}
	return out, nil
}

func (s *systemSources) jobs(ctx context.Context) ([][]any, error) {
	all, err := s.cat.ListJobs(ctx, catalog.JobFilter{})
	if err != nil {
		return nil, err
	}
	out := make([][]any, 0, len(all))
	for _, j := range all {
		var duration, version, params any
		if !j.StartedAt.IsZero() && !j.FinishedAt.IsZero() {
			duration = j.FinishedAt.Sub(j.StartedAt).Milliseconds()
		}
		if j.Version > 0 {
			version = j.Version
		}
		if len(j.Params) > 0 {
			b, err := json.Marshal(j.Params)
			if err != nil {
				return nil, fmt.Errorf("job %s: encode params: %w", j.ID, err)
			}
			params = string(b)
		}
		out = append(out, []any{j.ID, j.Kind, nullString(j.View), j.State, int64(j.Attempt), int64(j.MaxAttempts),
			j.CreatedAt, nullTime(j.StartedAt), nullTime(j.FinishedAt), duration, nullTime(j.NextAttemptAt),
			nullMillis(j.Timeout), version, nullString(j.Error), params, nullString(j.LogPrefix),
			nullString(j.User), nullString(j.Cluster), nullString(j.Output)})
	}
	return out, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullMillis(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return d.Milliseconds()
}
