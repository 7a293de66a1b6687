package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
)

func TestCronFiresAtFakeTimes(t *testing.T) {
	h := newHarness(t, Config{}, succeed)
	h.view("quarter", 3, 0)
	h.view("tokyo", 3, 0)
	if err := h.s.Schedule("quarter", "*/15 * * * *", CatchupSkip); err != nil {
		t.Fatal(err)
	}
	// 09:00 in Tokyo is 00:00 UTC.
	if err := h.s.Schedule("tokyo", "CRON_TZ=Asia/Tokyo 0 9 * * *", CatchupSkip); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.eventually("the schedules' first pass", func() bool {
		last, err := h.cat.LastFire(context.Background(), "tokyo")
		return err == nil && last.Equal(t0)
	})

	h.advance(hm(10, 14).Add(59 * time.Second))
	if js := h.jobs(catalog.JobFilter{}); len(js) != 0 {
		t.Fatalf("jobs before the first fire: %+v", js)
	}
	h.advance(hm(10, 15))
	j := h.waitState(fireJobID("quarter", hm(10, 15)), StateSucceeded)
	if !j.CreatedAt.Equal(hm(10, 15)) || j.Kind != KindViewBuild || j.View != "quarter" || j.Version != 1 {
		t.Fatalf("fired job = %+v", j)
	}
	h.advance(hm(10, 29))
	h.advance(hm(10, 30))
	h.waitState(fireJobID("quarter", hm(10, 30)), StateSucceeded)
	if n := len(h.jobs(catalog.JobFilter{View: "quarter"})); n != 2 {
		t.Fatalf("%d jobs of quarter by 10:30, want 2", n)
	}
	if n := len(h.jobs(catalog.JobFilter{View: "tokyo"})); n != 0 {
		t.Fatalf("tokyo fired before 00:00 UTC")
	}

	midnight := time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC)
	h.advance(midnight.Add(-time.Second))
	if n := len(h.jobs(catalog.JobFilter{View: "tokyo"})); n != 0 {
		t.Fatalf("tokyo fired before 00:00 UTC")
	}
	// quarter's fires from 10:45 to 23:45 came due in one jump of the
	// clock: they coalesced into one build, for the latest.
	h.waitState(fireJobID("quarter", midnight.Add(-15*time.Minute)), StateSucceeded)
	h.advance(midnight)
	h.waitState(fireJobID("tokyo", midnight), StateSucceeded)
	h.waitState(fireJobID("quarter", midnight), StateSucceeded)
	if n := len(h.jobs(catalog.JobFilter{View: "quarter"})); n != 4 {
		t.Fatalf("%d jobs of quarter by midnight, want 4", n)
	}
	if last, err := h.cat.LastFire(context.Background(), "quarter"); err != nil || !last.Equal(midnight) {
		t.Fatalf("last fire recorded = %v, %v; want %v", last, err, midnight)
	}

	// Unscheduled, a view fires no more.
	h.s.Unschedule("quarter")
	h.advance(midnight.Add(15 * time.Minute))
	h.advance(midnight.Add(16 * time.Minute))
	if n := len(h.jobs(catalog.JobFilter{View: "quarter"})); n != 4 {
		t.Fatalf("an unscheduled view fired: %d jobs", n)
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, Config{RetryBackoff: 10 * time.Second, MaxRetryBackoff: 15 * time.Second}, func(ctx context.Context, j catalog.Job) (int64, error) {
		if calls.Add(1) < 3 {
			return 0, errBoom
		}
		return 4, nil
	})
	h.view("v", 3, 0)
	h.start()
	j := h.submit("v")
	if j.MaxAttempts != 4 || j.Timeout != DefaultTimeout {
		t.Fatalf("submitted job = %+v, want 4 attempts and the default timeout", j)
	}

	j = h.waitState(j.ID, StateQueued)
	h.eventually("attempt 1 to fail", func() bool { j = h.job(j.ID); return j.Attempt == 1 && j.Error != "" })
	if j.Error != errBoom.Error() || !j.NextAttemptAt.Equal(t0.Add(10*time.Second)) || j.LogPrefix != "logs/jobs/"+j.ID+"/attempt-1/" {
		t.Fatalf("after attempt 1: %+v; want the error, a retry at +10s and attempt 1's log prefix", j)
	}
	h.advance(t0.Add(9 * time.Second))
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d attempts before the backoff ended, want 1", n)
	}
	h.advance(t0.Add(10 * time.Second))
	h.eventually("attempt 2 to fail", func() bool { j = h.job(j.ID); return j.Attempt == 2 && j.State == StateQueued })
	// 20s doubled, capped at 15s.
	if !j.NextAttemptAt.Equal(t0.Add(25*time.Second)) || j.LogPrefix != "logs/jobs/"+j.ID+"/attempt-2/" {
		t.Fatalf("after attempt 2: %+v; want a retry at +25s", j)
	}
	h.advance(t0.Add(24 * time.Second))
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d attempts before the second backoff ended, want 2", n)
	}
	h.advance(t0.Add(25 * time.Second))
	j = h.waitState(j.ID, StateSucceeded)
	if j.Attempt != 3 || j.Version != 4 || j.Error != "" || !j.StartedAt.Equal(t0.Add(25*time.Second)) || !j.NextAttemptAt.IsZero() {
		t.Fatalf("succeeded job = %+v", j)
	}
	// The runner saw each attempt with its number and log prefix.
	for i, a := range h.runner.attemptsOf(j.ID) {
		if a.Attempt != i+1 || a.LogPrefix != LogPrefix(j.ID, i+1) || a.State != StateRunning {
			t.Errorf("runner got attempt %d as %+v", i+1, a)
		}
	}
}

func TestMaxAttemptsThenFailed(t *testing.T) {
	h := newHarness(t, Config{}, func(context.Context, catalog.Job) (int64, error) { return 0, errBoom })
	h.view("v", 1, 0)
	h.view("none", 0, 0)
	h.start()
	j := h.submit("v")
	h.eventually("attempt 1 to fail", func() bool { j = h.job(j.ID); return j.Attempt == 1 && j.State == StateQueued })
	h.advance(t0.Add(10 * time.Second))
	j = h.waitState(j.ID, StateFailed)
	if j.Attempt != 2 || j.MaxAttempts != 2 || j.Error != errBoom.Error() || !j.NextAttemptAt.IsZero() || !j.FinishedAt.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("failed job = %+v", j)
	}
	n := len(h.runner.attemptsOf(j.ID))
	h.advance(t0.Add(time.Hour))
	if got := len(h.runner.attemptsOf(j.ID)); got != 2 || n != 2 {
		t.Fatalf("a failed job ran %d times (then %d), want 2", n, got)
	}
	// max_retries 0: one attempt.
	k := h.submit("none")
	if k = h.waitState(k.ID, StateFailed); k.Attempt != 1 {
		t.Fatalf("job without retries = %+v", k)
	}
}

func TestTimeout(t *testing.T) {
	// A long poll: only the deadline itself may wake the loop in time.
	h := newHarness(t, Config{Poll: 24 * time.Hour}, untilCancelled)
	h.view("slow", 1, time.Minute)
	h.start()
	j := h.submit("slow")
	if j.Timeout != time.Minute {
		t.Fatalf("job timeout %s, want the view's 1m", j.Timeout)
	}
	h.waitState(j.ID, StateRunning)
	h.advance(t0.Add(59 * time.Second))
	if j = h.job(j.ID); j.State != StateRunning {
		t.Fatalf("job stopped before its timeout: %+v", j)
	}
	h.advance(t0.Add(time.Minute))
	h.eventually("attempt 1 to time out", func() bool { j = h.job(j.ID); return j.State == StateQueued })
	if j.Error != "attempt 1 timed out after 1m0s" || !j.NextAttemptAt.Equal(t0.Add(70*time.Second)) {
		t.Fatalf("after the first timeout: %+v", j)
	}
	h.advance(t0.Add(70 * time.Second))
	h.waitState(j.ID, StateRunning)
	h.advance(t0.Add(130 * time.Second))
	j = h.waitState(j.ID, StateTimedOut)
	if j.Attempt != 2 || j.Error != "attempt 2 timed out after 1m0s" {
		t.Fatalf("timed-out job = %+v", j)
	}
}

func TestKillQueuedAndRunning(t *testing.T) {
	var cancelled atomic.Int32
	h := newHarness(t, Config{}, func(ctx context.Context, j catalog.Job) (int64, error) {
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), errKilled) {
			cancelled.Add(1)
		}
		return 0, ctx.Err()
	})
	h.view("v", 3, 0)
	h.start()
	running := h.submit("v")
	h.waitState(running.ID, StateRunning)
	// A second build of v waits for the first: it is queued, not absorbed.
	queued := h.submit("v")
	if queued.ID == running.ID || queued.State != StateQueued {
		t.Fatalf("second submit = %+v", queued)
	}

	k, err := h.s.Kill(context.Background(), queued.ID)
	if err != nil || k.State != StateKilled || k.Error != "killed on request" {
		t.Fatalf("Kill(queued) = %+v, %v; want killed at once", k, err)
	}
	k, err = h.s.Kill(context.Background(), running.ID)
	if err != nil || k.State != StateRunning {
		t.Fatalf("Kill(running) = %+v, %v; want it still running while it stops", k, err)
	}
	k = h.waitState(running.ID, StateKilled)
	if cancelled.Load() != 1 || k.Error != "killed on request during attempt 1" || k.Attempt != 1 {
		t.Fatalf("killed job = %+v, runner saw %d kills", k, cancelled.Load())
	}
	if n := len(h.runner.attemptsOf(queued.ID)); n != 0 {
		t.Fatalf("the killed queued job ran %d times", n)
	}
	_, err = h.s.Kill(context.Background(), running.ID)
	if !errors.Is(err, ErrFinished) {
		t.Fatalf("Kill(killed) = %v, want ErrFinished", err)
	}
	_, err = h.s.Kill(context.Background(), "nope")
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Kill(missing) = %v, want catalog.ErrNotFound", err)
	}
	// A job waiting to retry keeps its last error in the kill message.
	h.runner.mu.Lock()
	h.runner.script = func(context.Context, catalog.Job) (int64, error) { return 0, errBoom }
	h.runner.mu.Unlock()
	retry := h.submit("v")
	h.eventually("attempt 1 to fail", func() bool { j := h.job(retry.ID); return j.Attempt == 1 && j.State == StateQueued })
	k, err = h.s.Kill(context.Background(), retry.ID)
	if err != nil || k.State != StateKilled || !strings.Contains(k.Error, "attempt 1 had failed: "+errBoom.Error()) {
		t.Fatalf("Kill(waiting to retry) = %+v, %v", k, err)
	}
}

func TestCatchupAfterDowntime(t *testing.T) {
	down := hm(15, 30) // fires at 11:00 .. 15:00 missed
	for _, tc := range []struct {
		policy Catchup
		fires  []time.Time
	}{
		{CatchupSkip, nil},
		{CatchupOnce, []time.Time{hm(15, 0)}},
		{CatchupAll, []time.Time{hm(11, 0), hm(12, 0), hm(13, 0), hm(14, 0), hm(15, 0)}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			h := newHarness(t, Config{}, succeed)
			h.view("hourly", 3, 0)
			schedule := func(s *Scheduler) {
				if err := s.Schedule("hourly", "0 * * * *", tc.policy); err != nil {
					t.Fatal(err)
				}
			}
			schedule(h.s)
			h.start()
			h.eventually("the first last fire", func() bool {
				last, err := h.cat.LastFire(context.Background(), "hourly")
				return err == nil && last.Equal(t0)
			})
			h.restart(down, schedule)
			h.eventually("the catch-up pass", func() bool {
				last, err := h.cat.LastFire(context.Background(), "hourly")
				return err == nil && last.Equal(hm(15, 0))
			})
			for _, f := range tc.fires {
				h.waitState(fireJobID("hourly", f), StateSucceeded)
			}
			if js := h.jobs(catalog.JobFilter{}); len(js) != len(tc.fires) {
				t.Fatalf("%d jobs after the downtime, want %d: %+v", len(js), len(tc.fires), js)
			}
			// Then the schedule goes on as usual.
			h.advance(hm(16, 0))
			h.waitState(fireJobID("hourly", hm(16, 0)), StateSucceeded)
			if n := h.runner.count(); n != len(tc.fires)+1 {
				t.Fatalf("runner ran %d builds, want %d", n, len(tc.fires)+1)
			}
		})
	}
}

func TestExclusivityAndWorkers(t *testing.T) {
	release := map[string]chan struct{}{}
	for _, v := range []string{"a", "b", "c"} {
		release[v] = make(chan struct{})
	}
	h := newHarness(t, Config{Workers: 2}, func(ctx context.Context, j catalog.Job) (int64, error) {
		select {
		case <-release[j.View]:
			return 1, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	for _, v := range []string{"a", "b", "c"} {
		h.view(v, 0, 0)
	}
	a1 := h.submit("a")
	a1.State = StateRunning // what the runner sees
	b := h.submit("b")
	// Created at the same fake instant; IDs break the tie, so create in order.
	h.clock.set(t0.Add(time.Second))
	a2, err := h.s.Submit(context.Background(), SubmitRequest{Kind: KindViewBuild, View: "a", Params: map[string]string{"full": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.set(t0.Add(2 * time.Second))
	c := h.submit("c")
	h.start()

	h.waitState(a1.ID, StateRunning)
	h.waitState(b.ID, StateRunning)
	if h.job(a2.ID).State != StateQueued || h.job(c.ID).State != StateQueued {
		t.Fatal("a third job started with 2 workers, or a second job of view a started")
	}
	// Finishing a frees a worker and the view: a2 (older than c) takes both.
	release["a"] <- struct{}{}
	h.waitState(a1.ID, StateSucceeded)
	h.waitState(a2.ID, StateRunning)
	if h.job(c.ID).State != StateQueued {
		t.Fatal("c started with both workers busy")
	}
	close(release["b"])
	h.waitState(c.ID, StateRunning)
	close(release["a"])
	close(release["c"])
	for _, id := range []string{a2.ID, b.ID, c.ID} {
		h.waitState(id, StateSucceeded)
	}
	h.runner.mu.Lock()
	defer h.runner.mu.Unlock()
	if h.runner.maxTotal != 2 {
		t.Fatalf("at most %d attempts ran at once, want 2", h.runner.maxTotal)
	}
}

func TestRecoverJobsLeftRunning(t *testing.T) {
	h := newHarness(t, Config{}, succeed)
	h.view("v", 1, 0)
	h.view("w", 0, 0)
	ctx := context.Background()
	// A dead process left these running.
	retryable := catalog.Job{ID: "r", Kind: KindViewBuild, View: "v", State: StateRunning, Attempt: 1, MaxAttempts: 2, StartedAt: t0.Add(-time.Minute), CreatedAt: t0.Add(-time.Hour)}
	spent := catalog.Job{ID: "s", Kind: KindViewBuild, View: "w", State: StateRunning, Attempt: 1, MaxAttempts: 1, StartedAt: t0.Add(-time.Minute), CreatedAt: t0.Add(-time.Hour)}
	for _, j := range []catalog.Job{retryable, spent} {
		if err := h.cat.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	j := h.waitState("r", StateSucceeded)
	if j.Attempt != 2 {
		t.Fatalf("recovered job = %+v, want it retried as attempt 2", j)
	}
	s := h.waitState("s", StateFailed)
	if s.Error != "interrupted: the server stopped during attempt 1" || len(h.runner.attemptsOf("s")) != 0 {
		t.Fatalf("job without attempts left = %+v", s)
	}
}

func TestShutdownRequeuesRunningJob(t *testing.T) {
	h := newHarness(t, Config{}, untilCancelled)
	h.view("v", 3, 0)
	h.start()
	j := h.submit("v")
	h.waitState(j.ID, StateRunning)
	h.stop() // returns only after the attempt has stopped and been recorded
	j = h.job(j.ID)
	if j.State != StateQueued || j.Attempt != 1 || !j.NextAttemptAt.Equal(t0) || !strings.HasPrefix(j.Error, "interrupted") {
		t.Fatalf("job after shutdown = %+v; want queued again at once", j)
	}
	// The next process runs it again.
	h.runner.mu.Lock()
	h.runner.script = succeed
	h.runner.mu.Unlock()
	h.restart(t0.Add(time.Minute), func(*Scheduler) {})
	if j = h.waitState(j.ID, StateSucceeded); j.Attempt != 2 {
		t.Fatalf("job after restart = %+v", j)
	}
}

func TestSubmit(t *testing.T) {
	h := newHarness(t, Config{}, succeed)
	h.view("v", 5, 90*time.Second)
	ctx := context.Background()
	// Not started: jobs stay queued.
	a := h.submit("v")
	if a.MaxAttempts != 6 || a.Timeout != 90*time.Second || a.State != StateQueued || !a.CreatedAt.Equal(t0) {
		t.Fatalf("job = %+v; want the view's policy", a)
	}
	if b := h.submit("v"); b.ID != a.ID {
		t.Fatalf("a duplicate submit created %s; the queued %s must absorb it", b.ID, a.ID)
	}
	full, err := h.s.Submit(ctx, SubmitRequest{Kind: KindViewBuild, View: "v", Params: map[string]string{"full": "true"}})
	if err != nil || full.ID == a.ID || full.Params["full"] != "true" {
		t.Fatalf("submit with other params = %+v, %v; want a new job", full, err)
	}
	bf := SubmitRequest{Kind: KindBackfill, View: "v", Params: map[string]string{"from": "2025-03-01", "to": "2025-03-02"}, ID: "backfill-march"}
	j1, err := h.s.Submit(ctx, bf)
	if err != nil || j1.ID != "backfill-march" {
		t.Fatalf("submit with an ID = %+v, %v", j1, err)
	}
	if _, err := h.s.Kill(ctx, j1.ID); err != nil {
		t.Fatal(err)
	}
	// The same ID again returns the first job, whatever its state.
	if j2, err := h.s.Submit(ctx, bf); err != nil || j2.ID != j1.ID || j2.State != StateKilled {
		t.Fatalf("resubmit = %+v, %v; want the killed job", j2, err)
	}
	bf.Params = map[string]string{"from": "2025-04-01", "to": "2025-04-02"}
	if _, err := h.s.Submit(ctx, bf); !errors.Is(err, ErrIDInUse) {
		t.Fatalf("reusing an ID for other work = %v, want ErrIDInUse", err)
	}
	comp, err := h.s.Submit(ctx, SubmitRequest{Kind: KindCompaction, Params: map[string]string{"dataset": "clicks"}})
	if err != nil || comp.MaxAttempts != DefaultMaxRetries+1 || comp.Timeout != DefaultTimeout {
		t.Fatalf("compaction = %+v, %v; want the default policy", comp, err)
	}

	for _, bad := range []SubmitRequest{
		{Kind: "sql", View: "v"},
		{Kind: KindViewBuild},
		{Kind: KindViewBuild, View: "v", Params: map[string]string{"full": "yes please"}},
		{Kind: KindBackfill, View: "v", Params: map[string]string{"from": "2025-03-01"}},
		{Kind: KindCompaction},
		{Kind: KindViewBuild, View: "v", ID: "../../etc"},
		{Kind: KindSQL},
		{Kind: KindSQL, SQL: "SELECT 1", Output: "out.csv"},
		{Kind: KindSQL, SQL: "SELECT $x", Params: map[string]string{"x y": "1"}},
		{Kind: KindViewBuild, View: "v", SQL: "SELECT 1"},
		{Kind: KindSQL, SQL: "SELECT 1", Criteria: [][]string{{"gpu"}}},
	} {
		if _, err := h.s.Submit(ctx, bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Submit(%+v) = %v, want ErrInvalidRequest", bad, err)
		}
	}
	if _, err := h.s.Submit(ctx, SubmitRequest{Kind: KindViewBuild, View: "nope"}); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Submit(missing view) = %v, want catalog.ErrNotFound", err)
	}
}

// TestSQLJobsAndTheUserLimit: a sql job is not retried unless asked and is
// never absorbed by another; a user with MaxActivePerUser queued or running
// jobs is refused another until one finishes.
func TestSQLJobsAndTheUserLimit(t *testing.T) {
	h := newHarness(t, Config{MaxActivePerUser: 2}, succeed)
	ctx := context.Background()
	req := SubmitRequest{Kind: KindSQL, User: "alice", SQL: "SELECT 1", Output: "jobs.one", Timeout: time.Minute}
	a, err := h.s.Submit(ctx, req)
	if err != nil || a.MaxAttempts != 1 || a.Timeout != time.Minute || a.User != "alice" || a.Output != "jobs.one" {
		t.Fatalf("sql job = %+v, %v; want one attempt, alice's, its timeout and output", a, err)
	}
	b, err := h.s.Submit(ctx, req)
	if err != nil || b.ID == a.ID {
		t.Fatalf("a second identical sql job = %+v, %v; want a job of its own", b, err)
	}
	if _, err := h.s.Submit(ctx, req); !errors.Is(err, ErrUserLimit) {
		t.Fatalf("alice's third active job: %v, want ErrUserLimit", err)
	}
	if _, err := h.s.Submit(ctx, SubmitRequest{Kind: KindSQL, User: "bob", SQL: "SELECT 1", MaxAttempts: 3}); err != nil {
		t.Fatalf("bob is not limited by alice's jobs: %v", err)
	}
	h.start()
	h.waitState(a.ID, StateSucceeded)
	h.waitState(b.ID, StateSucceeded)
	if j := h.job(a.ID); j.Cluster != LocalCluster {
		t.Fatalf("cluster = %q, want %s", j.Cluster, LocalCluster)
	}
	if _, err := h.s.Submit(ctx, req); err != nil {
		t.Fatalf("after her jobs finished alice may submit again: %v", err)
	}
}

func TestRunnerPanicFailsTheAttempt(t *testing.T) {
	h := newHarness(t, Config{}, func(context.Context, catalog.Job) (int64, error) { panic("nil map") })
	h.view("v", 0, 0)
	h.start()
	j := h.waitState(h.submit("v").ID, StateFailed)
	if j.Error != "job runner panicked: nil map" {
		t.Fatalf("job = %+v", j)
	}
}
