package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/executor"
	"github.com/duet-analytics/duet/scheduler"
)

// jobRunner runs the scheduler's jobs: builds and compactions on the batch
// layer, sql jobs through sqlJobs, notebook jobs through notebookJobs.
type jobRunner struct {
	b   *batchlayer.Builder
	cat interface {
		GetDataset(ctx context.Context, name string) (catalog.Dataset, error)
	}
	sql *sqlJobs
	nb  *notebookJobs
	// clusters says which clusters are trino ones, and which are healthy.
	clusters *clusterHealth
	// live holds what running attempts' executors report.
	live *liveJobs
	// manifests keeps each attempt's run manifest beside its logs.
	manifests interface {
		Upload(ctx context.Context, name string, r io.Reader) error
	}
	// after is called when a view build or backfill published a version.
	after func(ctx context.Context, view string)
}

// Run executes one attempt of j and leaves its manifest. A build with
// nothing new to build succeeds with the current version.
func (r jobRunner) Run(ctx context.Context, j catalog.Job) (int64, error) {
	began := time.Now()
	ctx = executor.WithTrace(ctx, r.live.trace(j.ID))
	defer r.live.forget(j.ID)
	version, result, err := r.run(ctx, j)
	r.keepManifest(ctx, j, began, version, result, err)
	return version, err
}

// ClusterHealthy tells the scheduler which clusters take jobs.
func (r jobRunner) ClusterHealthy(name string) bool { return r.clusters.ClusterHealthy(name) }

func (r jobRunner) run(ctx context.Context, j catalog.Job) (int64, *batchlayer.ScriptResult, error) {
	req := batchlayer.Request{JobID: j.ID, View: j.View, LogPrefix: j.LogPrefix, Trino: r.clusters.trino(j.Cluster)}
	if req.Trino != nil && j.Kind != scheduler.KindViewBuild && j.Kind != scheduler.KindSQL {
		return 0, nil, fmt.Errorf("cluster %s runs view builds and sql jobs on trino %s; a %s job needs a local cluster (give cluster criteria that only local clusters meet)", j.Cluster, req.Trino.URL, j.Kind)
	}
	switch j.Kind {
	case scheduler.KindViewBuild:
		if f := j.Params["full"]; f != "" {
			full, err := strconv.ParseBool(f)
			if err != nil {
				return 0, nil, fmt.Errorf("parameter full=%q: %w", f, err)
			}
			req.Full = full
		}
	case scheduler.KindBackfill:
		req.From, req.To = j.Params["from"], j.Params["to"]
	case scheduler.KindCompaction:
		ds := j.Params["dataset"]
		d, err := r.cat.GetDataset(ctx, ds)
		if err != nil {
			return 0, nil, err
		}
		_, err = r.b.Compact(ctx, j.ID, ds, &d.Spec, j.LogPrefix)
		return 0, nil, err
	case scheduler.KindSQL:
		res, err := r.sql.run(ctx, j, req.Trino)
		return 0, res, err
	case scheduler.KindNotebook:
		return 0, nil, r.nb.run(ctx, j)
	default:
		return 0, nil, fmt.Errorf("no runner for jobs of kind %q", j.Kind)
	}
	v, err := r.b.Build(ctx, req)
	if errors.Is(err, batchlayer.ErrUpToDate) {
		return v.Version, nil, nil
	}
	if err == nil && r.after != nil {
		r.after(ctx, j.View)
	}
	return v.Version, nil, err
}

// manifest is an attempt's record, kept as manifest.json beside its logs.
type manifest struct {
	Job        string           `json:"job"`
	Kind       string           `json:"kind"`
	Attempt    int              `json:"attempt"`
	Cluster    string           `json:"cluster"`
	PID        int              `json:"pid,omitempty"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt time.Time        `json:"finished_at"`
	Error      string           `json:"error,omitempty"`
	Progress   *api.JobProgress `json:"last_progress,omitempty"`
	Version    int64            `json:"version,omitempty"`
	Output     string           `json:"output,omitempty"`
	Rows       int64            `json:"rows,omitempty"`
	Bytes      int64            `json:"bytes,omitempty"`
}

func (r jobRunner) keepManifest(ctx context.Context, j catalog.Job, began time.Time, version int64, res *batchlayer.ScriptResult, err error) {
	m := manifest{Job: j.ID, Kind: j.Kind, Attempt: j.Attempt, Cluster: j.Cluster, StartedAt: began, FinishedAt: time.Now(), Version: version}
	if l, ok := r.live.get(j.ID); ok {
		m.PID, m.Progress = l.pid, l.progress
	}
	if err != nil {
		m.Error = err.Error()
	}
	if res != nil {
		m.Rows, m.Bytes = res.Rows, res.Bytes
		m.Output = j.Output
	}
	b, merr := json.MarshalIndent(m, "", "  ")
	if merr == nil {
		keepCtx, cancel := batchlayer.KeepOutputContext(ctx)
		merr = r.manifests.Upload(keepCtx, j.LogPrefix+manifestFile, bytes.NewReader(b))
		cancel()
	}
	if merr != nil {
		r.sql.logger.Warn("keep job manifest", "job", j.ID, "err", merr)
	}
}

const manifestFile = "manifest.json"

// liveJobs is what the executors of running attempts last reported.
type liveJobs struct {
	mu   sync.Mutex
	jobs map[string]*liveJob
}

type liveJob struct {
	pid      int
	dir      string // the executor's working directory, where its output grows
	progress *api.JobProgress
}

func newLiveJobs() *liveJobs { return &liveJobs{jobs: map[string]*liveJob{}} }

// trace records a job's executor pid and heartbeats.
func (l *liveJobs) trace(id string) *executor.Trace {
	l.mu.Lock()
	l.jobs[id] = &liveJob{}
	l.mu.Unlock()
	return &executor.Trace{
		OnStart: func(pid int, dir string) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if j := l.jobs[id]; j != nil {
				j.pid, j.dir = pid, dir
			}
		},
		OnStatus: func(s executor.Status) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if j := l.jobs[id]; j != nil {
				j.progress = &api.JobProgress{Stage: s.Stage, Rows: s.Rows, ElapsedMs: s.ElapsedMs, HeartbeatAt: time.Now().UTC()}
			}
		},
	}
}

func (l *liveJobs) get(id string) (liveJob, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	j, ok := l.jobs[id]
	if !ok {
		return liveJob{}, false
	}
	return *j, true
}

func (l *liveJobs) forget(id string) {
	l.mu.Lock()
	delete(l.jobs, id)
	l.mu.Unlock()
}
