// Package api holds the JSON documents of duet's public HTTP API (/v1/...),
// shared by the server that answers them and the client the CLI uses.
// Fields are only ever added; a field's meaning never changes.
package api

import (
	"encoding/json"
	"time"

	"github.com/duet-analytics/duet/dataset"
)

// Dataset is the body of POST /v1/datasets and the answer of GET /v1/datasets/{name}.
type Dataset struct {
	Name       string           `json:"name"`
	TimeColumn string           `json:"time_column"`
	Columns    []dataset.Column `json:"columns"`
	// DedupKey names a varchar, bigint or integer column: a record whose key
	// was accepted less than DedupWindow before is ignored (absent: no
	// deduplication). DedupWindow is a duration such as "10m" (default 10m,
	// at most 24h); answers give it as "10m0s".
	DedupKey    string `json:"dedup_key,omitempty"`
	DedupWindow string `json:"dedup_window,omitempty"`
	// Source, when set, is the Kafka topic or NATS JetStream stream the
	// dataset reads its events from, exactly once; it then takes no events
	// through POST /v1/ingest.
	Source    *dataset.Source `json:"source,omitempty"`
	CreatedAt *time.Time      `json:"created_at,omitempty"`
	// Log and SourceStatus are filled in answers only.
	Log          *LogStatus    `json:"log,omitempty"`
	SourceStatus *SourceStatus `json:"source_status,omitempty"`
}

// SourceStatus is how reading a dataset's source goes.
type SourceStatus struct {
	// Consumed counts messages stored; Rejected messages skipped because
	// they did not decode (LastRejected says where and why).
	Consumed int64 `json:"consumed"`
	Rejected int64 `json:"rejected"`
	// Lag is how many messages the source holds beyond Positions; -1 when
	// unknown.
	Lag int64 `json:"lag"`
	// Positions is where the source stands after the last stored batch,
	// in the source's terms (partition offsets, stream sequence).
	Positions    string     `json:"positions,omitempty"`
	LastRejected string     `json:"last_rejected,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	LastErrorAt  *time.Time `json:"last_error_at,omitempty"`
}

// LogStatus describes a dataset's event log.
type LogStatus struct {
	// EndOffset is the offset the next accepted record will get.
	EndOffset int64 `json:"end_offset"`
	// ArchivedOffset: every record with a smaller offset is in the raw archive.
	ArchivedOffset int64 `json:"archived_offset"`
	ArchiveFiles   int   `json:"archive_files"`
}

// DatasetList is the answer of GET /v1/datasets.
type DatasetList struct {
	Datasets []Dataset `json:"datasets"`
}

// IngestResult is the answer of POST /v1/ingest/{dataset}: the accepted
// records are durable, with offsets first_offset..last_offset inclusive
// (both -1 when accepted is 0: every record was a duplicate).
type IngestResult struct {
	Accepted    int64 `json:"accepted"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
	// Duplicates were ignored: the dataset's dedup key of each was accepted
	// within its dedup window, earlier or in the same request.
	Duplicates int64 `json:"duplicates"`
}

// ViewRequest is the body of POST /v1/views.
type ViewRequest struct {
	Name     string `json:"name"`
	SQL      string `json:"sql"`
	Schedule string `json:"schedule,omitempty"`
	// Catchup is what the schedule does about fires missed while the server
	// was down: skip (the default), once or all.
	Catchup string `json:"catchup,omitempty"`
	// MaxRetries bounds the retries of a failed build (absent: 3).
	MaxRetries *int `json:"max_retries,omitempty"`
	// Timeout bounds one build attempt, as a duration such as "30m" (absent: 1h).
	Timeout string `json:"timeout,omitempty"`
}

// View is the answer of GET /v1/views/{name}.
type View struct {
	Name     string `json:"name"`
	Dataset  string `json:"dataset"`
	SQL      string `json:"sql"`
	Schedule string `json:"schedule,omitempty"`
	// Catchup, MaxRetries and Timeout are the view's job policy (see ViewRequest).
	Catchup    string     `json:"catchup,omitempty"`
	MaxRetries int        `json:"max_retries"`
	Timeout    string     `json:"timeout,omitempty"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	// Batch is the published batch version; nil before the first build.
	Batch *BatchVersion `json:"batch"`
	Speed *SpeedStatus  `json:"speed,omitempty"`
}

// BatchVersion is one published version of a view.
type BatchVersion struct {
	Version int64 `json:"version"`
	// CoveredOffset: the version holds exactly the records with smaller offsets.
	CoveredOffset int64     `json:"covered_offset"`
	PublishedAt   time.Time `json:"published_at"`
	Rows          int64     `json:"rows"`
	Bytes         int64     `json:"bytes"`
	Files         int       `json:"files"`
	JobID         string    `json:"job_id,omitempty"`
}

// SpeedStatus is what the speed layer holds for a view beyond its batch version.
type SpeedStatus struct {
	// FromOffset..LogEndOffset are the offsets merged in from the speed layer.
	FromOffset   int64     `json:"from_offset"`
	LogEndOffset int64     `json:"log_end_offset"`
	Segments     []Segment `json:"segments"`
	// LagRecords is how many accepted records the batch version does not cover.
	LagRecords int64 `json:"lag_records"`
	// LagMillis is the age of the oldest record the batch version does not cover
	// (0 when it covers everything).
	LagMillis int64 `json:"lag_ms"`
	// Materialized: queries read the view's answer computed once since
	// records last arrived, rather than merging batch and speed at every
	// query; the answers are the same.
	Materialized bool `json:"materialized"`
}

// Segment is a range of log offsets [first, end) held by the speed layer.
type Segment struct {
	First  int64 `json:"first"`
	End    int64 `json:"end"`
	Sealed bool  `json:"sealed"`
}

// ViewList is the answer of GET /v1/views.
type ViewList struct {
	Views []View `json:"views"`
}

// Job states: queued -> running -> succeeded | failed | killed | timed_out.
// A failed or timed-out attempt goes back to queued while attempts remain.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobKilled    = "killed"
	JobTimedOut  = "timed_out"
)

// JobFinished reports whether a job state is final.
func JobFinished(state string) bool {
	switch state {
	case JobSucceeded, JobFailed, JobKilled, JobTimedOut:
		return true
	}
	return false
}

// Job kinds.
const (
	JobKindViewBuild  = "view-build"
	JobKindBackfill   = "backfill"
	JobKindCompaction = "compaction"
	// JobKindSQL runs a SQL script on an executor; its last statement's
	// rows are the result.
	JobKindSQL = "sql"
	// JobKindNotebook runs a Jupyter notebook's %%sql cells through the
	// SQL gateway on an executor; the executed notebook is the job's
	// output file notebook.ipynb.
	JobKindNotebook = "notebook"
)

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	// ID, if set, names the job and makes the request idempotent: the same
	// request again answers with the first job. Up to 128 letters, digits,
	// '.', '_' and '-'.
	ID   string `json:"id,omitempty"`
	Kind string `json:"kind"`
	View string `json:"view,omitempty"`
	// Params are the kind's arguments; for a sql job, the values of the
	// script's $name parameters (bound as typed values, never pasted).
	Params map[string]string `json:"params,omitempty"`
	// SQL is a sql job's script: statements separated by ';', the last one
	// a query.
	SQL string `json:"sql,omitempty"`
	// Notebook is a notebook job's notebook (nbformat 4); Params override
	// the defaults of its parameters cell.
	Notebook json.RawMessage `json:"notebook,omitempty"`
	// Output is where a sql job's result goes: an object-store path ending
	// in .parquet, or jobs.<name>, a table in schema jobs. Default:
	// jobs/<id>/result.parquet.
	Output string `json:"output,omitempty"`
	// Timeout bounds one attempt, as a duration such as "30m".
	Timeout string `json:"timeout,omitempty"`
	// MaxAttempts bounds the attempts (default 1 for a sql job).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// ClusterCriteria are tag sets in order of preference: the first that
	// some healthy cluster has all of places the job, on the least loaded
	// such cluster. Empty: any cluster tagged "default".
	ClusterCriteria [][]string `json:"cluster_criteria,omitempty"`
}

// JobProgress is a running attempt's latest heartbeat from its executor.
type JobProgress struct {
	// Stage says what the executor is doing, such as "statement 2 of 3".
	Stage       string    `json:"stage"`
	Rows        int64     `json:"rows"`
	ElapsedMs   int64     `json:"elapsed_ms"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

// JobExecutor is where a job's latest attempt runs or ran.
type JobExecutor struct {
	Cluster string `json:"cluster"`
	// PID is the local executor's process id (0 for other launchers).
	PID int `json:"pid,omitempty"`
}

// JobOutputFile is one file of GET /v1/jobs/{id}/output.
type JobOutputFile struct {
	// Name is what GET /v1/jobs/{id}/output/{name} serves: stdout,
	// stderr, manifest.json or result.parquet.
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// JobOutput is the answer of GET /v1/jobs/{id}/output.
type JobOutput struct {
	Files []JobOutputFile `json:"files"`
}

// Job is the answer of GET /v1/jobs/{id}, DELETE /v1/jobs/{id} (202) and of
// the requests that queue jobs (202).
type Job struct {
	ID     string            `json:"id"`
	Kind   string            `json:"kind"`
	View   string            `json:"view,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	State  string            `json:"state"`
	// Attempt counts the attempts started so far, of at most MaxAttempts.
	Attempt     int `json:"attempt"`
	MaxAttempts int `json:"max_attempts"`
	// NextAttemptAt: a queued job waiting to retry starts no sooner.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// Timeout bounds one attempt, as a duration such as "1h".
	Timeout   string    `json:"timeout,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// StartedAt, FinishedAt and DurationMs are the latest attempt's.
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMs int64      `json:"duration_ms,omitempty"`
	Error      string     `json:"error,omitempty"`
	// LogPrefix is where the object store keeps the latest attempt's
	// executor output (GET /v1/jobs/{id}/logs serves it).
	LogPrefix string `json:"log_prefix,omitempty"`
	// Version is the view version a successful build published.
	Version *BatchVersion `json:"version,omitempty"`
	// User submitted the job ("" for the scheduler's own).
	User string `json:"user,omitempty"`
	// SQL and Output are a sql job's script and where its result goes.
	SQL    string `json:"sql,omitempty"`
	Output string `json:"output,omitempty"`
	// ClusterCriteria as submitted; Executor is where the latest attempt
	// runs or ran.
	ClusterCriteria [][]string   `json:"cluster_criteria,omitempty"`
	Executor        *JobExecutor `json:"executor,omitempty"`
	// Progress is the running attempt's latest heartbeat.
	Progress *JobProgress `json:"progress,omitempty"`
	// Schedule is the schedule whose fire submitted the job.
	Schedule string `json:"schedule,omitempty"`
}

// JobList is the answer of GET /v1/jobs, newest first.
type JobList struct {
	Jobs []Job `json:"jobs"`
	// Next is the URL of the next page, when there is one.
	Next string `json:"next,omitempty"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
	// Row is the 1-based row (NDJSON line or Arrow row) an ingest error is about.
	Row    int    `json:"row,omitempty"`
	Column string `json:"column,omitempty"`
}
