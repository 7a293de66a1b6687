package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/duet-analytics/duet/dataset"
)

// RunContract checks the behaviour every catalog implementation must have.
// open returns a fresh, empty store; it is called once per subtest and owns
// closing the store (t.Cleanup).
func RunContract(t *testing.T, open func(t *testing.T) *Store) {
	t.Run("Datasets", func(t *testing.T) { testDatasets(t, open(t)) })
	t.Run("Views", func(t *testing.T) { testViews(t, open(t)) })
	t.Run("Archive", func(t *testing.T) { testArchive(t, open(t)) })
	t.Run("ArchiveAtomic", func(t *testing.T) { testArchiveAtomic(t, open(t)) })
	t.Run("Versions", func(t *testing.T) { testVersions(t, open(t)) })
	t.Run("ConcurrentPublish", func(t *testing.T) { testConcurrentPublish(t, open(t)) })
	t.Run("Jobs", func(t *testing.T) { testJobs(t, open(t)) })
	t.Run("ListJobs", func(t *testing.T) { testListJobs(t, open(t)) })
	t.Run("JobRetryFields", func(t *testing.T) { testJobRetryFields(t, open(t)) })
	t.Run("ViewPolicy", func(t *testing.T) { testViewPolicy(t, open(t)) })
	t.Run("LastFire", func(t *testing.T) { testLastFire(t, open(t)) })
	t.Run("LogClaims", func(t *testing.T) { testLogClaims(t, open(t)) })
	t.Run("GarbageQueue", func(t *testing.T) { testGarbageQueue(t, open(t)) })
	t.Run("SourcePositions", func(t *testing.T) { testSourcePositions(t, open(t)) })
	t.Run("Dashboards", func(t *testing.T) { testDashboards(t, open(t)) })
	t.Run("JobSchedules", func(t *testing.T) { testJobSchedules(t, open(t)) })
}

// t0 is a fixed time at the stored (millisecond, UTC) precision, so values
// round-trip exactly and compare with reflect.DeepEqual.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func spec(name string) dataset.Spec {
	return dataset.Spec{Name: name, TimeColumn: "ts", Columns: []dataset.Column{
		{Name: "ts", Type: dataset.Timestamp}, {Name: "user_id", Type: dataset.Bigint}, {Name: "page", Type: dataset.Varchar},
	}}
}

func mustCreateDataset(t *testing.T, s *Store, name string) {
	t.Helper()
	if err := s.CreateDataset(t.Context(), Dataset{Spec: spec(name), CreatedAt: t0}); err != nil {
		t.Fatalf("CreateDataset(%s): %v", name, err)
	}
}

func mustCreateView(t *testing.T, s *Store, name, ds string) {
	t.Helper()
	if err := s.CreateView(t.Context(), View{Name: name, Dataset: ds, SQL: "SELECT page, count(*) AS n FROM " + ds + " GROUP BY page", CreatedAt: t0}); err != nil {
		t.Fatalf("CreateView(%s): %v", name, err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func testDatasets(t *testing.T, s *Store) {
	ctx := t.Context()
	if got, err := s.ListDatasets(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListDatasets on empty store = %v, %v; want empty", got, err)
	}
	_, err := s.GetDataset(ctx, "clicks")
	wantErr(t, "GetDataset(missing)", err, ErrNotFound)

	// Type aliases are normalised when stored; the caller's spec is left alone.
	in := spec("clicks")
	in.Columns[1].Type = "int64"
	if err := s.CreateDataset(ctx, Dataset{Spec: in, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if in.Columns[1].Type != "int64" {
		t.Errorf("CreateDataset modified the caller's spec: column type %q", in.Columns[1].Type)
	}
	got, err := s.GetDataset(ctx, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Dataset{Spec: spec("clicks"), CreatedAt: t0}); !reflect.DeepEqual(got, want) {
		t.Fatalf("GetDataset = %+v, want %+v", got, want)
	}

	err = s.CreateDataset(ctx, Dataset{Spec: spec("clicks")})
	wantErr(t, "CreateDataset(duplicate)", err, ErrExists)

	bad := spec("bad")
	bad.TimeColumn = "nope"
	if err := s.CreateDataset(ctx, Dataset{Spec: bad}); err == nil || errors.Is(err, ErrExists) {
		t.Fatalf("CreateDataset(invalid spec) = %v, want a validation error", err)
	}
	if _, err := s.GetDataset(ctx, "bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an invalid dataset was stored: %v", err)
	}

	// A zero CreatedAt becomes "now".
	before := time.Now().Add(-time.Second)
	mustCreateDatasetAt(t, s, "alpha", time.Time{})
	a, err := s.GetDataset(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if a.CreatedAt.Before(before) || a.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt defaulted to %v, want about now", a.CreatedAt)
	}
	mustCreateDataset(t, s, "zeta")

	list, err := s.ListDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range list {
		names = append(names, d.Spec.Name)
	}
	if want := []string{"alpha", "clicks", "zeta"}; !slices.Equal(names, want) {
		t.Fatalf("ListDatasets names = %v, want %v", names, want)
	}
	if !reflect.DeepEqual(list[1], got) {
		t.Errorf("ListDatasets[1] = %+v, want %+v", list[1], got)
	}
}

func mustCreateDatasetAt(t *testing.T, s *Store, name string, created time.Time) {
	t.Helper()
	if err := s.CreateDataset(t.Context(), Dataset{Spec: spec(name), CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
}

func testViews(t *testing.T, s *Store) {
	ctx := t.Context()
	v := View{Name: "pages", Dataset: "clicks", SQL: "SELECT page, count(*) FROM clicks GROUP BY page", Schedule: "*/5 * * * *", CreatedAt: t0}
	err := s.CreateView(ctx, v)
	wantErr(t, "CreateView(missing dataset)", err, ErrNotFound)

	mustCreateDataset(t, s, "clicks")
	if got, err := s.ListViews(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListViews on empty store = %v, %v; want empty", got, err)
	}
	if err := s.CreateView(ctx, v); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetView(ctx, "pages")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("GetView = %+v, want %+v", got, v)
	}
	err = s.CreateView(ctx, View{Name: "pages", Dataset: "clicks", SQL: "SELECT 1"})
	wantErr(t, "CreateView(duplicate)", err, ErrExists)
	_, err = s.GetView(ctx, "nope")
	wantErr(t, "GetView(missing)", err, ErrNotFound)

	for _, bad := range []View{
		{Name: "has space", Dataset: "clicks", SQL: "SELECT 1"},
		{Name: "", Dataset: "clicks", SQL: "SELECT 1"},
		{Name: "nosql", Dataset: "clicks"},
	} {
		if err := s.CreateView(ctx, bad); err == nil || errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) {
			t.Errorf("CreateView(%+v) = %v, want a validation error", bad, err)
		}
	}

	mustCreateView(t, s, "a_first", "clicks")
	mustCreateView(t, s, "z_last", "clicks")
	list, err := s.ListViews(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range list {
		names = append(names, v.Name)
	}
	if want := []string{"a_first", "pages", "z_last"}; !slices.Equal(names, want) {
		t.Fatalf("ListViews names = %v, want %v", names, want)
	}
	if !reflect.DeepEqual(list[1], v) {
		t.Errorf("ListViews[1] = %+v, want %+v", list[1], v)
	}
}

func testArchive(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err := s.ArchiveFiles(ctx, "clicks")
	wantErr(t, "ArchiveFiles(missing dataset)", err, ErrNotFound)
	_, err = s.ArchivedEnd(ctx, "clicks")
	wantErr(t, "ArchivedEnd(missing dataset)", err, ErrNotFound)
	err = s.RecordArchive(ctx, []ArchiveFile{{Dataset: "clicks", Path: "raw/clicks/x.parquet", Partition: "dt=2025-03-14", First: 0, End: 1}})
	wantErr(t, "RecordArchive(missing dataset)", err, ErrNotFound)

	mustCreateDataset(t, s, "clicks")
	mustCreateDataset(t, s, "other")
	if files, err := s.ArchiveFiles(ctx, "clicks"); err != nil || len(files) != 0 {
		t.Fatalf("ArchiveFiles(no files) = %v, %v; want empty", files, err)
	}
	if end, err := s.ArchivedEnd(ctx, "clicks"); err != nil || end != 0 {
		t.Fatalf("ArchivedEnd(no files) = %d, %v; want 0", end, err)
	}
	if err := s.RecordArchive(ctx, nil); err != nil {
		t.Fatalf("RecordArchive(nil) = %v", err)
	}

	file := func(path, part string, first, end int64) ArchiveFile {
		return ArchiveFile{Dataset: "clicks", Path: path, Partition: part, First: first, End: end, Rows: end - first, Bytes: 100 * (end - first), CreatedAt: at(int(first))}
	}
	// Recorded out of order, in two batches; [100,250) spans two days.
	b1 := file("raw/clicks/dt=2025-03-15/100-250.parquet", "dt=2025-03-15", 100, 250)
	b2 := file("raw/clicks/dt=2025-03-14/100-250.parquet", "dt=2025-03-14", 100, 250)
	a := file("raw/clicks/dt=2025-03-14/0-100.parquet", "dt=2025-03-14", 0, 100)
	a.ArrivedAt = at(-30) // the others' arrival is unknown
	if err := s.RecordArchive(ctx, []ArchiveFile{b1, b2}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordArchive(ctx, []ArchiveFile{a}); err != nil {
		t.Fatal(err)
	}
	// Another dataset's files must not leak into clicks' list or end.
	if err := s.RecordArchive(ctx, []ArchiveFile{{Dataset: "other", Path: "raw/other/0-9999.parquet", Partition: "dt=2025-03-14", First: 0, End: 9999}}); err != nil {
		t.Fatal(err)
	}
	want := []ArchiveFile{a, b2, b1} // by First, then Path
	files, err := s.ArchiveFiles(ctx, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, want) {
		t.Fatalf("ArchiveFiles =\n%+v\nwant\n%+v", files, want)
	}
	if end, err := s.ArchivedEnd(ctx, "clicks"); err != nil || end != 250 {
		t.Fatalf("ArchivedEnd = %d, %v; want 250", end, err)
	}

	// Re-recording a path replaces its entry instead of adding one.
	a.Rows, a.Bytes, a.CreatedAt = 99, 4242, at(500)
	c := file("raw/clicks/dt=2025-03-15/250-400.parquet", "dt=2025-03-15", 250, 400)
	// Late events: a later range in an earlier day, so path order is not offset order.
	late := file("raw/clicks/dt=2025-03-13/250-400.parquet", "dt=2025-03-13", 250, 400)
	if err := s.RecordArchive(ctx, []ArchiveFile{a, c, late}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordArchive(ctx, []ArchiveFile{a, c, late}); err != nil {
		t.Fatal(err)
	}
	want = []ArchiveFile{a, b2, b1, late, c}
	if files, err = s.ArchiveFiles(ctx, "clicks"); err != nil || !reflect.DeepEqual(files, want) {
		t.Fatalf("ArchiveFiles after re-recording = %+v, %v\nwant %+v", files, err, want)
	}
	if end, err := s.ArchivedEnd(ctx, "clicks"); err != nil || end != 400 {
		t.Fatalf("ArchivedEnd = %d, %v; want 400", end, err)
	}

	for _, bad := range []ArchiveFile{
		{Dataset: "clicks", Path: "", Partition: "p", First: 0, End: 1},
		{Dataset: "clicks", Path: "x", Partition: "", First: 0, End: 1},
		{Dataset: "clicks", Path: "x", Partition: "p", First: 5, End: 5},
		{Dataset: "clicks", Path: "x", Partition: "p", First: -1, End: 5},
		{Dataset: "clicks", Path: "x", Partition: "p", First: 0, End: 5, Rows: -1},
	} {
		if err := s.RecordArchive(ctx, []ArchiveFile{bad}); err == nil {
			t.Errorf("RecordArchive(%+v) succeeded, want a validation error", bad)
		}
	}
}

// testArchiveAtomic: a batch that fails part-way records nothing.
func testArchiveAtomic(t *testing.T, s *Store) {
	ctx := t.Context()
	mustCreateDataset(t, s, "clicks")
	good := ArchiveFile{Dataset: "clicks", Path: "raw/clicks/0-10.parquet", Partition: "dt=2025-03-14", First: 0, End: 10, Rows: 10, Bytes: 1}
	orphan := ArchiveFile{Dataset: "ghost", Path: "raw/ghost/0-10.parquet", Partition: "dt=2025-03-14", First: 0, End: 10, Rows: 10, Bytes: 1}
	err := s.RecordArchive(ctx, []ArchiveFile{good, orphan})
	wantErr(t, "RecordArchive(batch with a missing dataset)", err, ErrNotFound)
	if files, err := s.ArchiveFiles(ctx, "clicks"); err != nil || len(files) != 0 {
		t.Fatalf("a failed batch left files behind: %+v, %v", files, err)
	}
}

func testVersions(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err := s.PublishVersion(ctx, ViewVersion{View: "pages"})
	wantErr(t, "PublishVersion(missing view)", err, ErrNotFound)
	_, err = s.CurrentVersion(ctx, "pages")
	wantErr(t, "CurrentVersion(missing view)", err, ErrNotFound)
	_, err = s.ListVersions(ctx, "pages")
	wantErr(t, "ListVersions(missing view)", err, ErrNotFound)

	mustCreateDataset(t, s, "clicks")
	mustCreateView(t, s, "pages", "clicks")
	mustCreateView(t, s, "users", "clicks")
	_, err = s.CurrentVersion(ctx, "pages")
	wantErr(t, "CurrentVersion(before first publish)", err, ErrNotFound)
	if list, err := s.ListVersions(ctx, "pages"); err != nil || len(list) != 0 {
		t.Fatalf("ListVersions(before first publish) = %v, %v; want empty", list, err)
	}

	var published []ViewVersion
	for i := range 3 {
		in := ViewVersion{
			View:    "pages",
			Version: 99, // ignored: the store numbers versions
			Covered: int64(100 * (i + 1)),
			Files: []VersionFile{
				{Path: fmt.Sprintf("views/pages/v%d/part-0.parquet", i+1), Rows: 10, Bytes: 1000},
				{Path: fmt.Sprintf("views/pages/v%d/part-1.parquet", i+1), Rows: 5, Bytes: 500},
			},
			Rows: 15, Bytes: 1500, JobID: fmt.Sprintf("job-%d", i), CreatedAt: at(i), BuildMillis: int64(1234 + i),
		}
		got, err := s.PublishVersion(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want := in
		want.Version = int64(i + 1)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("PublishVersion returned %+v, want %+v", got, want)
		}
		cur, err := s.CurrentVersion(ctx, "pages")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cur, want) {
			t.Fatalf("CurrentVersion after publishing %d = %+v, want %+v", want.Version, cur, want)
		}
		published = append(published, want)
	}
	list, err := s.ListVersions(ctx, "pages")
	if err != nil {
		t.Fatal(err)
	}
	// Publishing retires the version it replaces, at the new one's time.
	published[0].RetiredAt, published[1].RetiredAt = published[1].CreatedAt, published[2].CreatedAt
	if want := []ViewVersion{published[2], published[1], published[0]}; !reflect.DeepEqual(list, want) {
		t.Fatalf("ListVersions =\n%+v\nwant newest first\n%+v", list, want)
	}

	// Numbering is per view; a version without files and with a zero time is fine.
	before := time.Now().Add(-time.Second)
	u, err := s.PublishVersion(ctx, ViewVersion{View: "users", Covered: 0})
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 1 || len(u.Files) != 0 || u.CreatedAt.Before(before) {
		t.Fatalf("first version of users = %+v, want version 1, no files, created now", u)
	}
	cur, err := s.CurrentVersion(ctx, "users")
	if err != nil || !reflect.DeepEqual(cur, u) {
		t.Fatalf("CurrentVersion(users) = %+v, %v; want %+v", cur, err, u)
	}
	if cur, err := s.CurrentVersion(ctx, "pages"); err != nil || cur.Version != 3 {
		t.Fatalf("publishing users changed pages' current version: %+v, %v", cur, err)
	}

	for _, bad := range []ViewVersion{
		{View: "pages", Covered: -1},
		{View: "pages", Files: []VersionFile{{Path: ""}}},
		{View: "pages", Rows: -1},
	} {
		if _, err := s.PublishVersion(ctx, bad); err == nil {
			t.Errorf("PublishVersion(%+v) succeeded, want a validation error", bad)
		}
	}
	if cur, err := s.CurrentVersion(ctx, "pages"); err != nil || cur.Version != 3 {
		t.Fatalf("rejected publishes changed the current version: %+v, %v", cur, err)
	}
}

func testConcurrentPublish(t *testing.T, s *Store) {
	ctx := t.Context()
	mustCreateDataset(t, s, "clicks")
	mustCreateView(t, s, "pages", "clicks")

	const workers, each = 8, 5
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions []int64
		errs     []error
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				v, err := s.PublishVersion(ctx, ViewVersion{View: "pages", Covered: int64(w*100 + i), JobID: fmt.Sprintf("w%d-%d", w, i)})
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
	// Readers running alongside must always see a whole version.
	stop := make(chan struct{})
	var readerErr error
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			cur, err := s.CurrentVersion(ctx, "pages")
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				readerErr = err
				return
			}
			if cur.JobID == "" || cur.Version < 1 {
				readerErr = fmt.Errorf("reader saw a partial version: %+v", cur)
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	rwg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if readerErr != nil {
		t.Fatal(readerErr)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("concurrent publishes got versions %v, want 1..%d each once", versions, workers*each)
		}
	}
	if len(versions) != workers*each {
		t.Fatalf("got %d versions, want %d", len(versions), workers*each)
	}
	cur, err := s.CurrentVersion(ctx, "pages")
	if err != nil || cur.Version != workers*each {
		t.Fatalf("CurrentVersion = %+v, %v; want version %d", cur, err, workers*each)
	}
	list, err := s.ListVersions(ctx, "pages")
	if err != nil || len(list) != workers*each || list[0].Version != workers*each {
		t.Fatalf("ListVersions = %d versions (first %+v), %v", len(list), list[0], err)
	}
}

func testJobs(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err := s.GetJob(ctx, "j1")
	wantErr(t, "GetJob(missing)", err, ErrNotFound)
	err = s.UpdateJob(ctx, Job{ID: "j1", Kind: "build", State: "running"})
	wantErr(t, "UpdateJob(missing)", err, ErrNotFound)

	j := Job{ID: "j1", Kind: "build", View: "pages", State: "queued", CreatedAt: t0, Attempt: 1}
	if err := s.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, j) {
		t.Fatalf("GetJob = %+v, want %+v (unset times must stay zero)", got, j)
	}
	err = s.CreateJob(ctx, Job{ID: "j1", Kind: "sql", State: "queued"})
	wantErr(t, "CreateJob(duplicate)", err, ErrExists)

	// UpdateJob replaces every field but CreatedAt.
	upd := j
	upd.State, upd.Error, upd.StartedAt, upd.FinishedAt, upd.Version, upd.Attempt = "failed", "boom: out of memory", at(1), at(2), 7, 2
	upd.CreatedAt = at(60)
	if err := s.UpdateJob(ctx, upd); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	want := upd
	want.CreatedAt = t0
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetJob after update = %+v, want %+v", got, want)
	}
	// Clearing a time makes it unset again.
	upd.FinishedAt = time.Time{}
	if err := s.UpdateJob(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetJob(ctx, "j1"); err != nil || !got.FinishedAt.IsZero() {
		t.Fatalf("FinishedAt after clearing = %v, %v; want zero", got.FinishedAt, err)
	}

	for _, bad := range []Job{{Kind: "build", State: "queued"}, {ID: "x", State: "queued"}, {ID: "x", Kind: "build"}} {
		if err := s.CreateJob(ctx, bad); err == nil {
			t.Errorf("CreateJob(%+v) succeeded, want a validation error", bad)
		}
	}
}

func testListJobs(t *testing.T, s *Store) {
	ctx := t.Context()
	if got, err := s.ListJobs(ctx, JobFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("ListJobs on empty store = %v, %v; want empty", got, err)
	}
	jobs := []Job{
		{ID: "a", Kind: "build", View: "pages", State: "succeeded", CreatedAt: at(1)},
		{ID: "b", Kind: "build", View: "users", State: "running", CreatedAt: at(2)},
		{ID: "c", Kind: "sql", View: "", State: "running", CreatedAt: at(3), User: "alice"},
		{ID: "d", Kind: "build", View: "pages", State: "running", CreatedAt: at(4)},
		{ID: "e", Kind: "build", View: "pages", State: "failed", CreatedAt: at(4)}, // same time as d: ID breaks the tie
		{ID: "f", Kind: "compaction", View: "", State: "queued", CreatedAt: at(0), User: "alice"},
	}
	// Insert in a shuffled order so the result order comes from the query.
	for _, i := range []int{2, 5, 0, 4, 1, 3} {
		if err := s.CreateJob(ctx, jobs[i]); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(f JobFilter) []string {
		t.Helper()
		list, err := s.ListJobs(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range list {
			out = append(out, j.ID)
		}
		return out
	}
	for _, tc := range []struct {
		f    JobFilter
		want []string
	}{
		{JobFilter{}, []string{"e", "d", "c", "b", "a", "f"}},
		{JobFilter{Kind: "build"}, []string{"e", "d", "b", "a"}},
		{JobFilter{Kind: "compaction", State: "queued"}, []string{"f"}},
		{JobFilter{Kind: "build", View: "pages", State: "failed"}, []string{"e"}},
		{JobFilter{Kind: "sql", View: "pages"}, nil},
		{JobFilter{Limit: 2}, []string{"e", "d"}},
		{JobFilter{State: "running"}, []string{"d", "c", "b"}},
		{JobFilter{View: "pages"}, []string{"e", "d", "a"}},
		{JobFilter{State: "running", View: "pages"}, []string{"d"}},
		{JobFilter{State: "running", View: "pages", Limit: 10}, []string{"d"}},
		{JobFilter{State: "running", Limit: 1}, []string{"d"}},
		{JobFilter{State: "nope"}, nil},
		{JobFilter{User: "alice"}, []string{"c", "f"}},
		{JobFilter{Since: at(3)}, []string{"e", "d", "c"}},
		{JobFilter{User: "alice", Since: at(1)}, []string{"c"}},
		{JobFilter{Limit: 2, Offset: 2}, []string{"c", "b"}},
		{JobFilter{Offset: 4}, []string{"a", "f"}},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("ListJobs(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	list, err := s.ListJobs(ctx, JobFilter{View: "users"})
	if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], jobs[1]) {
		t.Fatalf("ListJobs(users) = %+v, %v; want [%+v]", list, err, jobs[1])
	}
}

// testJobRetryFields: parameters, attempts, the next attempt time, the log
// prefix and the timeout round-trip through create and update.
func testJobRetryFields(t *testing.T, s *Store) {
	ctx := t.Context()
	j := Job{
		ID: "bf", Kind: "backfill", View: "pages", State: "queued", CreatedAt: t0,
		Params:      map[string]string{"from": "2025-03-01", "to": "2025-03-14", "quote": `"x" \ y`},
		MaxAttempts: 4, Timeout: 90 * time.Second, NextAttemptAt: at(5),
		User: "alice", SQL: "SELECT 'it''s' AS x", Output: "jobs.report", Criteria: [][]string{{"gpu", "big"}, {"default"}},
	}
	if err := s.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetJob(ctx, "bf")
	if err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("GetJob = %+v, %v; want %+v", got, err, j)
	}
	upd := j
	upd.Params = map[string]string{"from": "2025-03-02"}
	upd.State, upd.Attempt, upd.LogPrefix, upd.NextAttemptAt, upd.StartedAt = "running", 2, "logs/jobs/bf/attempt-2/", time.Time{}, at(6)
	upd.Timeout = 1500 * time.Millisecond
	upd.Cluster = "local"
	if err := s.UpdateJob(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetJob(ctx, "bf"); err != nil || !reflect.DeepEqual(got, upd) {
		t.Fatalf("GetJob after update = %+v, %v; want %+v", got, err, upd)
	}
	// No parameters read back as nil, whether stored as nil or as an empty map.
	upd.Params = map[string]string{}
	if err := s.UpdateJob(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetJob(ctx, "bf"); err != nil || got.Params != nil {
		t.Fatalf("Params after storing an empty map = %#v, %v; want nil", got.Params, err)
	}
	list, err := s.ListJobs(ctx, JobFilter{Kind: "backfill"})
	if err != nil || len(list) != 1 || list[0].LogPrefix != upd.LogPrefix || list[0].MaxAttempts != 4 {
		t.Fatalf("ListJobs(backfill) = %+v, %v", list, err)
	}
	for _, bad := range []Job{
		{ID: "x", Kind: "k", State: "queued", MaxAttempts: -1},
		{ID: "x", Kind: "k", State: "queued", Timeout: -time.Second},
	} {
		if err := s.CreateJob(ctx, bad); err == nil {
			t.Errorf("CreateJob(%+v) succeeded, want a validation error", bad)
		}
	}
}

// testViewPolicy: a view's scheduling policy is stored as given.
func testViewPolicy(t *testing.T, s *Store) {
	ctx := t.Context()
	mustCreateDataset(t, s, "clicks")
	v := View{Name: "hourly", Dataset: "clicks", SQL: "SELECT page, count(*) AS n FROM clicks GROUP BY page", Schedule: "@hourly",
		CreatedAt: t0, Catchup: "all", MaxRetries: 7, Timeout: 90 * time.Second}
	if err := s.CreateView(ctx, v); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetView(ctx, "hourly")
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("GetView = %+v, %v; want %+v", got, err, v)
	}
	list, err := s.ListViews(ctx)
	if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], v) {
		t.Fatalf("ListViews = %+v, %v; want [%+v]", list, err, v)
	}
	for _, bad := range []View{
		{Name: "neg_retries", Dataset: "clicks", SQL: "SELECT 1", MaxRetries: -1},
		{Name: "neg_timeout", Dataset: "clicks", SQL: "SELECT 1", Timeout: -time.Minute},
	} {
		if err := s.CreateView(ctx, bad); err == nil {
			t.Errorf("CreateView(%+v) succeeded, want a validation error", bad)
		}
	}
}

func testLastFire(t *testing.T, s *Store) {
	ctx := t.Context()
	err := s.SetLastFire(ctx, "pages", t0)
	wantErr(t, "SetLastFire(missing view)", err, ErrNotFound)
	mustCreateDataset(t, s, "clicks")
	mustCreateView(t, s, "pages", "clicks")
	mustCreateView(t, s, "users", "clicks")
	if got, err := s.LastFire(ctx, "pages"); err != nil || !got.IsZero() {
		t.Fatalf("LastFire before any = %v, %v; want zero", got, err)
	}
	for _, when := range []time.Time{at(1), at(60), at(30)} { // last write wins, even going back
		if err := s.SetLastFire(ctx, "pages", when); err != nil {
			t.Fatal(err)
		}
		if got, err := s.LastFire(ctx, "pages"); err != nil || !got.Equal(when) {
			t.Fatalf("LastFire = %v, %v; want %v", got, err, when)
		}
	}
	if got, err := s.LastFire(ctx, "users"); err != nil || !got.IsZero() {
		t.Fatalf("LastFire(users) = %v, %v; want zero: another view's fire leaked", got, err)
	}
	if err := s.SetLastFire(ctx, "pages", time.Time{}); err == nil {
		t.Fatal("SetLastFire(zero time) succeeded")
	}
}

func testDashboards(t *testing.T, s *Store) {
	ctx := t.Context()
	if got, err := s.ListDashboards(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListDashboards on empty store = %v, %v; want empty", got, err)
	}
	_, err := s.GetDashboard(ctx, "ops")
	wantErr(t, "GetDashboard(missing)", err, ErrNotFound)
	wantErr(t, "DeleteDashboard(missing)", s.DeleteDashboard(ctx, "ops"), ErrNotFound)
	if _, err := s.PutDashboard(ctx, Dashboard{Name: "ops"}); err == nil {
		t.Fatal("PutDashboard without a document succeeded")
	}

	created, err := s.PutDashboard(ctx, Dashboard{Name: "ops", Doc: `{"charts":[1]}`, Owner: "alice", UpdatedBy: "alice", UpdatedAt: at(1)})
	if err != nil || !created {
		t.Fatalf("PutDashboard(new) = %v, %v; want created", created, err)
	}
	// A replacement keeps the owner and creation time, whoever saves it.
	created, err = s.PutDashboard(ctx, Dashboard{Name: "ops", Doc: `{"charts":[2]}`, Owner: "bob", UpdatedBy: "bob", UpdatedAt: at(5)})
	if err != nil || created {
		t.Fatalf("PutDashboard(existing) = %v, %v; want replaced", created, err)
	}
	want := Dashboard{Name: "ops", Doc: `{"charts":[2]}`, Owner: "alice", UpdatedBy: "bob", CreatedAt: at(1), UpdatedAt: at(5)}
	if got, err := s.GetDashboard(ctx, "ops"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GetDashboard = %+v, %v; want %+v", got, err, want)
	}
	// Listed by the bytes of their names on every backend.
	for _, name := range []string{"Zeta", "alpha", "ops2"} {
		if _, err := s.PutDashboard(ctx, Dashboard{Name: name, Doc: "{}", Owner: "carol", UpdatedBy: "carol", UpdatedAt: at(2)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListDashboards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range list {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"Zeta", "alpha", "ops", "ops2"}) {
		t.Fatalf("ListDashboards names = %v", names)
	}
	if !reflect.DeepEqual(list[2], want) {
		t.Fatalf("listed ops = %+v; want %+v", list[2], want)
	}
	if err := s.DeleteDashboard(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetDashboard(ctx, "ops")
	wantErr(t, "GetDashboard(deleted)", err, ErrNotFound)
	wantErr(t, "DeleteDashboard(deleted)", s.DeleteDashboard(ctx, "ops"), ErrNotFound)
	if list, err := s.ListDashboards(ctx); err != nil || len(list) != 3 {
		t.Fatalf("ListDashboards after delete = %d, %v; want 3", len(list), err)
	}
}

func testJobSchedules(t *testing.T, s *Store) {
	ctx := t.Context()
	if got, err := s.ListJobSchedules(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListJobSchedules on empty store = %v, %v; want empty", got, err)
	}
	_, err := s.GetJobSchedule(ctx, "nightly")
	wantErr(t, "GetJobSchedule(missing)", err, ErrNotFound)
	wantErr(t, "DeleteJobSchedule(missing)", s.DeleteJobSchedule(ctx, "nightly"), ErrNotFound)
	_, err = s.JobScheduleLastFire(ctx, "nightly")
	wantErr(t, "JobScheduleLastFire(missing)", err, ErrNotFound)
	wantErr(t, "SetJobScheduleLastFire(missing)", s.SetJobScheduleLastFire(ctx, "nightly", at(1)), ErrNotFound)
	if err := s.CreateJobSchedule(ctx, JobSchedule{Name: "nightly", Cron: "0 6 * * *"}); err == nil {
		t.Fatal("CreateJobSchedule without a job kind succeeded")
	}

	want := JobSchedule{Name: "nightly", Cron: "0 6 * * *", Catchup: "once", CreatedAt: t0, Job: Job{
		Kind: "notebook", Params: map[string]string{"day": "2025-03-14", "n": "3"}, User: "alice",
		SQL: `{"cells":[]}`, Criteria: [][]string{{"gpu", "eu"}, {"default"}}, Timeout: 90 * time.Second, MaxAttempts: 2,
	}}
	if err := s.CreateJobSchedule(ctx, want); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CreateJobSchedule(taken)", s.CreateJobSchedule(ctx, want), ErrExists)
	if got, err := s.GetJobSchedule(ctx, "nightly"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GetJobSchedule = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.JobScheduleLastFire(ctx, "nightly"); err != nil || !got.IsZero() {
		t.Fatalf("JobScheduleLastFire before any = %v, %v; want zero", got, err)
	}
	for _, when := range []time.Time{at(1), at(60), at(30)} { // last write wins, even going back
		if err := s.SetJobScheduleLastFire(ctx, "nightly", when); err != nil {
			t.Fatal(err)
		}
		if got, err := s.JobScheduleLastFire(ctx, "nightly"); err != nil || !got.Equal(when) {
			t.Fatalf("JobScheduleLastFire = %v, %v; want %v", got, err, when)
		}
	}
	if err := s.SetJobScheduleLastFire(ctx, "nightly", time.Time{}); err == nil {
		t.Fatal("SetJobScheduleLastFire(zero time) succeeded")
	}
	want.LastFire = at(30)

	// A sql schedule with no params, criteria or limits; listed by the bytes
	// of the names on every backend.
	for _, name := range []string{"Zeta", "alpha"} {
		if err := s.CreateJobSchedule(ctx, JobSchedule{Name: name, Cron: "*/2 * * * * *", Catchup: "skip", CreatedAt: at(2),
			Job: Job{Kind: "sql", SQL: "SELECT 1", Output: "jobs.daily"}}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListJobSchedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, js := range list {
		names = append(names, js.Name)
	}
	if !slices.Equal(names, []string{"Zeta", "alpha", "nightly"}) {
		t.Fatalf("ListJobSchedules names = %v", names)
	}
	if !reflect.DeepEqual(list[2], want) {
		t.Fatalf("listed nightly = %+v; want %+v", list[2], want)
	}
	plain := JobSchedule{Name: "alpha", Cron: "*/2 * * * * *", Catchup: "skip", CreatedAt: at(2), Job: Job{Kind: "sql", SQL: "SELECT 1", Output: "jobs.daily"}}
	if !reflect.DeepEqual(list[1], plain) {
		t.Fatalf("listed alpha = %+v; want %+v", list[1], plain)
	}

	// Jobs carry the schedule that submitted them, and list by it.
	for i, sched := range []string{"nightly", "alpha", "nightly", ""} {
		j := Job{ID: fmt.Sprintf("j%d", i), Kind: "sql", State: "queued", CreatedAt: at(i), Schedule: sched}
		if err := s.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.GetJob(ctx, "j0"); err != nil || got.Schedule != "nightly" {
		t.Fatalf("GetJob(j0) = %+v, %v; want schedule nightly", got, err)
	}
	jobs, err := s.ListJobs(ctx, JobFilter{Schedule: "nightly"})
	if err != nil || len(jobs) != 2 || jobs[0].ID != "j2" || jobs[1].ID != "j0" {
		t.Fatalf("ListJobs(schedule nightly) = %+v, %v; want j2, j0", jobs, err)
	}

	// Deleting a schedule keeps its jobs.
	if err := s.DeleteJobSchedule(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetJobSchedule(ctx, "nightly")
	wantErr(t, "GetJobSchedule(deleted)", err, ErrNotFound)
	wantErr(t, "SetJobScheduleLastFire(deleted)", s.SetJobScheduleLastFire(ctx, "nightly", at(90)), ErrNotFound)
	if jobs, err := s.ListJobs(ctx, JobFilter{Schedule: "nightly"}); err != nil || len(jobs) != 2 {
		t.Fatalf("jobs of a deleted schedule = %d, %v; want 2 kept", len(jobs), err)
	}
	if list, err := s.ListJobSchedules(ctx); err != nil || len(list) != 2 {
		t.Fatalf("ListJobSchedules after delete = %d, %v; want 2", len(list), err)
	}
}
