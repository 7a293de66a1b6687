package flights

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
)

// fingerprint sums what the view aggregates over some rows, so two sets of
// rows compare in one line.
const fingerprint = `SELECT count(*), count(delay), coalesce(sum(delay), 0)::BIGINT, count(DISTINCT origin),
	coalesce(sum(epoch_us(date) %% 1000003), 0)::BIGINT, coalesce(sum(hash(origin) %% 1000003), 0)::BIGINT FROM %s`

func fingerprintOf(t *testing.T, db *sql.DB, relation string) string {
	t.Helper()
	var a, b, c, d, e, f int64
	if err := db.QueryRow(fmt.Sprintf(fingerprint, relation)).Scan(&a, &b, &c, &d, &e, &f); err != nil {
		t.Fatalf("fingerprint %s: %v", relation, err)
	}
	return fmt.Sprint(a, b, c, d, e, f)
}

// The query benchmark links one generated segment into every size that
// archives it and sends the rest over HTTP: a range's rows must not depend
// on how the offsets around it are cut, and Scan must give the rows Segment
// writes.
func TestRowsDependOnTheirOffsetsAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g, err := NewGenerator(ctx, Config{Rows: 10_000, Days: 3, Seed: 7}, filepath.Join(dir, "objects"), filepath.Join(dir, "stage"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	whole, err := g.Segment(ctx, 0, 6000)
	if err != nil {
		t.Fatal(err)
	}
	var halves []catalog.ArchiveFile
	for _, r := range [][2]int64{{0, 2500}, {2500, 6000}} {
		fs, err := g.Segment(ctx, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		halves = append(halves, fs...)
	}
	if SumRows(whole) != 6000 || SumRows(halves) != 6000 {
		t.Fatalf("segments hold %d and %d rows, want 6000", SumRows(whole), SumRows(halves))
	}
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE scanned (date TIMESTAMP, delay BIGINT, origin VARCHAR)"); err != nil {
		t.Fatal(err)
	}
	err = g.Scan(ctx, 0, 6000, func(r Record) error {
		_, err := db.Exec("INSERT INTO scanned VALUES (?, ?, ?)", r.Date, r.Delay, r.Origin)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fingerprintOf(t, db, dataset.ReadParquet(g.LocalPaths(whole)))
	if got := fingerprintOf(t, db, dataset.ReadParquet(g.LocalPaths(halves))); got != want {
		t.Errorf("offsets 0-6000 cut in two give %s, in one %s", got, want)
	}
	if got := fingerprintOf(t, db, "scanned"); got != want {
		t.Errorf("Scan gives %s, Segment writes %s", got, want)
	}
	if n := len(Origins()); n != 40 {
		t.Errorf("%d origins, want 40", n)
	}
}
