package client

import (
	"context"
	"net/http"

	"github.com/duet-analytics/duet/api"
)

// CreateDataset defines a dataset; the answer is the dataset as stored.
func (c *Client) CreateDataset(ctx context.Context, d api.Dataset) (api.Dataset, error) {
	var out api.Dataset
	err := c.postJSON(ctx, c.endpoint("v1", "datasets"), d, &out)
	return out, err
}

// GetDataset returns one dataset with its log status.
func (c *Client) GetDataset(ctx context.Context, name string) (api.Dataset, error) {
	var out api.Dataset
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "datasets", name), "", nil, &out)
	return out, err
}

// ListDatasets returns every dataset.
func (c *Client) ListDatasets(ctx context.Context) ([]api.Dataset, error) {
	var out api.DatasetList
	err := c.do(ctx, http.MethodGet, c.endpoint("v1", "datasets"), "", nil, &out)
	return out.Datasets, err
}
