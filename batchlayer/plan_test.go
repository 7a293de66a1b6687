package batchlayer

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
)

func af(day string, first, end, bytes int64) catalog.ArchiveFile {
	return catalog.ArchiveFile{Path: day + "/" + string(rune('a'+first)), Partition: "dt=" + day, First: first, End: end, Bytes: bytes}
}

func TestPlanBuild(t *testing.T) {
	archive := []catalog.ArchiveFile{af("2026-11-01", 0, 10, 1), af("2026-11-02", 0, 10, 1), af("2026-11-01", 10, 20, 1), af("2026-11-03", 20, 30, 1)}
	cur := &catalog.ViewVersion{Version: 4, Covered: 20, Files: []catalog.VersionFile{
		{Path: "v4/d1", Partition: "2026-11-01"}, {Path: "v3/d2", Partition: "2026-11-02"}}}

	p, err := planBuild(Request{}, true, cur, archive)
	if err != nil || p.kind != KindIncremental || p.covered != 30 || !reflect.DeepEqual(p.rebuilt, []string{"2026-11-03"}) ||
		len(p.inputs) != 1 || len(p.carried) != 2 || len(p.merge) != 0 {
		t.Fatalf("incremental: %+v %v", p, err)
	}
	late := append(archive, af("2026-11-01", 30, 40, 1))
	p, _ = planBuild(Request{}, true, cur, late)
	if !reflect.DeepEqual(p.rebuilt, []string{"2026-11-01", "2026-11-03"}) || len(p.inputs) != 2 ||
		!reflect.DeepEqual(p.carried, cur.Files[1:]) || !reflect.DeepEqual(p.merge, cur.Files[:1]) {
		t.Fatalf("late events for day 1 must rebuild day 1 from its new files and its base partials: %+v", p)
	}
	if p, _ := planBuild(Request{Full: true}, true, cur, archive); p.kind != KindFull || len(p.inputs) != 4 || len(p.carried) != 0 || len(p.rebuilt) != 3 {
		t.Fatalf("full: %+v", p)
	}
	if p, _ := planBuild(Request{}, false, cur, archive); p.kind != KindFull || !reflect.DeepEqual(p.rebuilt, []string{""}) {
		t.Fatalf("a view without a time key is always rebuilt whole: %+v", p)
	}
	if _, err := planBuild(Request{}, true, &catalog.ViewVersion{Version: 5, Covered: 30}, archive); !errors.Is(err, ErrUpToDate) {
		t.Fatalf("nothing new: %v", err)
	}
	if _, err := planBuild(Request{}, true, nil, nil); !errors.Is(err, ErrUpToDate) {
		t.Fatalf("empty archive: %v", err)
	}
	p, err = planBuild(Request{From: "2026-11-01", To: "2026-11-02"}, true, cur, archive)
	if err != nil || p.kind != KindBackfill || p.covered != 20 || len(p.inputs) != 3 || len(p.carried) != 0 {
		t.Fatalf("backfill must read only files the version covers: %+v %v", p, err)
	}
	if _, err := planBuild(Request{From: "2026-11-01", To: "2026-11-02"}, false, cur, archive); err == nil {
		t.Fatal("backfill of a view without a time key")
	}
}

func TestPlanCompactionRespectsCutsAndTarget(t *testing.T) {
	files := []catalog.ArchiveFile{
		af("d1", 0, 10, 10), af("d1", 10, 20, 10), af("d1", 20, 30, 10), af("d1", 30, 40, 10), af("d1", 40, 50, 100),
		af("d1", 50, 60, 10), af("d1", 60, 70, 10), af("d2", 0, 10, 10),
	}
	groups := planCompaction(files, []int64{20}, 25)
	var got [][2]int64
	for _, g := range groups {
		got = append(got, [2]int64{g[0].First, g[len(g)-1].End})
	}
	// [0,20) stops at the cut 20; [20,40) at the target; the big file is
	// left alone; d2 has a single file.
	want := [][2]int64{{0, 20}, {20, 40}, {50, 70}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
}

func TestPlanGC(t *testing.T) {
	now := time.Now()
	v := func(n int64, retiredAgo time.Duration, paths ...string) catalog.ViewVersion {
		vv := catalog.ViewVersion{Version: n}
		if retiredAgo > 0 {
			vv.RetiredAt = now.Add(-retiredAgo)
		}
		for _, p := range paths {
			vv.Files = append(vv.Files, catalog.VersionFile{Path: p})
		}
		return vv
	}
	versions := []catalog.ViewVersion{
		v(5, time.Hour, "v5/a", "v2/b"),
		v(4, time.Second, "v4/a", "v2/b"),
		v(3, 0, "v3/a", "v2/b"), // current after a rollback
		v(2, time.Hour, "v2/a", "v2/b"),
		v(1, time.Hour, "v1/a"),
	}
	p := planGC(versions, 3, 1, time.Minute, now)
	if !reflect.DeepEqual(p.drop, []int64{2, 1}) || !reflect.DeepEqual(p.unreferenced, []string{"v2/a", "v1/a"}) {
		t.Fatalf("drop %v unreferenced %v", p.drop, p.unreferenced)
	}
}

func TestSweepWaitsForRunningTasks(t *testing.T) {
	b := &Builder{cfg: Config{GCGrace: time.Minute}, active: map[*time.Time]bool{}}
	now := time.Now()
	if got := b.sweepBefore(now); !got.Equal(now.Add(-time.Minute)) {
		t.Fatalf("idle: cutoff %v, want a grace period ago", got)
	}
	old := now.Add(-time.Hour)
	b.active[&old] = true
	if got := b.sweepBefore(now); !got.Equal(old) {
		t.Fatalf("with a task running for an hour: cutoff %v, want its start %v", got, old)
	}
}
