package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// LogClaim records that the leader of epoch Epoch took over a dataset's
// built-in event log when the archive ended at From: the offsets from From
// on were its to assign. Replicas keep their logs on their own disks, so a
// replica that led before learns from the next claim after its own where the
// records it accepted but never archived begin.
type LogClaim struct {
	Dataset   string
	Epoch     int64
	From      int64
	ClaimedAt time.Time
}

// ClaimLog records a claim; a second claim of the same dataset and epoch
// fails with ErrExists.
func (s *Store) ClaimLog(ctx context.Context, c LogClaim) error {
	if c.Epoch <= 0 || c.From < 0 {
		return fmt.Errorf("claim log of dataset %q: epoch %d and offset %d must be positive", c.Dataset, c.Epoch, c.From)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO log_claims (dataset, epoch, from_offset, claimed_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			c.Dataset, c.Epoch, c.From, toMillis(createdAt(c.ClaimedAt)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("%w: epoch %d already claimed it", ErrExists, c.Epoch)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("claim log of dataset %q: %w", c.Dataset, err)
	}
	return nil
}

// LogClaims returns the dataset's claims of epoch since or later, oldest first.
func (s *Store) LogClaims(ctx context.Context, dataset string, since int64) ([]LogClaim, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT epoch, from_offset, claimed_at FROM log_claims WHERE dataset = $1 AND epoch >= $2 ORDER BY epoch`, dataset, since)
	if err != nil {
		return nil, fmt.Errorf("log claims of dataset %q: %w", dataset, err)
	}
	defer rows.Close()
	var out []LogClaim
	for rows.Next() {
		c := LogClaim{Dataset: dataset}
		var at int64
		if err := rows.Scan(&c.Epoch, &c.From, &at); err != nil {
			return nil, fmt.Errorf("log claims of dataset %q: %w", dataset, err)
		}
		c.ClaimedAt = fromMillis(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("log claims of dataset %q: %w", dataset, err)
	}
	return out, nil
}
