package speedlayer

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/viewsql"
)

// Snapshot is what a dataset's records and its views' merged answers are
// made of at one instant, for an executor, which has an engine of its own:
// the archive files and batch versions by name, and what only this
// process's engine holds (records not archived yet, the views' speed
// partials) written out as Parquet files.
type Snapshot struct {
	Spec    dataset.Spec
	Archive []catalog.ArchiveFile
	// Tail is the Parquet file of the records not archived yet.
	Tail  string
	Views []ViewSnapshot
}

// ViewSnapshot is one view of a Snapshot.
type ViewSnapshot struct {
	Name  string
	Plan  *viewsql.Plan
	Batch []catalog.VersionFile
	// Partials is the Parquet file of its speed partials.
	Partials string
}

// Snapshot writes the dataset's Snapshot into dir, which the engine must be
// allowed to write. The dataset's changes wait meanwhile: its unarchived
// records and partials are bounded by the memory budget, so not for long.
func (l *Layer) Snapshot(ctx context.Context, name, dir string) (Snapshot, error) {
	ds, err := l.dataset(name)
	if err != nil {
		return Snapshot{}, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	snap := Snapshot{
		Spec:    ds.spec,
		Archive: append([]catalog.ArchiveFile(nil), ds.archive...),
		Tail:    filepath.Join(dir, "raw__"+name+".parquet"),
	}
	copyTo := func(query, path string) error {
		_, err := ds.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", query, dataset.QuoteString(path)))
		return err
	}
	if err := copyTo("SELECT "+ds.columnList()+" FROM "+ds.rawTable(), snap.Tail); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot the unarchived records of %s: %w", name, err)
	}
	for _, v := range ds.views {
		vs := ViewSnapshot{Name: v.name, Plan: v.plan, Partials: filepath.Join(dir, "partial__"+v.name+".parquet")}
		if v.version != nil {
			vs.Batch = append([]catalog.VersionFile(nil), v.version.Files...)
		}
		if err := copyTo("SELECT * FROM "+v.partialTable(), vs.Partials); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot the speed partials of view %s: %w", v.name, err)
		}
		snap.Views = append(snap.Views, vs)
	}
	return snap, nil
}

// Relations lists each dataset with its views' names.
func (l *Layer) Relations() map[string][]string {
	out := map[string][]string{}
	for _, ds := range l.allDatasets() {
		ds.mu.Lock()
		names := []string{}
		for _, v := range ds.views {
			names = append(names, v.name)
		}
		ds.mu.Unlock()
		out[ds.spec.Name] = names
	}
	return out
}
