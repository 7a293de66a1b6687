package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/duet-analytics/duet/api"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cliResult is what one command line produced.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the duet command line in-process against server, as a user
// would with --server.
func runCLI(t *testing.T, server, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	if server != "" {
		args = append([]string{"--server", server}, args...)
	}
	code := run(context.Background(), args, ioStreams{in: strings.NewReader(stdin), out: &out, err: &errOut},
		func(k string) string {
			if k == "USER" {
				return "tester"
			}
			return ""
		})
	return cliResult{stdout: out.String(), stderr: errOut.String(), code: code}
}

// wantFailure checks the exit code and that stderr is exactly one line.
func (r cliResult) wantFailure(t *testing.T, wantLine string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit code %d, want 1 (stdout %q)", r.code, r.stdout)
	}
	if r.stderr != wantLine+"\n" {
		t.Errorf("stderr = %q\nwant     %q", r.stderr, wantLine+"\n")
	}
}

func (r cliResult) wantSuccess(t *testing.T) {
	t.Helper()
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit code %d, stderr %q", r.code, r.stderr)
	}
}

// receivedBatch is one ingest request the fake server got.
type receivedBatch struct {
	contentType string
	body        []byte
}

// fakeAPI answers the documented /v1 endpoints from memory: it is the CLI's
// HTTP boundary, with canned behaviour instead of a real server.
type fakeAPI struct {
	t          *testing.T
	mu         sync.Mutex
	datasets   map[string]api.Dataset
	views      map[string]api.View
	jobs       map[string]*api.Job
	jobPolls   map[string]int
	batches    []receivedBatch
	nextOffset int64
	// rejectIngest, if set, may refuse batch i (0-based) with a 400 body.
	rejectIngest func(i int, body []byte) *api.Error
}

var testTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func newFakeAPI(t *testing.T) (*fakeAPI, string) {
	f := &fakeAPI{t: t, datasets: map[string]api.Dataset{}, views: map[string]api.View{},
		jobs: map[string]*api.Job{}, jobPolls: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/datasets", f.createDataset)
	mux.HandleFunc("GET /v1/datasets", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := api.DatasetList{Datasets: []api.Dataset{}}
		for _, d := range f.datasets {
			list.Datasets = append(list.Datasets, d)
		}
		writeJSON(w, 200, list)
	})
	mux.HandleFunc("GET /v1/datasets/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		d, ok := f.datasets[r.PathValue("name")]
		if !ok {
			writeJSON(w, 404, api.Error{Error: fmt.Sprintf("dataset %q not found", r.PathValue("name"))})
			return
		}
		writeJSON(w, 200, d)
	})
	mux.HandleFunc("POST /v1/ingest/{dataset}", f.ingest)
	mux.HandleFunc("POST /v1/views", f.createView)
	mux.HandleFunc("GET /v1/views", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := api.ViewList{Views: []api.View{}}
		for _, v := range f.views {
			list.Views = append(list.Views, v)
		}
		writeJSON(w, 200, list)
	})
	mux.HandleFunc("GET /v1/views/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		v, ok := f.views[r.PathValue("name")]
		if !ok {
			writeJSON(w, 404, api.Error{Error: fmt.Sprintf("view %q not found", r.PathValue("name"))})
			return
		}
		writeJSON(w, 200, v)
	})
	mux.HandleFunc("POST /v1/views/{name}/builds", f.triggerBuild)
	mux.HandleFunc("GET /v1/jobs/{id}", f.getJob)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) createDataset(w http.ResponseWriter, r *http.Request) {
	var d api.Dataset
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		writeJSON(w, 400, api.Error{Error: "invalid JSON: " + err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.datasets[d.Name]; ok {
		writeJSON(w, 409, api.Error{Error: fmt.Sprintf("dataset %q already exists", d.Name)})
		return
	}
	created := testTime
	d.CreatedAt = &created
	d.Log = &api.LogStatus{}
	f.datasets[d.Name] = d
	writeJSON(w, 201, d)
}

func (f *fakeAPI) ingest(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.datasets[r.PathValue("dataset")]; !ok {
		writeJSON(w, 404, api.Error{Error: fmt.Sprintf("dataset %q not found", r.PathValue("dataset"))})
		return
	}
	i := len(f.batches)
	f.batches = append(f.batches, receivedBatch{contentType: r.Header.Get("Content-Type"), body: body})
	if f.rejectIngest != nil {
		if e := f.rejectIngest(i, body); e != nil {
			writeJSON(w, 400, e)
			return
		}
	}
	rows := int64(bytes.Count(body, []byte("\n")))
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		rows = arrowRows(f.t, body)
	}
	res := api.IngestResult{Accepted: rows, FirstOffset: f.nextOffset, LastOffset: f.nextOffset + rows - 1}
	f.nextOffset += rows
	writeJSON(w, 200, res)
}

func (f *fakeAPI) createView(w http.ResponseWriter, r *http.Request) {
	var req api.ViewRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, api.Error{Error: "invalid JSON: " + err.Error()})
		return
	}
	if !strings.Contains(strings.ToLower(req.SQL), "from flights") {
		writeJSON(w, 400, api.Error{Error: "a view reads one dataset: FROM flights"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	created := testTime
	v := api.View{Name: req.Name, Dataset: "flights", SQL: req.SQL, Schedule: req.Schedule, CreatedAt: &created}
	f.views[v.Name] = v
	writeJSON(w, 201, v)
}

func (f *fakeAPI) triggerBuild(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := r.PathValue("name")
	if _, ok := f.views[name]; !ok {
		writeJSON(w, 404, api.Error{Error: fmt.Sprintf("view %q not found", name)})
		return
	}
	id := fmt.Sprintf("job-%d", len(f.jobs)+1)
	f.jobs[id] = &api.Job{ID: id, Kind: "build", View: name, State: api.JobQueued, CreatedAt: testTime}
	w.Header().Set("Location", "/v1/jobs/"+id)
	writeJSON(w, 202, f.jobs[id])
}

// getJob moves a job along one state per poll; builds of view "broken" fail.
func (f *fakeAPI) getJob(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[r.PathValue("id")]
	if !ok {
		writeJSON(w, 404, api.Error{Error: fmt.Sprintf("job %q not found", r.PathValue("id"))})
		return
	}
	f.jobPolls[j.ID]++
	switch f.jobPolls[j.ID] {
	case 1:
	case 2:
		started := testTime.Add(time.Second)
		j.State, j.StartedAt = api.JobRunning, &started
	default:
		if j.State == api.JobRunning {
			finished := testTime.Add(3500 * time.Millisecond)
			j.FinishedAt, j.DurationMs = &finished, 2500
			if j.View == "broken" {
				j.State, j.Error = api.JobFailed, "executor exited with status 1: out of disk"
			} else {
				j.State = api.JobSucceeded
				j.Version = &api.BatchVersion{Version: 1, CoveredOffset: 1200, PublishedAt: finished, Rows: 42, Bytes: 2048, Files: 2, JobID: j.ID}
			}
		}
	}
	writeJSON(w, 200, j)
}
