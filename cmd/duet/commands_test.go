package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/dataset"
)

func TestDatasetCreateFromFlags(t *testing.T) {
	f, url := newFakeAPI(t)
	r := runCLI(t, url, "", "dataset", "create", "flights", "--time-column", "ts",
		"--column", "ts:timestamp", "--column", "origin:string", "--column", "delay:DOUBLE")
	r.wantSuccess(t)
	if r.stdout != "created dataset flights (3 columns, time column ts)\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	d := f.datasets["flights"]
	want := []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "origin", Type: dataset.Varchar}, {Name: "delay", Type: dataset.Double}}
	if d.TimeColumn != "ts" || len(d.Columns) != 3 || d.Columns[0] != want[0] || d.Columns[1] != want[1] || d.Columns[2] != want[2] {
		t.Errorf("server received %+v", d)
	}

	// The server's refusal is the one error line, and the exit code is 1.
	runCLI(t, url, "", "dataset", "create", "flights", "--time-column", "ts", "--column", "ts:timestamp").
		wantFailure(t, `duet: dataset "flights" already exists`)
}

func TestDatasetCreateFromFile(t *testing.T) {
	f, url := newFakeAPI(t)
	spec := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(spec, []byte(`{"name":"events","time_column":"at","columns":[{"name":"at","type":"timestamp"},{"name":"n","type":"bigint"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	runCLI(t, url, "", "dataset", "create", "--file", spec).wantSuccess(t)
	if d := f.datasets["events"]; d.TimeColumn != "at" || len(d.Columns) != 2 || d.Columns[1].Type != dataset.Bigint {
		t.Errorf("server received %+v", d)
	}
	// The same definition from stdin under another name given as NAME conflicts.
	runCLI(t, url, `{"name":"events"}`, "dataset", "create", "other", "--file", "-").
		wantFailure(t, `duet: NAME "other" differs from the name "events" in -; drop one of them`)
}

func TestDatasetCreateFlagErrorsSendNothing(t *testing.T) {
	f, url := newFakeAPI(t)
	runCLI(t, url, "", "dataset", "create", "flights", "--column", "ts:timestamp").
		wantFailure(t, "duet: --time-column is required: name the timestamp or date column holding each event's time")
	runCLI(t, url, "", "dataset", "create", "flights", "--time-column", "ts", "--column", "ts").
		wantFailure(t, `duet: --column "ts": want NAME:TYPE, like --column delay:double`)
	runCLI(t, url, "", "dataset", "create", "flights", "--time-column", "ts", "--column", "ts:instant").
		wantFailure(t, `duet: --column "ts:instant": unknown column type "instant" (use boolean, integer, bigint, double, varchar, date or timestamp)`)
	if len(f.datasets) != 0 {
		t.Errorf("datasets created: %v", f.datasets)
	}
}

func TestDatasetListAndShow(t *testing.T) {
	f, url := newFakeAPI(t)
	r := runCLI(t, url, "", "dataset", "list")
	r.wantSuccess(t)
	if !strings.Contains(r.stdout, "no datasets yet") {
		t.Errorf("empty list printed %q", r.stdout)
	}
	created := testTime
	f.datasets["flights"] = api.Dataset{Name: "flights", TimeColumn: "ts", CreatedAt: &created,
		Columns: []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "delay", Type: dataset.Double}},
		Log:     &api.LogStatus{EndOffset: 12345, ArchivedOffset: 10000, ArchiveFiles: 3}}

	r = runCLI(t, url, "", "dataset", "list")
	r.wantSuccess(t)
	want := "NAME     TIME COLUMN  COLUMNS  RECORDS  ARCHIVED  CREATED\n" +
		"flights  ts           2        12,345   10,000    2024-05-01 12:00:00 UTC\n"
	if r.stdout != want {
		t.Errorf("list:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, url, "", "dataset", "show", "flights")
	r.wantSuccess(t)
	want = "name:         flights\n" +
		"time column:  ts\n" +
		"created:      2024-05-01 12:00:00 UTC\n" +
		"records:      12,345 (offsets 0..12344)\n" +
		"archived:     offsets below 10000 (3 files)\n" +
		"\n" +
		"COLUMN  TYPE\n" +
		"ts      timestamp  time column\n" +
		"delay   double\n"
	if r.stdout != want {
		t.Errorf("show:\n%s\nwant:\n%s", r.stdout, want)
	}

	runCLI(t, url, "", "dataset", "show", "nope").wantFailure(t, `duet: dataset "nope" not found`)
	runCLI(t, url, "", "dataset", "show").wantFailure(t, "duet: missing NAME (usage: duet dataset show NAME)")
}

func TestViewCommands(t *testing.T) {
	f, url := newFakeAPI(t)
	r := runCLI(t, url, "", "view", "create", "by_origin", "--sql", "SELECT origin, count(*) AS n FROM flights GROUP BY origin", "--schedule", "@every 5m")
	r.wantSuccess(t)
	if r.stdout != "created view by_origin on dataset flights (builds @every 5m)\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if v := f.views["by_origin"]; v.Schedule != "@every 5m" || !strings.HasPrefix(v.SQL, "SELECT origin") {
		t.Errorf("server received %+v", v)
	}

	sqlFile := filepath.Join(t.TempDir(), "v.sql")
	if err := os.WriteFile(sqlFile, []byte("SELECT * FROM flights\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, url, "", "view", "create", "everything", "--sql-file", sqlFile)
	r.wantSuccess(t)
	if f.views["everything"].SQL != "SELECT * FROM flights" {
		t.Errorf("SQL from file = %q", f.views["everything"].SQL)
	}
	if !strings.Contains(r.stdout, `no schedule: build it with "duet view build everything"`) {
		t.Errorf("stdout = %q", r.stdout)
	}

	runCLI(t, url, "", "view", "create", "bad", "--sql", "SELECT 1").
		wantFailure(t, "duet: a view reads one dataset: FROM flights")
	runCLI(t, url, "", "view", "create", "bad").
		wantFailure(t, `duet: no query: give it with --sql "SELECT ..." or --sql-file FILE`)

	// Give by_origin a batch version and a speed layer, as the server would.
	v := f.views["by_origin"]
	v.Batch = &api.BatchVersion{Version: 3, CoveredOffset: 1000, PublishedAt: testTime, Rows: 1500, Bytes: 1234567, Files: 2, JobID: "job-9"}
	v.Speed = &api.SpeedStatus{FromOffset: 1000, LogEndOffset: 1250, LagRecords: 250, LagMillis: 200000,
		Segments: []api.Segment{{First: 1000, End: 1200, Sealed: true}, {First: 1200, End: 1250}}}
	f.views["by_origin"] = v

	r = runCLI(t, url, "", "view", "show", "by_origin")
	r.wantSuccess(t)
	want := "name:            by_origin\n" +
		"dataset:         flights\n" +
		"schedule:        @every 5m\n" +
		"created:         2024-05-01 12:00:00 UTC\n" +
		"batch version:   3, published 2024-05-01 12:00:00 UTC, job job-9\n" +
		"covered offset:  1000 (the version holds every record with a smaller offset)\n" +
		"batch size:      1,500 rows in 2 files, 1.2 MB\n" +
		"speed layer:     offsets [1000, 1250)\n" +
		"speed segments:  [1000, 1200) 200 records, sealed\n" +
		"                 [1200, 1250) 50 records, open\n" +
		"lag:             250 records, 3m20s\n" +
		"sql:             SELECT origin, count(*) AS n FROM flights GROUP BY origin\n"
	if r.stdout != want {
		t.Errorf("show:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, url, "", "view", "list")
	r.wantSuccess(t)
	for _, s := range []string{"NAME", "by_origin   flights  @every 5m  3        1,000    250 records, 3m20s", "everything  flights  -          -        -        -"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("list lacks %q:\n%s", s, r.stdout)
		}
	}
}

func TestViewBuildAndJobStatus(t *testing.T) {
	f, url := newFakeAPI(t)
	f.views["by_origin"] = api.View{Name: "by_origin", Dataset: "flights"}
	f.views["broken"] = api.View{Name: "broken", Dataset: "flights"}

	r := runCLI(t, url, "", "view", "build", "by_origin")
	r.wantSuccess(t)
	if r.stdout != "job-1\n" {
		t.Errorf("build printed %q, want the job id", r.stdout)
	}
	r = runCLI(t, url, "", "job", "status", "job-1")
	r.wantSuccess(t)
	if !strings.Contains(r.stdout, "state:    queued\n") {
		t.Errorf("status:\n%s", r.stdout)
	}

	r = runCLI(t, url, "", "view", "build", "by_origin", "--wait", "--poll", "1ms")
	r.wantSuccess(t)
	want := "job-2\n" +
		"job:        job-2\n" +
		"kind:       build\n" +
		"view:       by_origin\n" +
		"state:      succeeded\n" +
		"created:    2024-05-01 12:00:00 UTC\n" +
		"started:    2024-05-01 12:00:01 UTC\n" +
		"finished:   2024-05-01 12:00:03 UTC\n" +
		"duration:   2.5s\n" +
		"published:  version 1 covering offsets below 1200 (42 rows in 2 files, 2.0 kB)\n"
	if r.stdout != want {
		t.Errorf("build --wait:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, url, "", "view", "build", "broken", "--wait", "--poll", "1ms")
	r.wantFailure(t, "duet: build of view broken failed (job job-3): executor exited with status 1: out of disk")
	if !strings.Contains(r.stdout, "state:     failed\n") || !strings.Contains(r.stdout, "error:     executor exited with status 1: out of disk\n") {
		t.Errorf("failed build printed:\n%s", r.stdout)
	}

	runCLI(t, url, "", "job", "status", "job-99").wantFailure(t, `duet: job "job-99" not found`)
	runCLI(t, url, "", "view", "build", "nope").wantFailure(t, `duet: view "nope" not found`)
}

func TestUnreachableServerIsOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	want := `duet: cannot reach duet server at http://` + addr + `: connection refused (start it with "duet serve")`
	runCLI(t, "http://"+addr, "", "dataset", "list").wantFailure(t, want)
	runCLI(t, "http://"+addr, "", "sql", "SELECT 1").wantFailure(t, want)
}

func TestServerFromEnvironment(t *testing.T) {
	_, url := newFakeAPI(t)
	var out, errOut strings.Builder
	code := run(t.Context(), []string{"dataset", "list"}, ioStreams{in: strings.NewReader(""), out: &out, err: &errOut},
		func(k string) string {
			if k == "DUET_SERVER" {
				return url
			}
			return ""
		})
	if code != 0 || !strings.Contains(out.String(), "no datasets yet") {
		t.Errorf("code %d, stdout %q, stderr %q: DUET_SERVER not used", code, out.String(), errOut.String())
	}
}

func TestUsageErrorsAreOneLine(t *testing.T) {
	runCLI(t, "", "", "datset", "list").wantFailure(t, `duet: unknown command "datset" for "duet" (did you mean "dataset"?)`)
	runCLI(t, "", "", "ingest", "--bogus", "x").wantFailure(t, `duet: unknown flag: --bogus (see "duet ingest --help")`)
	runCLI(t, "", "", "view", "show", "a", "b").wantFailure(t, `duet: unexpected argument "b" (usage: duet view show NAME)`)
	runCLI(t, "", "", "sql", "SELECT", "1").wantFailure(t, `duet: the query came as 2 arguments; quote it as one: duet sql "SELECT ..."`)
	runCLI(t, "", "", "sql", "--format", "xml", "SELECT 1").wantFailure(t, `duet: --format "xml": use table, csv or json`)
	runCLI(t, "ftp://x", "", "view", "list").wantFailure(t, `duet: --server: server URL "ftp://x": must start with http:// or https:// (like http://127.0.0.1:8080)`)
}
