package batchlayer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/executor"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/internal/objstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

func at(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 30, 0, 0, time.UTC) }

func rows(day int, n int, k string) []lambdatest.Row {
	out := make([]lambdatest.Row, n)
	for i := range out {
		v := int64(i)
		out[i] = lambdatest.Row{TS: at(day, i%24), K: k, V: &v}
	}
	return out
}

type harness struct {
	t        *testing.T
	n        *lambdatest.Node
	accepted []lambdatest.Row
}

func (h *harness) ingest(rs []lambdatest.Row) {
	h.t.Helper()
	rec := lambdatest.Record(rs)
	defer rec.Release()
	if _, err := h.n.Layer.Ingest(context.Background(), lambdatest.Spec.Name, rec); err != nil {
		h.t.Fatal(err)
	}
	h.accepted = append(h.accepted, rs...)
}

func (h *harness) build(req batchlayer.Request) catalog.ViewVersion {
	h.t.Helper()
	req.View = "v"
	if req.JobID == "" {
		req.JobID = fmt.Sprint(time.Now().UnixNano())
	}
	v, err := h.n.Builder.Build(context.Background(), req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.n.Check(h.accepted, "after build")
	return v
}

func (h *harness) versions() []catalog.ViewVersion {
	h.t.Helper()
	vs, err := h.n.Cat.ListVersions(context.Background(), "v")
	if err != nil {
		h.t.Fatal(err)
	}
	return vs
}

func (h *harness) objects(prefix string) []string {
	h.t.Helper()
	var out []string
	if err := h.n.Bucket.Iter(context.Background(), prefix, func(name string) error {
		out = append(out, name)
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func newHarness(t *testing.T, o lambdatest.Options) *harness {
	if o.SegmentRecords == 0 {
		o.SegmentRecords = 1000
	}
	n := lambdatest.Start(t, t.TempDir(), o)
	t.Cleanup(n.Stop)
	return &harness{t: t, n: n}
}

func partitions(v catalog.ViewVersion) map[string]string {
	out := map[string]string{}
	for _, f := range v.Files {
		out[f.Partition] = f.Path
	}
	return out
}

// TestIncrementalBuildRebuildsOnlyTouchedDays: late events for an old day
// and events for a new day rebuild exactly those two partitions, and the
// result equals a full rebuild.
func TestIncrementalBuildRebuildsOnlyTouchedDays(t *testing.T) {
	h := newHarness(t, lambdatest.Options{})
	h.ingest(rows(1, 50, "a"))
	h.ingest(rows(2, 50, "b"))
	h.ingest(rows(3, 50, "c"))
	v1 := h.build(batchlayer.Request{})
	if v1.Meta.Kind != batchlayer.KindFull || len(v1.Files) != 3 {
		t.Fatalf("first build: %+v", v1)
	}
	h.ingest(rows(1, 7, "late")) // late events for day 1
	h.ingest(rows(4, 9, "d"))    // a new day
	v2 := h.build(batchlayer.Request{})
	if v2.Meta.Kind != batchlayer.KindIncremental || v2.Meta.Base != v1.Version ||
		!reflect.DeepEqual(v2.Meta.Rebuilt, []string{"2026-11-01", "2026-11-04"}) {
		t.Fatalf("incremental build meta %+v, want days 1 and 4 rebuilt on v%d", v2.Meta, v1.Version)
	}
	p1, p2 := partitions(v1), partitions(v2)
	for _, d := range []string{"2026-11-02", "2026-11-03"} {
		if p2[d] != p1[d] {
			t.Errorf("untouched day %s: file %s, want v1's %s carried over", d, p2[d], p1[d])
		}
	}
	for _, d := range []string{"2026-11-01", "2026-11-04"} {
		if !strings.Contains(p2[d], fmt.Sprintf("/v%d/dt=%s/", v2.Version, d)) {
			t.Errorf("touched day %s: file %s, want one written by v%d", d, p2[d], v2.Version)
		}
	}
	v3 := h.build(batchlayer.Request{Full: true})
	if v3.Meta.Kind != batchlayer.KindFull || len(v3.Meta.Rebuilt) != 4 {
		t.Fatalf("full build meta %+v", v3.Meta)
	}
	if diff := h.differingRows(v2, v3); diff != 0 {
		t.Fatalf("incremental v%d and full v%d differ in %d partial rows", v2.Version, v3.Version, diff)
	}
	if v2.Rows != v3.Rows {
		t.Fatalf("incremental rows %d, full rows %d", v2.Rows, v3.Rows)
	}
}

func (h *harness) differingRows(a, b catalog.ViewVersion) int {
	h.t.Helper()
	list := func(v catalog.ViewVersion) string {
		ps := make([]string, len(v.Files))
		for i, f := range v.Files {
			p, err := h.n.Bucket.LocalPath(f.Path)
			if err != nil {
				h.t.Fatal(err)
			}
			ps[i] = "'" + p + "'"
		}
		return "SELECT * FROM read_parquet([" + strings.Join(ps, ",") + "], hive_partitioning = false)"
	}
	var n int
	q := fmt.Sprintf("SELECT count(*) FROM ((%[1]s EXCEPT ALL %[2]s) UNION ALL (%[2]s EXCEPT ALL %[1]s))", list(a), list(b))
	if err := h.n.DB.QueryRow(q).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// failingBucket fails uploads of view files after the first one while
// armed, and deletes of view files while failDeletes is set.
type failingBucket struct {
	*objstore.Filesystem
	armed       atomic.Bool
	failDeletes atomic.Bool
	uploads     atomic.Int32
}

func (b *failingBucket) Delete(ctx context.Context, name string) error {
	if b.failDeletes.Load() && strings.HasPrefix(name, "views/") {
		return errors.New("injected: store unreachable")
	}
	return b.Filesystem.Delete(ctx, name)
}

func (b *failingBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	if b.armed.Load() && strings.HasPrefix(name, "views/") && b.uploads.Add(1) > 1 {
		return errors.New("injected: disk full")
	}
	return b.Filesystem.Upload(ctx, name, r)
}

func TestBuildFailingWhileWritingOutputPublishesNothing(t *testing.T) {
	var fb *failingBucket
	h := newHarness(t, lambdatest.Options{Bucket: func(fs *objstore.Filesystem) batchlayer.Bucket {
		fb = &failingBucket{Filesystem: fs}
		return fb
	}})
	h.ingest(rows(1, 20, "a"))
	v1 := h.build(batchlayer.Request{})
	h.ingest(rows(2, 20, "b"))
	h.ingest(rows(3, 20, "c"))
	before := h.objects("views/")

	fb.armed.Store(true)
	_, err := h.n.Builder.Build(context.Background(), batchlayer.Request{JobID: "fails", View: "v"})
	if err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("build with failing uploads: %v", err)
	}
	if vs := h.versions(); len(vs) != 1 || vs[0].Version != v1.Version {
		t.Fatalf("a failed build published: %+v", vs)
	}
	if after := h.objects("views/"); !reflect.DeepEqual(after, before) {
		t.Fatalf("a failed build left files behind:\nbefore %v\nafter  %v", before, after)
	}
	h.n.Check(h.accepted, "after failed build")

	fb.armed.Store(false)
	v2 := h.build(batchlayer.Request{})
	if v2.Covered != int64(len(h.accepted)) {
		t.Fatalf("retry covered %d of %d", v2.Covered, len(h.accepted))
	}
}

// TestUndeletableOutputIsQueuedAsGarbage: a failed build whose uploaded
// files cannot be deleted either (the store is down) queues them for garbage
// collection, since no version names them; a retry that publishes the same
// names takes them off the queue.
func TestUndeletableOutputIsQueuedAsGarbage(t *testing.T) {
	var fb *failingBucket
	h := newHarness(t, lambdatest.Options{Bucket: func(fs *objstore.Filesystem) batchlayer.Bucket {
		fb = &failingBucket{Filesystem: fs}
		return fb
	}})
	h.ingest(rows(1, 20, "a"))
	h.build(batchlayer.Request{})
	h.ingest(rows(2, 20, "b"))
	h.ingest(rows(3, 20, "c"))
	before := h.objects("views/")

	fb.armed.Store(true)
	fb.failDeletes.Store(true)
	if _, err := h.n.Builder.Build(context.Background(), batchlayer.Request{JobID: "fails", View: "v"}); err == nil {
		t.Fatal("build with failing uploads succeeded")
	}
	var left []string
	for _, o := range h.objects("views/") {
		if !slices.Contains(before, o) {
			left = append(left, o)
		}
	}
	if len(left) == 0 {
		t.Fatal("the failed build uploaded nothing: the test needs a file it could not delete")
	}
	garbage, err := h.n.Cat.Garbage(context.Background(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range left {
		if !slices.Contains(garbage, o) {
			t.Fatalf("undeletable output %s is not queued for deletion (queue %v)", o, garbage)
		}
	}

	fb.armed.Store(false)
	fb.failDeletes.Store(false)
	v := h.build(batchlayer.Request{})
	if garbage, err = h.n.Cat.Garbage(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, f := range v.Files {
		if slices.Contains(garbage, f.Path) {
			t.Fatalf("published file %s is still queued for deletion", f.Path)
		}
	}
	h.n.Check(h.accepted, "after the retry")
}

// switchLauncher runs executors that are killed with SIGKILL while kill is
// set, and the real task otherwise.
type switchLauncher struct {
	kill   atomic.Bool
	killer *executor.Local
}

func (l *switchLauncher) Launch(ctx context.Context, dir string) error {
	if l.kill.Load() {
		return l.killer.Launch(ctx, dir)
	}
	return lambdatest.InProcess{}.Launch(ctx, dir)
}

func TestKilledExecutorPublishesNothing(t *testing.T) {
	killer, err := executor.NewLocal(executor.Config{Command: []string{"/bin/sh", "-c", `echo "executor started" >&2; kill -9 $$`}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sl := &switchLauncher{killer: killer}
	h := newHarness(t, lambdatest.Options{Launcher: sl})
	h.ingest(rows(1, 20, "a"))
	sl.kill.Store(true)
	_, err = h.n.Builder.Build(context.Background(), batchlayer.Request{JobID: "killed", View: "v"})
	if err == nil || !strings.Contains(err.Error(), "executor") {
		t.Fatalf("build on a killed executor: %v", err)
	}
	if vs := h.versions(); len(vs) != 0 {
		t.Fatalf("a killed build published: %+v", vs)
	}
	if objs := h.objects("views/"); len(objs) != 0 {
		t.Fatalf("a killed build left files: %v", objs)
	}
	h.n.Check(h.accepted, "after killed build")
	sl.kill.Store(false)
	h.build(batchlayer.Request{})
}

func TestRollbackThenRollForwardStaysExact(t *testing.T) {
	h := newHarness(t, lambdatest.Options{})
	var built []catalog.ViewVersion
	for d := 1; d <= 3; d++ {
		h.ingest(rows(d, 30, "x"))
		h.ingest(rows(1, 3, "late"))
		built = append(built, h.build(batchlayer.Request{}))
	}
	ctx := context.Background()
	for _, target := range []int64{built[0].Version, built[2].Version, built[1].Version} {
		v, err := h.n.Builder.Rollback(ctx, "v", target)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := h.n.Cat.CurrentVersion(ctx, "v")
		if err != nil || cur.Version != target || v.Version != target {
			t.Fatalf("rollback to v%d: current %+v, %v", target, cur, err)
		}
		h.n.Check(h.accepted, fmt.Sprintf("after rollback to v%d", target))
		h.ingest(rows(2, 5, "more"))
		h.n.Check(h.accepted, fmt.Sprintf("ingest after rollback to v%d", target))
	}
	// Roll forward: an incremental build on top of the rolled-back version.
	v := h.build(batchlayer.Request{})
	if v.Meta.Kind != batchlayer.KindIncremental || v.Meta.Base != built[1].Version {
		t.Fatalf("roll forward built %+v on base %d, want incremental on v%d", v.Meta, v.Meta.Base, built[1].Version)
	}
	if _, err := h.n.Builder.Rollback(ctx, "v", 99); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("rollback to a missing version: %v", err)
	}
}

func TestBackfillRebuildsTheRange(t *testing.T) {
	h := newHarness(t, lambdatest.Options{})
	for d := 1; d <= 4; d++ {
		h.ingest(rows(d, 10, "x"))
	}
	v1 := h.build(batchlayer.Request{})
	v2 := h.build(batchlayer.Request{From: "2026-11-02", To: "2026-11-03"})
	if v2.Meta.Kind != batchlayer.KindBackfill || !reflect.DeepEqual(v2.Meta.Rebuilt, []string{"2026-11-02", "2026-11-03"}) || v2.Covered != v1.Covered {
		t.Fatalf("backfill version %+v", v2)
	}
	p1, p2 := partitions(v1), partitions(v2)
	if p2["2026-11-01"] != p1["2026-11-01"] || p2["2026-11-02"] == p1["2026-11-02"] {
		t.Fatalf("backfill partitions %v, base %v", p2, p1)
	}
	if diff := h.differingRows(v1, v2); diff != 0 {
		t.Fatalf("backfill changed %d rows though the data did not change", diff)
	}
	_, err := h.n.Builder.Build(context.Background(), batchlayer.Request{JobID: "bad", View: "v", From: "2026-11-05", To: "2026-11-01"})
	if err == nil || !strings.Contains(err.Error(), "range is empty") {
		t.Fatalf("reversed backfill range: %v", err)
	}
}

// TestGCNeverDeletesFilesConcurrentQueriesRead publishes versions while
// queries run, with a short grace period, and checks that no query fails and
// that garbage collection did delete the files of dropped versions.
func TestGCNeverDeletesFilesConcurrentQueriesRead(t *testing.T) {
	h := newHarness(t, lambdatest.Options{Batch: batchlayer.Config{KeepVersions: 1, GCGrace: 300 * time.Millisecond}})
	h.ingest(rows(1, 100, "a"))
	h.build(batchlayer.Request{})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var queries atomic.Int64
	errs := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var n int64
				// A scan of every partition file of the current version.
				if err := h.n.DB.QueryRowContext(ctx, "SELECT sum(n) FROM duet.views.v, range(200)").Scan(&n); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
				queries.Add(1)
			}
		}()
	}
	for i := range 12 {
		h.ingest(rows(1+i%3, 20, fmt.Sprint("k", i)))
		if _, err := h.n.Builder.Build(context.Background(), batchlayer.Request{JobID: fmt.Sprint("gc", i), View: "v", Full: i%2 == 0}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a query failed while versions were collected: %v", err)
	}
	if queries.Load() < 10 {
		t.Fatalf("only %d queries ran", queries.Load())
	}
	time.Sleep(400 * time.Millisecond)
	final := h.build(batchlayer.Request{Full: true})
	vs := h.versions()
	referenced := map[string]bool{}
	for _, v := range vs {
		for _, f := range v.Files {
			referenced[f.Path] = true
		}
	}
	var stray []string
	for _, o := range h.objects("views/") {
		if !referenced[o] {
			stray = append(stray, o)
		}
	}
	if len(vs) > 2 || len(stray) > 0 || !referenced[final.Files[0].Path] {
		sort.Strings(stray)
		t.Fatalf("after the grace period: %d versions kept, files no version names: %v", len(vs), stray)
	}
	h.n.Check(h.accepted, "after gc")
}

func TestCompactionMergesSmallFilesExactly(t *testing.T) {
	h := newHarness(t, lambdatest.Options{SegmentRecords: 5})
	for i := range 6 {
		h.ingest(rows(1+i%2, 5, fmt.Sprint("k", i)))
	}
	ctx := context.Background()
	if err := h.n.Layer.Flush(ctx, lambdatest.Spec.Name); err != nil {
		t.Fatal(err)
	}
	before, _ := h.n.Cat.ArchiveFiles(ctx, lambdatest.Spec.Name)
	merged, err := h.n.Builder.Compact(ctx, "c1", lambdatest.Spec.Name, &lambdatest.Spec, "")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := h.n.Cat.ArchiveFiles(ctx, lambdatest.Spec.Name)
	if merged != len(before) || len(after) != 2 {
		t.Fatalf("compaction merged %d of %d files into %d; want one file per day", merged, len(before), len(after))
	}
	for _, f := range after {
		first, end := int64(-1), int64(0)
		for _, b := range before {
			if b.Partition == f.Partition {
				if first < 0 {
					first = b.First
				}
				end = b.End
			}
		}
		if f.First != first || f.End != end {
			t.Errorf("merged file %s covers [%d,%d), want [%d,%d), the span of the files it replaced", f.Path, f.First, f.End, first, end)
		}
	}
	h.n.Check(h.accepted, "after compaction")
	h.build(batchlayer.Request{})
	if n, err := h.n.Builder.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep within the grace period deleted %d files, %v", n, err)
	}
}
