package catalog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ArchiveFile is one Parquet file of the raw archive (the master dataset): the
// records of offsets [First, End) of one dataset that fall in one day
// partition. Several files share a range when the range touches several days.
type ArchiveFile struct {
	Dataset, Path, Partition string
	First, End, Rows, Bytes  int64
	CreatedAt                time.Time // set to now when zero
	// ArrivedAt is when the first of its records was accepted; zero when
	// unknown (see Arrived).
	ArrivedAt time.Time
}

// Arrived is when the file's first record was accepted, or when it was
// archived if that is unknown: the freshness lag of its records counts from it.
func (f ArchiveFile) Arrived() time.Time {
	if f.ArrivedAt.IsZero() {
		return f.CreatedAt
	}
	return f.ArrivedAt
}

// arrivedAt is the stored arrival time: NULL when unknown.
func (f ArchiveFile) arrivedAt() sql.NullInt64 {
	if f.ArrivedAt.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toMillis(f.ArrivedAt), Valid: true}
}

func (f ArchiveFile) validate() error {
	switch {
	case f.Path == "":
		return errors.New("path is empty")
	case f.Dataset == "":
		return fmt.Errorf("%s: dataset is empty", f.Path)
	case f.Partition == "":
		return fmt.Errorf("%s: partition is empty", f.Path)
	case f.First < 0 || f.End <= f.First:
		return fmt.Errorf("%s: offsets [%d, %d) are not a non-empty range of non-negative offsets", f.Path, f.First, f.End)
	case f.Rows < 0 || f.Bytes < 0:
		return fmt.Errorf("%s: negative rows (%d) or bytes (%d)", f.Path, f.Rows, f.Bytes)
	}
	return nil
}

// RecordArchive records archive files in one transaction: all of them become
// visible together or none does. Recording a Path again replaces its entry,
// so an archiver that crashed after uploading can simply redo its work.
// ErrNotFound if a file's dataset does not exist.
func (s *Store) RecordArchive(ctx context.Context, files []ArchiveFile) error {
	return s.recordArchive(ctx, files, nil)
}

// SourcePositions is where a dataset's external source (Kafka, NATS
// JetStream) stood after the record at offset End-1: positions the source
// resumes from, opaque to the catalog but text (sources write JSON).
type SourcePositions struct {
	Dataset   string
	End       int64
	Positions []byte
}

func (p SourcePositions) validate(files []ArchiveFile) error {
	var end int64
	for _, f := range files {
		if f.Dataset != p.Dataset {
			return fmt.Errorf("%s: file of dataset %q with source positions of %q", f.Path, f.Dataset, p.Dataset)
		}
		end = max(end, f.End)
	}
	switch {
	case len(p.Positions) == 0:
		return fmt.Errorf("source positions of %q are empty", p.Dataset)
	case !utf8.Valid(p.Positions) || bytes.IndexByte(p.Positions, 0) >= 0:
		return fmt.Errorf("source positions of %q are not text", p.Dataset)
	case p.End != end:
		return fmt.Errorf("source positions of %q at offset %d, but the files end at %d", p.Dataset, p.End, end)
	}
	return nil
}

// RecordSourcedArchive is RecordArchive for the files of a dataset read from
// an external source: in the same transaction it records where the source
// stood at the end of the files (src.End must be their largest End), so the
// archive and the positions to resume from can never disagree. Positions
// only move forward: an older End does not replace a newer one.
func (s *Store) RecordSourcedArchive(ctx context.Context, files []ArchiveFile, src SourcePositions) error {
	if len(files) == 0 {
		return errors.New("record archive: source positions without files")
	}
	if err := src.validate(files); err != nil {
		return fmt.Errorf("record archive: %w", err)
	}
	return s.recordArchive(ctx, files, &src)
}

func (s *Store) recordArchive(ctx context.Context, files []ArchiveFile, src *SourcePositions) error {
	if len(files) == 0 {
		return nil
	}
	for _, f := range files {
		if err := f.validate(); err != nil {
			return fmt.Errorf("record archive: %w", err)
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		checked := map[string]bool{}
		for _, f := range files {
			if !checked[f.Dataset] {
				if err := datasetExists(ctx, tx, f.Dataset); err != nil {
					return err
				}
				checked[f.Dataset] = true
			}
			_, err := tx.ExecContext(ctx, `
INSERT INTO archive_files (path, dataset, day_partition, first_offset, end_offset, row_count, byte_count, created_at, arrived_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (path) DO UPDATE SET
	dataset = excluded.dataset, day_partition = excluded.day_partition,
	first_offset = excluded.first_offset, end_offset = excluded.end_offset,
	row_count = excluded.row_count, byte_count = excluded.byte_count,
	created_at = excluded.created_at, arrived_at = excluded.arrived_at`,
				f.Path, f.Dataset, f.Partition, f.First, f.End, f.Rows, f.Bytes, toMillis(createdAt(f.CreatedAt)), f.arrivedAt())
			if err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
		}
		if src != nil {
			return recordSource(ctx, tx, *src)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record archive: %w", err)
	}
	return nil
}

func recordSource(ctx context.Context, tx *sql.Tx, src SourcePositions) error {
	_, err := tx.ExecContext(ctx, `
INSERT INTO source_positions (dataset, end_offset, positions) VALUES ($1, $2, $3)
ON CONFLICT (dataset) DO UPDATE SET end_offset = excluded.end_offset, positions = excluded.positions
WHERE source_positions.end_offset <= excluded.end_offset`, src.Dataset, src.End, string(src.Positions))
	if err != nil {
		return fmt.Errorf("source positions of %q: %w", src.Dataset, err)
	}
	return nil
}

// ArchivedSource returns the source positions recorded with a dataset's
// archive (RecordSourcedArchive) and the offset they follow; end 0 and nil
// positions when none were. ErrNotFound if the dataset does not exist.
func (s *Store) ArchivedSource(ctx context.Context, datasetName string) (end int64, positions []byte, err error) {
	var (
		e   sql.NullInt64
		pos sql.NullString
	)
	err = s.read.QueryRowContext(ctx, `
SELECT p.end_offset, p.positions
FROM datasets d LEFT JOIN source_positions p ON p.dataset = d.name
WHERE d.name = $1`, datasetName).Scan(&e, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("archived source: dataset %q: %w", datasetName, ErrNotFound)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("archived source of %q: %w", datasetName, err)
	}
	if !pos.Valid {
		return 0, nil, nil
	}
	return e.Int64, []byte(pos.String), nil
}

// ArchiveFiles returns a dataset's archive files ordered by First, then Path.
// ErrNotFound if the dataset does not exist.
func (s *Store) ArchiveFiles(ctx context.Context, datasetName string) ([]ArchiveFile, error) {
	// Joining from datasets tells "no such dataset" (no row) from "no files"
	// (one row of NULLs) in a single snapshot.
	rows, err := s.read.QueryContext(ctx, `
SELECT a.path, a.day_partition, a.first_offset, a.end_offset, a.row_count, a.byte_count, a.created_at, a.arrived_at
FROM datasets d LEFT JOIN archive_files a ON a.dataset = d.name
WHERE d.name = $1
ORDER BY a.first_offset, `+s.byBytes("a.path"), datasetName)
	if err != nil {
		return nil, fmt.Errorf("archive files of %q: %w", datasetName, err)
	}
	defer rows.Close()
	found := false
	out := []ArchiveFile{}
	for rows.Next() {
		found = true
		var (
			path, partition                            sql.NullString
			first, end, nrows, bytes, created, arrived sql.NullInt64
		)
		if err := rows.Scan(&path, &partition, &first, &end, &nrows, &bytes, &created, &arrived); err != nil {
			return nil, fmt.Errorf("archive files of %q: %w", datasetName, err)
		}
		if !path.Valid {
			continue
		}
		out = append(out, ArchiveFile{
			Dataset: datasetName, Path: path.String, Partition: partition.String,
			First: first.Int64, End: end.Int64, Rows: nrows.Int64, Bytes: bytes.Int64,
			CreatedAt: fromMillis(created.Int64),
		})
		if arrived.Valid {
			out[len(out)-1].ArrivedAt = fromMillis(arrived.Int64)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive files of %q: %w", datasetName, err)
	}
	if !found {
		return nil, fmt.Errorf("archive files: dataset %q: %w", datasetName, ErrNotFound)
	}
	return out, nil
}

// ArchivedEnd is the largest End of a dataset's archive files, 0 when it has
// none. ErrNotFound if the dataset does not exist.
func (s *Store) ArchivedEnd(ctx context.Context, datasetName string) (int64, error) {
	var end int64
	err := s.read.QueryRowContext(ctx, `
SELECT COALESCE(MAX(a.end_offset), 0)
FROM datasets d LEFT JOIN archive_files a ON a.dataset = d.name
WHERE d.name = $1
GROUP BY d.name`, datasetName).Scan(&end)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("archived end: dataset %q: %w", datasetName, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("archived end of %q: %w", datasetName, err)
	}
	return end, nil
}
