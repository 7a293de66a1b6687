package scheduler

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
)

// notebookSchedule is a job schedule of alice's notebook, created at t0.
func notebookSchedule(name, spec string, policy Catchup) catalog.JobSchedule {
	return catalog.JobSchedule{Name: name, Cron: spec, Catchup: string(policy), CreatedAt: t0, Job: catalog.Job{
		Kind: KindNotebook, User: "alice", SQL: `{"cells":[],"nbformat":4,"nbformat_minor":5,"metadata":{}}`,
		Params: map[string]string{"region": "eu"}, Timeout: 5 * time.Minute, MaxAttempts: 2,
	}}
}

// jobSchedule stores js in the catalog, as the API does before scheduling it.
func (h *harness) jobSchedule(js catalog.JobSchedule) catalog.JobSchedule {
	h.t.Helper()
	if err := h.cat.CreateJobSchedule(h.t.Context(), js); err != nil {
		h.t.Fatal(err)
	}
	return js
}

// startAndSettle starts the scheduler and waits for its first pass to end.
func (h *harness) startAndSettle() {
	h.t.Helper()
	before := h.clock.waitCount()
	h.start()
	h.eventually("the first pass", func() bool { return h.clock.waitCount() > before })
}

func (h *harness) jobLastFire(name string) time.Time {
	h.t.Helper()
	last, err := h.cat.JobScheduleLastFire(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return last
}

func (h *harness) scheduledJobIDs(name string) []string {
	h.t.Helper()
	var ids []string
	for _, j := range h.jobs(catalog.JobFilter{Schedule: name}) {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestJobScheduleFires(t *testing.T) {
	h := newHarness(t, Config{}, succeed)
	js := h.jobSchedule(notebookSchedule("nb", "*/15 * * * *", CatchupSkip))
	if err := h.s.ScheduleJob(js); err != nil {
		t.Fatal(err)
	}
	h.startAndSettle()
	h.advance(hm(10, 14))
	if ids := h.scheduledJobIDs("nb"); len(ids) != 0 {
		t.Fatalf("jobs before the first fire: %v", ids)
	}
	if last := h.jobLastFire("nb"); !last.IsZero() {
		t.Fatalf("last fire %v recorded before the first fire", last)
	}

	h.advance(hm(10, 15))
	id := JobFireID("nb", hm(10, 15))
	if id != "nb-20250314T101500Z" {
		t.Fatalf("JobFireID = %q", id)
	}
	j := h.waitState(id, StateSucceeded)
	want := js.Job
	if j.Kind != want.Kind || j.User != "alice" || j.SQL != want.SQL || !maps.Equal(j.Params, want.Params) ||
		j.Timeout != want.Timeout || j.MaxAttempts != 2 || j.Schedule != "nb" || !j.CreatedAt.Equal(hm(10, 15)) {
		t.Fatalf("fired job = %+v; want the template's fields, alice's, of schedule nb", j)
	}
	if last := h.jobLastFire("nb"); !last.Equal(hm(10, 15)) {
		t.Fatalf("last fire = %v, want 10:15", last)
	}
	// Fires that came due in one jump coalesce into one job, for the latest.
	h.advance(hm(11, 5))
	h.waitState(JobFireID("nb", hm(11, 0)), StateSucceeded)
	if ids := h.scheduledJobIDs("nb"); len(ids) != 2 {
		t.Fatalf("jobs by 11:05 = %v, want 2", ids)
	}
	if msg := h.s.JobScheduleError("nb"); msg != "" {
		t.Fatalf("JobScheduleError = %q after fires that queued jobs", msg)
	}

	// Scheduling it again with the same settings changes nothing; new
	// settings replace it.
	if err := h.s.ScheduleJob(js); err != nil {
		t.Fatal(err)
	}
	h.advance(hm(11, 15))
	h.waitState(JobFireID("nb", hm(11, 15)), StateSucceeded)
	js.Job.Params = map[string]string{"region": "us"}
	if err := h.s.ScheduleJob(js); err != nil {
		t.Fatal(err)
	}
	h.advance(hm(11, 30))
	if j := h.waitState(JobFireID("nb", hm(11, 30)), StateSucceeded); j.Params["region"] != "us" {
		t.Fatalf("job after the template changed = %+v", j)
	}
}

func TestJobScheduleDeletionStopsFires(t *testing.T) {
	h := newHarness(t, Config{}, succeed)
	js := h.jobSchedule(notebookSchedule("nb", "* * * * *", CatchupSkip))
	other := h.jobSchedule(notebookSchedule("other", "* * * * *", CatchupSkip))
	for _, s := range []catalog.JobSchedule{js, other} {
		if err := h.s.ScheduleJob(s); err != nil {
			t.Fatal(err)
		}
	}
	h.startAndSettle()
	h.advance(hm(10, 8))
	h.waitState(JobFireID("nb", hm(10, 8)), StateSucceeded)
	h.s.UnscheduleJob("nb")
	h.advance(hm(10, 9))
	h.advance(hm(10, 10))
	h.waitState(JobFireID("other", hm(10, 10)), StateSucceeded)
	if ids := h.scheduledJobIDs("nb"); !slices.Equal(ids, []string{JobFireID("nb", hm(10, 8))}) {
		t.Fatalf("jobs of the unscheduled nb = %v, want only the one before", ids)
	}
	// A view and a job schedule of the same name are apart.
	h.view("nb", 0, 0)
	if err := h.s.Schedule("nb", "* * * * *", CatchupSkip); err != nil {
		t.Fatal(err)
	}
	h.advance(hm(10, 11))
	h.advance(hm(10, 12))
	h.waitState(fireJobID("nb", hm(10, 12)), StateSucceeded)
	if ids := h.scheduledJobIDs("nb"); len(ids) != 1 {
		t.Fatalf("the view's schedule fired job schedule nb: %v", ids)
	}
}

func TestJobScheduleCatchupAfterDowntime(t *testing.T) {
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
			js := h.jobSchedule(notebookSchedule("hourly", "0 * * * *", tc.policy))
			schedule := func(s *Scheduler) {
				if err := s.ScheduleJob(js); err != nil {
					t.Fatal(err)
				}
			}
			schedule(h.s)
			h.startAndSettle()
			h.advance(hm(10, 30))
			h.restart(down, schedule)
			h.eventually("the catch-up pass", func() bool {
				last, err := h.cat.JobScheduleLastFire(context.Background(), "hourly")
				return err == nil && last.Equal(hm(15, 0))
			})
			var want []string
			for _, f := range tc.fires {
				h.waitState(JobFireID("hourly", f), StateSucceeded)
				want = append(want, JobFireID("hourly", f))
			}
			if ids := h.scheduledJobIDs("hourly"); !slices.Equal(ids, want) {
				t.Fatalf("jobs after the downtime = %v, want %v", ids, want)
			}
			h.advance(hm(16, 0))
			h.waitState(JobFireID("hourly", hm(16, 0)), StateSucceeded)
		})
	}
}

// TestJobScheduleFiresAfterCreationBeforeAnyPass: a schedule whose server
// stopped before its first fire catches up from its creation, not from the
// restart.
func TestJobScheduleFiresAfterCreationBeforeAnyPass(t *testing.T) {
	h := newHarness(t, Config{}, succeed)
	js := h.jobSchedule(notebookSchedule("hourly", "0 * * * *", CatchupOnce))
	h.restart(hm(12, 30), func(s *Scheduler) {
		if err := s.ScheduleJob(js); err != nil {
			t.Fatal(err)
		}
	})
	h.waitState(JobFireID("hourly", hm(12, 0)), StateSucceeded)
	if ids := h.scheduledJobIDs("hourly"); len(ids) != 1 {
		t.Fatalf("jobs = %v, want the one catch-up fire", ids)
	}
}

// crashingCatalog loses every record of a job schedule's last fire, as a
// process that dies between submitting a fire's job and recording the fire.
type crashingCatalog struct{ *catalog.Store }

func (crashingCatalog) SetJobScheduleLastFire(context.Context, string, time.Time) error {
	return errors.New("the process died")
}

func TestJobScheduleRestartWithoutDoubleSubmit(t *testing.T) {
	for _, policy := range []Catchup{CatchupSkip, CatchupOnce, CatchupAll} {
		t.Run(string(policy), func(t *testing.T) {
			h := newHarness(t, Config{}, succeed)
			js := h.jobSchedule(notebookSchedule("hourly", "0 * * * *", policy))
			s, err := New(h.cfg, crashingCatalog{h.cat}, h.runner, h.clock, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.ScheduleJob(js); err != nil {
				t.Fatal(err)
			}
			h.s = s
			h.startAndSettle()
			h.advance(hm(11, 0))
			fired := JobFireID("hourly", hm(11, 0))
			h.waitState(fired, StateSucceeded)
			if last := h.jobLastFire("hourly"); !last.IsZero() {
				t.Fatalf("last fire %v recorded through a catalog that loses it", last)
			}
			// The next process finds 11:00 unrecorded and handles it again.
			h.restart(hm(11, 30), func(s *Scheduler) {
				if err := s.ScheduleJob(js); err != nil {
					t.Fatal(err)
				}
			})
			h.eventually("the restarted pass to record 11:00", func() bool {
				last, err := h.cat.JobScheduleLastFire(context.Background(), "hourly")
				return err == nil && last.Equal(hm(11, 0))
			})
			if ids := h.scheduledJobIDs("hourly"); !slices.Equal(ids, []string{fired}) {
				t.Fatalf("jobs after the restart = %v, want only %s", ids, fired)
			}
			if n := len(h.runner.attemptsOf(fired)); n != 1 {
				t.Fatalf("the 11:00 job ran %d times, want once", n)
			}
		})
	}
}

func TestJobScheduleUserLimit(t *testing.T) {
	h := newHarness(t, Config{MaxActivePerUser: 1}, untilCancelled)
	js := h.jobSchedule(notebookSchedule("nb", "* * * * *", CatchupSkip))
	if err := h.s.ScheduleJob(js); err != nil {
		t.Fatal(err)
	}
	h.startAndSettle()
	h.advance(hm(10, 8))
	first := h.waitState(JobFireID("nb", hm(10, 8)), StateRunning)
	// alice has one active job, her limit: the next fire queues nothing and
	// the schedule says why.
	h.advance(hm(10, 9))
	if ids := h.scheduledJobIDs("nb"); len(ids) != 1 {
		t.Fatalf("jobs = %v, want the fire over alice's limit dropped", ids)
	}
	if msg := h.s.JobScheduleError("nb"); !strings.Contains(msg, "2025-03-14T10:09:00Z") || !strings.Contains(msg, ErrUserLimit.Error()) {
		t.Fatalf("JobScheduleError = %q, want the fire and the user limit", msg)
	}
	if _, err := h.s.Kill(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	h.waitState(first.ID, StateKilled)
	h.advance(hm(10, 10))
	h.waitState(JobFireID("nb", hm(10, 10)), StateRunning)
	if msg := h.s.JobScheduleError("nb"); msg != "" {
		t.Fatalf("JobScheduleError = %q after a fire queued its job", msg)
	}
}

func TestCheckJobSchedule(t *testing.T) {
	h := newHarness(t, Config{}, succeed)
	ok := notebookSchedule("nb", "0 6 * * *", CatchupAll)
	if err := h.s.CheckJobSchedule(ok); err != nil {
		t.Fatalf("CheckJobSchedule(good) = %v", err)
	}
	sqlJob := catalog.JobSchedule{Name: "daily", Cron: "*/2 * * * * *", Job: catalog.Job{Kind: KindSQL, SQL: "SELECT $n", Params: map[string]string{"n": "1"}, Output: "jobs.daily"}}
	if err := h.s.CheckJobSchedule(sqlJob); err != nil {
		t.Fatalf("CheckJobSchedule(sql) = %v", err)
	}
	for _, tc := range []struct {
		change func(*catalog.JobSchedule)
		want   string
	}{
		{func(js *catalog.JobSchedule) { js.Name = "" }, "schedule name"},
		{func(js *catalog.JobSchedule) { js.Name = "a/b" }, "schedule name"},
		{func(js *catalog.JobSchedule) { js.Name = strings.Repeat("x", 101) }, "schedule name"},
		{func(js *catalog.JobSchedule) { js.Cron = "every morning" }, "every morning"},
		{func(js *catalog.JobSchedule) { js.Catchup = "some" }, `catchup "some"`},
		{func(js *catalog.JobSchedule) { js.Job.Kind = KindViewBuild; js.Job.View = "v" }, "a schedule runs sql or notebook jobs"},
		{func(js *catalog.JobSchedule) { js.Job.SQL = " " }, "needs its notebook"},
		{func(js *catalog.JobSchedule) { js.Job.Output = "out.parquet" }, "takes no output"},
		{func(js *catalog.JobSchedule) { js.Job.Params = map[string]string{"a b": "1"} }, `parameter name "a b"`},
		{func(js *catalog.JobSchedule) { js.Job.Criteria = [][]string{{"gpu"}} }, "no cluster has the tags"},
		{func(js *catalog.JobSchedule) { js.Job.Kind = KindSQL; js.Job.Output = "x.csv" }, `output "x.csv"`},
	} {
		bad := notebookSchedule("nb", "0 6 * * *", CatchupAll)
		tc.change(&bad)
		err := h.s.CheckJobSchedule(bad)
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckJobSchedule(%+v) = %v; want ErrInvalidRequest saying %q", bad, err, tc.want)
		}
		if err := h.s.ScheduleJob(bad); err == nil {
			t.Errorf("ScheduleJob(%+v) succeeded", bad)
		}
	}
}
