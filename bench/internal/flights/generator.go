package flights

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/speedlayer"
)

// Epoch is the first day of the generated data.
const Epoch = "2026-01-01 00:00:00"

// DayMicros is one day in microseconds, the unit of generated times.
const DayMicros = int64(24 * time.Hour / time.Microsecond)

// origins are the airports flights leave from, three letters each.
const origins = "ATLLAXORDDFWDENJFKSFOSEALASMCOEWRCLTPHXIAHMIABOSMSPFLLDTWPHL" +
	"LGABWISLCSANIADDCAMDWTPAPDXHNLAUSBNADALSTLHOUOAKMSYRDUSJCSMF"

// Origins are the airports flights leave from.
func Origins() []string {
	out := make([]string, 0, len(origins)/3)
	for i := 0; i < len(origins); i += 3 {
		out = append(out, origins[i:i+3])
	}
	return out
}

// hashMacros define mix(i, salt): a 32-bit integer hash of row number i, so
// every value is a function of (seed, row) whatever DuckDB's own hash does.
// Arithmetic stays within UBIGINT (operands below 2^32 times constants below 2^32).
const hashMacros = `
CREATE OR REPLACE MACRO bench_mul(x, k) AS ((x::UBIGINT %% 4294967296) * k) %% 4294967296;
CREATE OR REPLACE MACRO bench_fold(h) AS xor(h, h >> 16);
CREATE OR REPLACE MACRO mix(i, salt) AS
	bench_fold(bench_mul(bench_fold(bench_mul(bench_fold(bench_mul(i::UBIGINT * 8 + salt + %d, 2654435761)), 2246822519)), 3266489917));`

// Config says what a generator makes.
type Config struct {
	// Rows of the master dataset are spread over Days days in offset order:
	// offset i happens at i/Rows of the way through them (later offsets run
	// on past the last day at the same rate).
	Rows, Days int64
	// Seed changes the generated values; the same seed gives the same data.
	Seed int64
}

// Generator writes flights as archive files into a filesystem bucket, laid
// out exactly as the speed layer's archiver lays them out: one ZSTD Parquet
// file per day per segment of offsets, named by the dataset, day and range.
// Every value is a function of the seed and the row's offset, so a range
// generated twice gives the same files.
type Generator struct {
	db     *sql.DB
	bucket *objstore.Filesystem
	stage  string
	rows   int64
	days   int64
}

// NewGenerator writes into the bucket at objects, staging files in stage.
func NewGenerator(ctx context.Context, cfg Config, objects, stage string) (*Generator, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open generator duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(hashMacros, cfg.Seed*1_000_003)); err != nil {
		db.Close()
		return nil, fmt.Errorf("define hash macros: %w", err)
	}
	bucket, err := objstore.NewFilesystem(objects)
	if err != nil {
		db.Close()
		return nil, err
	}
	g := &Generator{db: db, bucket: bucket, stage: stage, rows: cfg.Rows, days: cfg.Days}
	if err := os.MkdirAll(g.stage, 0o755); err != nil {
		db.Close()
		return nil, err
	}
	return g, nil
}

func (g *Generator) Close() error { return g.db.Close() }

// LocalPaths are the files the archive files are kept in.
func (g *Generator) LocalPaths(files []catalog.ArchiveFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		// A filesystem bucket resolves every valid name; the generator uploaded these.
		out[i], _ = g.bucket.LocalPath(f.Path)
	}
	return out
}

// masterTime spreads rows over the days in offset order, as events arrive,
// each up to 10 minutes late (never before the first day).
func (g *Generator) masterTime() string {
	return fmt.Sprintf("greatest(0, (i::HUGEINT * %d // %d)::BIGINT - (mix(i, 3) %% 600000000)::BIGINT)", g.days*DayMicros, g.rows)
}

// incrementTime puts rows on the last day, except one in ten: late events
// spread over lateDays (days since epoch).
func (g *Generator) incrementTime(lateDays []int64) string {
	within := fmt.Sprintf("(mix(i, 3) %% %d)::BIGINT", DayMicros)
	if len(lateDays) == 0 {
		return fmt.Sprintf("%d + %s", (g.days-1)*DayMicros, within)
	}
	late := make([]string, len(lateDays))
	for i, d := range lateDays {
		late[i] = fmt.Sprint(d * DayMicros)
	}
	return fmt.Sprintf("CASE WHEN mix(i, 4) %% 10 = 0 THEN [%s][(1 + mix(i, 5) %% %d)::BIGINT] ELSE %d END + %s",
		strings.Join(late, ", "), len(lateDays), (g.days-1)*DayMicros, within)
}

// rowsSQL is the rows of offsets [first, end) with their archive day dt.
func rowsSQL(first, end int64, timeMicros string) string {
	return fmt.Sprintf(`SELECT date, delay, origin, strftime(CAST(date AS DATE), '%%Y-%%m-%%d') AS dt FROM (
	SELECT TIMESTAMP '%s' + to_microseconds(%s) AS date,
		CASE WHEN mix(i, 1) %% 50 = 0 THEN NULL ELSE (mix(i, 1) // 50 %% 240)::BIGINT - 30 END AS delay,
		substr(%s, (1 + 3 * (mix(i, 2) %% %d))::BIGINT, 3) AS origin
	FROM range(%d, %d) AS r(i))`,
		Epoch, timeMicros, dataset.QuoteString(origins), len(origins)/3, first, end)
}

// Master writes offsets [0, Rows) as segments of segmentRows offsets.
func (g *Generator) Master(ctx context.Context, segmentRows int64, progress func(first, end int64)) ([]catalog.ArchiveFile, error) {
	var files []catalog.ArchiveFile
	for first := int64(0); first < g.rows; first += segmentRows {
		end := min(first+segmentRows, g.rows)
		fs, err := g.Segment(ctx, first, end)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
		progress(first, end)
	}
	return files, nil
}

// Segment writes the master dataset's offsets [first, end) as one segment.
func (g *Generator) Segment(ctx context.Context, first, end int64) ([]catalog.ArchiveFile, error) {
	return g.segment(ctx, first, end, g.masterTime())
}

// Increment writes n rows from offset first as one segment, on the last
// day except late events on lateDays (days since epoch).
func (g *Generator) Increment(ctx context.Context, first, n int64, lateDays []int64) ([]catalog.ArchiveFile, error) {
	return g.segment(ctx, first, first+n, g.incrementTime(lateDays))
}

// Record is one generated flight.
type Record struct {
	Date   time.Time
	Delay  sql.NullInt64
	Origin string
}

// Scan calls fn with the master dataset's offsets [first, end), the same
// rows Segment writes, for sending them to a server.
func (g *Generator) Scan(ctx context.Context, first, end int64, fn func(Record) error) error {
	rows, err := g.db.QueryContext(ctx, "SELECT date, delay, origin FROM ("+rowsSQL(first, end, g.masterTime())+")")
	if err != nil {
		return fmt.Errorf("generate rows %d-%d: %w", first, end, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.Date, &r.Delay, &r.Origin); err != nil {
			return fmt.Errorf("generate rows %d-%d: %w", first, end, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// segment writes one archive file per day of offsets [first, end) and
// uploads it under the archiver's name for the range and day. The rows are
// generated once into a table, then written out day by day.
func (g *Generator) segment(ctx context.Context, first, end int64, timeMicros string) ([]catalog.ArchiveFile, error) {
	if _, err := g.db.ExecContext(ctx, "CREATE OR REPLACE TABLE segment AS "+rowsSQL(first, end, timeMicros)); err != nil {
		return nil, fmt.Errorf("segment %d-%d: generate rows: %w", first, end, err)
	}
	days, err := g.dayCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("segment %d-%d: %w", first, end, err)
	}
	files := make([]catalog.ArchiveFile, 0, len(days))
	for _, d := range days {
		f, err := g.writeDay(ctx, first, end, d)
		if err != nil {
			return nil, fmt.Errorf("segment %d-%d day %s: %w", first, end, d.day, err)
		}
		files = append(files, f)
	}
	return files, nil
}

type dayCount struct {
	day  string
	rows int64
}

func (g *Generator) dayCounts(ctx context.Context) ([]dayCount, error) {
	rows, err := g.db.QueryContext(ctx, "SELECT dt, count(*) FROM segment GROUP BY dt ORDER BY dt")
	if err != nil {
		return nil, fmt.Errorf("count rows per day: %w", err)
	}
	defer rows.Close()
	var out []dayCount
	for rows.Next() {
		var d dayCount
		if err := rows.Scan(&d.day, &d.rows); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// writeDay writes the day's rows as ZSTD Parquet with the archiver's row
// groups, and uploads the file.
func (g *Generator) writeDay(ctx context.Context, first, end int64, d dayCount) (catalog.ArchiveFile, error) {
	staged := filepath.Join(g.stage, fmt.Sprintf("%d-%s.parquet", first, d.day))
	q := fmt.Sprintf("COPY (SELECT date, delay, origin FROM segment WHERE dt = %s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)",
		dataset.QuoteString(d.day), dataset.QuoteString(staged), dataset.ArchiveRowGroupRows)
	if _, err := g.db.ExecContext(ctx, q); err != nil {
		return catalog.ArchiveFile{}, fmt.Errorf("write parquet: %w", err)
	}
	defer os.Remove(staged)
	f, err := os.Open(staged)
	if err != nil {
		return catalog.ArchiveFile{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return catalog.ArchiveFile{}, err
	}
	name := speedlayer.ArchiveName(Dataset, d.day, first, end)
	if err := g.bucket.Upload(ctx, name, f); err != nil {
		return catalog.ArchiveFile{}, err
	}
	return catalog.ArchiveFile{
		Dataset: Dataset, Path: name, Partition: "dt=" + d.day,
		First: first, End: end, Rows: d.rows, Bytes: st.Size(),
	}, nil
}
