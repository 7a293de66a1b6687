package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// retireCurrent stamps the view's current version, if any, as retired at t.
func retireCurrent(ctx context.Context, tx *sql.Tx, view string, t time.Time) error {
	_, err := tx.ExecContext(ctx, `
UPDATE view_versions SET retired_at = $2
WHERE view_name = $1 AND version = (SELECT current_version FROM views WHERE name = $1)`, view, toMillis(t))
	if err != nil {
		return fmt.Errorf("retire current version: %w", err)
	}
	return nil
}

// SetCurrentVersion makes a stored version current again (a rollback), in one
// transaction, and returns it. ErrNotFound if the view or version does not exist.
func (s *Store) SetCurrentVersion(ctx context.Context, view string, version int64) (ViewVersion, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int64
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM view_versions WHERE view_name = $1 AND version = $2`, view, version).Scan(&n)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("version %d of view %q: %w", version, view, ErrNotFound)
		}
		if err := retireCurrent(ctx, tx, view, time.Now()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE views SET current_version = $2 WHERE name = $1`, view, version); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE view_versions SET retired_at = NULL WHERE view_name = $1 AND version = $2`, view, version)
		return err
	})
	if err != nil {
		return ViewVersion{}, fmt.Errorf("set current version of view %q: %w", view, err)
	}
	return s.CurrentVersion(ctx, view)
}

// DeleteVersions removes version rows (garbage collection) and queues the
// given files, which no remaining version names, for deletion, in one
// transaction. The current version is never deleted.
func (s *Store) DeleteVersions(ctx context.Context, view string, versions []int64, unreferenced []string, retiredAt time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, v := range versions {
			res, err := tx.ExecContext(ctx, `
DELETE FROM view_versions WHERE view_name = $1 AND version = $2
AND version <> (SELECT current_version FROM views WHERE name = $1)`, view, v)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("version %d: %w (or it is current)", v, ErrNotFound)
			}
		}
		return addGarbage(ctx, tx, unreferenced, retiredAt)
	})
	if err != nil {
		return fmt.Errorf("delete versions of view %q: %w", view, err)
	}
	return nil
}

// ReplaceArchive swaps archive files for others holding the same records
// (compaction), in one transaction; the removed files are queued for deletion.
func (s *Store) ReplaceArchive(ctx context.Context, dataset string, remove []string, add []ArchiveFile) error {
	for _, f := range add {
		if err := f.validate(); err != nil {
			return fmt.Errorf("replace archive: %w", err)
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, p := range remove {
			res, err := tx.ExecContext(ctx, `DELETE FROM archive_files WHERE dataset = $1 AND path = $2`, dataset, p)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("archive file %s: %w", p, ErrNotFound)
			}
		}
		for _, f := range add {
			if _, err := tx.ExecContext(ctx, `
INSERT INTO archive_files (path, dataset, day_partition, first_offset, end_offset, row_count, byte_count, created_at, arrived_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, f.Path, f.Dataset, f.Partition, f.First, f.End, f.Rows, f.Bytes, toMillis(createdAt(f.CreatedAt)), f.arrivedAt()); err != nil {
				return fmt.Errorf("insert %s: %w", f.Path, err)
			}
		}
		return addGarbage(ctx, tx, remove, time.Now())
	})
	if err != nil {
		return fmt.Errorf("replace archive of %q: %w", dataset, err)
	}
	return nil
}

func addGarbage(ctx context.Context, tx *sql.Tx, paths []string, retiredAt time.Time) error {
	for _, p := range paths {
		if _, err := tx.ExecContext(ctx, `
INSERT INTO garbage (path, retired_at) VALUES ($1, $2)
ON CONFLICT (path) DO UPDATE SET retired_at = excluded.retired_at`, p, toMillis(retiredAt)); err != nil {
			return fmt.Errorf("queue %s for deletion: %w", p, err)
		}
	}
	return nil
}

// Garbage lists objects queued for deletion that were retired at or before t.
func (s *Store) Garbage(ctx context.Context, retiredBefore time.Time) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT path FROM garbage WHERE retired_at <= $1 ORDER BY `+s.byBytes("path"), toMillis(retiredBefore))
	if err != nil {
		return nil, fmt.Errorf("list garbage: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ForgetGarbage removes deleted objects from the queue.
func (s *Store) ForgetGarbage(ctx context.Context, paths []string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return forgetGarbage(ctx, tx, paths) })
}

func forgetGarbage(ctx context.Context, tx *sql.Tx, paths []string) error {
	for _, p := range paths {
		if _, err := tx.ExecContext(ctx, `DELETE FROM garbage WHERE path = $1`, p); err != nil {
			return fmt.Errorf("forget garbage %s: %w", p, err)
		}
	}
	return nil
}

// AddGarbage queues objects no version names for deletion (a build's
// output it could not publish nor delete). Publishing a version that names
// one of them takes it off the queue again.
func (s *Store) AddGarbage(ctx context.Context, paths []string) error {
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return addGarbage(ctx, tx, paths, time.Now()) }); err != nil {
		return fmt.Errorf("queue objects for deletion: %w", err)
	}
	return nil
}
