package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/duet-analytics/duet/internal/catalog"
)

// SubmitRequest asks for a job.
type SubmitRequest struct {
	Kind   string
	View   string
	Params map[string]string
	// ID, if set, names the job and makes the submit idempotent: submitting
	// the same request with the same ID again returns the first job. Letters,
	// digits, '.', '_' and '-', up to 128.
	ID string
	// User submits the job; MaxActivePerUser applies to it.
	User string
	// SQL and Output: a sql job's script and where its result goes (see
	// ParseOutput).
	SQL, Output string
	// Criteria choose the cluster (see Place).
	Criteria [][]string
	// Timeout and MaxAttempts override the view's policy (or the defaults)
	// when positive.
	Timeout     time.Duration
	MaxAttempts int
	// Schedule is the job schedule whose fire submits the job; the
	// scheduler sets it.
	Schedule string
}

var validParam = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Output is where a sql job's result goes: a Parquet object, or a table of
// schema jobs (backed by a Parquet object too).
type Output struct {
	// Object is the object-store path of the result file.
	Object string
	// Table is the name in schema jobs, "" for a plain object.
	Table string
}

// JobsSchema holds the tables sql jobs write.
const JobsSchema = "jobs"

var (
	validTable  = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	validObject = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._=/-]*\.parquet$`)
)

// ParseOutput reads a sql job's output: "" (jobs/<id>/result.parquet), an
// object path ending in .parquet, or jobs.<table>.
func ParseOutput(output, jobID string) (Output, error) {
	if output == "" {
		return Output{Object: "jobs/" + jobID + "/result.parquet"}, nil
	}
	if name, ok := strings.CutPrefix(output, JobsSchema+"."); ok {
		if !validTable.MatchString(name) {
			return Output{}, fmt.Errorf("output %q: a table name in schema jobs is lower-case letters, digits and '_', starting with a letter or '_'", output)
		}
		return Output{Object: "jobs/tables/" + name + "/" + jobID + ".parquet", Table: name}, nil
	}
	if !validObject.MatchString(output) || strings.Contains(output, "..") || strings.Contains(output, "//") {
		return Output{}, fmt.Errorf("output %q: give jobs.<table> or an object path ending in .parquet (letters, digits, '.', '_', '-', '=', '/'; no '..')", output)
	}
	return Output{Object: output}, nil
}

// validate checks the kind and the parameters it needs.
func (r SubmitRequest) validate() error {
	if r.ID != "" && !validID.MatchString(r.ID) {
		return fmt.Errorf("%w: job id %q: use up to 128 letters, digits, '.', '_' and '-', starting with a letter or digit", ErrInvalidRequest, r.ID)
	}
	need := func(keys ...string) error {
		for _, k := range keys {
			if r.Params[k] == "" {
				return fmt.Errorf("%w: a %s job needs the parameter %q", ErrInvalidRequest, r.Kind, k)
			}
		}
		return nil
	}
	switch r.Kind {
	case KindViewBuild:
		if f, ok := r.Params["full"]; ok {
			if _, err := strconv.ParseBool(f); err != nil {
				return fmt.Errorf("%w: parameter full=%q: use true or false", ErrInvalidRequest, f)
			}
		}
	case KindBackfill:
		if err := need("from", "to"); err != nil {
			return err
		}
	case KindCompaction:
		return need("dataset")
	case KindSQL:
		if strings.TrimSpace(r.SQL) == "" {
			return fmt.Errorf("%w: a sql job needs its SQL script", ErrInvalidRequest)
		}
		if r.View != "" {
			return fmt.Errorf("%w: a sql job belongs to no view (got view %q)", ErrInvalidRequest, r.View)
		}
		if _, err := ParseOutput(r.Output, "id"); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		for k := range r.Params {
			if !validParam.MatchString(k) {
				return fmt.Errorf("%w: parameter name %q: use letters, digits and '_', starting with a letter or '_' (the script refers to it as $%s)", ErrInvalidRequest, k, k)
			}
		}
		return nil
	case KindNotebook:
		if strings.TrimSpace(r.SQL) == "" {
			return fmt.Errorf("%w: a notebook job needs its notebook", ErrInvalidRequest)
		}
		if r.View != "" || r.Output != "" {
			return fmt.Errorf("%w: a notebook job belongs to no view and takes no output (its executed notebook is kept with its logs)", ErrInvalidRequest)
		}
		for k := range r.Params {
			if !validParam.MatchString(k) {
				return fmt.Errorf("%w: parameter name %q: use letters, digits and '_', starting with a letter or '_'", ErrInvalidRequest, k)
			}
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown job kind %q (use %s)", ErrInvalidRequest, r.Kind, strings.Join(Kinds, ", "))
	}
	if r.SQL != "" || r.Output != "" {
		return fmt.Errorf("%w: only sql jobs take SQL and an output", ErrInvalidRequest)
	}
	if r.View == "" {
		return fmt.Errorf("%w: a %s job needs a view", ErrInvalidRequest, r.Kind)
	}
	return nil
}

// Submit queues a job. A queued job of the same kind, view and parameters
// absorbs the request and is returned instead: it will do the same work.
// A view's jobs get its retries and timeout; ErrNotFound (from the catalog)
// if the view does not exist.
func (s *Scheduler) Submit(ctx context.Context, req SubmitRequest) (catalog.Job, error) {
	if err := req.validate(); err != nil {
		return catalog.Job{}, err
	}
	if !Placeable(req.Criteria, s.cfg.Clusters) {
		return catalog.Job{}, fmt.Errorf("%w: no cluster has the tags of any criterion %v (clusters: %s)", ErrInvalidRequest, req.Criteria, s.describeClusters())
	}
	s.mu.Lock()
	j, err := s.submit(ctx, req, true)
	s.mu.Unlock()
	if err != nil {
		return catalog.Job{}, err
	}
	s.notify()
	return j, nil
}

// submit creates the job; the caller holds s.mu.
func (s *Scheduler) submit(ctx context.Context, req SubmitRequest, absorb bool) (catalog.Job, error) {
	same := func(j catalog.Job) bool {
		return j.Kind == req.Kind && j.View == req.View && maps.Equal(j.Params, req.Params) &&
			j.User == req.User && j.SQL == req.SQL && j.Output == req.Output && j.Schedule == req.Schedule &&
			slices.EqualFunc(j.Criteria, req.Criteria, slices.Equal)
	}
	if req.ID != "" {
		j, err := s.cat.GetJob(ctx, req.ID)
		switch {
		case err == nil && same(j):
			return j, nil
		case err == nil:
			return catalog.Job{}, fmt.Errorf("job %q: %w", req.ID, ErrIDInUse)
		case !errors.Is(err, catalog.ErrNotFound):
			return catalog.Job{}, err
		}
	}
	if n := s.cfg.MaxActivePerUser; n > 0 && req.User != "" {
		active := 0
		for _, state := range []string{StateQueued, StateRunning} {
			js, err := s.cat.ListJobs(ctx, catalog.JobFilter{User: req.User, State: state})
			if err != nil {
				return catalog.Job{}, fmt.Errorf("count active jobs: %w", err)
			}
			active += len(js)
		}
		if active >= n {
			return catalog.Job{}, fmt.Errorf("user %s has %d queued or running jobs, the most a user may have: %w", req.User, active, ErrUserLimit)
		}
	}
	if absorb && req.Kind != KindSQL && req.Kind != KindNotebook {
		queued, err := s.cat.ListJobs(ctx, catalog.JobFilter{State: StateQueued, View: req.View, Kind: req.Kind})
		if err != nil {
			return catalog.Job{}, fmt.Errorf("look for a queued job: %w", err)
		}
		for _, j := range queued {
			if same(j) {
				return j, nil
			}
		}
	}
	retries, timeout := DefaultMaxRetries, DefaultTimeout
	if req.View != "" {
		v, err := s.cat.GetView(ctx, req.View)
		if err != nil {
			return catalog.Job{}, err
		}
		retries = v.MaxRetries
		if v.Timeout > 0 {
			timeout = v.Timeout
		}
	}
	if req.Kind == KindSQL || req.Kind == KindNotebook {
		retries = 0 // a script may have effects a retry would repeat: only on request
	}
	if req.Timeout > 0 {
		timeout = req.Timeout
	}
	attempts := retries + 1
	if req.MaxAttempts > 0 {
		attempts = req.MaxAttempts
	}
	j := catalog.Job{
		ID: req.ID, Kind: req.Kind, View: req.View, Params: maps.Clone(req.Params), State: StateQueued,
		CreatedAt: s.clock.Now(), MaxAttempts: attempts, Timeout: timeout,
		User: req.User, SQL: req.SQL, Output: req.Output, Criteria: req.Criteria, Schedule: req.Schedule,
	}
	if len(j.Params) == 0 {
		j.Params = nil
	}
	if j.ID == "" {
		j.ID = uuid.NewString()
	}
	if err := s.cat.CreateJob(ctx, j); err != nil {
		return catalog.Job{}, fmt.Errorf("create job: %w", err)
	}
	return j, nil
}

func (s *Scheduler) describeClusters() string {
	var out []string
	for _, c := range s.cfg.Clusters {
		out = append(out, c.Name+" "+fmt.Sprint(c.Tags))
	}
	return strings.Join(out, ", ")
}

// fireNamespace makes fire job IDs distinct from other name-based UUIDs.
var fireNamespace = uuid.MustParse("5b0f6c4e-8f0e-4d4c-9a53-2f0b8f3f1e7a")

// fireJobID names the job of one cron fire of a view.
func fireJobID(view string, fire time.Time) string {
	return uuid.NewSHA1(fireNamespace, []byte(view+"\x00"+strconv.FormatInt(fire.UnixMilli(), 10))).String()
}

// Kill stops a job: a queued one is killed at once; a running one has its
// attempt's context cancelled (the Runner stops its executor) and becomes
// killed when the attempt returns. It returns the job as it is now.
// ErrFinished if the job already reached a final state; ErrNotFound (from the
// catalog) if there is no such job.
func (s *Scheduler) Kill(ctx context.Context, id string) (catalog.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.running[id]; ok {
		r.cancel(errKilled)
		return r.job, nil
	}
	j, err := s.cat.GetJob(ctx, id)
	if err != nil {
		return catalog.Job{}, err
	}
	if finished(j.State) {
		return j, fmt.Errorf("job %s is %s: %w", id, j.State, ErrFinished)
	}
	// Queued, or running in no process of ours (left by one that died).
	msg := "killed on request"
	if j.State == StateQueued && j.Error != "" {
		msg += " while waiting to retry; attempt " + strconv.Itoa(j.Attempt) + " had failed: " + j.Error
	}
	j.State, j.Error, j.FinishedAt, j.NextAttemptAt = StateKilled, msg, s.clock.Now(), time.Time{}
	if err := s.cat.UpdateJob(ctx, j); err != nil {
		return catalog.Job{}, fmt.Errorf("kill job %s: %w", id, err)
	}
	s.metrics.jobs.WithLabelValues(j.Kind, j.State).Inc()
	s.logger.Info("job killed", "job", id, "kind", j.Kind, "view", j.View)
	return j, nil
}
