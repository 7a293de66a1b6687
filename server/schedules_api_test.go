package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
)

// testNotebook is a small notebook with a parameter, day.
const testNotebook = `{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
 {"id": "p", "cell_type": "code", "source": "day = \"yesterday\"", "metadata": {"tags": ["parameters"]}, "outputs": [], "execution_count": null},
 {"id": "q", "cell_type": "code", "source": "%%sql\nSELECT 1 AS one", "metadata": {}, "outputs": [], "execution_count": null}]}`

// TestScheduleAPI checks the job schedules API on a real server under
// authorization rules: only admins use it; requests are checked as job
// submissions and a bad one is refused naming its field; a schedule's jobs
// are its creator's and are listed with it; deleting it stops its fires;
// a restarted server goes on firing the schedules in its catalog.
func TestScheduleAPI(t *testing.T) {
	dir := t.TempDir()
	cfg := authzConfig(t, dir, filepath.Join(dir, "data"))
	// The test binary is no executor: each attempt fails at once, which
	// leaves the jobs the schedules submit to look at.
	cfg.Executor.Command = []string{"false"}
	ctx := t.Context()

	start := func() (*client.Client, *client.Client, func()) {
		srvCtx, cancel := context.WithCancel(context.Background())
		srv, err := New(srvCtx, cfg, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Run(srvCtx) }()
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
		t.Cleanup(stop)
		as := func(user string) *client.Client {
			c, err := client.NewWithConfig("http://"+srv.Addr(), nil, client.Config{Credentials: client.Credentials{Token: hs256Token(t, user, time.Hour)}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			return c
		}
		return as("root"), as("alice"), stop
	}
	root, alice, stop := start()
	post := func(body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, root.BaseURL()+"/v1/schedules", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+hs256Token(t, "root", time.Hour))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e api.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return resp.StatusCode, e.Error
		}
		return resp.StatusCode, string(b)
	}

	t.Run("admins only", func(t *testing.T) {
		for what, call := range map[string]func() error{
			"create job schedules": func() error {
				_, err := alice.CreateSchedule(ctx, api.ScheduleRequest{Name: "x", Cron: "@daily", Job: api.JobRequest{Kind: "sql", SQL: "SELECT 1"}})
				return err
			},
			"list job schedules":   func() error { _, err := alice.ListSchedules(ctx); return err },
			"read job schedules":   func() error { _, err := alice.GetSchedule(ctx, "x"); return err },
			"delete job schedules": func() error { return alice.DeleteSchedule(ctx, "x") },
		} {
			want := "Access Denied: user alice cannot " + what + ": that needs the admin right of the authorization rules"
			if err := call(); !client.IsStatus(err, 403) || !strings.Contains(err.Error(), want) {
				t.Errorf("alice may not %s: got %v", what, err)
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		nb, _ := json.Marshal(json.RawMessage(testNotebook))
		for _, c := range []struct{ body, want string }{
			{`{"cron": "@daily", "job": {"kind": "sql", "sql": "SELECT 1"}}`, `name: schedule name ""`},
			{`{"name": "a/b", "cron": "@daily", "job": {"kind": "sql", "sql": "SELECT 1"}}`, `name: schedule name "a/b"`},
			{`{"name": "x", "job": {"kind": "sql", "sql": "SELECT 1"}}`, "cron: give a cron spec"},
			{`{"name": "x", "cron": "every day", "job": {"kind": "sql", "sql": "SELECT 1"}}`, `cron: schedule "every day"`},
			{`{"name": "x", "cron": "@daily", "catchup": "sometimes", "job": {"kind": "sql", "sql": "SELECT 1"}}`, `catchup "sometimes"`},
			{`{"name": "x", "cron": "@daily", "job": {"id": "j", "kind": "sql", "sql": "SELECT 1"}}`, "job.id: a schedule names its jobs"},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "view-build", "view": "v"}}`, `job.kind "view-build"`},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "sql"}}`, "job: invalid job request: a sql job needs its SQL script"},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "sql", "sql": "SELECT 1", "view": "v"}}`, "job: invalid job request: a sql job belongs to no view"},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "sql", "sql": "SELECT 1", "output": "x.csv"}}`, `job: invalid job request: output "x.csv"`},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "sql", "sql": "SELECT 1", "timeout": "1ms"}}`, `job: timeout "1ms"`},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "sql", "sql": "SELECT 1", "max_attempts": 500}}`, "job: max_attempts 500"},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "sql", "sql": "SELECT 1", "cluster_criteria": [["gpu"]]}}`, "job: invalid job request: no cluster has the tags"},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "notebook", "sql": "SELECT 1"}}`, `job: a notebook job takes its notebook in "notebook"`},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "notebook", "notebook": {"cells": 3}}}`, "job: notebook: "},
			{`{"name": "x", "cron": "@daily", "job": {"kind": "notebook", "notebook": ` + string(nb) + `, "params": {"month": "1"}}}`, "job: notebook: -p month"},
			{`{"name": "x", "cron": "@daily", "when": "now", "job": {"kind": "sql", "sql": "SELECT 1"}}`, "invalid JSON body"},
		} {
			status, body := post(c.body)
			if status != 400 || !strings.Contains(body, c.want) {
				t.Errorf("POST %s: %d %s; want 400 saying %q", c.body, status, body, c.want)
			}
		}
		if list, err := root.ListSchedules(ctx); err != nil || len(list) != 0 {
			t.Fatalf("schedules after bad requests: %v, %v", list, err)
		}
	})

	nightly := api.ScheduleRequest{Name: "nightly", Cron: "0 6 * * *", Catchup: "once", Job: api.JobRequest{
		Kind: api.JobKindNotebook, Notebook: json.RawMessage(testNotebook), Params: map[string]string{"day": "today"}, Timeout: "30m",
	}}
	t.Run("create and read", func(t *testing.T) {
		before := time.Now().UTC()
		got, err := root.CreateSchedule(ctx, nightly)
		if err != nil {
			t.Fatal(err)
		}
		next := time.Date(before.Year(), before.Month(), before.Day(), 6, 0, 0, 0, time.UTC)
		if !next.After(before) {
			next = next.AddDate(0, 0, 1)
		}
		if got.Name != "nightly" || got.User != "root" || got.Catchup != "once" || got.Job.Kind != "notebook" || got.Job.Timeout != "30m" ||
			got.Job.Params["day"] != "today" || got.LastFire != nil || got.NextFire == nil || !got.NextFire.Equal(next) || got.CreatedAt.Before(before.Add(-time.Second)) {
			t.Fatalf("created %+v; want root's notebook schedule, next fire %v", got, next)
		}
		var doc map[string]any
		if err := json.Unmarshal(got.Job.Notebook, &doc); err != nil || doc["nbformat"] != 4.0 {
			t.Fatalf("the schedule's notebook: %s, %v", got.Job.Notebook, err)
		}
		if _, err := root.CreateSchedule(ctx, nightly); !client.IsStatus(err, 409) || !strings.Contains(err.Error(), `schedule "nightly" already exists`) {
			t.Fatalf("creating nightly again: %v, want 409", err)
		}
		if _, err := root.GetSchedule(ctx, "nope"); !client.IsStatus(err, 404) {
			t.Fatalf("GET a missing schedule: %v, want 404", err)
		}
	})

	everySecond := api.ScheduleRequest{Name: "every-second", Cron: "* * * * * *", Job: api.JobRequest{
		Kind: api.JobKindSQL, SQL: "SELECT $n AS n", Params: map[string]string{"n": "7"}, Output: "jobs.tick",
	}}
	var fired []api.Job
	t.Run("fires as its creator", func(t *testing.T) {
		if _, err := root.CreateSchedule(ctx, everySecond); err != nil {
			t.Fatal(err)
		}
		fired = waitScheduledJobs(t, root, "every-second", 2)
		for _, j := range fired {
			if j.User != "root" || j.Schedule != "every-second" || j.Kind != "sql" || j.SQL != everySecond.Job.SQL || j.Params["n"] != "7" ||
				j.Output != "jobs.tick" || !strings.HasPrefix(j.ID, "every-second-") || len(j.ID) != len("every-second-20260314T060000Z") {
				t.Fatalf("scheduled job %+v; want root's sql job of every-second", j)
			}
		}
		got, err := root.GetSchedule(ctx, "every-second")
		if err != nil {
			t.Fatal(err)
		}
		if got.LastFire == nil || got.NextFire == nil || !got.NextFire.After(*got.LastFire) || len(got.RecentJobs) < 2 || got.Job.SQL != everySecond.Job.SQL {
			t.Fatalf("GET every-second = %+v", got)
		}
		list, err := root.ListSchedules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Name != "every-second" || list[1].Name != "nightly" || list[1].Job.Notebook != nil || list[0].Job.SQL == "" {
			t.Fatalf("list = %+v; want both by name, without the notebook's document", list)
		}
	})

	t.Run("restart goes on firing", func(t *testing.T) {
		stop()
		var err error
		root, _, stop = start()
		restarted := time.Now().UTC()
		after := func() int {
			js, err := root.ListJobs(ctx, client.JobFilter{Schedule: "every-second", Since: restarted})
			if err != nil {
				t.Fatal(err)
			}
			return len(js)
		}
		deadline := time.Now().Add(20 * time.Second)
		for after() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no fire of every-second after the restart")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err = root.GetSchedule(ctx, "nightly"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete stops fires", func(t *testing.T) {
		if err := root.DeleteSchedule(ctx, "every-second"); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			js, err := root.ListJobs(ctx, client.JobFilter{Schedule: "every-second", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			return len(js)
		}
		n := count()
		time.Sleep(2500 * time.Millisecond) // two fires and more of a per-second cron
		if m := count(); m != n {
			t.Fatalf("%d jobs after the delete, %d right after it", m, n)
		}
		if _, err := root.GetSchedule(ctx, "every-second"); !client.IsStatus(err, 404) {
			t.Fatalf("GET a deleted schedule: %v, want 404", err)
		}
		if err := root.DeleteSchedule(ctx, "every-second"); !client.IsStatus(err, 404) {
			t.Fatalf("DELETE it again: %v, want 404", err)
		}
		// Its jobs stay, and the name may be used again.
		if n < len(fired) {
			t.Fatalf("%d jobs of the deleted schedule left, had %d", n, len(fired))
		}
		everySecond.Cron = "0 0 1 1 *"
		if _, err := root.CreateSchedule(ctx, everySecond); err != nil {
			t.Fatal(err)
		}
		got, err := root.GetSchedule(ctx, "every-second")
		if err != nil || len(got.RecentJobs) != 0 {
			t.Fatalf("the new every-second = %+v, %v; want none of the old one's jobs", got, err)
		}
	})
}

// waitScheduledJobs waits until the schedule has submitted at least n jobs
// and returns them, newest first.
func waitScheduledJobs(t *testing.T, c *client.Client, schedule string, n int) []api.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		js, err := c.ListJobs(t.Context(), client.JobFilter{Schedule: schedule})
		if err != nil {
			t.Fatal(err)
		}
		if len(js) >= n {
			return js
		}
		if time.Now().After(deadline) {
			var b bytes.Buffer
			_ = json.NewEncoder(&b).Encode(js)
			t.Fatalf("schedule %s submitted %d jobs in 20s, want %d: %s", schedule, len(js), n, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
