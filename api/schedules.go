package api

import "time"

// ScheduleRequest is the body of POST /v1/schedules: a sql or notebook job
// submitted at each fire of a cron spec, as the user who created the
// schedule.
type ScheduleRequest struct {
	// Name names the schedule and prefixes the IDs of its jobs,
	// <name>-<fire time>, such as nightly-20260314T060000Z. Up to 100
	// letters, digits, '_' and '-'.
	Name string `json:"name"`
	// Cron is 5 cron fields, or 6 with leading seconds, a descriptor such as
	// @hourly or "@every 5m", and an optional CRON_TZ=Zone prefix (UTC
	// without it).
	Cron string `json:"cron"`
	// Catchup is what to do about fires missed while no server ran: skip
	// (the default), once (one job for them) or all (one job each).
	Catchup string `json:"catchup,omitempty"`
	// Job is the job each fire submits: the fields of POST /v1/jobs, kind
	// sql or notebook, without id.
	Job JobRequest `json:"job"`
}

// Schedule is the answer of POST /v1/schedules (201) and GET
// /v1/schedules/{name}.
type Schedule struct {
	Name    string `json:"name"`
	Cron    string `json:"cron"`
	Catchup string `json:"catchup"`
	// User created the schedule; its jobs are submitted as this user.
	User string `json:"user,omitempty"`
	// Job is the template of the jobs; GET /v1/schedules leaves a
	// notebook's document out.
	Job       JobRequest `json:"job"`
	CreatedAt time.Time  `json:"created_at"`
	// LastFire is the latest fire handled, NextFire the next one.
	LastFire *time.Time `json:"last_fire,omitempty"`
	NextFire *time.Time `json:"next_fire,omitempty"`
	// LastError says why the latest fire submitted no job, such as the
	// user's limit of active jobs.
	LastError string `json:"last_error,omitempty"`
	// RecentJobs are the latest jobs the schedule submitted, newest first.
	RecentJobs []ScheduledJob `json:"recent_jobs,omitempty"`
}

// ScheduledJob is one job a schedule submitted.
type ScheduledJob struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
}

// ScheduleList is the answer of GET /v1/schedules, by name.
type ScheduleList struct {
	Schedules []Schedule `json:"schedules"`
}
