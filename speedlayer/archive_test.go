package speedlayer_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/speedlayer"
)

// TestArchiveWritesOneZSTDFilePerDay: a sealed segment is archived as one
// Parquet file per day of its time column, named and partitioned by that
// day, holding exactly that day's records, compressed with ZSTD.
func TestArchiveWritesOneZSTDFilePerDay(t *testing.T) {
	n := lambdatest.Start(t, t.TempDir(), lambdatest.Options{SegmentRecords: 1_000_000})
	defer func() { n.Stop() }()
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(11, 12))
	want := map[string]int64{}
	for range 5 {
		for _, r := range n.IngestRandom(rnd, 200) {
			want["dt="+r.TS.Format("2006-01-02")]++
		}
	}
	if len(want) < 2 {
		t.Fatalf("the rows fall on %d day(s); the test needs several", len(want))
	}
	if err := n.Layer.Flush(ctx, lambdatest.Spec.Name); err != nil {
		t.Fatal(err)
	}
	files, err := n.Cat.ArchiveFiles(ctx, lambdatest.Spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Fatalf("%d archive files, want one for each of %d days: %+v", len(files), len(want), files)
	}
	tc := dataset.QuoteIdent(lambdatest.Spec.TimeColumn)
	for _, f := range files {
		if name := speedlayer.ArchiveName(lambdatest.Spec.Name, strings.TrimPrefix(f.Partition, "dt="), f.First, f.End); f.Path != name {
			t.Errorf("archive file %s, want %s", f.Path, name)
		}
		if f.Rows != want[f.Partition] {
			t.Errorf("%s: catalog says %d rows, want %d", f.Path, f.Rows, want[f.Partition])
		}
		path, err := n.Bucket.LocalPath(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		var rows, otherDays int64
		q := "SELECT count(*), count(*) FILTER (WHERE 'dt=' || strftime(" + tc + ", '%Y-%m-%d') <> ?) FROM read_parquet(?)"
		if err := n.DB.QueryRowContext(ctx, q, f.Partition, path).Scan(&rows, &otherDays); err != nil {
			t.Fatal(err)
		}
		if rows != want[f.Partition] || otherDays != 0 {
			t.Errorf("%s: %d rows of which %d on another day; want %d, all of %s", f.Path, rows, otherDays, want[f.Partition], f.Partition)
		}
		for _, c := range lambdatest.QueryAll(ctx, t, n.DB, "SELECT DISTINCT compression FROM parquet_metadata(?)", path) {
			if c[0] != "ZSTD" {
				t.Errorf("%s: column chunks compressed with %v, want ZSTD", f.Path, c[0])
			}
		}
	}
}
