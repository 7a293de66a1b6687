package viewsql

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/duet-analytics/duet/dataset"
)

// TestPartialTypesAgree checks that a partial form has exactly Partial's
// columns whatever it runs over (a table, Parquet written by DuckDB, the empty
// relation), and that its output keeps those types through Parquet: batch and
// speed partials are UNION ALLed, so any drift would change results.
func TestPartialTypesAgree(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := flightsSpec(t)
	dir := t.TempDir()
	loadTable(t, conn, spec, "TEMP TABLE", "rows", genRows(rand.New(rand.NewSource(42)), 50))
	raw := filepath.Join(dir, "raw.parquet")
	mustExec(t, conn, fmt.Sprintf("COPY rows TO %s (FORMAT parquet)", dataset.QuoteString(raw)))
	sources := map[string]string{
		"table":   "rows",
		"parquet": "read_parquet([" + dataset.QuoteString(raw) + "])",
		"empty":   spec.EmptyRelation(),
	}
	for vi, v := range views {
		if v.name == "schema and alias" {
			continue // reads duet.raw.flights, which this test does not create
		}
		t.Run(v.name, func(t *testing.T) {
			plan, err := Analyze(ctx, conn, v.sql, spec)
			if err != nil {
				t.Fatal(err)
			}
			for name, src := range sources {
				if got := describeCols(t, conn, plan.PartialSQL(src)); !sameColumns(got, plan.Partial) {
					t.Errorf("partial over %s: columns %v, want %v", name, got, plan.Partial)
				}
			}
			part := filepath.Join(dir, fmt.Sprintf("part-%d.parquet", vi))
			mustExec(t, conn, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", plan.PartialSQL("rows"), dataset.QuoteString(part)))
			stored := "read_parquet(" + dataset.QuoteString(part) + ")"
			if got := describeCols(t, conn, "SELECT * FROM "+stored); !sameColumns(got, plan.Partial) {
				t.Errorf("partial read back from Parquet: columns %v, want %v", got, plan.Partial)
			}
			if got := describeCols(t, conn, plan.CombineSQL(stored)); !sameColumns(got, plan.Partial) {
				t.Errorf("combine: columns %v, want %v", got, plan.Partial)
			}
			if got := describeCols(t, conn, plan.FinalSQL(stored)); !sameColumns(got, plan.Columns) {
				t.Errorf("final: columns %v, want %v", got, plan.Columns)
			}
		})
	}
}
