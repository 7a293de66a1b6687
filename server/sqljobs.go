package server

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/scheduler"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
)

// sqlJobs runs sql jobs: a user's script on an executor, over a snapshot of
// the datasets and views it names, its result a Parquet object or a table
// of schema jobs.
type sqlJobs struct {
	b      *batchlayer.Builder
	speed  *speedlayer.Layer
	merger *serving.Merger
	files  serving.Files
	db     *sql.DB
	cat    interface {
		ListJobs(ctx context.Context, f catalog.JobFilter) ([]catalog.Job, error)
	}
	logger *slog.Logger
}

// run runs the job's script here, or on trino when set.
func (s *sqlJobs) run(ctx context.Context, j catalog.Job, trino *batchlayer.TrinoSource) (*batchlayer.ScriptResult, error) {
	out, err := scheduler.ParseOutput(j.Output, j.ID)
	if err != nil {
		return nil, err
	}
	res, err := s.b.RunScript(ctx, batchlayer.ScriptRequest{
		JobID: j.ID, LogPrefix: j.LogPrefix, Script: j.SQL, Params: j.Params, Output: out.Object, Trino: trino,
		Inputs: func(ctx context.Context, dir string) ([]string, []string, error) { return s.inputs(ctx, j.SQL, dir) },
	})
	if err != nil {
		return nil, err
	}
	if out.Table != "" {
		if err := s.publishTable(ctx, out.Table, out.Object); err != nil {
			return nil, err
		}
	}
	return &res, nil
}

// inputs snapshots the datasets the script may read (it names them or one
// of their views; a false match costs a copy, no more) into dir, and
// defines raw.<dataset> and views.<view> there, each exact as of its
// snapshot.
func (s *sqlJobs) inputs(ctx context.Context, script, dir string) (setup, reads []string, err error) {
	setup = []string{"CREATE SCHEMA " + engine.RawSchema, "CREATE SCHEMA " + engine.ViewsSchema}
	text := strings.ToLower(script)
	named := func(name string) bool { return strings.Contains(text, strings.ToLower(name)) }
	for ds, views := range s.speed.Relations() {
		if !named(ds) && !slices.ContainsFunc(views, named) {
			continue
		}
		snap, err := s.speed.Snapshot(ctx, ds, dir)
		if err != nil {
			return nil, nil, err
		}
		q, err := s.merger.RawSQL(&snap.Spec, snap.Archive, dataset.ReadParquet([]string{snap.Tail}))
		if err != nil {
			return nil, nil, err
		}
		setup = append(setup, "CREATE VIEW "+engine.RawSchema+"."+dataset.QuoteIdent(ds)+" AS "+q)
		for _, f := range snap.Archive {
			if reads, err = s.appendLocal(reads, f.Path); err != nil {
				return nil, nil, err
			}
		}
		for _, v := range snap.Views {
			q, err := s.merger.ViewSQL(v.Plan, v.Batch, dataset.ReadParquet([]string{v.Partials}))
			if err != nil {
				return nil, nil, err
			}
			setup = append(setup, "CREATE VIEW "+engine.ViewsSchema+"."+dataset.QuoteIdent(v.Name)+" AS "+q)
			for _, f := range v.Batch {
				if reads, err = s.appendLocal(reads, f.Path); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	return setup, reads, nil
}

func (s *sqlJobs) appendLocal(paths []string, object string) ([]string, error) {
	p, err := s.files.LocalPath(object)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", object, err)
	}
	return append(paths, p), nil
}

// publishTable points jobs.<table> at a result object.
func (s *sqlJobs) publishTable(ctx context.Context, table, object string) error {
	path, err := s.files.LocalPath(object)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", object, err)
	}
	for _, q := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + engine.Catalog + "." + scheduler.JobsSchema,
		"CREATE OR REPLACE VIEW " + engine.Table(scheduler.JobsSchema, table) + " AS SELECT * FROM " + dataset.ReadParquet([]string{path}),
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("publish table jobs.%s: %w", table, err)
		}
	}
	return nil
}

// restoreTables defines the tables of schema jobs again after a restart,
// each from its latest successful job.
func (s *sqlJobs) restoreTables(ctx context.Context) error {
	jobs, err := s.cat.ListJobs(ctx, catalog.JobFilter{Kind: scheduler.KindSQL, State: scheduler.StateSucceeded})
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, j := range jobs { // newest first
		out, err := scheduler.ParseOutput(j.Output, j.ID)
		if err != nil || out.Table == "" || done[out.Table] {
			continue
		}
		done[out.Table] = true
		if err := s.publishTable(ctx, out.Table, out.Object); err != nil {
			return err
		}
	}
	return nil
}
