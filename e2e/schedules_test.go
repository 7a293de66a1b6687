package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/internal/testsvc"
	"github.com/duet-analytics/duet/notebooks"
)

// TestNotebookSchedule schedules a notebook from the CLI with a seconds
// cron on a real server: it runs at least twice, as the user who created
// the schedule, each run's executed notebook is fetchable, valid and holds
// the right answers, and deleting the schedule stops its fires.
func TestNotebookSchedule(t *testing.T) {
	p := startServer(t, t.TempDir(), "--executor-standby", "1")
	loadNotebookFlights(t, p)
	ctx := ctxT(t)
	// Without authentication the CLI's DUET_USER is the claimed user, whom
	// the schedule's jobs are attributed to.
	t.Setenv("DUET_USER", "alice")

	out := mustDuet(t, p, "", "schedule", "create", "every2s", "--cron", "*/2 * * * * *",
		"--notebook", filepath.Join(examplesDir, "daily_report.ipynb"), "-p", "min_delay=40", "--timeout", "2m")
	if !regexp.MustCompile(`^created schedule every2s: notebook job \*/2 \* \* \* \* \* \(next fire \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)\n$`).MatchString(out) {
		t.Fatalf("schedule create printed %q", out)
	}
	if _, errOut, code := duet(t, p, "", "schedule", "create", "every2s", "--cron", "@hourly", "--sql", "SELECT 1"); code != 1 ||
		!strings.Contains(errOut, `schedule "every2s" already exists`) {
		t.Fatalf("creating every2s again: exit %d, %s", code, errOut)
	}
	if _, errOut, code := duet(t, p, "", "schedule", "create", "bad", "--cron", "*/2 * * * * * *", "--sql", "SELECT 1"); code != 1 ||
		!strings.Contains(errOut, "cron: ") {
		t.Fatalf("a 7-field cron: exit %d, %s", code, errOut)
	}

	// Two runs that succeeded, each a fire of its own.
	var done []api.Job
	waitFor(t, "two succeeded runs of every2s", 2*time.Minute, 200*time.Millisecond, func() bool {
		js, err := p.client.ListJobs(ctx, client.JobFilter{Schedule: "every2s", State: api.JobSucceeded})
		if err != nil {
			t.Fatal(err)
		}
		done = js
		return len(js) >= 2
	})
	idRe := regexp.MustCompile(`^every2s-\d{8}T\d{4}([0-9]{2})Z$`)
	for _, j := range done[:2] {
		m := idRe.FindStringSubmatch(j.ID)
		if m == nil || (m[1][1]-'0')%2 != 0 {
			t.Fatalf("job id %q: want every2s-<fire time> at an even second", j.ID)
		}
		if j.Kind != api.JobKindNotebook || j.User != "alice" || j.Schedule != "every2s" || j.Params["min_delay"] != "40" || j.Timeout != "2m" {
			t.Fatalf("scheduled job %+v; want alice's notebook job of every2s", j)
		}
		var nb bytes.Buffer
		if _, err := p.client.JobOutput(ctx, j.ID, "notebook.ipynb", 0, &nb); err != nil {
			t.Fatalf("notebook.ipynb of %s: %v", j.ID, err)
		}
		path := filepath.Join(t.TempDir(), j.ID+".ipynb")
		if err := os.WriteFile(path, nb.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		testsvc.ValidateNotebooks(t, path)
		executed, err := notebooks.Read(&nb)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := resultText(t, cellByID(t, executed, "summary")), ""+
			"flights | late | late_pct | avg_delay\n"+
			"--------+------+----------+----------\n"+
			"      8 |    2 |       25 |        31\n"+
			"(1 row)"; got != want {
			t.Fatalf("summary of %s:\n%s\nwant\n%s", j.ID, got, want)
		}
	}
	if done[0].ID == done[1].ID {
		t.Fatal("one job listed twice")
	}

	show := mustDuet(t, p, "", "schedule", "show", "every2s")
	for _, want := range []string{"schedule:     every2s\n", "cron:         */2 * * * * *\n", "user:         alice\n", "kind:         notebook\n",
		"params:       min_delay=40\n", "timeout:      2m per attempt\n", "latest jobs:  every2s-"} {
		if !strings.Contains(show, want) {
			t.Fatalf("schedule show lacks %q:\n%s", want, show)
		}
	}
	if jobs := mustDuet(t, p, "", "job", "list", "--schedule", "every2s"); !strings.Contains(jobs, done[1].ID+"  notebook") {
		t.Fatalf("job list --schedule every2s lacks %s:\n%s", done[1].ID, jobs)
	}
	list := mustDuet(t, p, "", "schedule", "list")
	if !regexp.MustCompile(`(?m)^NAME +KIND +CRON +CATCHUP +USER +LAST FIRE +NEXT FIRE\nevery2s +notebook +\*/2 \* \* \* \* \* +skip +alice +\d{4}-`).MatchString(list) {
		t.Fatalf("schedule list:\n%s", list)
	}

	// Deleted, it fires no more; the jobs it submitted stay.
	if out := mustDuet(t, p, "", "schedule", "delete", "every2s"); out != "deleted schedule every2s\n" {
		t.Fatalf("schedule delete printed %q", out)
	}
	count := func() int {
		js, err := p.client.ListJobs(ctx, client.JobFilter{Schedule: "every2s", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(js)
	}
	n := count()
	time.Sleep(5 * time.Second) // two fire periods and more
	if m := count(); m != n || n < 2 {
		t.Fatalf("every2s has %d jobs 5s after its deletion, %d right after it", m, n)
	}
	if _, errOut, code := duet(t, p, "", "schedule", "show", "every2s"); code != 1 || !strings.Contains(errOut, `schedule "every2s" not found`) {
		t.Fatalf("schedule show after delete: exit %d, %s", code, errOut)
	}
	if out := mustDuet(t, p, "", "schedule", "list"); !strings.HasPrefix(out, "no schedules") {
		t.Fatalf("schedule list after delete:\n%s", out)
	}
}
