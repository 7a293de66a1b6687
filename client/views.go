package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/duet-analytics/duet/api"
)

// CreateView defines a view; the server checks its SQL and answers the view.
func (c *Client) CreateView(ctx context.Context, v api.ViewRequest) (api.View, error) {
	var out api.View
	err := c.postJSON(ctx, c.endpoint("v1", "views"), v, &out)
	return out, err
}

// GetView returns one view with its batch version and speed-layer status.
func (c *Client) GetView(ctx context.Context, name string) (api.View, error) {
	var out api.View
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "views", name), "", nil, &out)
	return out, err
}

// ListViews returns every view.
func (c *Client) ListViews(ctx context.Context) ([]api.View, error) {
	var out api.ViewList
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "views"), "", nil, &out)
	return out.Views, err
}

// TriggerBuild asks for a build of the view now; the answer is the queued job.
func (c *Client) TriggerBuild(ctx context.Context, view string) (api.Job, error) {
	return c.Build(ctx, view, api.BuildRequest{})
}

// GetJob returns a job's current state.
func (c *Client) GetJob(ctx context.Context, id string) (api.Job, error) {
	var out api.Job
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "jobs", id), "", nil, &out)
	return out, err
}

// DefaultPoll is WaitJob's interval when given none.
const DefaultPoll = 500 * time.Millisecond

// WaitJob polls a job every poll until it is final (succeeded, failed,
// killed or timed out), and returns it in that state; a failed job is not an
// error of WaitJob's (read Job.State and Job.Error). It gives up when ctx ends.
func (c *Client) WaitJob(ctx context.Context, id string, poll time.Duration) (api.Job, error) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		job, err := c.GetJob(ctx, id)
		if err != nil {
			return job, err
		}
		if api.JobFinished(job.State) {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("wait for job %s (still %s): %w", id, job.State, ctx.Err())
		case <-t.C:
		}
	}
}
