package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/scheduler"
)

// Job kinds the HTTP API queues.
const (
	jobKindViewBuild  = scheduler.KindViewBuild
	jobKindBackfill   = scheduler.KindBackfill
	jobKindCompaction = scheduler.KindCompaction
)

// Bounds of GET /v1/jobs?limit=.
const (
	defaultJobLimit = 100
	maxJobLimit     = 1000
)

// logBucket is what the logs endpoint reads job output from.
type logBucket interface {
	Get(ctx context.Context, name string) (io.ReadCloser, error)
}

func (s *Server) jobRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/jobs", s.postJob)
	mux.HandleFunc("GET /v1/jobs/{id}/output", s.jobOutputFiles)
	mux.HandleFunc("GET /v1/jobs/{id}/output/{file}", s.jobOutputFile)
	mux.HandleFunc("GET /v1/jobs", s.listJobs)
	mux.HandleFunc("GET /v1/jobs/{id}", s.getJob)
	mux.HandleFunc("GET /v1/jobs/{id}/logs", s.jobLogs)
	mux.HandleFunc("DELETE /v1/jobs/{id}", s.killJob)
}

// submitJob queues a job and answers 202 with it and its Location.
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request, kind, view string, params map[string]string) {
	s.submit(w, r, scheduler.SubmitRequest{Kind: kind, View: view, Params: params, User: jobUser(r)})
}

// postJob is POST /v1/jobs: any kind of job, with a client-chosen id that
// makes the request idempotent.
func (s *Server) postJob(w http.ResponseWriter, r *http.Request) {
	var req api.JobRequest
	if !decodeBody(w, r, &req) {
		return
	}
	sr, err := submitRequest(req, jobUser(r))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	s.submit(w, r, sr)
}

// submitRequest reads a job request (of POST /v1/jobs, or a schedule's
// template) into the scheduler's, submitted by user. Its error is the 400
// answer; the scheduler checks the rest.
func submitRequest(req api.JobRequest, user string) (scheduler.SubmitRequest, error) {
	sr := scheduler.SubmitRequest{
		ID: req.ID, Kind: req.Kind, View: req.View, Params: req.Params, User: user,
		SQL: req.SQL, Output: req.Output, Criteria: req.ClusterCriteria, MaxAttempts: req.MaxAttempts,
	}
	switch {
	case req.Kind == api.JobKindNotebook && req.SQL != "":
		return sr, errors.New(`a notebook job takes its notebook in "notebook", not "sql"`)
	case req.Kind == api.JobKindNotebook:
		var err error
		if sr.SQL, err = checkNotebook(req.Notebook, req.Params); err != nil {
			return sr, err
		}
	case len(req.Notebook) > 0:
		return sr, fmt.Errorf("only notebook jobs take a notebook (kind %q)", api.JobKindNotebook)
	}
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d < time.Second {
			return sr, fmt.Errorf("timeout %q: give a duration of at least 1s, such as 30m or 2h", req.Timeout)
		}
		sr.Timeout = d
	}
	if req.MaxAttempts < 0 || req.MaxAttempts > maxViewRetries+1 {
		return sr, fmt.Errorf("max_attempts %d: give a number from 1 to %d", req.MaxAttempts, maxViewRetries+1)
	}
	return sr, nil
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, req scheduler.SubmitRequest) {
	j, err := s.sched.Submit(r.Context(), req)
	switch {
	case errors.Is(err, scheduler.ErrInvalidRequest):
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	case errors.Is(err, scheduler.ErrIDInUse):
		writeError(w, http.StatusConflict, "%v: choose another id", err)
		return
	case errors.Is(err, scheduler.ErrUserLimit):
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, "%v", err)
		return
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "view %q not found", req.View)
		return
	case err != nil:
		s.internalError(w, "submit job", err)
		return
	}
	doc, err := s.jobDoc(r.Context(), j, false)
	if err != nil {
		s.internalError(w, "read job", err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, doc)
}

// jobDoc renders a job; withVersion looks up the version it published.
func (s *Server) jobDoc(ctx context.Context, j catalog.Job, withVersion bool) (api.Job, error) {
	doc := api.Job{
		ID: j.ID, Kind: j.Kind, View: j.View, Params: j.Params, State: j.State,
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, CreatedAt: j.CreatedAt, Error: j.Error, LogPrefix: j.LogPrefix,
		User: j.User, SQL: j.SQL, Output: j.Output, ClusterCriteria: j.Criteria, Schedule: j.Schedule,
	}
	if j.Kind == scheduler.KindNotebook {
		doc.SQL = "" // the notebook, which GET .../output/notebook.ipynb shows executed
	}
	if j.Kind == scheduler.KindSQL && j.Output == "" {
		out, _ := scheduler.ParseOutput("", j.ID) // the default always parses
		doc.Output = out.Object
	}
	if j.Cluster != "" {
		doc.Executor = &api.JobExecutor{Cluster: j.Cluster}
		if l, ok := s.live.get(j.ID); ok && j.State == scheduler.StateRunning {
			doc.Executor.PID, doc.Progress = l.pid, l.progress
		}
	}
	if j.Timeout > 0 {
		doc.Timeout = formatDuration(j.Timeout)
	}
	if !j.NextAttemptAt.IsZero() && j.State == scheduler.StateQueued {
		t := j.NextAttemptAt
		doc.NextAttemptAt = &t
	}
	if !j.StartedAt.IsZero() {
		t := j.StartedAt
		doc.StartedAt = &t
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		doc.FinishedAt = &t
		if !j.StartedAt.IsZero() {
			doc.DurationMs = j.FinishedAt.Sub(j.StartedAt).Milliseconds()
		}
	}
	if withVersion && j.Version > 0 && j.View != "" {
		versions, err := s.cat.ListVersions(ctx, j.View)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return api.Job{}, err
		}
		for _, v := range versions {
			if v.Version == j.Version {
				doc.Version = versionDoc(v)
			}
		}
	}
	return doc, nil
}

// formatDuration writes a duration without zero units: 1h, 30m, 1h30m, 90ms.
func formatDuration(d time.Duration) string {
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := catalog.JobFilter{View: q.Get("view"), State: q.Get("state"), Kind: q.Get("kind"), User: q.Get("user"),
		Schedule: q.Get("schedule"), Limit: defaultJobLimit}
	if f.State != "" && !slices.Contains(scheduler.States, f.State) {
		writeError(w, http.StatusBadRequest, "state %q: use one of %s", f.State, strings.Join(scheduler.States, ", "))
		return
	}
	if f.Kind != "" && !slices.Contains(scheduler.Kinds, f.Kind) {
		writeError(w, http.StatusBadRequest, "kind %q: use one of %s", f.Kind, strings.Join(scheduler.Kinds, ", "))
		return
	}
	if since := q.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since %q: give a time such as 2026-11-23T08:00:00Z", since)
			return
		}
		f.Since = t
	}
	if o := q.Get("offset"); o != "" {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "offset %q: give a number of jobs to skip", o)
			return
		}
		f.Offset = n
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxJobLimit {
			writeError(w, http.StatusBadRequest, "limit %q: give a number from 1 to %d", l, maxJobLimit)
			return
		}
		f.Limit = n
	}
	page := f.Limit
	f.Limit++ // one more tells whether a next page exists
	jobs, err := s.cat.ListJobs(r.Context(), f)
	if err != nil {
		s.internalError(w, "list jobs", err)
		return
	}
	out := api.JobList{Jobs: make([]api.Job, 0, len(jobs))}
	if len(jobs) > page {
		jobs = jobs[:page]
		next := r.URL.Query()
		next.Set("offset", strconv.Itoa(f.Offset+page))
		out.Next = "/v1/jobs?" + next.Encode()
	}
	for _, j := range jobs {
		doc, err := s.jobDoc(r.Context(), j, false)
		if err != nil {
			s.internalError(w, "read job", err)
			return
		}
		out.Jobs = append(out.Jobs, doc)
	}
	writeJSON(w, http.StatusOK, out)
}

// lookupJob reads the job named in the path, answering 404 or 500 itself.
func (s *Server) lookupJob(w http.ResponseWriter, r *http.Request) (catalog.Job, bool) {
	id := r.PathValue("id")
	j, err := s.cat.GetJob(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "job %q not found", id)
		return catalog.Job{}, false
	}
	if err != nil {
		s.internalError(w, "read job", err)
		return catalog.Job{}, false
	}
	return j, true
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookupJob(w, r)
	if !ok {
		return
	}
	doc, err := s.jobDoc(r.Context(), j, true)
	if err != nil {
		s.internalError(w, "read job", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// jobLogs answers the latest attempt's executor output: stderr, then stdout.
func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookupJob(w, r)
	if !ok {
		return
	}
	if j.LogPrefix == "" {
		writeError(w, http.StatusNotFound, "job %s has no logs: it has not started", j.ID)
		return
	}
	var parts [][]byte
	for _, name := range []string{scheduler.LogStderr, scheduler.LogStdout} {
		b, err := readObject(r.Context(), s.bucket, j.LogPrefix+name)
		if objstore.IsObjNotFoundErr(err) {
			continue
		}
		if err != nil {
			s.internalError(w, "read job logs", err)
			return
		}
		parts = append(parts, b)
	}
	if parts == nil {
		writeError(w, http.StatusNotFound, "job %s has no logs: attempt %d ran no executor (or its output was not kept)", j.ID, j.Attempt)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	for i, b := range parts {
		_, _ = w.Write(b)
		if i < len(parts)-1 && len(b) > 0 && b[len(b)-1] != '\n' {
			_, _ = io.WriteString(w, "\n")
		}
	}
}

// maxLogBytes bounds what the logs endpoint serves of each output.
const maxLogBytes = 16 << 20

func readObject(ctx context.Context, b logBucket, name string) ([]byte, error) {
	rc, err := b.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxLogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxLogBytes {
		data = append(data[:maxLogBytes], fmt.Sprintf("\n... (cut at %d bytes)\n", maxLogBytes)...)
	}
	return data, nil
}

// killJob kills a queued job at once and cancels a running one (202);
// a finished job cannot be killed (409).
func (s *Server) killJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	j, err := s.sched.Kill(r.Context(), id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "job %q not found", id)
		return
	case errors.Is(err, scheduler.ErrFinished):
		writeError(w, http.StatusConflict, "job %s already %s: only queued and running jobs can be killed", id, j.State)
		return
	case err != nil:
		s.internalError(w, "kill job", err)
		return
	}
	doc, err := s.jobDoc(r.Context(), j, false)
	if err != nil {
		s.internalError(w, "read job", err)
		return
	}
	writeJSON(w, http.StatusAccepted, doc)
}

// maxViewRetries bounds a view's max_retries: beyond it, a broken view would
// keep a worker busy for hours at the maximum backoff.
const maxViewRetries = 100

// jobPolicy is how the scheduler runs a view's jobs.
type jobPolicy struct {
	Catchup    string
	MaxRetries int
	Timeout    time.Duration
}

// viewPolicy reads a view request's job policy, with the defaults filled in.
func viewPolicy(req api.ViewRequest) (jobPolicy, error) {
	catchup, err := scheduler.ParseCatchup(req.Catchup)
	if err != nil {
		return jobPolicy{}, err
	}
	p := jobPolicy{Catchup: string(catchup), MaxRetries: scheduler.DefaultMaxRetries, Timeout: scheduler.DefaultTimeout}
	if req.MaxRetries != nil {
		if *req.MaxRetries < 0 || *req.MaxRetries > maxViewRetries {
			return jobPolicy{}, fmt.Errorf("max_retries %d: give a number from 0 to %d", *req.MaxRetries, maxViewRetries)
		}
		p.MaxRetries = *req.MaxRetries
	}
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d < time.Second {
			return jobPolicy{}, fmt.Errorf("timeout %q: give a duration of at least 1s, such as 30m or 2h", req.Timeout)
		}
		p.Timeout = d
	}
	return p, nil
}

// jobOutputNames are the files of GET /v1/jobs/{id}/output, in order.
var jobOutputNames = []string{scheduler.LogStdout, scheduler.LogStderr, manifestFile, resultFile, notebookOutputFile}

const resultFile = "result.parquet"

// jobOutputPath is the local file that holds a job's output file if it
// exists: a running executor's stdout and stderr where they grow, else what
// the object store kept of the latest attempt. ok is false when the job
// can have no such file.
func (s *Server) jobOutputPath(j catalog.Job, name string) (string, bool) {
	var object string
	switch name {
	case scheduler.LogStdout, scheduler.LogStderr:
		if l, ok := s.live.get(j.ID); ok && l.dir != "" && j.State == scheduler.StateRunning {
			return filepath.Join(l.dir, name), true
		}
		object = j.LogPrefix + name
	case manifestFile:
		object = j.LogPrefix + name
	case notebookOutputFile:
		if j.Kind != scheduler.KindNotebook {
			return "", false
		}
		object = j.LogPrefix + name
	case resultFile:
		if j.Kind != scheduler.KindSQL || j.State != scheduler.StateSucceeded {
			return "", false
		}
		out, err := scheduler.ParseOutput(j.Output, j.ID)
		if err != nil {
			return "", false
		}
		object = out.Object
	default:
		return "", false
	}
	if j.LogPrefix == "" {
		return "", false
	}
	p, err := s.bucket.LocalPath(object)
	return p, err == nil
}

func (s *Server) jobOutputFiles(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookupJob(w, r)
	if !ok {
		return
	}
	out := api.JobOutput{Files: []api.JobOutputFile{}}
	for _, name := range jobOutputNames {
		p, ok := s.jobOutputPath(j, name)
		if !ok {
			continue
		}
		if st, err := os.Stat(p); err == nil {
			out.Files = append(out.Files, api.JobOutputFile{Name: name, Bytes: st.Size()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// jobOutputFile serves one output file, with byte ranges (a client
// following a running job's log asks for what it has not read yet).
func (s *Server) jobOutputFile(w http.ResponseWriter, r *http.Request) {
	j, ok := s.lookupJob(w, r)
	if !ok {
		return
	}
	name := r.PathValue("file")
	if !slices.Contains(jobOutputNames, name) {
		writeError(w, http.StatusNotFound, "job output %q: there are %s", name, strings.Join(jobOutputNames, ", "))
		return
	}
	p, ok := s.jobOutputPath(j, name)
	if !ok {
		writeError(w, http.StatusNotFound, "job %s has no %s (yet)", j.ID, name)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		writeError(w, http.StatusNotFound, "job %s has no %s (yet)", j.ID, name)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.internalError(w, "read job output", err)
		return
	}
	switch {
	case strings.HasSuffix(name, ".json"):
		w.Header().Set("Content-Type", "application/json")
	case strings.HasSuffix(name, ".ipynb"):
		w.Header().Set("Content-Type", "application/x-ipynb+json")
	case strings.HasSuffix(name, ".parquet"):
		w.Header().Set("Content-Type", "application/vnd.apache.parquet")
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(w, r, name, st.ModTime(), f)
}
