// Package serving defines what queries read: for every view, its final form
// over the batch version's partials UNION ALL the speed layer's partials, and
// for every dataset, its archive UNION ALL the speed layer's unarchived rows.
//
// The definitions are engine views; the speed layer installs each new
// definition in the same engine transaction as the handoff that requires it,
// so every query runs on one consistent snapshot of batch and speed.
package serving

import (
	"fmt"
	"strings"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/viewsql"
)

// Files resolves object names to local files the engine can read.
type Files interface {
	LocalPath(name string) (string, error)
}

// Merger renders merged definitions for the engine.
type Merger struct {
	files Files
}

// NewMerger returns a Merger reading object-store files through files.
func NewMerger(files Files) *Merger { return &Merger{files: files} }

// RawSQL is every accepted record of a dataset: archived files, then the
// speed layer's rows that are not archived yet.
func (m *Merger) RawSQL(spec *dataset.Spec, archive []catalog.ArchiveFile, speedTable string) (string, error) {
	cols := columnList(specColumns(spec))
	names := make([]string, len(archive))
	for i, f := range archive {
		names[i] = f.Path
	}
	return m.union(cols, names, speedTable)
}

// ViewSQL is a view's merged, exact answer.
func (m *Merger) ViewSQL(plan *viewsql.Plan, batch []catalog.VersionFile, speedTable string) (string, error) {
	partials, err := m.PartialsSQL(plan, batch, speedTable)
	if err != nil {
		return "", err
	}
	return plan.FinalSQL("(" + partials + ") AS __partials"), nil
}

// PartialsSQL is a view's partial rows, batch UNION ALL speed: what its
// final form merges, and what a rollup over fewer keys merges exactly.
func (m *Merger) PartialsSQL(plan *viewsql.Plan, batch []catalog.VersionFile, speedTable string) (string, error) {
	return m.union(plan.PartialColumns(), catalog.VersionPaths(batch), speedTable)
}

func (m *Merger) union(cols string, files []string, speedTable string) (string, error) {
	speed := "SELECT " + cols + " FROM " + speedTable
	if len(files) == 0 {
		return speed, nil
	}
	paths := make([]string, len(files))
	for i, f := range files {
		p, err := m.files.LocalPath(f)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", f, err)
		}
		paths[i] = p
	}
	return "SELECT " + cols + " FROM " + dataset.ReadParquet(paths) + " UNION ALL " + speed, nil
}

func specColumns(spec *dataset.Spec) []string {
	out := make([]string, len(spec.Columns))
	for i, c := range spec.Columns {
		out[i] = c.Name
	}
	return out
}

func columnList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = dataset.QuoteIdent(n)
	}
	return strings.Join(q, ", ")
}

// PartialsOverTableSQL is PartialsSQL with the batch version's partials
// read from batchTable, a copy of its files in the engine.
func (m *Merger) PartialsOverTableSQL(plan *viewsql.Plan, batchTable, speedTable string) string {
	cols := plan.PartialColumns()
	return "SELECT " + cols + " FROM " + batchTable + " UNION ALL SELECT " + cols + " FROM " + speedTable
}
