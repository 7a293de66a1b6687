// Package scheduler turns cron schedules and requests into jobs, keeps each
// job's state in the catalog and runs jobs through a Runner: with retries
// and exponential backoff, a timeout per attempt, one job per view at a
// time, a global limit on concurrent jobs, and catch-up after downtime.
//
// Deciding is separate from doing: Due, PlanStarts, RetryDelay and settle
// are pure functions of state and now; Run is a thin loop that applies them
// on an injected Clock.
//
// Job states: queued -> running -> succeeded | failed | killed | timed_out.
// A failed or timed-out attempt sends the job back to queued, with
// NextAttemptAt after a backoff, while attempts remain.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/duet-analytics/duet/internal/catalog"
)

// Job kinds.
const (
	// KindViewBuild builds a view's next version; Params {"full": "true"} asks
	// for a full rebuild.
	KindViewBuild = "view-build"
	// KindBackfill rebuilds a view over a time range: Params {"from", "to"}.
	KindBackfill = "backfill"
	// KindCompaction compacts a dataset's raw archive: Params {"dataset"}.
	KindCompaction = "compaction"
	// KindSQL runs a user's SQL script (Job.SQL) and writes its result to
	// Job.Output; Params are the script's parameters.
	KindSQL = "sql"
	// KindNotebook runs a Jupyter notebook (Job.SQL holds its nbformat
	// JSON) against the SQL gateway; Params override its parameters.
	KindNotebook = "notebook"
)

// Kinds lists every job kind.
var Kinds = []string{KindViewBuild, KindBackfill, KindCompaction, KindSQL, KindNotebook}

// Job states, as the catalog stores them and the API reports them.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateKilled    = "killed"
	StateTimedOut  = "timed_out"
)

// States lists every job state, in lifecycle order.
var States = []string{StateQueued, StateRunning, StateSucceeded, StateFailed, StateKilled, StateTimedOut}

// Defaults of a view's policy, and of jobs that belong to no view.
const (
	DefaultMaxRetries = 3
	DefaultTimeout    = time.Hour
)

// Sentinel errors, wrapped with the job or request they are about.
var (
	// ErrFinished: Kill of a job that already reached a final state.
	ErrFinished = errors.New("job already finished")
	// ErrIDInUse: Submit with an ID already naming a different job.
	ErrIDInUse = errors.New("job id already used by a different job")
	// ErrInvalidRequest: Submit with an unknown kind or missing parameters.
	ErrInvalidRequest = errors.New("invalid job request")
	// ErrUserLimit: Submit by a user who has MaxActivePerUser active jobs.
	ErrUserLimit = errors.New("too many active jobs")
)

// Runner executes one attempt of a job. It must stop promptly when ctx is
// cancelled. A nil error is success, including "nothing to do".
type Runner interface {
	Run(ctx context.Context, j catalog.Job) (version int64, err error)
}

// Catalog stores jobs, reads views' policies and remembers each schedule's
// last fire: of a view's builds, or of a job schedule.
type Catalog interface {
	CreateJob(ctx context.Context, j catalog.Job) error
	GetJob(ctx context.Context, id string) (catalog.Job, error)
	UpdateJob(ctx context.Context, j catalog.Job) error
	ListJobs(ctx context.Context, f catalog.JobFilter) ([]catalog.Job, error)
	GetView(ctx context.Context, name string) (catalog.View, error)
	LastFire(ctx context.Context, view string) (time.Time, error)
	SetLastFire(ctx context.Context, view string, at time.Time) error
	JobScheduleLastFire(ctx context.Context, name string) (time.Time, error)
	SetJobScheduleLastFire(ctx context.Context, name string, at time.Time) error
}

// Config for the scheduler.
type Config struct {
	// Workers is the slots of the local cluster when Clusters is empty.
	Workers int `yaml:"workers"`
	// RetryBackoff is the wait after a job's first failed attempt; it
	// doubles for each further one, up to MaxRetryBackoff.
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
	// Poll is the longest the loop sleeps without a reason to wake; it also
	// bounds how soon a failed catalog read is retried.
	Poll time.Duration `yaml:"poll"`
	// Clusters are where jobs run; empty means one cluster, LocalCluster,
	// tagged local and default, with Workers slots.
	Clusters []Cluster `yaml:"clusters"`
	// MaxActivePerUser bounds each user's queued and running jobs; 0 means
	// no bound. The scheduler's own jobs (no user) are not counted.
	MaxActivePerUser int `yaml:"max_active_per_user"`
}

// Cluster is a place jobs run: a launcher's capacity and the tags jobs
// select it by.
type Cluster struct {
	Name  string   `yaml:"name" json:"name"`
	Tags  []string `yaml:"tags" json:"tags"`
	Slots int      `yaml:"slots" json:"slots"`
}

// LocalCluster names the cluster of executors on this machine.
const LocalCluster = "local"

// DefaultTag is the tag of the clusters that take jobs without criteria.
const DefaultTag = "default"

// DefaultConfig is the configuration Validate fills in.
func DefaultConfig() Config {
	return Config{Workers: 2, RetryBackoff: 10 * time.Second, MaxRetryBackoff: 10 * time.Minute, Poll: 10 * time.Second}
}

// Validate fills zero fields with defaults and names the first bad field.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.Workers == 0 {
		c.Workers = d.Workers
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = d.RetryBackoff
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = max(d.MaxRetryBackoff, c.RetryBackoff)
	}
	if c.Poll == 0 {
		c.Poll = d.Poll
	}
	switch {
	case c.Workers < 0:
		return fmt.Errorf("scheduler.workers %d: must be at least 1", c.Workers)
	case c.RetryBackoff < 0:
		return fmt.Errorf("scheduler.retry_backoff %s: must be positive", c.RetryBackoff)
	case c.MaxRetryBackoff < c.RetryBackoff:
		return fmt.Errorf("scheduler.max_retry_backoff %s: must be at least retry_backoff (%s)", c.MaxRetryBackoff, c.RetryBackoff)
	case c.Poll < 0:
		return fmt.Errorf("scheduler.poll %s: must be positive", c.Poll)
	case c.MaxActivePerUser < 0:
		return fmt.Errorf("scheduler.max_active_per_user %d: must not be negative", c.MaxActivePerUser)
	}
	if len(c.Clusters) == 0 {
		c.Clusters = []Cluster{{Name: LocalCluster, Tags: []string{LocalCluster, DefaultTag}, Slots: c.Workers}}
	}
	seen := map[string]bool{}
	for i, cl := range c.Clusters {
		switch {
		case cl.Name == "":
			return fmt.Errorf("scheduler.clusters[%d]: name is empty", i)
		case seen[cl.Name]:
			return fmt.Errorf("scheduler.clusters[%d]: name %q is used twice", i, cl.Name)
		case cl.Slots < 1:
			return fmt.Errorf("scheduler.clusters[%d] (%s): slots %d: must be at least 1", i, cl.Name, cl.Slots)
		}
		seen[cl.Name] = true
	}
	return nil
}

// HealthReporter is what a Runner may also be: it says whether a cluster
// can take jobs now. Without it every cluster is healthy.
type HealthReporter interface {
	ClusterHealthy(name string) bool
}

// Scheduler queues and runs jobs. Submit, Kill, Schedule, ScheduleJob and
// their Unschedule are safe to call from any goroutine, before or while Run
// runs.
type Scheduler struct {
	cfg     Config
	cat     Catalog
	runner  Runner
	clock   Clock
	logger  *slog.Logger
	metrics *metrics
	wake    chan struct{}

	// mu serialises job state transitions (start, finish, kill, submit),
	// so each reads and writes the catalog without a competing writer.
	mu        sync.Mutex
	schedules map[scheduleKey]*schedule
	running   map[string]*run
	wg        sync.WaitGroup // one per running attempt
}

// scheduleKey names a cron schedule: a view's builds, or a job schedule's
// jobs (job true). Views and job schedules name theirs apart.
type scheduleKey struct {
	job  bool
	name string
}

// schedule is one cron schedule. Replacing it with different settings
// replaces the pointer, so a pass that began before can tell.
type schedule struct {
	spec   string
	sched  cron.Schedule
	policy Catchup
	// job is a job schedule's template; nil for a view's builds.
	job *SubmitRequest
	// created: a job schedule fires only after it, even if no fire was
	// ever recorded. Zero for a view, whose schedule starts when first
	// watched.
	created time.Time
	// since is when this scheduler took the schedule: fires before it were
	// missed while no scheduler watched (the catch-up policy decides), later
	// ones are on time.
	since time.Time
	// last is the latest fire handled; loaded is false until the loop has
	// read it from the catalog (and applied the catch-up policy).
	last   time.Time
	loaded bool
	// err says why the latest fire's job was not submitted; "" if it was.
	err string
}

// request is the job of one fire. Its ID is a function of the schedule and
// the fire, so a fire handled twice (after a crash between submitting its
// job and recording it) submits nothing new.
func (e *schedule) request(key scheduleKey, fire time.Time) SubmitRequest {
	if e.job == nil {
		return SubmitRequest{Kind: KindViewBuild, View: key.name, ID: fireJobID(key.name, fire)}
	}
	req := *e.job
	req.ID, req.Schedule = JobFireID(key.name, fire), key.name
	return req
}

// run is one attempt in progress.
type run struct {
	job      catalog.Job
	deadline time.Time // zero: no timeout
	cancel   context.CancelCauseFunc
}

// New creates a scheduler; Run starts it. A nil clock is the wall clock.
func New(cfg Config, cat Catalog, runner Runner, clock Clock, logger *slog.Logger, reg prometheus.Registerer) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = RealClock()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		cfg: cfg, cat: cat, runner: runner, clock: clock, logger: logger,
		metrics:   newMetrics(reg),
		wake:      make(chan struct{}, 1),
		schedules: map[scheduleKey]*schedule{},
		running:   map[string]*run{},
	}, nil
}

// notify wakes the loop for a new pass.
func (s *Scheduler) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Schedule builds view on the cron schedule spec (see ParseSchedule),
// replacing any schedule it had; policy says what to do about fires missed
// while no scheduler ran.
func (s *Scheduler) Schedule(view, spec string, policy Catchup) error {
	sched, err := ParseSchedule(spec)
	if err != nil {
		return err
	}
	if policy, err = ParseCatchup(string(policy)); err != nil {
		return err
	}
	s.watch(scheduleKey{name: view}, &schedule{spec: spec, sched: sched, policy: policy})
	return nil
}

// watch makes e the schedule of key, unless key has one with the same
// settings, which goes on as it was.
func (s *Scheduler) watch(key scheduleKey, e *schedule) {
	s.mu.Lock()
	cur, ok := s.schedules[key]
	if !ok || cur.spec != e.spec || cur.policy != e.policy || !cur.created.Equal(e.created) || !reflect.DeepEqual(cur.job, e.job) {
		e.since = s.clock.Now()
		s.schedules[key] = e
	}
	s.mu.Unlock()
	s.notify()
}

// Unschedule stops the view's schedule; its queued and running jobs go on.
func (s *Scheduler) Unschedule(view string) {
	s.mu.Lock()
	delete(s.schedules, scheduleKey{name: view})
	s.mu.Unlock()
}

// Run recovers jobs left running by a previous process, then fires
// schedules and runs jobs until ctx ends. On return no attempt is running:
// those in progress were cancelled and re-queued (the attempt counts).
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.recoverInterrupted(ctx); err != nil {
		return err
	}
	defer s.wg.Wait()
	for {
		wakeAt := s.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-s.clock.WaitUntil(wakeAt):
		}
	}
}

// recoverInterrupted settles the jobs a dead process left running: their
// executors died with it.
func (s *Scheduler) recoverInterrupted(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	running, err := s.cat.ListJobs(ctx, catalog.JobFilter{State: StateRunning})
	if err != nil {
		return fmt.Errorf("recover interrupted jobs: %w", err)
	}
	now := s.clock.Now()
	for _, j := range running {
		if _, mine := s.running[j.ID]; mine {
			continue
		}
		j = settle(j, attemptEnd{interrupted: true}, now, s.backoff())
		if err := s.cat.UpdateJob(ctx, j); err != nil {
			return fmt.Errorf("recover interrupted job %s: %w", j.ID, err)
		}
		s.metrics.attemptEnded(j, "interrupted")
		s.logger.Warn("job interrupted by a server stop", "job", j.ID, "kind", j.Kind, "view", j.View, "attempt", j.Attempt, "state", j.State)
	}
	return nil
}

func (s *Scheduler) backoff() backoff {
	return backoff{base: s.cfg.RetryBackoff, max: s.cfg.MaxRetryBackoff}
}

// pass does what is due at now and returns when the next pass is needed.
func (s *Scheduler) pass(ctx context.Context) time.Time {
	now := s.clock.Now()
	wake := now.Add(s.cfg.Poll)
	earliest := func(t time.Time) {
		if !t.IsZero() && t.Before(wake) {
			wake = t
		}
	}
	earliest(s.fireSchedules(ctx, now))
	earliest(s.startDue(ctx, now))
	// After the starts, so the wake covers the deadlines of jobs just started.
	earliest(s.enforceTimeouts(now))
	return wake
}

// fireSchedules creates the jobs of due cron fires and returns the next fire.
func (s *Scheduler) fireSchedules(ctx context.Context, now time.Time) time.Time {
	type watched struct {
		ptr *schedule
		e   schedule // a copy, read under the lock
	}
	s.mu.Lock()
	all := make(map[scheduleKey]watched, len(s.schedules))
	for k, e := range s.schedules {
		all[k] = watched{ptr: e, e: *e}
	}
	s.mu.Unlock()

	var next time.Time
	for key, w := range all {
		e := w.e
		f, prev, ok := s.dueFires(ctx, key, e, now)
		if !ok {
			continue
		}
		// The jobs first, then the record: a crash between the two repeats
		// the fires, which create nothing new (see request).
		if !s.submitFires(ctx, key, w.ptr, f.Run) {
			continue // unscheduled meanwhile; its record may be gone
		}
		if !f.Latest.Equal(prev) {
			err := s.setLastFire(ctx, key, f.Latest)
			switch {
			case key.job && errors.Is(err, catalog.ErrNotFound):
				// Deleted after its last fire was submitted: nothing to record.
			case err != nil:
				s.logger.Error("record last fire", s.scheduleAttr(key), key.name, "err", err)
			}
		}
		s.mu.Lock()
		if s.schedules[key] == w.ptr {
			w.ptr.last, w.ptr.loaded = f.Latest, true
		}
		s.mu.Unlock()
		if n := e.sched.Next(f.Latest); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// submitFires submits the jobs of a schedule's fires. It returns false,
// submitting nothing more, once the schedule is no longer e: after
// Unschedule returns, no job of the schedule is submitted.
func (s *Scheduler) submitFires(ctx context.Context, key scheduleKey, e *schedule, fires []time.Time) bool {
	for _, fire := range fires {
		req := e.request(key, fire)
		s.mu.Lock()
		if s.schedules[key] != e {
			s.mu.Unlock()
			return false
		}
		// CatchupAll must not let a queued build absorb the others.
		absorb := e.loaded || e.policy != CatchupAll
		j, err := s.submit(ctx, req, absorb)
		e.err = ""
		if err != nil {
			e.err = fmt.Sprintf("fire at %s: %v", fire.Format(time.RFC3339), err)
		}
		s.mu.Unlock()
		if err != nil {
			s.logger.Error("scheduled job not queued", s.scheduleAttr(key), key.name, "fire", fire, "err", err)
			continue
		}
		s.metrics.fires.Inc()
		s.logger.Info("scheduled job queued", s.scheduleAttr(key), key.name, "fire", fire, "job", j.ID, "kind", j.Kind)
	}
	return true
}

// scheduleAttr is the log key naming a schedule.
func (s *Scheduler) scheduleAttr(key scheduleKey) string {
	if key.job {
		return "schedule"
	}
	return "view"
}

func (s *Scheduler) lastFire(ctx context.Context, key scheduleKey) (time.Time, error) {
	if key.job {
		return s.cat.JobScheduleLastFire(ctx, key.name)
	}
	return s.cat.LastFire(ctx, key.name)
}

func (s *Scheduler) setLastFire(ctx context.Context, key scheduleKey, at time.Time) error {
	if key.job {
		return s.cat.SetJobScheduleLastFire(ctx, key.name, at)
	}
	return s.cat.SetLastFire(ctx, key.name, at)
}

// dueFires applies Due to one schedule: the first time, with its catch-up
// policy to the fires up to since (missed while no scheduler watched) and
// on time to the later ones; on time afterwards. prev is the last fire it
// starts from, which need not be recorded again. A view's schedule never
// recorded starts from now; a job schedule's from its creation.
func (s *Scheduler) dueFires(ctx context.Context, key scheduleKey, e schedule, now time.Time) (f Fires, prev time.Time, ok bool) {
	if e.loaded {
		return Due(e.sched, e.last, now, CatchupOnce), e.last, true
	}
	prev, err := s.lastFire(ctx, key)
	if err != nil {
		s.logger.Error("read last fire", s.scheduleAttr(key), key.name, "err", err)
		return Fires{}, time.Time{}, false
	}
	if prev.IsZero() {
		prev = e.created
	}
	if prev.IsZero() {
		return Fires{Latest: now}, time.Time{}, true
	}
	until := e.since
	if until.After(now) {
		until = now
	}
	down := Due(e.sched, prev, until, e.policy)
	if dropped := down.Missed - len(down.Run); dropped > 0 {
		s.logger.Warn("schedule fires missed while the server was down", s.scheduleAttr(key), key.name,
			"catchup", e.policy, "missed", down.Missed, "run", len(down.Run))
	}
	onTime := Due(e.sched, down.Latest, now, CatchupOnce)
	return Fires{Run: append(down.Run, onTime.Run...), Missed: down.Missed + onTime.Missed, Latest: onTime.Latest}, prev, true
}

// enforceTimeouts cancels attempts past their deadline and returns the next deadline.
func (s *Scheduler) enforceTimeouts(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, r := range s.running {
		switch {
		case r.deadline.IsZero():
		case !now.Before(r.deadline):
			r.cancel(errTimedOut)
		case next.IsZero() || r.deadline.Before(next):
			next = r.deadline
		}
	}
	return next
}

// startDue starts the queued jobs PlanStarts picks and returns the next
// time a waiting job's retry comes due.
func (s *Scheduler) startDue(ctx context.Context, now time.Time) time.Time {
	queued, err := s.cat.ListJobs(ctx, catalog.JobFilter{State: StateQueued})
	if err != nil {
		s.logger.Error("list queued jobs", "err", err)
		return time.Time{}
	}
	slices.Reverse(queued) // oldest first
	s.mu.Lock()
	running := make([]catalog.Job, 0, len(s.running))
	for _, r := range s.running {
		running = append(running, r.job)
	}
	s.mu.Unlock()
	for _, p := range PlanStarts(queued, running, now, s.cfg.Clusters, s.healthy) {
		s.start(ctx, p.Job.ID, p.Cluster, now)
	}
	return nextRetry(queued, now)
}

// healthy asks the runner, when it can tell, whether a cluster takes jobs.
func (s *Scheduler) healthy(cluster string) bool {
	h, ok := s.runner.(HealthReporter)
	return !ok || h.ClusterHealthy(cluster)
}

// start moves a job from queued to running on cluster and runs its
// attempt. The plan was made on a snapshot, so it is checked again under
// the lock.
func (s *Scheduler) start(ctx context.Context, id, cluster string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	slots, onCluster := 0, 0
	for _, c := range s.cfg.Clusters {
		if c.Name == cluster {
			slots = c.Slots
		}
	}
	for _, r := range s.running {
		if r.job.Cluster == cluster {
			onCluster++
		}
	}
	if onCluster >= slots {
		return
	}
	j, err := s.cat.GetJob(ctx, id)
	if err != nil {
		s.logger.Error("read job to start", "job", id, "err", err)
		return
	}
	if j.State != StateQueued || j.NextAttemptAt.After(now) {
		return
	}
	key := ExclusionKey(j)
	for _, r := range s.running {
		if ExclusionKey(r.job) == key {
			return
		}
	}
	j.State, j.Attempt, j.StartedAt, j.Cluster = StateRunning, j.Attempt+1, now, cluster
	j.FinishedAt, j.NextAttemptAt = time.Time{}, time.Time{}
	j.LogPrefix = LogPrefix(j.ID, j.Attempt)
	if err := s.cat.UpdateJob(ctx, j); err != nil {
		s.logger.Error("start job", "job", id, "err", err)
		return
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	r := &run{job: j, cancel: cancel}
	if j.Timeout > 0 {
		r.deadline = now.Add(j.Timeout)
	}
	s.running[id] = r
	s.metrics.running.Set(float64(len(s.running)))
	s.logger.Info("job started", "job", id, "kind", j.Kind, "view", j.View, "cluster", cluster, "attempt", j.Attempt, "max_attempts", j.MaxAttempts)
	s.wg.Add(1)
	go s.execute(runCtx, r)
}

// execute runs one attempt and settles the job.
func (s *Scheduler) execute(ctx context.Context, r *run) {
	defer s.wg.Done()
	version, err := s.runAttempt(ctx, r.job)
	end := attemptEnd{version: version, err: err}
	if ctx.Err() != nil {
		end.cause = context.Cause(ctx)
	}
	r.cancel(nil)
	s.finish(ctx, r, end)
}

// runAttempt calls the Runner, turning a panic into the attempt's error so
// one bad job cannot take the server down.
func (s *Scheduler) runAttempt(ctx context.Context, j catalog.Job) (version int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("job runner panicked: %v", p)
		}
	}()
	return s.runner.Run(ctx, j)
}

func (s *Scheduler) finish(ctx context.Context, r *run, end attemptEnd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, r.job.ID)
	s.metrics.running.Set(float64(len(s.running)))
	j := settle(r.job, end, s.clock.Now(), s.backoff())
	// The attempt's context may be cancelled (kill, timeout, shutdown); its
	// outcome must still be recorded.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cat.UpdateJob(wctx, j); err != nil {
		s.logger.Error("record job outcome", "job", j.ID, "state", j.State, "err", err)
	}
	result := j.State
	if j.State == StateQueued {
		result = attemptResult(end)
	}
	s.metrics.attemptEnded(j, result)
	log := s.logger.Info
	if j.State != StateSucceeded {
		log = s.logger.Warn
	}
	log("job attempt ended", "job", j.ID, "kind", j.Kind, "view", j.View, "attempt", j.Attempt, "state", j.State,
		"next_attempt_at", j.NextAttemptAt, "err", j.Error)
	s.notify()
}

// attemptResult names how an attempt that will be retried ended, for metrics.
func attemptResult(end attemptEnd) string {
	switch {
	case errors.Is(end.cause, errTimedOut):
		return StateTimedOut
	case end.interrupted || end.cause != nil:
		return "interrupted"
	}
	return StateFailed
}
