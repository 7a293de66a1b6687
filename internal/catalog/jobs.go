package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Job is one run of work (a view build, a backfill, a compaction). The
// catalog stores it; the scheduler owns what Kind, State and Params mean.
type Job struct {
	ID, Kind, View, State, Error string
	// Params are the kind's arguments; nil when there are none.
	Params                map[string]string
	CreatedAt             time.Time // set to now when zero; never changed by UpdateJob
	StartedAt, FinishedAt time.Time // of the latest attempt; zero = unset
	Version               int64     // the version the job published, 0 = none
	// Attempt counts the attempts started so far; MaxAttempts bounds them.
	Attempt, MaxAttempts int
	// NextAttemptAt: a queued job does not start before it (zero = at once).
	NextAttemptAt time.Time
	// LogPrefix is the object-store prefix of the latest attempt's output.
	LogPrefix string
	// Timeout bounds one attempt; 0 = unbounded. Stored in milliseconds.
	Timeout time.Duration
	// User submitted the job ("" for the scheduler's own jobs).
	User string
	// SQL and Output are a sql job's script and where its result goes.
	SQL, Output string
	// Criteria are the tag sets a cluster must have, in order of preference.
	Criteria [][]string
	// Cluster is where the latest attempt runs or ran.
	Cluster string
	// Schedule is the job schedule that submitted the job ("" if none).
	Schedule string
}

// JobFilter selects jobs; empty fields match everything, Limit <= 0 means no
// limit. Since keeps jobs created at or after it; Offset skips that many.
type JobFilter struct {
	State, View, Kind, User, Schedule string
	Since                             time.Time
	Limit, Offset                     int
}

func (j Job) validate() error {
	switch {
	case j.ID == "":
		return errors.New("id is empty")
	case j.Kind == "":
		return errors.New("kind is empty")
	case j.State == "":
		return errors.New("state is empty")
	case j.Version < 0 || j.Attempt < 0 || j.MaxAttempts < 0:
		return fmt.Errorf("negative version (%d), attempt (%d) or max attempts (%d)", j.Version, j.Attempt, j.MaxAttempts)
	case j.Timeout < 0:
		return fmt.Errorf("negative timeout %s", j.Timeout)
	}
	return nil
}

const jobColumns = `id, kind, view_name, state, error_message, created_at, started_at, finished_at, version, attempt,
	params_json, max_attempts, next_attempt_at, log_prefix, timeout_ms,
	user_name, sql_text, output, criteria_json, cluster, schedule_name`

// encodeJobJSON encodes the job's params and criteria for their columns.
func encodeJobJSON(j Job) (params, criteria string, err error) {
	params, criteria = "{}", "[]"
	if len(j.Params) > 0 {
		b, err := json.Marshal(j.Params)
		if err != nil {
			return "", "", fmt.Errorf("encode params: %w", err)
		}
		params = string(b)
	}
	if len(j.Criteria) > 0 {
		b, err := json.Marshal(j.Criteria)
		if err != nil {
			return "", "", fmt.Errorf("encode criteria: %w", err)
		}
		criteria = string(b)
	}
	return params, criteria, nil
}

// CreateJob stores a new job; ErrExists if the ID is taken.
func (s *Store) CreateJob(ctx context.Context, j Job) error {
	if err := j.validate(); err != nil {
		return fmt.Errorf("create job %q: %w", j.ID, err)
	}
	params, criteria, err := encodeJobJSON(j)
	if err != nil {
		return fmt.Errorf("create job %q: %w", j.ID, err)
	}
	res, err := s.execWrite(ctx, `INSERT INTO jobs (`+jobColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) ON CONFLICT (id) DO NOTHING`,
		j.ID, j.Kind, j.View, j.State, j.Error, toMillis(createdAt(j.CreatedAt)),
		toNullMillis(j.StartedAt), toNullMillis(j.FinishedAt), j.Version, j.Attempt,
		params, j.MaxAttempts, toNullMillis(j.NextAttemptAt), j.LogPrefix, j.Timeout.Milliseconds(),
		j.User, j.SQL, j.Output, criteria, j.Cluster, j.Schedule)
	if err != nil {
		return fmt.Errorf("create job %q: %w", j.ID, err)
	}
	if err := insertedOne(res); err != nil {
		return fmt.Errorf("create job %q: %w", j.ID, err)
	}
	return nil
}

// GetJob returns a job by ID; ErrNotFound if there is none.
func (s *Store) GetJob(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(s.read.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %q: %w", id, err)
	}
	return j, nil
}

// UpdateJob replaces every field of the job with j's ID except CreatedAt.
// ErrNotFound if there is no such job.
func (s *Store) UpdateJob(ctx context.Context, j Job) error {
	if err := j.validate(); err != nil {
		return fmt.Errorf("update job %q: %w", j.ID, err)
	}
	params, criteria, err := encodeJobJSON(j)
	if err != nil {
		return fmt.Errorf("update job %q: %w", j.ID, err)
	}
	res, err := s.execWrite(ctx, `
UPDATE jobs SET kind = $2, view_name = $3, state = $4, error_message = $5,
	started_at = $6, finished_at = $7, version = $8, attempt = $9,
	params_json = $10, max_attempts = $11, next_attempt_at = $12, log_prefix = $13, timeout_ms = $14,
	user_name = $15, sql_text = $16, output = $17, criteria_json = $18, cluster = $19, schedule_name = $20
WHERE id = $1`,
		j.ID, j.Kind, j.View, j.State, j.Error, toNullMillis(j.StartedAt), toNullMillis(j.FinishedAt), j.Version, j.Attempt,
		params, j.MaxAttempts, toNullMillis(j.NextAttemptAt), j.LogPrefix, j.Timeout.Milliseconds(),
		j.User, j.SQL, j.Output, criteria, j.Cluster, j.Schedule)
	if err != nil {
		return fmt.Errorf("update job %q: %w", j.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update job %q: rows affected: %w", j.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update job: job %q: %w", j.ID, ErrNotFound)
	}
	return nil
}

// ListJobs returns the jobs matching filter, newest first (by CreatedAt, then
// ID descending, so the order is total).
func (s *Store) ListJobs(ctx context.Context, filter JobFilter) ([]Job, error) {
	var (
		where []string
		args  []any
	)
	for _, f := range []struct{ column, value string }{
		{"state", filter.State}, {"view_name", filter.View}, {"kind", filter.Kind}, {"user_name", filter.User},
		{"schedule_name", filter.Schedule},
	} {
		if f.value != "" {
			args = append(args, f.value)
			where = append(where, fmt.Sprintf("%s = $%d", f.column, len(args)))
		}
	}
	if !filter.Since.IsZero() {
		args = append(args, toMillis(filter.Since))
		where = append(where, fmt.Sprintf("created_at >= $%d", len(args)))
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, ` + s.byBytes("id") + ` DESC`
	if filter.Limit > 0 || filter.Offset > 0 {
		limit := int64(filter.Limit)
		if limit <= 0 {
			// No limit: SQLite needs one before OFFSET, PostgreSQL rejects
			// SQLite's -1 for none, and both take the largest BIGINT.
			limit = math.MaxInt64
		}
		args = append(args, limit, filter.Offset)
		q += fmt.Sprintf(" LIMIT $%d OFFSET $%d", len(args)-1, len(args))
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	out := []Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var (
		j                          Job
		created, timeoutMs         int64
		started, finished, nextAtt sql.NullInt64
		params, criteria           string
	)
	if err := row.Scan(&j.ID, &j.Kind, &j.View, &j.State, &j.Error, &created, &started, &finished, &j.Version, &j.Attempt,
		&params, &j.MaxAttempts, &nextAtt, &j.LogPrefix, &timeoutMs,
		&j.User, &j.SQL, &j.Output, &criteria, &j.Cluster, &j.Schedule); err != nil {
		return Job{}, err
	}
	if err := json.Unmarshal([]byte(criteria), &j.Criteria); err != nil {
		return Job{}, fmt.Errorf("job %q: decode criteria: %w", j.ID, err)
	}
	if len(j.Criteria) == 0 {
		j.Criteria = nil
	}
	j.CreatedAt = fromMillis(created)
	j.StartedAt = fromNullMillis(started)
	j.FinishedAt = fromNullMillis(finished)
	j.NextAttemptAt = fromNullMillis(nextAtt)
	j.Timeout = time.Duration(timeoutMs) * time.Millisecond
	if err := json.Unmarshal([]byte(params), &j.Params); err != nil {
		return Job{}, fmt.Errorf("job %q: decode params: %w", j.ID, err)
	}
	if len(j.Params) == 0 {
		j.Params = nil
	}
	return j, nil
}
