package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LastFire returns the latest cron fire of the view's schedule that the
// scheduler has handled, so a restarted scheduler knows which fires it
// missed; zero if none was ever recorded.
func (s *Store) LastFire(ctx context.Context, view string) (time.Time, error) {
	var ms int64
	err := s.read.QueryRowContext(ctx, `SELECT last_fire_at FROM view_schedules WHERE view_name = $1`, view).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("last fire of view %q: %w", view, err)
	}
	return fromMillis(ms), nil
}

// SetLastFire records the latest fire handled for the view's schedule.
// ErrNotFound if the view does not exist.
func (s *Store) SetLastFire(ctx context.Context, view string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("set last fire of view %q: time is zero", view)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM views WHERE name = $1`, view).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("view %q: %w", view, ErrNotFound)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO view_schedules (view_name, last_fire_at) VALUES ($1, $2)
ON CONFLICT (view_name) DO UPDATE SET last_fire_at = excluded.last_fire_at`, view, toMillis(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("set last fire of view %q: %w", view, err)
	}
	return nil
}
