package main

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/dataset"
)

// runBaseline is what a user would do without duet: the view's SQL over
// the archive files in a fresh DuckDB with its defaults, written with
// COPY ... TO Parquet. It opens and closes the database, as an executor's
// process start and engine setup are part of a build.
func runBaseline(ctx context.Context, files []string, out string) error {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return fmt.Errorf("open baseline duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	q := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", fmt.Sprintf(flights.ViewSelect, dataset.ReadParquet(files)), dataset.QuoteString(out))
	if _, err := db.ExecContext(ctx, q); err != nil {
		db.Close()
		return fmt.Errorf("baseline copy: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close baseline duckdb: %w", err)
	}
	return nil
}
