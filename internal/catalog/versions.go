package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// VersionFile is one Parquet file of a view version.
type VersionFile struct {
	Path string `json:"path"`
	// Partition is the day (YYYY-MM-DD) of the view's time key the file
	// holds, "" for views without one.
	Partition string `json:"partition,omitempty"`
	Rows      int64  `json:"rows"`
	Bytes     int64  `json:"bytes"`
}

// VersionMeta says how a version was made.
type VersionMeta struct {
	// Kind is "full", "incremental" or "backfill".
	Kind string `json:"kind"`
	// Base is the version an incremental build or backfill started from.
	Base int64 `json:"base,omitempty"`
	// Rebuilt lists the partitions this version built anew; the others are
	// carried over by reference from Base.
	Rebuilt []string `json:"rebuilt,omitempty"`
}

// ViewVersion is one built and published state of a view.
type ViewVersion struct {
	View    string
	Version int64 // assigned by PublishVersion: 1, 2, ...
	// Covered: the version holds exactly the records with offsets < Covered.
	Covered     int64
	Files       []VersionFile
	Rows, Bytes int64
	JobID       string
	CreatedAt   time.Time // set to now when zero
	BuildMillis int64
	Meta        VersionMeta
	// RetiredAt is when the version stopped being current; zero while it is
	// current or if it never stopped being.
	RetiredAt time.Time
}

// VersionPaths are the object names of a version's files.
func VersionPaths(files []VersionFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

func (v ViewVersion) validate() error {
	if v.Covered < 0 {
		return fmt.Errorf("covered offset %d is negative", v.Covered)
	}
	if v.Rows < 0 || v.Bytes < 0 || v.BuildMillis < 0 {
		return fmt.Errorf("negative rows (%d), bytes (%d) or build millis (%d)", v.Rows, v.Bytes, v.BuildMillis)
	}
	for i, f := range v.Files {
		if f.Path == "" {
			return fmt.Errorf("files[%d]: path is empty", i)
		}
	}
	return nil
}

const versionColumns = `view_name, version, covered, files_json, row_count, byte_count, job_id, created_at, build_millis, meta_json, retired_at`

// PublishVersion stores v under the view's next version number and makes it
// the current version, in one transaction: readers see the previous version
// or this one, never a mix. v.Version is ignored; the stored version is
// returned. ErrNotFound if the view does not exist.
func (s *Store) PublishVersion(ctx context.Context, v ViewVersion) (ViewVersion, error) {
	if err := v.validate(); err != nil {
		return ViewVersion{}, fmt.Errorf("publish version of view %q: %w", v.View, err)
	}
	if v.Files == nil {
		v.Files = []VersionFile{}
	}
	filesJSON, err := json.Marshal(v.Files)
	if err != nil {
		return ViewVersion{}, fmt.Errorf("publish version of view %q: encode files: %w", v.View, err)
	}
	metaJSON, err := json.Marshal(v.Meta)
	if err != nil {
		return ViewVersion{}, fmt.Errorf("publish version of view %q: encode meta: %w", v.View, err)
	}
	v.RetiredAt = time.Time{}
	v.CreatedAt = createdAt(v.CreatedAt)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// inTx runs write transactions one at a time (SQLite's write lock,
		// PostgreSQL's advisory lock), so concurrent publishers, in this
		// process or another, number versions in commit order and each
		// retires exactly the version it replaces. SET reads the old values,
		// so both columns become latest_version + 1.
		if err := retireCurrent(ctx, tx, v.View, v.CreatedAt); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `
UPDATE views SET latest_version = latest_version + 1, current_version = latest_version + 1
WHERE name = $1
RETURNING latest_version`, v.View).Scan(&v.Version)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("view %q: %w", v.View, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("next version number: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO view_versions (`+versionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)`,
			v.View, v.Version, v.Covered, string(filesJSON), v.Rows, v.Bytes, v.JobID, toMillis(v.CreatedAt), v.BuildMillis, string(metaJSON))
		if err != nil {
			return fmt.Errorf("insert version %d: %w", v.Version, err)
		}
		// A retried build may write the names an earlier attempt could
		// not delete and queued (AddGarbage): they are this version's now.
		return forgetGarbage(ctx, tx, VersionPaths(v.Files))
	})
	if err != nil {
		return ViewVersion{}, fmt.Errorf("publish version of view %q: %w", v.View, err)
	}
	s.logger.Debug("view version published", "view", v.View, "version", v.Version, "covered", v.Covered, "files", len(v.Files))
	return v, nil
}

// CurrentVersion returns the view's current version. ErrNotFound if the view
// does not exist or has no published version yet.
func (s *Store) CurrentVersion(ctx context.Context, view string) (ViewVersion, error) {
	// One statement, so the pointer and the version row come from one snapshot.
	row := s.read.QueryRowContext(ctx, `
SELECT `+prefixed("vv.", versionColumns)+`
FROM views v JOIN view_versions vv ON vv.view_name = v.name AND vv.version = v.current_version
WHERE v.name = $1`, view)
	vv, err := scanVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ViewVersion{}, fmt.Errorf("current version of view %q: %w (the view does not exist or has not been published yet)", view, ErrNotFound)
	}
	if err != nil {
		return ViewVersion{}, fmt.Errorf("current version of view %q: %w", view, err)
	}
	return vv, nil
}

// ListVersions returns a view's stored versions, newest first. ErrNotFound if
// the view does not exist; an empty list if it has never been published.
func (s *Store) ListVersions(ctx context.Context, view string) ([]ViewVersion, error) {
	rows, err := s.read.QueryContext(ctx, `
SELECT v.name, `+prefixed("vv.", versionColumns)+`
FROM views v LEFT JOIN view_versions vv ON vv.view_name = v.name
WHERE v.name = $1
ORDER BY vv.version DESC`, view)
	if err != nil {
		return nil, fmt.Errorf("list versions of view %q: %w", view, err)
	}
	defer rows.Close()
	found := false
	out := []ViewVersion{}
	for rows.Next() {
		found = true
		var (
			name                                            string
			viewName, filesJSON, jobID                      sql.NullString
			version, covered, nrows, bytes, created, millis sql.NullInt64
			metaJSON                                        sql.NullString
			retired                                         sql.NullInt64
		)
		if err := rows.Scan(&name, &viewName, &version, &covered, &filesJSON, &nrows, &bytes, &jobID, &created, &millis, &metaJSON, &retired); err != nil {
			return nil, fmt.Errorf("list versions of view %q: %w", view, err)
		}
		if !viewName.Valid {
			continue // the view exists but has no versions
		}
		vv := ViewVersion{
			View: viewName.String, Version: version.Int64, Covered: covered.Int64,
			Rows: nrows.Int64, Bytes: bytes.Int64, JobID: jobID.String,
			CreatedAt: fromMillis(created.Int64), BuildMillis: millis.Int64,
		}
		if err := json.Unmarshal([]byte(filesJSON.String), &vv.Files); err != nil {
			return nil, fmt.Errorf("list versions of view %q: version %d: decode files: %w", view, vv.Version, err)
		}
		if err := json.Unmarshal([]byte(metaJSON.String), &vv.Meta); err != nil {
			return nil, fmt.Errorf("list versions of view %q: version %d: decode meta: %w", view, vv.Version, err)
		}
		if retired.Valid {
			vv.RetiredAt = fromMillis(retired.Int64)
		}
		out = append(out, vv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions of view %q: %w", view, err)
	}
	if !found {
		return nil, fmt.Errorf("list versions: view %q: %w", view, ErrNotFound)
	}
	return out, nil
}

func scanVersion(row interface{ Scan(...any) error }) (ViewVersion, error) {
	var (
		v         ViewVersion
		filesJSON string
		metaJSON  string
		created   int64
		retired   sql.NullInt64
	)
	if err := row.Scan(&v.View, &v.Version, &v.Covered, &filesJSON, &v.Rows, &v.Bytes, &v.JobID, &created, &v.BuildMillis, &metaJSON, &retired); err != nil {
		return ViewVersion{}, err
	}
	if err := json.Unmarshal([]byte(filesJSON), &v.Files); err != nil {
		return ViewVersion{}, fmt.Errorf("version %d: decode files: %w", v.Version, err)
	}
	if err := json.Unmarshal([]byte(metaJSON), &v.Meta); err != nil {
		return ViewVersion{}, fmt.Errorf("version %d: decode meta: %w", v.Version, err)
	}
	if retired.Valid {
		v.RetiredAt = fromMillis(retired.Int64)
	}
	v.CreatedAt = fromMillis(created)
	return v, nil
}

// prefixed qualifies each column of a comma-separated list with a table alias.
func prefixed(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
