package client

import (
	"context"
	"net/http"

	"github.com/duet-analytics/duet/api"
)

// CreateSchedule creates a job schedule: a sql or notebook job submitted at
// each fire of a cron spec, as the calling user. The server answers 400 for
// a bad request (naming the field) and 409 when the name is taken.
func (c *Client) CreateSchedule(ctx context.Context, req api.ScheduleRequest) (api.Schedule, error) {
	var out api.Schedule
	err := c.postJSON(ctx, c.endpoint("v1", "schedules"), req, &out)
	return out, err
}

// ListSchedules returns every job schedule, by name.
func (c *Client) ListSchedules(ctx context.Context) ([]api.Schedule, error) {
	var out api.ScheduleList
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "schedules"), "", nil, &out)
	return out.Schedules, err
}

// GetSchedule returns a job schedule with its last and next fire and its
// latest jobs.
func (c *Client) GetSchedule(ctx context.Context, name string) (api.Schedule, error) {
	var out api.Schedule
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "schedules", name), "", nil, &out)
	return out, err
}

// DeleteSchedule stops and removes a job schedule: once it returns, the
// schedule submits no job. The jobs it submitted go on.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, c.endpoint("v1", "schedules", name), "", nil, nil)
}
