package scheduler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // CRON_TZ zones without depending on the host's zoneinfo

	"github.com/duet-analytics/duet/internal/catalog"
)

var t0 = time.Date(2025, 3, 14, 10, 7, 0, 0, time.UTC)

func hm(h, m int) time.Time { return time.Date(2025, 3, 14, h, m, 0, 0, time.UTC) }

func mustSchedule(t *testing.T, spec string) interface{ Next(time.Time) time.Time } {
	t.Helper()
	s, err := ParseSchedule(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDue(t *testing.T) {
	hourly := "0 * * * *"
	for _, tc := range []struct {
		name       string
		spec       string
		last, now  time.Time
		policy     Catchup
		wantRun    []time.Time
		wantMissed int
		wantLatest time.Time
	}{
		{"never watched", hourly, time.Time{}, hm(15, 30), CatchupAll, nil, 0, time.Time{}},
		{"nothing due yet", hourly, hm(10, 7), hm(10, 59), CatchupOnce, nil, 0, hm(10, 7)},
		{"fire at exactly now is due", hourly, hm(10, 7), hm(11, 0), CatchupOnce, []time.Time{hm(11, 0)}, 1, hm(11, 0)},
		{"the last fire is not due again", hourly, hm(11, 0), hm(11, 0), CatchupOnce, nil, 0, hm(11, 0)},
		{"skip drops missed fires", hourly, hm(10, 7), hm(15, 30), CatchupSkip, nil, 5, hm(15, 0)},
		{"once runs the latest", hourly, hm(10, 7), hm(15, 30), CatchupOnce, []time.Time{hm(15, 0)}, 5, hm(15, 0)},
		{"all runs each", hourly, hm(10, 7), hm(15, 30), CatchupAll, []time.Time{hm(11, 0), hm(12, 0), hm(13, 0), hm(14, 0), hm(15, 0)}, 5, hm(15, 0)},
		{"every", "@every 90m", hm(10, 0), hm(14, 0), CatchupAll, []time.Time{hm(11, 30), hm(13, 0)}, 2, hm(13, 0)},
		{"seconds field", "30 0 10 * * *", hm(9, 0), hm(11, 0), CatchupOnce, []time.Time{hm(10, 0).Add(30 * time.Second)}, 1, hm(10, 0).Add(30 * time.Second)},
		// 09:00 in Tokyo (UTC+9, no DST) is 00:00 UTC.
		{"CRON_TZ", "CRON_TZ=Asia/Tokyo 0 9 * * *", hm(10, 0), hm(10, 0).Add(48 * time.Hour), CatchupAll,
			[]time.Time{time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 16, 0, 0, 0, 0, time.UTC)}, 2,
			time.Date(2025, 3, 16, 0, 0, 0, 0, time.UTC)},
		{"never fires", "0 0 30 2 *", hm(10, 0), hm(10, 0).Add(24 * 365 * time.Hour), CatchupOnce, nil, 0, hm(10, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Due(mustSchedule(t, tc.spec), tc.last, tc.now, tc.policy)
			if !slices.EqualFunc(f.Run, tc.wantRun, time.Time.Equal) || f.Missed != tc.wantMissed || !f.Latest.Equal(tc.wantLatest) {
				t.Fatalf("Due = run %v, missed %d, latest %v; want run %v, missed %d, latest %v",
					f.Run, f.Missed, f.Latest, tc.wantRun, tc.wantMissed, tc.wantLatest)
			}
		})
	}
}

func TestDueCapsCatchupAll(t *testing.T) {
	sched := mustSchedule(t, "@every 1m")
	f := Due(sched, hm(0, 0), hm(5, 0), CatchupAll) // 300 missed fires
	if f.Missed != 300 || len(f.Run) != MaxCatchupFires {
		t.Fatalf("missed %d, run %d; want 300 and %d", f.Missed, len(f.Run), MaxCatchupFires)
	}
	// The latest fires are kept, oldest first.
	if !f.Run[0].Equal(hm(3, 21)) || !f.Run[99].Equal(hm(5, 0)) || !f.Latest.Equal(hm(5, 0)) {
		t.Fatalf("run %v .. %v, latest %v; want 03:21 .. 05:00", f.Run[0], f.Run[99], f.Latest)
	}
}

func TestParseScheduleAndCatchup(t *testing.T) {
	for _, ok := range []string{"*/5 * * * *", "0 30 * * * *", "@hourly", "@every 5m", "CRON_TZ=Europe/Paris 0 9 * * 1-5"} {
		if err := ValidateSchedule(ok); err != nil {
			t.Errorf("ValidateSchedule(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "* * *", "@fortnightly", "CRON_TZ=Mars/Olympus 0 9 * * *", "61 * * * *"} {
		if err := ValidateSchedule(bad); err == nil || !strings.Contains(err.Error(), "use 5 cron fields") {
			t.Errorf("ValidateSchedule(%q) = %v, want an error saying what to use", bad, err)
		}
	}
	for in, want := range map[string]Catchup{"": CatchupSkip, "skip": CatchupSkip, "once": CatchupOnce, "all": CatchupAll} {
		if got, err := ParseCatchup(in); err != nil || got != want {
			t.Errorf("ParseCatchup(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseCatchup("ALL"); err == nil || !strings.Contains(err.Error(), "use skip") {
		t.Errorf("ParseCatchup(ALL) = %v", err)
	}
}

func TestRetryDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 6: 320 * time.Second, 7: 10 * time.Minute, 1000: 10 * time.Minute} {
		if got := RetryDelay(10*time.Second, 10*time.Minute, n); got != want {
			t.Errorf("RetryDelay(attempt %d) = %s, want %s", n, got, want)
		}
	}
}

func TestPlanStarts(t *testing.T) {
	now := hm(12, 0)
	job := func(id, view string, next time.Time, params ...string) catalog.Job {
		j := catalog.Job{ID: id, Kind: KindViewBuild, View: view, State: StateQueued, NextAttemptAt: next, Cluster: LocalCluster}
		if view == "" {
			j.Kind, j.Params = KindCompaction, map[string]string{"dataset": params[0]}
		}
		return j
	}
	ids := func(ps []Placement) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Job.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name            string
		queued, running []catalog.Job
		workers         int
		want            string
	}{
		{"oldest first up to workers", []catalog.Job{job("1", "a", time.Time{}), job("2", "b", time.Time{}), job("3", "c", time.Time{})}, nil, 2, "1,2"},
		{"one per view", []catalog.Job{job("1", "a", time.Time{}), job("2", "a", time.Time{}), job("3", "b", time.Time{})}, nil, 3, "1,3"},
		{"running jobs hold their view and a worker", []catalog.Job{job("1", "a", time.Time{}), job("2", "b", time.Time{}), job("3", "c", time.Time{})},
			[]catalog.Job{job("r", "a", time.Time{})}, 2, "2"},
		{"all workers busy", []catalog.Job{job("1", "a", time.Time{})}, []catalog.Job{job("r", "b", time.Time{}), job("s", "c", time.Time{})}, 2, ""},
		{"retry not yet due; a due one passes it", []catalog.Job{job("1", "a", now.Add(time.Second)), job("2", "b", now)}, nil, 2, "2"},
		{"compactions exclusive per dataset", []catalog.Job{job("1", "", time.Time{}, "x"), job("2", "", time.Time{}, "x"), job("3", "", time.Time{}, "y")}, nil, 5, "1,3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := []Cluster{{Name: LocalCluster, Tags: []string{LocalCluster, DefaultTag}, Slots: tc.workers}}
			if got := ids(PlanStarts(tc.queued, tc.running, now, local, nil)); got != tc.want {
				t.Fatalf("PlanStarts = [%s], want [%s]", got, tc.want)
			}
		})
	}
}

// TestPlace: the first criterion some healthy cluster meets decides; the
// least loaded of its clusters with a free slot takes the job.
func TestPlace(t *testing.T) {
	clusters := []Cluster{
		{Name: "small", Tags: []string{"local", "default"}, Slots: 1},
		{Name: "big", Tags: []string{"local", "default", "large"}, Slots: 4},
		{Name: "trino", Tags: []string{"trino", "large"}, Slots: 2},
	}
	down := func(name string) func(string) bool { return func(c string) bool { return c != name } }
	for _, tc := range []struct {
		name     string
		criteria [][]string
		load     map[string]int
		healthy  func(string) bool
		want     string // "" waits
	}{
		{"no criteria: the default clusters, least loaded", nil, nil, nil, "small"},
		{"least loaded by share of slots", nil, map[string]int{"big": 1}, nil, "small"},
		{"a full cluster is skipped", nil, map[string]int{"small": 1}, nil, "big"},
		{"first criterion wins over a later one", [][]string{{"trino"}, {"local"}}, nil, nil, "trino"},
		{"all tags of a criterion", [][]string{{"large", "local"}}, nil, nil, "big"},
		{"a criterion no cluster meets falls through", [][]string{{"gpu"}, {"large"}}, map[string]int{"big": 1}, nil, "trino"},
		{"matched but full: wait, not the next criterion", [][]string{{"trino"}, {"local"}}, map[string]int{"trino": 2}, nil, ""},
		{"unhealthy clusters do not match", [][]string{{"trino"}, {"local"}}, nil, down("trino"), "small"},
		{"nothing meets any criterion", [][]string{{"gpu"}}, nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Place(tc.criteria, clusters, tc.load, tc.healthy)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("Place = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
	if Placeable([][]string{{"gpu"}, {"trino", "local"}}, clusters) {
		t.Error("Placeable: no cluster has gpu, nor trino and local")
	}
	if !Placeable([][]string{{"gpu"}, {"trino"}}, clusters) {
		t.Error("Placeable: trino has tag trino")
	}
}

func TestParseOutput(t *testing.T) {
	for in, want := range map[string]Output{
		"":                        {Object: "jobs/j1/result.parquet"},
		"reports/day=1/x.parquet": {Object: "reports/day=1/x.parquet"},
		"jobs.daily_totals":       {Object: "jobs/tables/daily_totals/j1.parquet", Table: "daily_totals"},
	} {
		if got, err := ParseOutput(in, "j1"); err != nil || got != want {
			t.Errorf("ParseOutput(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"x.csv", "../x.parquet", "/abs.parquet", "a//b.parquet", "jobs.Bad", "jobs.a-b", "jobs."} {
		if _, err := ParseOutput(bad, "j1"); err == nil {
			t.Errorf("ParseOutput(%q) succeeded", bad)
		}
	}
}

func TestSettle(t *testing.T) {
	now := hm(12, 0)
	b := backoff{base: 10 * time.Second, max: time.Minute}
	running := func(attempt, max int) catalog.Job {
		return catalog.Job{ID: "j", Kind: KindViewBuild, View: "v", State: StateRunning, Attempt: attempt, MaxAttempts: max,
			StartedAt: now.Add(-time.Minute), Timeout: 30 * time.Second, Error: "earlier attempt's error"}
	}
	boom := errors.New("executor exited with 1: boom")
	for _, tc := range []struct {
		name      string
		job       catalog.Job
		end       attemptEnd
		wantState string
		wantErr   string
		wantNext  time.Duration // -1: no next attempt
	}{
		{"success", running(1, 4), attemptEnd{version: 7}, StateSucceeded, "", -1},
		{"success though cancelled", running(1, 4), attemptEnd{version: 7, cause: errKilled}, StateSucceeded, "", -1},
		{"failure retried after backoff", running(1, 4), attemptEnd{err: boom}, StateQueued, boom.Error(), 10 * time.Second},
		{"backoff doubles", running(3, 4), attemptEnd{err: boom}, StateQueued, boom.Error(), 40 * time.Second},
		{"last attempt fails the job", running(4, 4), attemptEnd{err: boom}, StateFailed, boom.Error(), -1},
		{"no max attempts means one", running(1, 0), attemptEnd{err: boom}, StateFailed, boom.Error(), -1},
		{"killed is final", running(1, 4), attemptEnd{err: boom, cause: errKilled}, StateKilled, "killed on request during attempt 1", -1},
		{"timeout retried", running(1, 2), attemptEnd{err: boom, cause: errTimedOut}, StateQueued, "attempt 1 timed out after 30s", 10 * time.Second},
		{"timeout on the last attempt", running(2, 2), attemptEnd{err: boom, cause: errTimedOut}, StateTimedOut, "attempt 2 timed out after 30s", -1},
		{"shutdown requeues at once", running(1, 2), attemptEnd{err: boom, cause: context.Canceled}, StateQueued,
			"interrupted: the server stopped during attempt 1", 0},
		{"interrupted on the last attempt", running(2, 2), attemptEnd{interrupted: true}, StateFailed, "interrupted: the server stopped during attempt 2", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := settle(tc.job, tc.end, now, b)
			if j.State != tc.wantState || j.Error != tc.wantErr || !j.FinishedAt.Equal(now) {
				t.Fatalf("settle = state %q, error %q, finished %v; want %q, %q, %v", j.State, j.Error, j.FinishedAt, tc.wantState, tc.wantErr, now)
			}
			switch {
			case tc.wantNext < 0 && !j.NextAttemptAt.IsZero():
				t.Fatalf("NextAttemptAt = %v, want none", j.NextAttemptAt)
			case tc.wantNext >= 0 && !j.NextAttemptAt.Equal(now.Add(tc.wantNext)):
				t.Fatalf("NextAttemptAt = %v, want now+%s", j.NextAttemptAt, tc.wantNext)
			}
			if j.State == StateSucceeded && j.Version != 7 {
				t.Fatalf("Version = %d, want 7", j.Version)
			}
		})
	}
}

func TestExclusionKeyIgnoresParamOrder(t *testing.T) {
	a := catalog.Job{Kind: KindCompaction, Params: map[string]string{"dataset": "x", "level": "1"}}
	b := catalog.Job{Kind: KindCompaction, Params: map[string]string{"level": "1", "dataset": "x"}}
	c := catalog.Job{Kind: KindCompaction, Params: map[string]string{"dataset": "y", "level": "1"}}
	if ExclusionKey(a) != ExclusionKey(b) || ExclusionKey(a) == ExclusionKey(c) {
		t.Fatalf("keys %q %q %q", ExclusionKey(a), ExclusionKey(b), ExclusionKey(c))
	}
	if ExclusionKey(catalog.Job{Kind: KindBackfill, View: "v"}) != ExclusionKey(catalog.Job{Kind: KindViewBuild, View: "v"}) {
		t.Fatal("a backfill and a build of the same view must exclude each other")
	}
}
