package client

import (
	"context"
	"net/http"

	"github.com/duet-analytics/duet/api"
)

// Build queues a build of the view; Full rebuilds every partition.
func (c *Client) Build(ctx context.Context, view string, req api.BuildRequest) (api.Job, error) {
	var out api.Job
	err := c.postJSON(ctx, c.endpoint("v1", "views", view, "builds"), req, &out)
	return out, err
}

// ListVersions returns the view's stored versions, newest first.
func (c *Client) ListVersions(ctx context.Context, view string) ([]api.Version, error) {
	var out api.VersionList
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "views", view, "versions"), "", nil, &out)
	return out.Versions, err
}

// Rollback makes an older version of the view current again.
func (c *Client) Rollback(ctx context.Context, view string, version int64) (api.View, error) {
	var out api.View
	err := c.postJSON(ctx, c.endpoint("v1", "views", view, "rollback"), api.RollbackRequest{Version: version}, &out)
	return out, err
}

// Backfill queues a rebuild of the view's days from..to (YYYY-MM-DD, inclusive).
func (c *Client) Backfill(ctx context.Context, view, from, to string) (api.Job, error) {
	var out api.Job
	err := c.postJSON(ctx, c.endpoint("v1", "views", view, "backfills"), api.BackfillRequest{From: from, To: to}, &out)
	return out, err
}

// Compact queues a compaction of the dataset's raw archive.
func (c *Client) Compact(ctx context.Context, dataset string) (api.Job, error) {
	var out api.Job
	err := c.postJSON(ctx, c.endpoint("v1", "datasets", dataset, "compactions"), struct{}{}, &out)
	return out, err
}
