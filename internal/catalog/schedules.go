package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
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

// JobSchedule is a named template of a job that the scheduler submits on a
// cron spec. The catalog stores it; the scheduler owns what Cron, Catchup
// and the template mean.
type JobSchedule struct {
	Name, Cron, Catchup string
	// Job is the template of each fire's job: its Kind, Params, User, SQL,
	// Output, Criteria, Timeout and MaxAttempts; the other fields are not
	// stored.
	Job       Job
	CreatedAt time.Time // set to now when zero
	// LastFire is the latest fire the scheduler has handled; zero until
	// the first.
	LastFire time.Time
}

const jobScheduleColumns = `name, cron, catchup, kind, params_json, user_name, sql_text, output, criteria_json,
	timeout_ms, max_attempts, created_at, last_fire_at`

// CreateJobSchedule stores a new job schedule; ErrExists if the name is taken.
func (s *Store) CreateJobSchedule(ctx context.Context, js JobSchedule) error {
	switch {
	case js.Name == "" || js.Cron == "" || js.Job.Kind == "":
		return fmt.Errorf("create job schedule %q: name, cron and job kind are required", js.Name)
	case js.Job.Timeout < 0 || js.Job.MaxAttempts < 0:
		return fmt.Errorf("create job schedule %q: negative timeout (%s) or max attempts (%d)", js.Name, js.Job.Timeout, js.Job.MaxAttempts)
	}
	params, criteria, err := encodeJobJSON(js.Job)
	if err != nil {
		return fmt.Errorf("create job schedule %q: %w", js.Name, err)
	}
	res, err := s.execWrite(ctx, `INSERT INTO job_schedules (`+jobScheduleColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (name) DO NOTHING`,
		js.Name, js.Cron, js.Catchup, js.Job.Kind, params, js.Job.User, js.Job.SQL, js.Job.Output, criteria,
		js.Job.Timeout.Milliseconds(), js.Job.MaxAttempts, toMillis(createdAt(js.CreatedAt)), toNullMillis(js.LastFire))
	if err != nil {
		return fmt.Errorf("create job schedule %q: %w", js.Name, err)
	}
	if err := insertedOne(res); err != nil {
		return fmt.Errorf("create job schedule %q: %w", js.Name, err)
	}
	return nil
}

func scanJobSchedule(row interface{ Scan(...any) error }) (JobSchedule, error) {
	var (
		js                 JobSchedule
		params, criteria   string
		timeoutMs, created int64
		last               sql.NullInt64
	)
	if err := row.Scan(&js.Name, &js.Cron, &js.Catchup, &js.Job.Kind, &params, &js.Job.User, &js.Job.SQL, &js.Job.Output, &criteria,
		&timeoutMs, &js.Job.MaxAttempts, &created, &last); err != nil {
		return JobSchedule{}, err
	}
	if err := json.Unmarshal([]byte(params), &js.Job.Params); err != nil {
		return JobSchedule{}, fmt.Errorf("job schedule %q: decode params: %w", js.Name, err)
	}
	if len(js.Job.Params) == 0 {
		js.Job.Params = nil
	}
	if err := json.Unmarshal([]byte(criteria), &js.Job.Criteria); err != nil {
		return JobSchedule{}, fmt.Errorf("job schedule %q: decode criteria: %w", js.Name, err)
	}
	if len(js.Job.Criteria) == 0 {
		js.Job.Criteria = nil
	}
	js.Job.Timeout = time.Duration(timeoutMs) * time.Millisecond
	js.CreatedAt, js.LastFire = fromMillis(created), fromNullMillis(last)
	return js, nil
}

// GetJobSchedule returns the named job schedule; ErrNotFound if there is none.
func (s *Store) GetJobSchedule(ctx context.Context, name string) (JobSchedule, error) {
	js, err := scanJobSchedule(s.read.QueryRowContext(ctx, `SELECT `+jobScheduleColumns+` FROM job_schedules WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return JobSchedule{}, fmt.Errorf("job schedule %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return JobSchedule{}, fmt.Errorf("job schedule %q: %w", name, err)
	}
	return js, nil
}

// ListJobSchedules returns every job schedule, by name.
func (s *Store) ListJobSchedules(ctx context.Context) ([]JobSchedule, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+jobScheduleColumns+` FROM job_schedules ORDER BY `+s.byBytes("name"))
	if err != nil {
		return nil, fmt.Errorf("list job schedules: %w", err)
	}
	defer rows.Close()
	out := []JobSchedule{}
	for rows.Next() {
		js, err := scanJobSchedule(rows)
		if err != nil {
			return nil, fmt.Errorf("list job schedules: %w", err)
		}
		out = append(out, js)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list job schedules: %w", err)
	}
	return out, nil
}

// DeleteJobSchedule removes the named job schedule; the jobs it submitted
// stay. ErrNotFound if there is none.
func (s *Store) DeleteJobSchedule(ctx context.Context, name string) error {
	res, err := s.execWrite(ctx, `DELETE FROM job_schedules WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete job schedule %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("job schedule %q: %w", name, ErrNotFound)
	}
	return nil
}

// JobScheduleLastFire returns the latest fire of the job schedule that the
// scheduler has handled; zero if none was recorded. ErrNotFound if there is
// no such schedule.
func (s *Store) JobScheduleLastFire(ctx context.Context, name string) (time.Time, error) {
	var ms sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT last_fire_at FROM job_schedules WHERE name = $1`, name).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("last fire of job schedule %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("last fire of job schedule %q: %w", name, err)
	}
	return fromNullMillis(ms), nil
}

// SetJobScheduleLastFire records the latest fire handled for the job
// schedule. ErrNotFound if there is no such schedule (it was deleted).
func (s *Store) SetJobScheduleLastFire(ctx context.Context, name string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("set last fire of job schedule %q: time is zero", name)
	}
	res, err := s.execWrite(ctx, `UPDATE job_schedules SET last_fire_at = $2 WHERE name = $1`, name, toMillis(at))
	if err != nil {
		return fmt.Errorf("set last fire of job schedule %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("set last fire of job schedule %q: %w", name, ErrNotFound)
	}
	return nil
}
