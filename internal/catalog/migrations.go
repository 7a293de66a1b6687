package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// schemaMigrations is the schema history. Entry i is schema version i+1. Append
// only: never edit an entry that has shipped, since databases that already
// applied it will not run it again.
var schemaMigrations = []string{
	// 1: initial schema.
	`
CREATE TABLE datasets (
	name       TEXT PRIMARY KEY,
	spec_json  TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE views (
	name            TEXT PRIMARY KEY,
	dataset         TEXT NOT NULL REFERENCES datasets (name),
	sql_text        TEXT NOT NULL,
	schedule        TEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	-- latest_version numbers versions and is never reused, even after old
	-- versions are garbage-collected; current_version is the one readers
	-- use (0 = none yet) and may point back at an older one on rollback.
	latest_version  BIGINT NOT NULL DEFAULT 0,
	current_version BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX views_by_dataset ON views (dataset);

CREATE TABLE archive_files (
	path          TEXT PRIMARY KEY,
	dataset       TEXT NOT NULL REFERENCES datasets (name),
	day_partition TEXT NOT NULL,
	first_offset  BIGINT NOT NULL,
	end_offset    BIGINT NOT NULL,
	row_count     BIGINT NOT NULL,
	byte_count    BIGINT NOT NULL,
	created_at    BIGINT NOT NULL,
	CHECK (first_offset >= 0 AND end_offset > first_offset)
);
CREATE INDEX archive_files_by_dataset ON archive_files (dataset, first_offset, path);

CREATE TABLE view_versions (
	view_name    TEXT NOT NULL REFERENCES views (name),
	version      BIGINT NOT NULL,
	covered      BIGINT NOT NULL,
	files_json   TEXT NOT NULL,
	row_count    BIGINT NOT NULL,
	byte_count   BIGINT NOT NULL,
	job_id       TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	build_millis BIGINT NOT NULL,
	-- meta_json: how the version was made (kind, partitions rebuilt, base version).
	meta_json    TEXT NOT NULL DEFAULT '{}',
	-- retired_at: when it stopped being current (NULL while current or never current);
	-- garbage collection waits a grace period after it.
	retired_at   BIGINT,
	PRIMARY KEY (view_name, version)
);

-- Objects no longer referenced by the catalog (compacted archive files), kept
-- until a grace period after retired_at has passed, then deleted.
CREATE TABLE garbage (
	path       TEXT PRIMARY KEY,
	retired_at BIGINT NOT NULL
);

CREATE TABLE jobs (
	id            TEXT PRIMARY KEY,
	kind          TEXT NOT NULL,
	view_name     TEXT NOT NULL,
	state         TEXT NOT NULL,
	error_message TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	started_at    BIGINT,
	finished_at   BIGINT,
	version       BIGINT NOT NULL,
	attempt       BIGINT NOT NULL
);
CREATE INDEX jobs_by_created ON jobs (created_at, id);
CREATE INDEX jobs_by_state ON jobs (state, created_at, id);
CREATE INDEX jobs_by_view ON jobs (view_name, created_at, id);
`,
	// 2: job retries, timeouts, parameters and logs; per-view scheduling
	// policy; the last cron fire each view's schedule has handled.
	`
ALTER TABLE jobs ADD COLUMN params_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN max_attempts BIGINT NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE jobs ADD COLUMN log_prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN timeout_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_kind ON jobs (kind, created_at, id);

ALTER TABLE views ADD COLUMN catchup TEXT NOT NULL DEFAULT 'skip';
ALTER TABLE views ADD COLUMN max_retries BIGINT NOT NULL DEFAULT 3;
ALTER TABLE views ADD COLUMN timeout_ms BIGINT NOT NULL DEFAULT 3600000;

CREATE TABLE view_schedules (
	view_name    TEXT PRIMARY KEY REFERENCES views (name) ON DELETE CASCADE,
	last_fire_at BIGINT NOT NULL
);
`,
	// 3: when an archive file's first record was accepted, which freshness
	// lag is measured from (NULL: unknown, created_at stands in).
	`
ALTER TABLE archive_files ADD COLUMN arrived_at BIGINT;
`,
	// 4: jobs users submit: who, a sql job's script and output, where the
	// job may run (cluster tag criteria) and the cluster its attempt ran on.
	`
ALTER TABLE jobs ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN sql_text TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN output TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN criteria_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN cluster TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_user ON jobs (user_name, created_at, id);
`,
	// 5: where a dataset's external source (Kafka, NATS JetStream) stood at
	// the end of its archive, written with the archive files it follows.
	`
CREATE TABLE source_positions (
	dataset    TEXT PRIMARY KEY REFERENCES datasets (name),
	end_offset BIGINT NOT NULL,
	positions  TEXT NOT NULL
);
`,
	// 6: which leader owns each dataset's built-in event log since when:
	// a replica that finds another claimed the log after it learns from
	// which offset its own unarchived records were never archived.
	`
CREATE TABLE log_claims (
	dataset     TEXT NOT NULL REFERENCES datasets (name),
	epoch       BIGINT NOT NULL,
	from_offset BIGINT NOT NULL,
	claimed_at  BIGINT NOT NULL,
	PRIMARY KEY (dataset, epoch)
);
`,
	// 7: the web console's saved dashboards, shared by every replica. The
	// document is the server's JSON; the catalog does not read it.
	`
CREATE TABLE dashboards (
	name       TEXT PRIMARY KEY,
	doc_json   TEXT NOT NULL,
	owner      TEXT NOT NULL,
	updated_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
`,
	// 8: job schedules: a sql or notebook job's template fired on a cron
	// spec, the last fire each has handled, and on every job the schedule
	// that submitted it ('' for the others).
	`
CREATE TABLE job_schedules (
	name          TEXT PRIMARY KEY,
	cron          TEXT NOT NULL,
	catchup       TEXT NOT NULL,
	kind          TEXT NOT NULL,
	params_json   TEXT NOT NULL,
	user_name     TEXT NOT NULL,
	sql_text      TEXT NOT NULL,
	output        TEXT NOT NULL,
	criteria_json TEXT NOT NULL,
	timeout_ms    BIGINT NOT NULL,
	max_attempts  BIGINT NOT NULL,
	created_at    BIGINT NOT NULL,
	-- NULL until the schedule first fires.
	last_fire_at  BIGINT
);

ALTER TABLE jobs ADD COLUMN schedule_name TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_schedule ON jobs (schedule_name, created_at, id);
`,
}

// migrate applies the migrations the database has not seen, all in one
// transaction, so a crash leaves the schema at the old or the new version.
func migrate(ctx context.Context, db *sql.DB, migrations []string, logger *slog.Logger) error {
	return migrateLocked(ctx, db, nil, migrations, logger)
}

// migrateLocked is migrate with lock, when not nil, run first in the
// transaction: on PostgreSQL several replicas may start at once, and each
// must read the schema version only after the previous one has committed its
// migrations (SQLite's BEGIN IMMEDIATE already gives that).
func migrateLocked(ctx context.Context, db *sql.DB, lock func(context.Context, *sql.Tx) error, migrations []string, logger *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	if lock != nil {
		if err := lock(ctx, tx); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT PRIMARY KEY,
	applied_at BIGINT NOT NULL
)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	known := int64(len(migrations))
	if current > known {
		return fmt.Errorf("migrate: the catalog has schema version %d but this duet knows only up to %d: run a newer duet", current, known)
	}
	if current == known {
		return nil
	}
	now := toMillis(time.Now())
	for v := current + 1; v <= known; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migrate: apply version %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, now); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	logger.Info("catalog schema migrated", "from_version", current, "to_version", known)
	return nil
}
