package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/scheduler"
)

// recentScheduledJobs is how many of a schedule's latest jobs GET
// /v1/schedules/{name} shows.
const recentScheduledJobs = 5

func (s *Server) scheduleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/schedules", s.createSchedule)
	mux.HandleFunc("GET /v1/schedules", s.listSchedules)
	mux.HandleFunc("GET /v1/schedules/{name}", s.getSchedule)
	mux.HandleFunc("DELETE /v1/schedules/{name}", s.deleteSchedule)
}

// loadJobSchedules hands the catalog's job schedules to the scheduler. One
// this server can no longer run (its cluster criteria match no cluster
// configured now) is logged and left out, not fatal.
func (s *Server) loadJobSchedules(ctx context.Context) error {
	all, err := s.cat.ListJobSchedules(ctx)
	if err != nil {
		return fmt.Errorf("recover job schedules: %w", err)
	}
	for _, js := range all {
		if err := s.sched.ScheduleJob(js); err != nil {
			s.logger.Error("job schedule not started: delete it and create it again", "schedule", js.Name, "err", err)
		}
	}
	return nil
}

// createSchedule is POST /v1/schedules: the job template is checked as POST
// /v1/jobs checks a job, and its jobs are the caller's.
func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) {
	var req api.ScheduleRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := scheduler.ValidateScheduleName(req.Name); err != nil {
		writeError(w, http.StatusBadRequest, "name: %v", err)
		return
	}
	if req.Cron == "" {
		writeError(w, http.StatusBadRequest, `cron: give a cron spec such as "0 6 * * *" (6 fields with leading seconds, @hourly and "@every 5m" work too)`)
		return
	}
	if err := scheduler.ValidateSchedule(req.Cron); err != nil {
		writeError(w, http.StatusBadRequest, "cron: %v", err)
		return
	}
	catchup, err := scheduler.ParseCatchup(req.Catchup)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	switch {
	case req.Job.ID != "":
		writeError(w, http.StatusBadRequest, "job.id: a schedule names its jobs <name>-<fire time>; leave id out")
		return
	case req.Job.Kind != api.JobKindSQL && req.Job.Kind != api.JobKindNotebook:
		writeError(w, http.StatusBadRequest, "job.kind %q: a schedule runs %s or %s jobs (a view's builds have the view's schedule)",
			req.Job.Kind, api.JobKindSQL, api.JobKindNotebook)
		return
	}
	sr, err := submitRequest(req.Job, jobUser(r))
	if err != nil {
		writeError(w, http.StatusBadRequest, "job: %v", err)
		return
	}
	js := catalog.JobSchedule{
		Name: req.Name, Cron: req.Cron, Catchup: string(catchup), CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Job: catalog.Job{
			Kind: sr.Kind, View: sr.View, Params: sr.Params, User: sr.User, SQL: sr.SQL, Output: sr.Output,
			Criteria: sr.Criteria, Timeout: sr.Timeout, MaxAttempts: sr.MaxAttempts,
		},
	}
	if err := s.sched.CheckJobSchedule(js); err != nil {
		writeError(w, http.StatusBadRequest, "job: %v", err)
		return
	}
	err = s.cat.CreateJobSchedule(r.Context(), js)
	switch {
	case errors.Is(err, catalog.ErrExists):
		writeError(w, http.StatusConflict, "schedule %q already exists: delete it first, or choose another name", req.Name)
		return
	case err != nil:
		s.internalError(w, "create schedule", err)
		return
	}
	if err := s.sched.ScheduleJob(js); err != nil {
		s.internalError(w, "start schedule", err)
		return
	}
	s.logger.Info("job schedule created", "schedule", js.Name, "cron", js.Cron, "kind", js.Job.Kind, "user", js.Job.User)
	doc, err := s.scheduleDoc(r.Context(), js, true)
	if err != nil {
		s.internalError(w, "read schedule", err)
		return
	}
	w.Header().Set("Location", "/v1/schedules/"+js.Name)
	writeJSON(w, http.StatusCreated, doc)
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) {
	all, err := s.cat.ListJobSchedules(r.Context())
	if err != nil {
		s.internalError(w, "list schedules", err)
		return
	}
	out := api.ScheduleList{Schedules: make([]api.Schedule, 0, len(all))}
	for _, js := range all {
		doc, err := s.scheduleDoc(r.Context(), js, false)
		if err != nil {
			s.internalError(w, "read schedule", err)
			return
		}
		out.Schedules = append(out.Schedules, doc)
	}
	writeJSON(w, http.StatusOK, out)
}

// lookupSchedule reads the schedule the path names, answering 404 or 500
// itself when it cannot.
func (s *Server) lookupSchedule(w http.ResponseWriter, r *http.Request) (catalog.JobSchedule, bool) {
	name := r.PathValue("name")
	js, err := s.cat.GetJobSchedule(r.Context(), name)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "schedule %q not found", name)
		return js, false
	case err != nil:
		s.internalError(w, "read schedule", err)
		return js, false
	}
	return js, true
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) {
	js, ok := s.lookupSchedule(w, r)
	if !ok {
		return
	}
	doc, err := s.scheduleDoc(r.Context(), js, true)
	if err != nil {
		s.internalError(w, "read schedule", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// deleteSchedule stops the schedule before it removes it, so no fire
// submits a job once the answer (204) is sent; its jobs go on.
func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	js, ok := s.lookupSchedule(w, r)
	if !ok {
		return
	}
	name := js.Name
	s.sched.UnscheduleJob(name)
	err := s.cat.DeleteJobSchedule(r.Context(), name)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "schedule %q not found", name)
		return
	case err != nil:
		if serr := s.sched.ScheduleJob(js); serr != nil {
			s.logger.Error("restart schedule after a failed delete", "schedule", name, "err", serr)
		}
		s.internalError(w, "delete schedule", err)
		return
	}
	s.logger.Info("job schedule deleted", "schedule", name)
	w.WriteHeader(http.StatusNoContent)
}

// scheduleDoc renders a job schedule; full adds a notebook's document and
// the latest jobs.
func (s *Server) scheduleDoc(ctx context.Context, js catalog.JobSchedule, full bool) (api.Schedule, error) {
	j := js.Job
	doc := api.Schedule{
		Name: js.Name, Cron: js.Cron, Catchup: js.Catchup, User: j.User, CreatedAt: js.CreatedAt,
		Job: api.JobRequest{
			Kind: j.Kind, Params: j.Params, Output: j.Output, MaxAttempts: j.MaxAttempts, ClusterCriteria: j.Criteria,
		},
		LastError: s.sched.JobScheduleError(js.Name),
	}
	switch {
	case j.Kind == scheduler.KindNotebook && full:
		doc.Job.Notebook = json.RawMessage(j.SQL)
	case j.Kind == scheduler.KindSQL:
		doc.Job.SQL = j.SQL
	}
	if j.Timeout > 0 {
		doc.Job.Timeout = formatDuration(j.Timeout)
	}
	from := time.Now().UTC()
	if !js.LastFire.IsZero() {
		last := js.LastFire
		doc.LastFire = &last
		if last.After(from) {
			from = last
		}
	}
	if sched, err := scheduler.ParseSchedule(js.Cron); err == nil {
		if next := sched.Next(from); !next.IsZero() {
			doc.NextFire = &next
		}
	}
	if !full {
		return doc, nil
	}
	// Since its creation: an older schedule of the same name is another.
	jobs, err := s.cat.ListJobs(ctx, catalog.JobFilter{Schedule: js.Name, Since: js.CreatedAt, Limit: recentScheduledJobs})
	if err != nil {
		return api.Schedule{}, err
	}
	for _, sj := range jobs {
		doc.RecentJobs = append(doc.RecentJobs, api.ScheduledJob{ID: sj.ID, State: sj.State, CreatedAt: sj.CreatedAt})
	}
	return doc, nil
}
