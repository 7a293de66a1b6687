package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/speedlayer/sources"
)

// sourceRunner reads the datasets that have a source (Kafka, NATS
// JetStream): one sources.Source each, running while the server does.
type sourceRunner struct {
	layer   sources.Layer
	logger  *slog.Logger
	metrics *sources.Metrics

	mu      sync.Mutex
	ctx     context.Context // set by run; sources added before wait for it
	running map[string]*sources.Source
	wg      sync.WaitGroup
}

func newSourceRunner(layer sources.Layer, metrics *sources.Metrics, logger *slog.Logger) *sourceRunner {
	return &sourceRunner{layer: layer, logger: logger, metrics: metrics, running: map[string]*sources.Source{}}
}

// start creates the dataset's source (if it has one); it reads once run
// has started.
func (r *sourceRunner) start(spec dataset.Spec) error {
	if spec.Source == nil {
		return nil
	}
	src, err := sources.New(spec, r.layer, sources.Config{}, r.logger.With("dataset", spec.Name), r.metrics)
	if err != nil {
		return fmt.Errorf("dataset %q: %w", spec.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running[spec.Name] = src
	if r.ctx != nil {
		r.launch(spec.Name, src)
	}
	return nil
}

func (r *sourceRunner) launch(name string, src *sources.Source) {
	r.wg.Go(func() {
		if err := src.Run(r.ctx); err != nil {
			r.logger.Error("source stopped", "dataset", name, "err", err)
		}
	})
}

// run reads every source until ctx ends.
func (r *sourceRunner) run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	for name, src := range r.running {
		r.launch(name, src)
	}
	r.mu.Unlock()
	<-ctx.Done()
	r.wg.Wait()
	return nil
}

func (r *sourceRunner) status(name string) *api.SourceStatus {
	r.mu.Lock()
	src := r.running[name]
	r.mu.Unlock()
	if src == nil {
		return nil
	}
	st := src.Status()
	out := &api.SourceStatus{
		Consumed: st.Consumed, Rejected: st.Rejected, Lag: st.Lag, Positions: st.Positions,
		LastRejected: st.LastRejected, LastError: st.LastError,
	}
	if !st.LastErrorAt.IsZero() {
		at := st.LastErrorAt.UTC().Truncate(time.Millisecond)
		out.LastErrorAt = &at
	}
	return out
}
