package speedlayer_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/speedlayer"
)

// A published version small enough is read from one engine table, the
// previous version's table is dropped once CopyGrace has passed since the
// handoff, rollbacks load the
// older version again, and a version over the limit is read from its files;
// the merged view stays exact throughout and across a restart.
func TestPublishedVersionsAreCopiedIntoTheEngine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	limit := int64(1_000_000)
	opts := lambdatest.Options{SegmentRecords: 50, Speed: func(c *speedlayer.Config) {
		c.ViewCacheRows = limit
		c.CopyGrace = time.Second
	}}
	n := lambdatest.Start(t, dir, opts)
	defer func() { n.Stop() }()
	rnd := rand.New(rand.NewPCG(7, 7))
	var accepted []lambdatest.Row
	ingest := func(k int) { accepted = append(accepted, n.IngestRandom(rnd, k)...) }
	build := func(job string) int64 {
		v, err := n.Builder.Build(ctx, batchlayer.Request{JobID: job, View: "v"})
		if err != nil {
			t.Fatal(err)
		}
		return v.Version
	}
	// source is the relation the view's partials read their batch rows from,
	// once the copies of replaced versions are dropped.
	source := func(step string) (copies []string, readsFiles bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
	again:
		copies = nil
		for _, r := range lambdatest.QueryAll(ctx, t, n.DB, "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", engine.CacheCatalog) {
			copies = append(copies, r[0].(string))
		}
		def := lambdatest.QueryAll(ctx, t, n.DB, "SELECT sql FROM duckdb_views() WHERE database_name = 'duet' AND view_name = 'merged_partials__v'")
		if len(def) != 1 {
			t.Fatalf("%s: merged partials view: %v", step, def)
		}
		text := def[0][0].(string)
		readsFiles = strings.Contains(text, "read_parquet")
		if len(copies) > 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			goto again
		}
		if len(copies) == 1 && !strings.Contains(text, copies[0]) {
			t.Fatalf("%s: the partials do not read the engine copy %s: %s", step, copies[0], text)
		}
		return copies, readsFiles
	}

	ingest(300)
	if c, files := source("before any build"); len(c) != 0 || files {
		t.Fatalf("before any build: copies %v, reads files %v", c, files)
	}
	v1 := build("b1")
	n.Check(accepted, "after v1")
	c1, files := source("after v1")
	if len(c1) != 1 || files {
		t.Fatalf("after v1: copies %v, reads files %v; want one copy and no files", c1, files)
	}
	ingest(200)
	build("b2")
	// The replaced copy outlives the handoff for queries that bound the view before it.
	if n := len(lambdatest.QueryAll(ctx, t, n.DB, "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", engine.CacheCatalog)); n != 2 {
		t.Fatalf("right after the handoff to v2: %d copies, want v1's kept for the grace and v2's", n)
	}
	n.Check(accepted, "after v2")
	c2, files := source("after v2")
	if len(c2) != 1 || c2[0] == c1[0] || files {
		t.Fatalf("after v2: copies %v (v1's was %v), reads files %v; want only a new copy", c2, c1, files)
	}
	if _, err := n.Builder.Rollback(ctx, "v", v1); err != nil {
		t.Fatal(err)
	}
	n.Check(accepted, "after rollback to v1")
	if c, files := source("after rollback"); len(c) != 1 || c[0] == c2[0] || files {
		t.Fatalf("after rollback: copies %v, reads files %v; want one new copy", c, files)
	}

	// Past the limit: the version is read from its files, and no copy is left.
	n.Stop()
	limit = 10
	n = lambdatest.Start(t, dir, opts)
	n.Check(accepted, "after restart with a small limit")
	if c, files := source("after restart with a small limit"); len(c) != 0 || !files {
		t.Fatalf("over the limit: copies %v, reads files %v; want the files", c, files)
	}
	ingest(100)
	build("b3")
	n.Check(accepted, "after v3 over the limit")
	if c, files := source("after v3"); len(c) != 0 || !files {
		t.Fatalf("v3 over the limit: copies %v, reads files %v; want the files", c, files)
	}
}
