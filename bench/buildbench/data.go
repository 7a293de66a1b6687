package main

import (
	"context"
	"database/sql"
	"errors"
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

// epoch is the first day of the generated data.
const epoch = "2026-01-01 00:00:00"

const dayMicros = int64(24 * time.Hour / time.Microsecond)

// origins are the airports flights leave from, three letters each.
const origins = "ATLLAXORDDFWDENJFKSFOSEALASMCOEWRCLTPHXIAHMIABOSMSPFLLDTWPHL" +
	"LGABWISLCSANIADDCAMDWTPAPDXHNLAUSBNADALSTLHOUOAKMSYRDUSJCSMF"

// hashMacros define mix(i, salt): a 32-bit integer hash of row number i, so
// every value is a function of (seed, row) whatever DuckDB's own hash does.
// Arithmetic stays within UBIGINT (operands below 2^32 times constants below 2^32).
const hashMacros = `
CREATE OR REPLACE MACRO bench_mul(x, k) AS ((x::UBIGINT %% 4294967296) * k) %% 4294967296;
CREATE OR REPLACE MACRO bench_fold(h) AS xor(h, h >> 16);
CREATE OR REPLACE MACRO mix(i, salt) AS
	bench_fold(bench_mul(bench_fold(bench_mul(bench_fold(bench_mul(i::UBIGINT * 8 + salt + %d, 2654435761)), 2246822519)), 3266489917));`

// generator writes the master dataset as archive files, laid out exactly as
// the speed layer's archiver lays them out, and records them in the catalog.
type generator struct {
	db     *sql.DB
	bucket *objstore.Filesystem
	stage  string
	rows   int64 // rows of the initial master dataset
	days   int64
}

func newGenerator(ctx context.Context, cfg Config, p paths) (*generator, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open generator duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(hashMacros, cfg.Seed*1_000_003)); err != nil {
		db.Close()
		return nil, fmt.Errorf("define hash macros: %w", err)
	}
	bucket, err := objstore.NewFilesystem(p.objects())
	if err != nil {
		db.Close()
		return nil, err
	}
	g := &generator{db: db, bucket: bucket, stage: filepath.Join(p.dir, "stage"), rows: cfg.Rows, days: cfg.Days}
	if err := os.MkdirAll(g.stage, 0o755); err != nil {
		db.Close()
		return nil, err
	}
	return g, nil
}

func (g *generator) Close() error { return g.db.Close() }

// masterTime spreads rows over the days in offset order, as events arrive,
// each up to 10 minutes late (never before the first day).
func (g *generator) masterTime() string {
	return fmt.Sprintf("greatest(0, (i::HUGEINT * %d // %d)::BIGINT - (mix(i, 3) %% 600000000)::BIGINT)", g.days*dayMicros, g.rows)
}

// incrementTime puts rows on the last day, except one in ten: late events
// spread over lateDays (days since epoch).
func (g *generator) incrementTime(lateDays []int64) string {
	within := fmt.Sprintf("(mix(i, 3) %% %d)::BIGINT", dayMicros)
	if len(lateDays) == 0 {
		return fmt.Sprintf("%d + %s", (g.days-1)*dayMicros, within)
	}
	late := make([]string, len(lateDays))
	for i, d := range lateDays {
		late[i] = fmt.Sprint(d * dayMicros)
	}
	return fmt.Sprintf("CASE WHEN mix(i, 4) %% 10 = 0 THEN [%s][(1 + mix(i, 5) %% %d)::BIGINT] ELSE %d END + %s",
		strings.Join(late, ", "), len(lateDays), (g.days-1)*dayMicros, within)
}

// rowsSQL is the rows of offsets [first, end) with their archive day dt.
func rowsSQL(first, end int64, timeMicros string) string {
	return fmt.Sprintf(`SELECT date, delay, origin, strftime(CAST(date AS DATE), '%%Y-%%m-%%d') AS dt FROM (
	SELECT TIMESTAMP '%s' + to_microseconds(%s) AS date,
		CASE WHEN mix(i, 1) %% 50 = 0 THEN NULL ELSE (mix(i, 1) // 50 %% 240)::BIGINT - 30 END AS delay,
		substr(%s, (1 + 3 * (mix(i, 2) %% %d))::BIGINT, 3) AS origin
	FROM range(%d, %d) AS r(i))`,
		epoch, timeMicros, dataset.QuoteString(origins), len(origins)/3, first, end)
}

// master writes offsets [0, rows) as segments of segmentRows offsets.
func (g *generator) master(ctx context.Context, segmentRows int64, progress func(first, end int64)) ([]catalog.ArchiveFile, error) {
	var files []catalog.ArchiveFile
	for first := int64(0); first < g.rows; first += segmentRows {
		end := min(first+segmentRows, g.rows)
		fs, err := g.segment(ctx, first, end, g.masterTime())
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
		progress(first, end)
	}
	return files, nil
}

// increment writes n rows from offset first as one segment.
func (g *generator) increment(ctx context.Context, first, n int64, lateDays []int64) ([]catalog.ArchiveFile, error) {
	return g.segment(ctx, first, first+n, g.incrementTime(lateDays))
}

// segment writes one archive file per day of offsets [first, end) and
// uploads it under the archiver's name for the range and day. The rows are
// generated once into a table, then written out day by day.
func (g *generator) segment(ctx context.Context, first, end int64, timeMicros string) ([]catalog.ArchiveFile, error) {
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

func (g *generator) dayCounts(ctx context.Context) ([]dayCount, error) {
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
func (g *generator) writeDay(ctx context.Context, first, end int64, d dayCount) (catalog.ArchiveFile, error) {
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
	name := speedlayer.ArchiveName(datasetName, d.day, first, end)
	if err := g.bucket.Upload(ctx, name, f); err != nil {
		return catalog.ArchiveFile{}, err
	}
	return catalog.ArchiveFile{
		Dataset: datasetName, Path: name, Partition: "dt=" + d.day,
		First: first, End: end, Rows: d.rows, Bytes: st.Size(),
	}, nil
}

// archive records files in the catalog and leaves the event log as the
// speed layer leaves it once everything is archived: truncated to one empty
// active segment named by the archived end. The speed layer refuses to load
// an archive that reaches past the end of its log.
func archive(ctx context.Context, p paths, files []catalog.ArchiveFile) error {
	cat, err := catalog.Open(ctx, p.catalog(), nil)
	if err != nil {
		return fmt.Errorf("open catalog: %w", err)
	}
	defer cat.Close()
	switch _, err := cat.GetDataset(ctx, datasetName); {
	case errors.Is(err, catalog.ErrNotFound):
		if err := createDefinitions(ctx, cat); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if err := cat.RecordArchive(ctx, files); err != nil {
		return err
	}
	end, err := cat.ArchivedEnd(ctx, datasetName)
	if err != nil {
		return err
	}
	return truncateLog(filepath.Join(p.log(), datasetName), end)
}

// truncateLog replaces the dataset's log segments by one empty segment
// starting at end (segment files are named by their 20-digit first offset).
func truncateLog(dir string, end int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("truncate event log: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.wal", end)), nil, 0o644); err != nil {
		return fmt.Errorf("truncate event log: %w", err)
	}
	return nil
}
