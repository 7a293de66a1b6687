package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var discard = slog.New(slog.DiscardHandler)

func openSQLite(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSQLiteContract(t *testing.T) {
	RunContract(t, func(t *testing.T) *Store {
		return openSQLite(t, filepath.Join(t.TempDir(), "catalog.db"))
	})
}

func TestReopenKeepsDataAndSkipsMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCreateDataset(t, s, "clicks")
	mustCreateView(t, s, "pages", "clicks")
	v1, err := s.PublishVersion(ctx, ViewVersion{View: "pages", Covered: 10, Files: []VersionFile{{Path: "a.parquet", Rows: 1, Bytes: 2}}, CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	applied := migrationRows(t, s)
	if len(applied) != len(schemaMigrations) {
		t.Fatalf("schema_migrations has %d rows, want %d", len(applied), len(schemaMigrations))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSQLite(t, path)
	if got := migrationRows(t, s); !equalRows(got, applied) {
		t.Fatalf("schema_migrations changed on reopen: %v, was %v", got, applied)
	}
	if _, err := s.GetDataset(ctx, "clicks"); err != nil {
		t.Fatalf("dataset lost on reopen: %v", err)
	}
	cur, err := s.CurrentVersion(ctx, "pages")
	if err != nil || cur.Version != v1.Version || cur.Files[0].Path != "a.parquet" {
		t.Fatalf("current version after reopen = %+v, %v; want %+v", cur, err, v1)
	}
	// Numbering continues where it stopped.
	v2, err := s.PublishVersion(ctx, ViewVersion{View: "pages", Covered: 20})
	if err != nil || v2.Version != 2 {
		t.Fatalf("publish after reopen = %+v, %v; want version 2", v2, err)
	}
}

func migrationRows(t *testing.T, s *Store) [][2]int64 {
	t.Helper()
	rows, err := s.read.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]int64
	for rows.Next() {
		var r [2]int64
		if err := rows.Scan(&r[0], &r[1]); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func equalRows(a, b [][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrateAppliesOnlyNewVersionsAtomically(t *testing.T) {
	ctx := t.Context()
	db := rawDB(t, filepath.Join(t.TempDir(), "m.db"))
	m1 := `CREATE TABLE a (x BIGINT)`
	m2 := `CREATE TABLE b (y BIGINT); INSERT INTO b (y) VALUES (7)`
	if err := migrate(ctx, db, []string{m1}, discard); err != nil {
		t.Fatal(err)
	}
	// m1 would fail if re-run (the table exists), so success proves it is skipped.
	if err := migrate(ctx, db, []string{m1, m2}, discard); err != nil {
		t.Fatal(err)
	}
	var y, version int64
	if err := db.QueryRowContext(ctx, `SELECT y FROM b`).Scan(&y); err != nil || y != 7 {
		t.Fatalf("migration 2 not applied: %d, %v", y, err)
	}
	// A failing migration rolls back the whole batch, including earlier ones.
	m3 := `CREATE TABLE c (z BIGINT)`
	m4 := `CREATE TABLE a (x BIGINT)` // fails: exists
	if err := migrate(ctx, db, []string{m1, m2, m3, m4}, discard); err == nil {
		t.Fatal("a failing migration did not fail migrate")
	}
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != 2 {
		t.Fatalf("schema version after failed migration = %d, %v; want 2", version, err)
	}
	if _, err := db.ExecContext(ctx, `SELECT * FROM c`); err == nil {
		t.Fatal("table c exists: the failed batch was partly applied")
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	s := openSQLite(t, path)
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), path, nil)
	if err == nil || !strings.Contains(err.Error(), "newer duet") {
		t.Fatalf("Open(newer schema) = %v, want an error asking for a newer duet", err)
	}
}

func TestOpenSettings(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "catalog.db"))
	for name, db := range map[string]*sql.DB{"write": s.write, "read": s.read} {
		for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "synchronous": "2", "busy_timeout": "10000"} {
			var got string
			if err := db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s pool: PRAGMA %s = %s, want %s", name, pragma, got, want)
			}
		}
	}
	if _, err := s.read.ExecContext(t.Context(), `INSERT INTO jobs (id, kind, view_name, state, error_message, created_at, version, attempt) VALUES ('x','k','','s','',0,0,0)`); err == nil {
		t.Error("the read pool accepted a write")
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(dir, "a?b.db"), filepath.Join(dir, "missing", "dir", "c.db")} {
		if s, err := Open(t.Context(), p, nil); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if s, err := Open(ctx, filepath.Join(dir, "d.db"), nil); err == nil || !errors.Is(err, context.Canceled) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("Open created a missing parent directory")
	}
}

// TestTwoStoresOneFile is two processes sharing a catalog file: their writers
// contend on SQLite's file lock (busy_timeout, BEGIN IMMEDIATE) rather than
// in one connection pool, and must still number versions without gaps or repeats.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	a := openSQLite(t, path)
	b := openSQLite(t, path)
	mustCreateDataset(t, a, "clicks")
	mustCreateView(t, b, "pages", "clicks")

	const perStore, goroutines = 10, 3
	var (
		mu   sync.Mutex
		seen = map[int64]bool{}
		wg   sync.WaitGroup
		errs []error
	)
	for _, s := range []*Store{a, b} {
		for range goroutines {
			wg.Go(func() {
				for range perStore {
					v, err := s.PublishVersion(t.Context(), ViewVersion{View: "pages", Covered: 1})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else if seen[v.Version] {
						errs = append(errs, fmt.Errorf("version %d assigned twice", v.Version))
					}
					seen[v.Version] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	total := int64(2 * goroutines * perStore)
	for v := int64(1); v <= total; v++ {
		if !seen[v] {
			t.Fatalf("version %d missing; got %v", v, seen)
		}
	}
	for _, s := range []*Store{a, b} {
		if cur, err := s.CurrentVersion(t.Context(), "pages"); err != nil || cur.Version != total {
			t.Fatalf("CurrentVersion = %+v, %v; want %d", cur, err, total)
		}
	}
}

// TestMigrateFromVersion1 opens a catalog written by a duet that knew only
// schema version 1: its views and jobs gain the new columns' defaults.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	db := rawDB(t, path)
	if err := migrate(ctx, db, schemaMigrations[:1], discard); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO datasets (name, spec_json, created_at) VALUES ('clicks', '{"name":"clicks","time_column":"ts","columns":[{"name":"ts","type":"timestamp"}]}', 0)`,
		`INSERT INTO views (name, dataset, sql_text, schedule, created_at) VALUES ('pages', 'clicks', 'SELECT count(*) FROM clicks', '@hourly', 0)`,
		`INSERT INTO jobs (id, kind, view_name, state, error_message, created_at, version, attempt) VALUES ('old', 'view-build', 'pages', 'failed', 'boom', 0, 0, 1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openSQLite(t, path)
	v, err := s.GetView(ctx, "pages")
	if err != nil {
		t.Fatal(err)
	}
	if v.Catchup != "skip" || v.MaxRetries != 3 || v.Timeout != time.Hour {
		t.Errorf("old view reads as catchup %q, max retries %d, timeout %s; want skip, 3, 1h", v.Catchup, v.MaxRetries, v.Timeout)
	}
	j, err := s.GetJob(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if j.MaxAttempts != 1 || j.Params != nil || !j.NextAttemptAt.IsZero() || j.LogPrefix != "" || j.Timeout != 0 || j.Error != "boom" {
		t.Errorf("old job reads as %+v", j)
	}
	if last, err := s.LastFire(ctx, "pages"); err != nil || !last.IsZero() {
		t.Errorf("LastFire after migration = %v, %v", last, err)
	}
}
