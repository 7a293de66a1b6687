package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
)

// fakeJobsAPI answers the jobs endpoints from a list, and records the
// requests it gets.
type fakeJobsAPI struct {
	mu      sync.Mutex
	jobs    []api.Job // newest first
	query   string    // of the last GET /v1/jobs
	queries []string  // of every GET /v1/jobs
	// pageSize, if set, splits job lists into pages linked by Next.
	pageSize  int
	viewRq    []api.ViewRequest
	submitted []api.JobRequest
	// outputs are the jobs' output files by "id/name"; ranges are the Range
	// headers of the requests for them.
	outputs map[string][]byte
	ranges  []string
	// onPoll, if set, changes a job before GET /v1/jobs/{id} answers it for
	// the poll-th time, to play a job running.
	onPoll func(j *api.Job, poll int)
	polls  map[string]int
}

func newFakeJobsAPI(t *testing.T) (*fakeJobsAPI, string) {
	next := testTime.Add(30 * time.Second)
	started, finished := testTime.Add(time.Second), testTime.Add(3500*time.Millisecond)
	f := &fakeJobsAPI{jobs: []api.Job{
		{ID: "j3", Kind: "backfill", View: "by_origin", Params: map[string]string{"to": "2024-04-30", "from": "2024-04-01"}, State: api.JobQueued,
			Attempt: 1, MaxAttempts: 4, NextAttemptAt: &next, Timeout: "30m", CreatedAt: testTime, StartedAt: &started, FinishedAt: &finished,
			DurationMs: 2500, Error: "executor exited with 1: out of disk", LogPrefix: "logs/jobs/j3/attempt-1/"},
		{ID: "j2", Kind: "compaction", Params: map[string]string{"dataset": "flights"}, State: api.JobRunning, Attempt: 1, MaxAttempts: 4, CreatedAt: testTime, StartedAt: &started},
		{ID: "j1", Kind: "view-build", View: "by_origin", State: api.JobSucceeded, Attempt: 2, MaxAttempts: 4, CreatedAt: testTime,
			StartedAt: &started, FinishedAt: &finished, DurationMs: 2500, LogPrefix: "logs/jobs/j1/attempt-2/"},
	}, outputs: map[string][]byte{}, polls: map[string]int{}}
	find := func(id string) *api.Job {
		for i := range f.jobs {
			if f.jobs[i].ID == id {
				return &f.jobs[i]
			}
		}
		return nil
	}
	notFound := func(w http.ResponseWriter, id string) {
		writeJSON(w, 404, api.Error{Error: fmt.Sprintf("job %q not found", id)})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.query = r.URL.RawQuery
		f.queries = append(f.queries, r.URL.RawQuery)
		q := r.URL.Query()
		out := api.JobList{Jobs: []api.Job{}}
		for _, j := range f.jobs {
			if s := q.Get("state"); s == "" || s == j.State {
				out.Jobs = append(out.Jobs, j)
			}
		}
		offset, _ := strconv.Atoi(q.Get("offset"))
		out.Jobs = out.Jobs[min(offset, len(out.Jobs)):]
		if f.pageSize > 0 && len(out.Jobs) > f.pageSize {
			out.Jobs = out.Jobs[:f.pageSize]
			q.Set("offset", strconv.Itoa(offset+f.pageSize))
			out.Next = "/v1/jobs?" + q.Encode()
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		var req api.JobRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, 400, api.Error{Error: err.Error()})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.submitted = append(f.submitted, req)
		if req.ID == "" {
			req.ID = fmt.Sprintf("s%d", len(f.submitted))
		}
		if find(req.ID) != nil {
			writeJSON(w, 409, api.Error{Error: fmt.Sprintf("job %q exists and is a different job", req.ID)})
			return
		}
		j := api.Job{ID: req.ID, Kind: req.Kind, View: req.View, Params: req.Params, State: api.JobQueued, MaxAttempts: req.MaxAttempts,
			Timeout: req.Timeout, CreatedAt: testTime, User: "tester", SQL: req.SQL, Output: req.Output, ClusterCriteria: req.ClusterCriteria}
		f.jobs = append([]api.Job{j}, f.jobs...)
		w.Header().Set("Location", "/v1/jobs/"+j.ID)
		writeJSON(w, 202, j)
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j := find(r.PathValue("id"))
		if j == nil {
			notFound(w, r.PathValue("id"))
			return
		}
		f.polls[j.ID]++
		if f.onPoll != nil {
			f.onPoll(j, f.polls[j.ID])
		}
		writeJSON(w, 200, j)
	})
	mux.HandleFunc("GET /v1/jobs/{id}/output/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ranges = append(f.ranges, r.Header.Get("Range"))
		b, ok := f.outputs[r.PathValue("id")+"/"+r.PathValue("name")]
		if !ok {
			writeJSON(w, 404, api.Error{Error: fmt.Sprintf("job %s has no %s", r.PathValue("id"), r.PathValue("name"))})
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
	mux.HandleFunc("GET /v1/jobs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "j3" {
			writeJSON(w, 404, api.Error{Error: "job " + r.PathValue("id") + " has no logs: it has not started"})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "duet: build: out of disk\nrows written: 0\n")
	})
	mux.HandleFunc("DELETE /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		j := find(r.PathValue("id"))
		switch {
		case j == nil:
			notFound(w, r.PathValue("id"))
		case api.JobFinished(j.State):
			writeJSON(w, 409, api.Error{Error: fmt.Sprintf("job %s already %s: only queued and running jobs can be killed", j.ID, j.State)})
		case j.State == api.JobQueued:
			j.State = api.JobKilled
			writeJSON(w, 202, j)
		default:
			writeJSON(w, 202, j) // running: stops later
		}
	})
	mux.HandleFunc("POST /v1/views", func(w http.ResponseWriter, r *http.Request) {
		var req api.ViewRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, 400, api.Error{Error: err.Error()})
			return
		}
		f.mu.Lock()
		f.viewRq = append(f.viewRq, req)
		f.mu.Unlock()
		writeJSON(w, 201, api.View{Name: req.Name, Dataset: "flights", SQL: req.SQL, Schedule: req.Schedule})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestJobList(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	r := runCLI(t, url, "", "job", "list")
	r.wantSuccess(t)
	want := "ID  KIND        VIEW       STATE      ATTEMPT  CREATED                  DURATION\n" +
		"j3  backfill    by_origin  queued     1/4      2024-05-01 12:00:00 UTC  2.5s\n" +
		"j2  compaction  -          running    1/4      2024-05-01 12:00:00 UTC  -\n" +
		"j1  view-build  by_origin  succeeded  2/4      2024-05-01 12:00:00 UTC  2.5s\n"
	if r.stdout != want {
		t.Errorf("list:\n%s\nwant:\n%s", r.stdout, want)
	}
	if f.query != "limit=20" {
		t.Errorf("default query %q, want limit=20", f.query)
	}
	runCLI(t, url, "", "job", "list", "--view", "by_origin", "--state", "failed", "--kind", "backfill", "--limit", "5").wantSuccess(t)
	if f.query != "kind=backfill&limit=5&state=failed&view=by_origin" {
		t.Errorf("query %q", f.query)
	}
	if r := runCLI(t, url, "", "job", "list", "--state", "failed"); r.stdout != "no jobs\n" {
		t.Errorf("empty list printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "list", "--limit", "0").wantFailure(t, "duet: --limit 0: give a positive number")
}

func TestJobShowLogsKill(t *testing.T) {
	_, url := newFakeJobsAPI(t)
	want := "job:           j3\n" +
		"kind:          backfill\n" +
		"view:          by_origin\n" +
		"params:        from=2024-04-01 to=2024-04-30\n" +
		"state:         queued\n" +
		"attempt:       1 of at most 4\n" +
		"next attempt:  2024-05-01 12:00:30 UTC\n" +
		"timeout:       30m per attempt\n" +
		"created:       2024-05-01 12:00:00 UTC\n" +
		"started:       2024-05-01 12:00:01 UTC\n" +
		"finished:      2024-05-01 12:00:03 UTC\n" +
		"duration:      2.5s\n" +
		"error:         executor exited with 1: out of disk\n" +
		"logs:          logs/jobs/j3/attempt-1/ (duet job logs j3)\n"
	for _, verb := range []string{"show", "status"} {
		r := runCLI(t, url, "", "job", verb, "j3")
		r.wantSuccess(t)
		if r.stdout != want {
			t.Errorf("job %s:\n%s\nwant:\n%s", verb, r.stdout, want)
		}
	}
	r := runCLI(t, url, "", "job", "logs", "j3")
	r.wantSuccess(t)
	if r.stdout != "duet: build: out of disk\nrows written: 0\n" {
		t.Errorf("logs printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "logs", "j2").wantFailure(t, "duet: job j2 has no logs: it has not started")

	r = runCLI(t, url, "", "job", "kill", "j3")
	r.wantSuccess(t)
	if r.stdout != "killed job j3\n" {
		t.Errorf("kill of a queued job printed %q", r.stdout)
	}
	r = runCLI(t, url, "", "job", "kill", "j2")
	r.wantSuccess(t)
	if !strings.HasPrefix(r.stdout, "stopping job j2 (running)") {
		t.Errorf("kill of a running job printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "kill", "j1").wantFailure(t, "duet: job j1 already succeeded: only queued and running jobs can be killed")
	runCLI(t, url, "", "job", "kill", "nope").wantFailure(t, `duet: job "nope" not found`)
	runCLI(t, url, "", "job", "kill").wantFailure(t, "duet: missing ID (usage: duet job kill ID)")
}

func TestViewCreatePolicyFlags(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	sql := "SELECT origin, count(*) AS n FROM flights GROUP BY origin"
	runCLI(t, url, "", "view", "create", "a", "--sql", sql, "--schedule", "@hourly", "--catchup", "all", "--max-retries", "0", "--timeout", "30m").wantSuccess(t)
	runCLI(t, url, "", "view", "create", "b", "--sql", sql).wantSuccess(t)
	if len(f.viewRq) != 2 {
		t.Fatalf("server got %d view requests", len(f.viewRq))
	}
	a, b := f.viewRq[0], f.viewRq[1]
	if a.Catchup != "all" || a.MaxRetries == nil || *a.MaxRetries != 0 || a.Timeout != "30m" {
		t.Errorf("view a sent as %+v", a)
	}
	// Unset flags leave the server's defaults: in particular no max_retries.
	if b.Catchup != "" || b.MaxRetries != nil || b.Timeout != "" {
		t.Errorf("view b sent as %+v", b)
	}
}

func TestJobSubmitSendsRequest(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	file := filepath.Join(t.TempDir(), "daily.sql")
	script := "SELECT origin, count(*) AS n FROM flights WHERE day = $day GROUP BY origin;"
	if err := os.WriteFile(file, []byte(script+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, url, "", "job", "submit", "--sql-file", file, "-p", "day=2024-05-01", "-p", "note=a=b", "--output", "jobs.daily",
		"--id", "daily-1", "--timeout", "30m", "--max-attempts", "2", "--cluster", "gpu, eu", "--cluster", "default")
	r.wantSuccess(t)
	if r.stdout != "daily-1 queued\n" {
		t.Errorf("submit printed %q", r.stdout)
	}
	r = runCLI(t, url, script, "job", "submit", "--sql-file", "-")
	r.wantSuccess(t)
	if r.stdout != "s2 queued\n" {
		t.Errorf("submit from stdin printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "submit", "--kind", "backfill", "--view", "by_origin", "-p", "from=2024-04-01", "-p", "to=2024-04-30").wantSuccess(t)
	want := []api.JobRequest{
		{ID: "daily-1", Kind: api.JobKindSQL, SQL: script, Params: map[string]string{"day": "2024-05-01", "note": "a=b"}, Output: "jobs.daily",
			Timeout: "30m", MaxAttempts: 2, ClusterCriteria: [][]string{{"gpu", "eu"}, {"default"}}},
		{Kind: api.JobKindSQL, SQL: script},
		{Kind: api.JobKindBackfill, View: "by_origin", Params: map[string]string{"from": "2024-04-01", "to": "2024-04-30"}},
	}
	if !reflect.DeepEqual(f.submitted, want) {
		t.Errorf("server got\n%+v\nwant\n%+v", f.submitted, want)
	}
	runCLI(t, url, "", "job", "submit", "--sql", "SELECT 1", "--id", "j1").wantFailure(t, `duet: job "j1" exists and is a different job`)
}

func TestJobSubmitFlagErrors(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sql", "SELECT 1", "-p", "day"}, `-p "day": give key=value`},
		{[]string{"--sql", "SELECT 1", "-p", "=x"}, `-p "=x": give key=value`},
		{[]string{"--sql", "SELECT 1", "-p", "a=1", "-p", "a=2"}, "-p a: given twice"},
		{[]string{"--kind", "sql"}, `no query: give it with --sql "SELECT ..." or --sql-file FILE`},
		{[]string{"--sql", "SELECT 1", "--sql-file", "q.sql"}, "give the query with --sql or --sql-file, not both"},
		{nil, "--kind: give sql (with --sql or --sql-file), notebook (with --notebook), view-build, backfill or compaction"},
		{[]string{"--kind", "backfill", "--view", "v", "--sql", "SELECT 1"}, "--sql, --sql-file and --output are for --kind sql, not backfill"},
		{[]string{"--kind", "view-build", "--view", "v", "--output", "jobs.x"}, "--sql, --sql-file and --output are for --kind sql, not view-build"},
		{[]string{"--sql", "SELECT 1", "--timeout", "soon"}, `--timeout "soon": give a positive duration such as 30m`},
		{[]string{"--sql", "SELECT 1", "--max-attempts", "-1"}, "--max-attempts -1: give a positive number"},
		{[]string{"--sql", "SELECT 1", "--cluster", "gpu,,eu"}, `--cluster "gpu,,eu": give tags separated by commas, such as gpu,eu`},
	} {
		runCLI(t, url, "", append([]string{"job", "submit"}, tc.args...)...).wantFailure(t, "duet: "+tc.want)
	}
	if len(f.submitted) != 0 {
		t.Errorf("bad flags still sent %+v", f.submitted)
	}
}

// playSQLJob makes job s1 run two statements and end in final.
func playSQLJob(f *fakeJobsAPI, final api.Job) {
	started, finished := testTime.Add(time.Second), testTime.Add(3500*time.Millisecond)
	f.onPoll = func(j *api.Job, poll int) {
		if j.ID != "s1" {
			return
		}
		switch poll {
		case 1:
			j.State, j.StartedAt = api.JobRunning, &started
			j.Progress = &api.JobProgress{Stage: "statement 1 of 2", ElapsedMs: 100, HeartbeatAt: started}
		case 2: // the same stage: no new plain line
			j.Progress = &api.JobProgress{Stage: "statement 1 of 2", Rows: 500, ElapsedMs: 900, HeartbeatAt: started}
		case 3:
			j.Progress = &api.JobProgress{Stage: "statement 2 of 2", Rows: 1_234_567, ElapsedMs: 12_345, HeartbeatAt: started}
		default:
			j.State, j.Error, j.FinishedAt, j.DurationMs, j.Progress = final.State, final.Error, &finished, 2500, nil
		}
	}
}

func TestJobSubmitWaitPrintsChangesAndFailsForAFailedJob(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	playSQLJob(f, api.Job{State: api.JobFailed, Error: `Binder Error: column "x" not found`})
	r := runCLI(t, url, "", "job", "submit", "--sql", "SELECT x FROM flights", "--wait", "--poll", "1ms")
	r.wantFailure(t, `duet: job s1 failed: Binder Error: column "x" not found`)
	want := "s1 queued\n" +
		"s1 running  statement 1 of 2  0 rows  100ms\n" +
		"s1 running  statement 2 of 2  1,234,567 rows  12.3s\n" +
		"s1 failed  2.5s\n"
	if r.stdout != want {
		t.Errorf("--wait printed\n%s\nwant\n%s", r.stdout, want)
	}
}

func TestJobSubmitWaitRedrawsOneLineOnATerminal(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	playSQLJob(f, api.Job{State: api.JobSucceeded})
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--server", url, "job", "submit", "--sql", "SELECT 1", "--output", "jobs.one", "--wait", "--poll", "1ms"},
		ioStreams{in: strings.NewReader(""), out: &out, err: &errOut, errTerminal: true}, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, errOut.String())
	}
	if want := "s1 succeeded  2.5s\noutput: jobs.one\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	// Every poll redraws the line, and it is erased before the final state.
	want := "\r\033[Ks1 queued" +
		"\r\033[Ks1 running  statement 1 of 2  0 rows  100ms" +
		"\r\033[Ks1 running  statement 1 of 2  500 rows  900ms" +
		"\r\033[Ks1 running  statement 2 of 2  1,234,567 rows  12.3s" +
		"\r\033[K"
	if errOut.String() != want {
		t.Errorf("terminal got %q\nwant         %q", errOut.String(), want)
	}
}

func TestJobLogsFollowsGrowingStderr(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	f.outputs["j2/stderr"] = []byte("statement 1 of 3\n")
	f.onPoll = func(j *api.Job, poll int) {
		switch poll {
		case 2:
			f.outputs["j2/stderr"] = append(f.outputs["j2/stderr"], "statement 2 of 3\n"...)
		case 4: // the last lines land as the job finishes
			f.outputs["j2/stderr"] = append(f.outputs["j2/stderr"], "statement 3 of 3\nwrote 10 rows\n"...)
			j.State = api.JobSucceeded
		}
	}
	r := runCLI(t, url, "", "job", "logs", "j2", "-f", "--poll", "1ms")
	r.wantSuccess(t)
	if want := "statement 1 of 3\nstatement 2 of 3\nstatement 3 of 3\nwrote 10 rows\n"; r.stdout != want {
		t.Errorf("logs -f printed %q, want %q", r.stdout, want)
	}
	if want := []string{"", "bytes=17-", "bytes=34-", "bytes=34-"}; !reflect.DeepEqual(f.ranges, want) {
		t.Errorf("Range headers %q, want %q", f.ranges, want)
	}
}

func TestJobLogsFollowWaitsForTheFirstOutputAndANewAttempt(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	f.onPoll = func(j *api.Job, poll int) {
		switch poll {
		case 2: // started: output appears
			j.State = api.JobRunning
			f.outputs["j3/stdout"] = []byte("attempt 1 fails\n")
		case 3: // a retry writes its own file
			j.Attempt = 2
			f.outputs["j3/stdout"] = []byte("attempt 2 starts\n")
		case 4:
			j.State = api.JobSucceeded
		}
	}
	r := runCLI(t, url, "", "job", "logs", "j3", "-f", "--stdout", "--poll", "1ms")
	if r.code != 0 || r.stdout != "attempt 1 fails\nattempt 2 starts\n" || r.stderr != "duet: job j3 started attempt 2; its stdout follows\n" {
		t.Errorf("logs -f across attempts: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// A finished job without the file says so.
	runCLI(t, url, "", "job", "logs", "j1", "-f").wantFailure(t, "duet: job j1 has no stderr")
}

func TestJobLogsStdout(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	f.outputs["j1/stdout"] = []byte("10 rows\n")
	r := runCLI(t, url, "", "job", "logs", "j1", "--stdout")
	r.wantSuccess(t)
	if r.stdout != "10 rows\n" {
		t.Errorf("logs --stdout printed %q", r.stdout)
	}
	runCLI(t, url, "", "job", "logs", "j2", "--stdout").wantFailure(t, "duet: job j2 has no stdout")
}

func TestJobListUserSinceAndPages(t *testing.T) {
	f, srv := newFakeJobsAPI(t)
	f.pageSize = 2
	r := runCLI(t, srv, "", "job", "list", "--user", "ann", "--since", "2024-05-01T10:00:00+02:00", "--limit", "3")
	r.wantSuccess(t)
	if n := strings.Count(r.stdout, "\n"); n != 4 || !strings.Contains(r.stdout, "\nj1 ") {
		t.Errorf("three jobs over two pages printed\n%s", r.stdout)
	}
	want := []string{"limit=3&since=2024-05-01T08%3A00%3A00Z&user=ann", "limit=3&offset=2&since=2024-05-01T08%3A00%3A00Z&user=ann"}
	if !reflect.DeepEqual(f.queries, want) {
		t.Errorf("queries %q, want %q", f.queries, want)
	}
	// A full first page is enough.
	f.queries = nil
	runCLI(t, srv, "", "job", "list", "--limit", "2").wantSuccess(t)
	if len(f.queries) != 1 {
		t.Errorf("--limit 2 over pages of 2 made %d requests", len(f.queries))
	}

	for arg, ago := range map[string]time.Duration{"2h": 2 * time.Hour, "7d": 7 * 24 * time.Hour} {
		runCLI(t, srv, "", "job", "list", "--since", arg).wantSuccess(t)
		q, err := url.ParseQuery(f.query)
		if err != nil {
			t.Fatal(err)
		}
		since, err := time.Parse(time.RFC3339, q.Get("since"))
		if d := time.Since(since) - ago; err != nil || d < 0 || d > time.Minute {
			t.Errorf("--since %s sent %q (%v)", arg, q.Get("since"), err)
		}
	}
	for _, bad := range []string{"yesterday", "-2h", "0d"} {
		runCLI(t, srv, "", "job", "list", "--since", bad).wantFailure(t,
			fmt.Sprintf("duet: --since %q: give a time such as 2024-05-01T12:00:00Z, or how long ago such as 2h or 7d", bad))
	}
}

func TestJobShowSQLJob(t *testing.T) {
	f, url := newFakeJobsAPI(t)
	started := testTime.Add(time.Second)
	f.jobs = append([]api.Job{{ID: "daily-1", Kind: api.JobKindSQL, User: "ann", Params: map[string]string{"day": "2024-05-01"}, State: api.JobRunning,
		Attempt: 1, MaxAttempts: 1, CreatedAt: testTime, StartedAt: &started, SQL: "CREATE TEMP TABLE t AS SELECT 1;\nSELECT * FROM t", Output: "jobs/daily-1/result.parquet",
		ClusterCriteria: [][]string{{"gpu", "eu"}, {"default"}}, Executor: &api.JobExecutor{Cluster: "local", PID: 4242},
		Progress: &api.JobProgress{Stage: "statement 2 of 2", Rows: 1234, ElapsedMs: 12_300, HeartbeatAt: testTime.Add(13 * time.Second)}}}, f.jobs...)
	r := runCLI(t, url, "", "job", "show", "daily-1")
	r.wantSuccess(t)
	want := "job:       daily-1\n" +
		"kind:      sql\n" +
		"user:      ann\n" +
		"params:    day=2024-05-01\n" +
		"output:    jobs/daily-1/result.parquet\n" +
		"clusters:  gpu,eu then default\n" +
		"state:     running\n" +
		"progress:  statement 2 of 2, 1,234 rows in 12.3s (heartbeat 2024-05-01 12:00:13 UTC)\n" +
		"executor:  cluster local (pid 4242)\n" +
		"attempt:   1 of at most 1\n" +
		"created:   2024-05-01 12:00:00 UTC\n" +
		"started:   2024-05-01 12:00:01 UTC\n" +
		"sql:       CREATE TEMP TABLE t AS SELECT 1;\n" +
		"           SELECT * FROM t\n"
	if r.stdout != want {
		t.Errorf("show:\n%s\nwant:\n%s", r.stdout, want)
	}
}
