package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
	"github.com/duet-analytics/duet/client"
)

// serverProc is a server process of the benchmark's own (benchserver) and
// what ingestbench counts about it.
type serverProc struct {
	*benchserver.Proc
	// retries counts ingest requests refused with 429 or 503 and resent.
	retries *counter
}

// startServer starts a server process with o; the SQL gateway client
// connects as ingestbench, and resent ingest requests are counted.
func startServer(ctx context.Context, o benchserver.Options) (*serverProc, error) {
	retries := &counter{}
	o.User = "ingestbench"
	o.OnRetry = func(client.RetryEvent) { retries.add(1) }
	p, err := benchserver.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return &serverProc{Proc: p, retries: retries}, nil
}

// setup defines the benchmark's dataset and, when withView, its view.
func (p *serverProc) setup(ctx context.Context, withView bool) error {
	spec := eventsSpec()
	if _, err := p.Client.CreateDataset(ctx, api.Dataset{Name: spec.Name, TimeColumn: spec.TimeColumn, Columns: spec.Columns}); err != nil {
		return fmt.Errorf("create dataset %s: %w", spec.Name, err)
	}
	if withView {
		if _, err := p.Client.CreateView(ctx, api.ViewRequest{Name: viewName, SQL: viewSQL}); err != nil {
			return fmt.Errorf("create view %s: %w", viewName, err)
		}
	}
	return nil
}

func (p *serverProc) rss() (int64, error) { return processRSS(p.PID()) }

// serverDir is a new data directory for one server under the run's directory.
func serverDir(root, name string) string { return filepath.Join(root, name) }
