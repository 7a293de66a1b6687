package scheduler

import (
	"fmt"
	"regexp"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
)

// A job schedule fires a sql or notebook job on a cron spec, as a view's
// schedule fires its builds, with the same catch-up policies. Its fires
// start after its creation; the last one handled is recorded in the
// catalog, so a restarted scheduler neither loses nor repeats one.

// validScheduleName keeps a schedule's name short enough to prefix the IDs
// of its jobs (JobFireID) and plain enough for a URL path.
var validScheduleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)

// fireTimeLayout writes a fire time in its job's ID: UTC, to the second,
// which is the finest a cron spec fires at.
const fireTimeLayout = "20060102T150405Z"

// JobFireID names the job of a job schedule's fire: the schedule's name and
// the fire time, such as nightly-20260314T060000Z.
func JobFireID(schedule string, fire time.Time) string {
	return schedule + "-" + fire.UTC().Format(fireTimeLayout)
}

// ValidateScheduleName checks the name of a job schedule.
func ValidateScheduleName(name string) error {
	if !validScheduleName.MatchString(name) {
		return fmt.Errorf("schedule name %q: use up to 100 letters, digits, '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// ScheduleJob fires the job schedule js: at each fire of js.Cron, a job
// from the template js.Job (kind sql or notebook), named JobFireID(js.Name,
// fire) and submitted as js.Job.User through Submit's checks and limits.
// It replaces a schedule of that name unless it has the same settings.
// ErrInvalidRequest (wrapped) if no such job could be submitted.
func (s *Scheduler) ScheduleJob(js catalog.JobSchedule) error {
	e, err := s.jobSchedule(js)
	if err != nil {
		return err
	}
	s.watch(scheduleKey{job: true, name: js.Name}, e)
	return nil
}

// CheckJobSchedule returns the error ScheduleJob would, without scheduling.
func (s *Scheduler) CheckJobSchedule(js catalog.JobSchedule) error {
	_, err := s.jobSchedule(js)
	return err
}

// UnscheduleJob stops the job schedule: once it returns, the schedule
// submits no job; those it submitted go on.
func (s *Scheduler) UnscheduleJob(name string) {
	s.mu.Lock()
	delete(s.schedules, scheduleKey{job: true, name: name})
	s.mu.Unlock()
}

// JobScheduleError says why the latest fire of the job schedule submitted
// no job, such as its user's limit of active jobs; "" if it did, or if the
// schedule is not this scheduler's.
func (s *Scheduler) JobScheduleError(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.schedules[scheduleKey{job: true, name: name}]; e != nil {
		return e.err
	}
	return ""
}

func (s *Scheduler) jobSchedule(js catalog.JobSchedule) (*schedule, error) {
	if err := ValidateScheduleName(js.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	sched, err := ParseSchedule(js.Cron)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	policy, err := ParseCatchup(js.Catchup)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	j := js.Job
	if j.Kind != KindSQL && j.Kind != KindNotebook {
		return nil, fmt.Errorf("%w: job kind %q: a schedule runs %s or %s jobs (views have schedules of their own)", ErrInvalidRequest, j.Kind, KindSQL, KindNotebook)
	}
	req := &SubmitRequest{
		Kind: j.Kind, View: j.View, Params: j.Params, User: j.User, SQL: j.SQL, Output: j.Output,
		Criteria: j.Criteria, Timeout: j.Timeout, MaxAttempts: j.MaxAttempts,
	}
	probe := *req
	probe.ID = JobFireID(js.Name, time.Time{})
	if err := probe.validate(); err != nil {
		return nil, err
	}
	if !Placeable(req.Criteria, s.cfg.Clusters) {
		return nil, fmt.Errorf("%w: no cluster has the tags of any criterion %v (clusters: %s)", ErrInvalidRequest, req.Criteria, s.describeClusters())
	}
	created := js.CreatedAt
	if created.IsZero() {
		created = s.clock.Now()
	}
	return &schedule{spec: js.Cron, sched: sched, policy: policy, job: req, created: created}, nil
}
