package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Dashboard is a saved dashboard of the web console. Doc is its JSON
// document, stored as given: its shape belongs to the server's API.
type Dashboard struct {
	Name string
	Doc  string
	// Owner created the dashboard; UpdatedBy saved its current document.
	Owner     string
	UpdatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PutDashboard creates the dashboard, or replaces the document of an
// existing one, keeping its owner and creation time. created reports which.
func (s *Store) PutDashboard(ctx context.Context, d Dashboard) (created bool, err error) {
	if d.Name == "" || d.Doc == "" {
		return false, errors.New("put dashboard: name and document are required")
	}
	now := toMillis(createdAt(d.UpdatedAt))
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM dashboards WHERE name = $1`, d.Name).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			_, err = tx.ExecContext(ctx, `INSERT INTO dashboards (name, doc_json, owner, updated_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)`,
				d.Name, d.Doc, d.Owner, d.UpdatedBy, now)
			return err
		case err != nil:
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE dashboards SET doc_json = $2, updated_by = $3, updated_at = $4 WHERE name = $1`,
			d.Name, d.Doc, d.UpdatedBy, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("put dashboard %q: %w", d.Name, err)
	}
	return created, nil
}

const dashboardColumns = `name, doc_json, owner, updated_by, created_at, updated_at`

func scanDashboard(row interface{ Scan(...any) error }) (Dashboard, error) {
	var d Dashboard
	var created, updated int64
	if err := row.Scan(&d.Name, &d.Doc, &d.Owner, &d.UpdatedBy, &created, &updated); err != nil {
		return Dashboard{}, err
	}
	d.CreatedAt, d.UpdatedAt = fromMillis(created), fromMillis(updated)
	return d, nil
}

// GetDashboard returns the named dashboard; ErrNotFound if there is none.
func (s *Store) GetDashboard(ctx context.Context, name string) (Dashboard, error) {
	d, err := scanDashboard(s.read.QueryRowContext(ctx, `SELECT `+dashboardColumns+` FROM dashboards WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Dashboard{}, fmt.Errorf("dashboard %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Dashboard{}, fmt.Errorf("dashboard %q: %w", name, err)
	}
	return d, nil
}

// ListDashboards returns every dashboard, by name.
func (s *Store) ListDashboards(ctx context.Context) ([]Dashboard, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+dashboardColumns+` FROM dashboards ORDER BY `+s.byBytes("name"))
	if err != nil {
		return nil, fmt.Errorf("list dashboards: %w", err)
	}
	defer rows.Close()
	var out []Dashboard
	for rows.Next() {
		d, err := scanDashboard(rows)
		if err != nil {
			return nil, fmt.Errorf("list dashboards: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dashboards: %w", err)
	}
	return out, nil
}

// DeleteDashboard removes the named dashboard; ErrNotFound if there is none.
func (s *Store) DeleteDashboard(ctx context.Context, name string) error {
	res, err := s.execWrite(ctx, `DELETE FROM dashboards WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete dashboard %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("dashboard %q: %w", name, ErrNotFound)
	}
	return nil
}
