package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/duet-analytics/duet/api"
)

// JobFilter selects jobs for ListJobs; empty fields match everything, and a
// Limit of 0 lets the server choose (100).
type JobFilter struct {
	View, State, Kind, User string
	// Schedule keeps the jobs of that job schedule.
	Schedule string
	// Since keeps the jobs created at or after it.
	Since         time.Time
	Limit, Offset int
}

func (f JobFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"view": f.View, "state": f.State, "kind": f.Kind, "user": f.User, "schedule": f.Schedule} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	return q
}

// ListJobs returns the first page of the jobs matching f, newest first.
func (c *Client) ListJobs(ctx context.Context, f JobFilter) ([]api.Job, error) {
	page, err := c.ListJobsPage(ctx, f)
	return page.Jobs, err
}

// ListJobsPage returns the first page of the jobs matching f, newest first,
// with the link to the next page (see NextJobsPage).
func (c *Client) ListJobsPage(ctx context.Context, f JobFilter) (api.JobList, error) {
	target := c.endpoint("v1", "jobs")
	if q := f.query(); len(q) > 0 {
		target += "?" + q.Encode()
	}
	var out api.JobList
	err := c.do(ctx, http.MethodGet, target, "", nil, &out)
	return out, err
}

// NextJobsPage follows a JobList.Next link. The link must stay on this
// client's server, as the request carries its credentials.
func (c *Client) NextJobsPage(ctx context.Context, next string) (api.JobList, error) {
	u, err := url.Parse(next)
	if err != nil {
		return api.JobList{}, fmt.Errorf("next page link %q: %w", next, err)
	}
	target := c.base.ResolveReference(u)
	if target.Scheme != c.base.Scheme || target.Host != c.base.Host {
		return api.JobList{}, fmt.Errorf("next page link %q leaves the server %s", next, c.BaseURL())
	}
	var out api.JobList
	err = c.do(ctx, http.MethodGet, target.String(), "", nil, &out)
	return out, err
}

// SubmitJob queues a job; the answer is the job as queued (or, for a
// request repeating a client-chosen ID, the job that ID names). The server
// answers 400 for a bad request, 409 when the ID names a different job and
// 429 when the user has too many active jobs.
func (c *Client) SubmitJob(ctx context.Context, req api.JobRequest) (api.Job, error) {
	var out api.Job
	err := c.postJSON(ctx, c.endpoint("v1", "jobs"), req, &out)
	return out, err
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

// JobOutputFiles lists the files of the job's latest attempt (stdout,
// stderr, manifest.json, result.parquet) with their sizes.
func (c *Client) JobOutputFiles(ctx context.Context, id string) ([]api.JobOutputFile, error) {
	var out api.JobOutput
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "jobs", id, "output"), "", nil, &out)
	return out.Files, err
}

// JobOutput copies one output file of the job from byte offset on to w, and
// returns how many bytes it copied. While the job runs, stdout and stderr
// grow: calling again with offset advanced by n reads what is new, and an
// offset at or past the end copies nothing (n = 0, no error).
func (c *Client) JobOutput(ctx context.Context, id, name string, offset int64, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, c.endpoint("v1", "jobs", id, "output", name), "", nil, 0)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "*/*")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return 0, err
	}
	defer drainClose(resp.Body)
	switch {
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return 0, nil
	case resp.StatusCode >= 300:
		return 0, readAPIError(resp)
	case resp.StatusCode == http.StatusPartialContent:
		if err := checkContentRange(resp.Header.Get("Content-Range"), offset); err != nil {
			return 0, fmt.Errorf("read %s of job %s: %w", name, id, err)
		}
	case offset > 0:
		// A server (or proxy) that ignores Range sends the whole file.
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read %s of job %s: %w", name, id, err)
		}
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("read %s of job %s: %w", name, id, err)
	}
	return n, nil
}

// checkContentRange makes sure a 206 answer starts where it was asked to,
// as appending bytes from elsewhere would corrupt the copy.
func checkContentRange(v string, offset int64) error {
	var start, end int64
	if _, err := fmt.Sscanf(v, "bytes %d-%d/", &start, &end); err != nil {
		return fmt.Errorf("partial answer with Content-Range %q: %w", v, err)
	}
	if start != offset {
		return fmt.Errorf("partial answer starts at byte %d, not %d as asked", start, offset)
	}
	return nil
}
