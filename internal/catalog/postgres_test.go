package catalog

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/duet-analytics/duet/internal/testsvc"
)

func openPostgres(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := OpenPostgres(t.Context(), dsn, nil)
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

func TestPostgresContract(t *testing.T) {
	testsvc.PostgresDSN(t) // skips or fails once, not in every subtest, if there is no server
	RunContract(t, func(t *testing.T) *Store {
		return openPostgres(t, testsvc.PostgresDSN(t))
	})
}

// TestPostgresReplicasPublish is several duet replicas sharing one database:
// their publishes of one view must each get their own version number, and
// each must retire exactly the version it replaced, as on SQLite.
func TestPostgresReplicasPublish(t *testing.T) {
	dsn := testsvc.PostgresDSN(t)
	replicas := []*Store{openPostgres(t, dsn), openPostgres(t, dsn), openPostgres(t, dsn)}
	mustCreateDataset(t, replicas[0], "clicks")
	mustCreateView(t, replicas[1], "pages", "clicks")

	const goroutines, each = 3, 8
	var (
		mu       sync.Mutex
		versions []int64
		errs     []error
		wg       sync.WaitGroup
	)
	for r, s := range replicas {
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					v, err := s.PublishVersion(t.Context(), ViewVersion{View: "pages", Covered: int64(i), JobID: fmt.Sprintf("r%d-g%d-%d", r, g, i)})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						versions = append(versions, v.Version)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	total := int64(len(replicas) * goroutines * each)
	slices.Sort(versions)
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("concurrent publishes got versions %v, want 1..%d each once", versions, total)
		}
	}
	if int64(len(versions)) != total {
		t.Fatalf("got %d versions, want %d", len(versions), total)
	}
	for _, s := range replicas {
		if cur, err := s.CurrentVersion(t.Context(), "pages"); err != nil || cur.Version != total {
			t.Fatalf("CurrentVersion = %+v, %v; want version %d", cur, err, total)
		}
	}
	list, err := replicas[2].ListVersions(t.Context(), "pages")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range list {
		if current := v.Version == total; current != v.RetiredAt.IsZero() {
			t.Errorf("version %d (current: %v) has RetiredAt %v: publishes interleaved", v.Version, current, v.RetiredAt)
		}
	}
}

// TestPostgresConcurrentOpen is replicas starting at once on an empty
// database: all open, and each migration is applied once.
func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := testsvc.PostgresDSN(t)
	const replicas = 4
	stores := make([]*Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { stores[i], errs[i] = OpenPostgres(t.Context(), dsn, nil) })
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	applied := migrationRows(t, stores[0])
	if len(applied) != len(schemaMigrations) {
		t.Fatalf("schema_migrations has %d rows, want %d: %v", len(applied), len(schemaMigrations), applied)
	}
	for i, r := range applied {
		if r[0] != int64(i+1) {
			t.Fatalf("schema_migrations = %v, want versions 1..%d", applied, len(schemaMigrations))
		}
	}
	// Reopening is a no-op, and every replica works on the one schema.
	s := openPostgres(t, dsn)
	if got := migrationRows(t, s); !equalRows(got, applied) {
		t.Fatalf("schema_migrations changed on reopen: %v, was %v", got, applied)
	}
	mustCreateDataset(t, stores[1], "clicks")
	if _, err := stores[3].GetDataset(t.Context(), "clicks"); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresRejectsNewerSchema(t *testing.T) {
	dsn := testsvc.PostgresDSN(t)
	s := openPostgres(t, dsn)
	if _, err := s.execWrite(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPostgres(t.Context(), dsn, nil)
	if err == nil || !strings.Contains(err.Error(), "newer duet") {
		t.Fatalf("OpenPostgres(newer schema) = %v, want an error asking for a newer duet", err)
	}
}

// TestPostgresReadPoolIsReadOnly: as on SQLite, the read pool cannot write.
func TestPostgresReadPoolIsReadOnly(t *testing.T) {
	s := openPostgres(t, testsvc.PostgresDSN(t))
	if _, err := s.read.ExecContext(t.Context(), `INSERT INTO jobs (id, kind, view_name, state, error_message, created_at, version, attempt) VALUES ('x','k','','s','',0,0,0)`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

// TestPostgresOpenErrors: errors name the database but never the password.
func TestPostgresOpenErrors(t *testing.T) {
	const password = "s3cr3t-pw"
	port := testsvc.FreePort(t) // nobody listens there
	_, err := OpenPostgres(t.Context(), fmt.Sprintf("postgres://duet:%s@127.0.0.1:%d/catalogdb?sslmode=disable&connect_timeout=5", password, port), nil)
	if err == nil {
		t.Fatal("OpenPostgres(unreachable server) succeeded")
	}
	if want := fmt.Sprintf("127.0.0.1:%d/catalogdb", port); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the database %s", err, want)
	}
	for _, dsn := range []string{
		"postgres://duet:" + password + "@127.0.0.1:notaport/catalogdb",
		"host=127.0.0.1 password=" + password + " port=notaport",
	} {
		_, err := OpenPostgres(t.Context(), dsn, nil)
		if err == nil {
			t.Fatalf("OpenPostgres(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error %q shows the password", err)
		}
	}
}

// TestTextOrderIsBytewise: listings sort text by its bytes on every backend,
// even on a PostgreSQL database whose collation sorts otherwise.
func TestTextOrderIsBytewise(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		testTextOrder(t, openSQLite(t, filepath.Join(t.TempDir(), "catalog.db")))
	})
	t.Run("PostgresICU", func(t *testing.T) {
		dsn := testsvc.PostgresDSNWithOptions(t, "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
		testTextOrder(t, openPostgres(t, dsn))
	})
}

func testTextOrder(t *testing.T, s *Store) {
	ctx := t.Context()
	names := []string{"alpha", "Zeta", "a_b", "ab", "B", "b"}
	sorted := slices.Clone(names)
	slices.Sort(sorted) // Go compares strings by bytes
	for _, n := range names {
		mustCreateDataset(t, s, n)
		mustCreateView(t, s, n, n)
	}
	for _, n := range names {
		if err := s.CreateJob(ctx, Job{ID: n, Kind: "build", State: "queued", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordArchive(ctx, []ArchiveFile{{Dataset: "b", Path: "raw/" + n, Partition: "p", First: 0, End: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteVersions(ctx, "b", nil, names, t0); err != nil { // queues names as garbage
		t.Fatal(err)
	}

	datasets, err := s.ListDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	views, err := s.ListViews(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.ListJobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := s.ArchiveFiles(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	garbage, err := s.Garbage(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	var gotDatasets, gotViews, gotJobs, gotFiles []string
	for _, d := range datasets {
		gotDatasets = append(gotDatasets, d.Spec.Name)
	}
	for _, v := range views {
		gotViews = append(gotViews, v.Name)
	}
	for _, j := range jobs {
		gotJobs = append(gotJobs, j.ID) // same CreatedAt: ordered by ID, descending
	}
	for _, f := range files {
		gotFiles = append(gotFiles, strings.TrimPrefix(f.Path, "raw/")) // same First: ordered by path
	}
	descending := slices.Clone(sorted)
	slices.Reverse(descending)
	for what, got := range map[string][]string{"datasets": gotDatasets, "views": gotViews, "archive files": gotFiles, "garbage": garbage} {
		if !slices.Equal(got, sorted) {
			t.Errorf("%s listed as %v, want %v", what, got, sorted)
		}
	}
	if !slices.Equal(gotJobs, descending) {
		t.Errorf("jobs listed as %v, want %v", gotJobs, descending)
	}
}
