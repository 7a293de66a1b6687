package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/duet-analytics/duet/dataset"
)

// Dataset is a registered dataset.
type Dataset struct {
	Spec      dataset.Spec
	CreatedAt time.Time // set to now when zero
}

// View is a registered view: one SQL query over one dataset, rebuilt on Schedule
// (a cron expression; empty means on demand only).
type View struct {
	Name, Dataset, SQL, Schedule string
	CreatedAt                    time.Time // set to now when zero

	// How the scheduler runs the view's jobs (it owns their meaning; the
	// catalog stores them as given). Catchup is what a schedule does about
	// fires missed while no server ran ("" = the scheduler's default);
	// MaxRetries bounds the retries of a failed build (0 = none); Timeout
	// bounds one attempt (0 = the scheduler's default). Views created before
	// these existed read as "skip", 3 and 1h.
	Catchup    string
	MaxRetries int
	Timeout    time.Duration // stored in milliseconds
}

// CreateDataset registers a dataset; its spec is validated and normalised
// (type aliases resolved) before it is stored. ErrExists if the name is taken.
func (s *Store) CreateDataset(ctx context.Context, d Dataset) error {
	spec := d.Spec
	spec.Columns = slices.Clone(spec.Columns) // Validate normalises in place; leave the caller's spec alone
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("create dataset %q: %w", d.Spec.Name, err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("create dataset %q: encode spec: %w", spec.Name, err)
	}
	res, err := s.execWrite(ctx,
		`INSERT INTO datasets (name, spec_json, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		spec.Name, string(specJSON), toMillis(createdAt(d.CreatedAt)))
	if err != nil {
		return fmt.Errorf("create dataset %q: %w", spec.Name, err)
	}
	if err := insertedOne(res); err != nil {
		return fmt.Errorf("create dataset %q: %w", spec.Name, err)
	}
	return nil
}

// GetDataset returns a dataset by name; ErrNotFound if there is none.
func (s *Store) GetDataset(ctx context.Context, name string) (Dataset, error) {
	row := s.read.QueryRowContext(ctx, `SELECT spec_json, created_at FROM datasets WHERE name = $1`, name)
	d, err := scanDataset(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Dataset{}, fmt.Errorf("dataset %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Dataset{}, fmt.Errorf("get dataset %q: %w", name, err)
	}
	return d, nil
}

// ListDatasets returns every dataset, ordered by name.
func (s *Store) ListDatasets(ctx context.Context) ([]Dataset, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT spec_json, created_at FROM datasets ORDER BY `+s.byBytes("name"))
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	defer rows.Close()
	out := []Dataset{}
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	return out, nil
}

func scanDataset(row interface{ Scan(...any) error }) (Dataset, error) {
	var (
		specJSON string
		created  int64
	)
	if err := row.Scan(&specJSON, &created); err != nil {
		return Dataset{}, err
	}
	var d Dataset
	if err := json.Unmarshal([]byte(specJSON), &d.Spec); err != nil {
		return Dataset{}, fmt.Errorf("decode spec: %w", err)
	}
	d.CreatedAt = fromMillis(created)
	return d, nil
}

// CreateView registers a view over an existing dataset. ErrExists if the name
// is taken, ErrNotFound if the dataset does not exist.
func (s *Store) CreateView(ctx context.Context, v View) error {
	if !dataset.ValidIdentifier(v.Name) {
		return fmt.Errorf("create view %q: name must start with a letter or underscore and contain only letters, digits and underscores", v.Name)
	}
	if v.SQL == "" {
		return fmt.Errorf("create view %q: sql is empty", v.Name)
	}
	if v.MaxRetries < 0 || v.Timeout < 0 {
		return fmt.Errorf("create view %q: negative max retries (%d) or timeout (%s)", v.Name, v.MaxRetries, v.Timeout)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := datasetExists(ctx, tx, v.Dataset); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO views (name, dataset, sql_text, schedule, created_at, catchup, max_retries, timeout_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING`,
			v.Name, v.Dataset, v.SQL, v.Schedule, toMillis(createdAt(v.CreatedAt)), v.Catchup, v.MaxRetries, v.Timeout.Milliseconds())
		if err != nil {
			return err
		}
		return insertedOne(res)
	})
	if err != nil {
		return fmt.Errorf("create view %q: %w", v.Name, err)
	}
	return nil
}

// GetView returns a view by name; ErrNotFound if there is none.
func (s *Store) GetView(ctx context.Context, name string) (View, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+viewColumns+` FROM views WHERE name = $1`, name)
	v, err := scanView(row)
	if errors.Is(err, sql.ErrNoRows) {
		return View{}, fmt.Errorf("view %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return View{}, fmt.Errorf("get view %q: %w", name, err)
	}
	return v, nil
}

// ListViews returns every view, ordered by name.
func (s *Store) ListViews(ctx context.Context) ([]View, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+viewColumns+` FROM views ORDER BY `+s.byBytes("name"))
	if err != nil {
		return nil, fmt.Errorf("list views: %w", err)
	}
	defer rows.Close()
	out := []View{}
	for rows.Next() {
		v, err := scanView(rows)
		if err != nil {
			return nil, fmt.Errorf("list views: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list views: %w", err)
	}
	return out, nil
}

const viewColumns = `name, dataset, sql_text, schedule, created_at, catchup, max_retries, timeout_ms`

func scanView(row interface{ Scan(...any) error }) (View, error) {
	var (
		v                  View
		created, timeoutMs int64
	)
	if err := row.Scan(&v.Name, &v.Dataset, &v.SQL, &v.Schedule, &created, &v.Catchup, &v.MaxRetries, &timeoutMs); err != nil {
		return View{}, err
	}
	v.CreatedAt = fromMillis(created)
	v.Timeout = time.Duration(timeoutMs) * time.Millisecond
	return v, nil
}

// datasetExists checks inside tx so the answer holds until commit; the
// foreign key would catch a missing dataset too, but not with a useful error.
func datasetExists(ctx context.Context, tx *sql.Tx, name string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM datasets WHERE name = $1`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("dataset %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("look up dataset %q: %w", name, err)
	}
	return nil
}

// insertedOne turns an INSERT ... ON CONFLICT DO NOTHING that inserted nothing
// into ErrExists; this works the same on SQLite and PostgreSQL without
// decoding driver-specific constraint errors.
func insertedOne(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rows affected: %w", err)
	}
	if n == 0 {
		return ErrExists
	}
	return nil
}
