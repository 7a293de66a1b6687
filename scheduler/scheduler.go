// Package scheduler turns cron schedules and user requests into jobs, keeps
// each job's state in the catalog (queued, running, succeeded, failed), and
// runs jobs one at a time through the batch layer.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/catalog"
)

// Job kinds.
const KindViewBuild = "view-build"

// Job states, as the API reports them.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// Catalog stores jobs.
type Catalog interface {
	CreateJob(ctx context.Context, j catalog.Job) error
	GetJob(ctx context.Context, id string) (catalog.Job, error)
	UpdateJob(ctx context.Context, j catalog.Job) error
	ListJobs(ctx context.Context, f catalog.JobFilter) ([]catalog.Job, error)
}

// Builder builds a view version.
type Builder interface {
	Build(ctx context.Context, jobID, view string) (catalog.ViewVersion, error)
}

// Config for the scheduler.
type Config struct {
	// JobTimeout bounds one job's run.
	JobTimeout time.Duration `yaml:"job_timeout"`
}

// Scheduler queues and runs jobs.
type Scheduler struct {
	cfg     Config
	cat     Catalog
	builder Builder
	logger  *slog.Logger
	cron    *cron.Cron
	queue   chan string
	runs    *prometheus.CounterVec

	mu      sync.Mutex
	entries map[string]cron.EntryID
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ValidateSchedule checks a cron expression: 5 fields, optional seconds,
// descriptors such as @every 5m and @hourly, and a CRON_TZ= prefix.
func ValidateSchedule(spec string) error {
	if _, err := parser.Parse(spec); err != nil {
		return fmt.Errorf("schedule %q: %w", spec, err)
	}
	return nil
}

// New creates a scheduler; Run starts it.
func New(cfg Config, cat Catalog, builder Builder, logger *slog.Logger, reg prometheus.Registerer) *Scheduler {
	if cfg.JobTimeout == 0 {
		cfg.JobTimeout = time.Hour
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		cfg: cfg, cat: cat, builder: builder, logger: logger,
		cron:    cron.New(cron.WithParser(parser), cron.WithLocation(time.UTC)),
		queue:   make(chan string, 1024),
		entries: map[string]cron.EntryID{},
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_scheduler_jobs_total", Help: "Jobs finished, by kind and final state.",
		}, []string{"kind", "state"}),
	}
	if reg != nil {
		reg.MustRegister(s.runs)
	}
	return s
}

// Schedule builds the view on the cron schedule spec.
func (s *Scheduler) Schedule(view, spec string) error {
	id, err := s.cron.AddFunc(spec, func() {
		if _, err := s.Submit(context.Background(), KindViewBuild, view); err != nil {
			s.logger.Error("scheduled build not submitted", "view", view, "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("schedule %q: %w", spec, err)
	}
	s.mu.Lock()
	s.entries[view] = id
	s.mu.Unlock()
	return nil
}

// Submit queues a build of view. A build of the same view that is already
// queued absorbs the request: it will cover the same records.
func (s *Scheduler) Submit(ctx context.Context, kind, view string) (catalog.Job, error) {
	if kind != KindViewBuild {
		return catalog.Job{}, fmt.Errorf("unknown job kind %q", kind)
	}
	queued, err := s.cat.ListJobs(ctx, catalog.JobFilter{State: StateQueued, View: view, Limit: 1})
	if err != nil {
		return catalog.Job{}, err
	}
	if len(queued) > 0 {
		return queued[0], nil
	}
	j := catalog.Job{ID: uuid.NewString(), Kind: kind, View: view, State: StateQueued, CreatedAt: time.Now().UTC()}
	if err := s.cat.CreateJob(ctx, j); err != nil {
		return catalog.Job{}, fmt.Errorf("create job: %w", err)
	}
	select {
	case s.queue <- j.ID:
	default:
		// The queue is only a wake-up; Run also finds queued jobs in the catalog.
	}
	return j, nil
}

// Run recovers jobs left by a previous process, starts the cron schedules
// and runs queued jobs until ctx is cancelled.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.recover(ctx); err != nil {
		return err
	}
	s.cron.Start()
	defer func() { <-s.cron.Stop().Done() }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-s.queue:
			s.run(ctx, id)
		case <-t.C:
			s.runQueued(ctx)
		}
	}
}

// recover fails jobs that were running when the last process stopped (their
// executors died with it) and requeues queued ones.
func (s *Scheduler) recover(ctx context.Context) error {
	running, err := s.cat.ListJobs(ctx, catalog.JobFilter{State: StateRunning})
	if err != nil {
		return fmt.Errorf("recover jobs: %w", err)
	}
	for _, j := range running {
		j.State, j.Error, j.FinishedAt = StateFailed, "interrupted: the server stopped while the job ran", time.Now().UTC()
		if err := s.cat.UpdateJob(ctx, j); err != nil {
			return fmt.Errorf("recover job %s: %w", j.ID, err)
		}
	}
	return nil
}

func (s *Scheduler) runQueued(ctx context.Context) {
	queued, err := s.cat.ListJobs(ctx, catalog.JobFilter{State: StateQueued})
	if err != nil {
		s.logger.Error("list queued jobs", "err", err)
		return
	}
	for i := len(queued) - 1; i >= 0 && ctx.Err() == nil; i-- { // oldest first
		s.run(ctx, queued[i].ID)
	}
}

func (s *Scheduler) run(ctx context.Context, id string) {
	j, err := s.cat.GetJob(ctx, id)
	if err != nil || j.State != StateQueued {
		return
	}
	j.State, j.StartedAt, j.Attempt = StateRunning, time.Now().UTC(), j.Attempt+1
	if err := s.cat.UpdateJob(ctx, j); err != nil {
		s.logger.Error("start job", "job", id, "err", err)
		return
	}
	runCtx, cancel := context.WithTimeout(ctx, s.cfg.JobTimeout)
	v, err := s.builder.Build(runCtx, j.ID, j.View)
	cancel()
	if ctx.Err() != nil {
		// Shutting down: leave the job running; the next start fails it.
		return
	}
	j.FinishedAt = time.Now().UTC()
	switch {
	case err == nil, errors.Is(err, batchlayer.ErrUpToDate):
		j.State, j.Version = StateSucceeded, v.Version
	default:
		j.State, j.Error = StateFailed, err.Error()
		s.logger.Error("job failed", "job", id, "view", j.View, "err", err)
	}
	s.runs.WithLabelValues(j.Kind, j.State).Inc()
	if err := s.cat.UpdateJob(context.WithoutCancel(ctx), j); err != nil {
		s.logger.Error("finish job", "job", id, "err", err)
	}
}
