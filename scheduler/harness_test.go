package scheduler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
)

// fakeClock is a Clock that moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	waits   int // WaitUntil calls that had to wait
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) WaitUntil(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: t, ch: ch})
	c.waits++
	return ch
}

// set moves the clock to t and wakes the waits it reached; it returns how
// many it woke and how many waits had begun before.
func (c *fakeClock) set(t time.Time) (woken, waitsBefore int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
			woken++
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
	return woken, c.waits
}

func (c *fakeClock) waitCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waits
}

// scriptRunner is the test's Runner: each attempt calls script, and the
// runner records which attempts ran and how many ran at once.
type scriptRunner struct {
	script func(ctx context.Context, j catalog.Job) (int64, error)

	mu          sync.Mutex
	attempts    []catalog.Job
	active      map[string]int // by view
	activeTotal int
	maxTotal    int
	overlap     error // set if two attempts of one view ever ran at once
}

func (r *scriptRunner) Run(ctx context.Context, j catalog.Job) (int64, error) {
	r.mu.Lock()
	r.attempts = append(r.attempts, j)
	if r.active[j.View] > 0 {
		r.overlap = fmt.Errorf("two attempts of view %q ran at once", j.View)
	}
	r.active[j.View]++
	r.activeTotal++
	r.maxTotal = max(r.maxTotal, r.activeTotal)
	script := r.script
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active[j.View]--
		r.activeTotal--
		r.mu.Unlock()
	}()
	return script(ctx, j)
}

func (r *scriptRunner) attemptsOf(id string) []catalog.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []catalog.Job
	for _, j := range r.attempts {
		if j.ID == id {
			out = append(out, j)
		}
	}
	return out
}

func (r *scriptRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.attempts)
}

// succeed is a script: every attempt publishes version 1.
func succeed(context.Context, catalog.Job) (int64, error) { return 1, nil }

// untilCancelled is a script: the attempt runs until its context ends, as an
// executor killed by it would.
func untilCancelled(ctx context.Context, _ catalog.Job) (int64, error) {
	<-ctx.Done()
	return 0, fmt.Errorf("executor stopped: %w", ctx.Err())
}

// harness runs a Scheduler on a real catalog with a fake clock and a
// scripted runner, and can restart it as a new process would.
type harness struct {
	t      *testing.T
	cfg    Config
	cat    *catalog.Store
	clock  *fakeClock
	runner *scriptRunner
	s      *Scheduler
	stopFn context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, cfg Config, script func(context.Context, catalog.Job) (int64, error)) *harness {
	t.Helper()
	cat, err := catalog.Open(t.Context(), filepath.Join(t.TempDir(), "catalog.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	spec := dataset.Spec{Name: "clicks", TimeColumn: "ts", Columns: []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "page", Type: dataset.Varchar}}}
	if err := cat.CreateDataset(t.Context(), catalog.Dataset{Spec: spec}); err != nil {
		t.Fatal(err)
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff, cfg.MaxRetryBackoff = 10*time.Second, time.Minute
	}
	h := &harness{t: t, cfg: cfg, cat: cat, clock: newFakeClock(t0),
		runner: &scriptRunner{script: script, active: map[string]int{}}}
	t.Cleanup(func() {
		h.stop()
		h.runner.mu.Lock()
		defer h.runner.mu.Unlock()
		if h.runner.overlap != nil {
			t.Error(h.runner.overlap)
		}
	})
	h.s = h.newScheduler()
	return h
}

func (h *harness) newScheduler() *Scheduler {
	s, err := New(h.cfg, h.cat, h.runner, h.clock, nil, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// view creates a view with the given policy (timeout 0 = the default).
func (h *harness) view(name string, maxRetries int, timeout time.Duration) {
	h.t.Helper()
	err := h.cat.CreateView(h.t.Context(), catalog.View{Name: name, Dataset: "clicks", SQL: "SELECT page, count(*) AS n FROM clicks GROUP BY page",
		MaxRetries: maxRetries, Timeout: timeout})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) start() {
	h.t.Helper()
	if h.stopFn != nil {
		h.t.Fatal("harness: scheduler already running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stopFn, h.done = cancel, make(chan error, 1)
	s := h.s
	go func() { h.done <- s.Run(ctx) }()
}

// stop ends Run and waits for it; Run returns only once no attempt runs.
func (h *harness) stop() {
	if h.stopFn == nil {
		return
	}
	h.stopFn()
	h.stopFn = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return 10s after its context ended")
	}
}

// restart stops the scheduler, moves the clock to at (the downtime), and
// starts a new one on the same catalog; schedule sets it up as the server
// would before Run.
func (h *harness) restart(at time.Time, schedule func(*Scheduler)) {
	h.t.Helper()
	h.stop()
	h.clock.set(at)
	h.s = h.newScheduler()
	schedule(h.s)
	h.start()
}

// advance moves the fake clock to at; if that woke the loop, it waits
// until the loop has finished its pass and sleeps again, so a check made
// afterwards sees what the pass did.
func (h *harness) advance(at time.Time) {
	h.t.Helper()
	woken, before := h.clock.set(at)
	if woken == 0 {
		return
	}
	h.eventually("the loop sleeps again after "+at.String(), func() bool { return h.clock.waitCount() > before })
}

func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) job(id string) catalog.Job {
	h.t.Helper()
	j, err := h.cat.GetJob(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// waitState waits until the job is in state and returns it.
func (h *harness) waitState(id, state string) catalog.Job {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := h.cat.GetJob(context.Background(), id)
		switch {
		case err == nil && j.State == state:
			return j
		case err != nil && !errors.Is(err, catalog.ErrNotFound):
			h.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %s is %s (attempt %d, error %q), want %s", id, j.State, j.Attempt, j.Error, state)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) jobs(f catalog.JobFilter) []catalog.Job {
	h.t.Helper()
	js, err := h.cat.ListJobs(context.Background(), f)
	if err != nil {
		h.t.Fatal(err)
	}
	return js
}

func (h *harness) submit(view string) catalog.Job {
	h.t.Helper()
	j, err := h.s.Submit(context.Background(), SubmitRequest{Kind: KindViewBuild, View: view})
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

var errBoom = errors.New("executor exited with 1: boom")
