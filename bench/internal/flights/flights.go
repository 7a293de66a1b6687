// Package flights is the benchmarks' flights dataset and its `delays` view:
// the definitions, the data directory layout a duet node keeps them in, and
// a deterministic generator that writes flights as archive files, laid out
// exactly as the speed layer's archiver lays them out. The build and query
// benchmarks share it, so both measure the same data.
package flights

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
)

// The benchmarked dataset and view: the demo's flights and their hourly delays.
const (
	Dataset = "flights"
	View    = "delays"
	// ViewSelect is the view's SQL with its source left open, so a baseline
	// runs exactly the same query over the archive files.
	ViewSelect = "SELECT date_trunc('hour', date) AS hour, origin, count(*) AS flights, sum(delay) AS total_delay, " +
		"min(delay) AS min_delay, max(delay) AS max_delay, avg(delay) AS avg_delay FROM %s GROUP BY 1, 2"
)

// Spec is the flights dataset: when a flight left, its delay in minutes
// (NULL for one in fifty) and its origin airport.
func Spec() dataset.Spec {
	return dataset.Spec{Name: Dataset, TimeColumn: "date", Columns: []dataset.Column{
		{Name: "date", Type: dataset.Timestamp}, {Name: "delay", Type: dataset.Bigint}, {Name: "origin", Type: dataset.Varchar},
	}}
}

// ViewSQL is the view's definition over the dataset.
func ViewSQL() string { return fmt.Sprintf(ViewSelect, Dataset) }

// Paths are where a node keeps its state inside its data directory, as the
// server lays it out.
type Paths struct{ Dir string }

func (p Paths) Catalog() string { return filepath.Join(p.Dir, "catalog.db") }
func (p Paths) Objects() string { return filepath.Join(p.Dir, "objects") }
func (p Paths) Log() string     { return filepath.Join(p.Dir, "log") }
func (p Paths) Scratch() string { return filepath.Join(p.Dir, "scratch") }

// CreateDefinitions registers the dataset and the view in a new catalog.
func CreateDefinitions(ctx context.Context, cat *catalog.Store) error {
	if err := cat.CreateDataset(ctx, catalog.Dataset{Spec: Spec()}); err != nil {
		return fmt.Errorf("create dataset: %w", err)
	}
	if err := cat.CreateView(ctx, catalog.View{Name: View, Dataset: Dataset, SQL: ViewSQL()}); err != nil {
		return fmt.Errorf("create view: %w", err)
	}
	return nil
}

// Archive records files in the catalog of the data directory (defining the
// dataset and the view first when it has none) and leaves the event log as
// the speed layer leaves it once everything is archived: truncated to one
// empty active segment named by the archived end. The speed layer refuses
// to load an archive that reaches past the end of its log.
func Archive(ctx context.Context, p Paths, files []catalog.ArchiveFile) error {
	cat, err := catalog.Open(ctx, p.Catalog(), nil)
	if err != nil {
		return fmt.Errorf("open catalog: %w", err)
	}
	defer cat.Close()
	switch _, err := cat.GetDataset(ctx, Dataset); {
	case errors.Is(err, catalog.ErrNotFound):
		if err := CreateDefinitions(ctx, cat); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if err := cat.RecordArchive(ctx, files); err != nil {
		return err
	}
	end, err := cat.ArchivedEnd(ctx, Dataset)
	if err != nil {
		return err
	}
	return truncateLog(filepath.Join(p.Log(), Dataset), end)
}

// truncateLog replaces the dataset's log segments by one empty segment
// starting at end (segment files are named by their 20-digit first offset).
func truncateLog(dir string, end int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("truncate event log: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.wal", end)), nil, 0o644); err != nil {
		return fmt.Errorf("truncate event log: %w", err)
	}
	return nil
}

// SumRows is the rows of files.
func SumRows(files []catalog.ArchiveFile) int64 {
	var n int64
	for _, f := range files {
		n += f.Rows
	}
	return n
}
