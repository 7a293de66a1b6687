package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/duet-analytics/duet/api"
)

// JobFilter selects jobs for ListJobs; empty fields match everything, and a
// Limit of 0 lets the server choose (100).
type JobFilter struct {
	View, State, Kind string
	Limit             int
}

// ListJobs returns the jobs matching f, newest first.
func (c *Client) ListJobs(ctx context.Context, f JobFilter) ([]api.Job, error) {
	q := url.Values{}
	for k, v := range map[string]string{"view": f.View, "state": f.State, "kind": f.Kind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	target := c.endpoint("v1", "jobs")
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var out api.JobList
	err := c.do(ctx, http.MethodGet, target, "", nil, &out)
	return out.Jobs, err
}

// KillJob kills a queued job at once, or stops a running one (it becomes
// killed once its executor has stopped); the answer is the job as it is now.
// A finished job cannot be killed: the server answers 409.
func (c *Client) KillJob(ctx context.Context, id string) (api.Job, error) {
	var out api.Job
	err := c.do(ctx, http.MethodDelete, c.endpoint("v1", "jobs", id), "", nil, &out)
	return out, err
}

// JobLogs copies the executor output of the job's latest attempt to w:
// stderr, then stdout. The server answers 404 if there is none.
func (c *Client) JobLogs(ctx context.Context, id string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, c.endpoint("v1", "jobs", id, "logs"), "", nil, 0)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read logs of job %s: %w", id, err)
	}
	return nil
}
