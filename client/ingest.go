package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/duet-analytics/duet/api"
)

// Content types Ingest accepts.
const (
	ContentTypeNDJSON      = "application/x-ndjson"
	ContentTypeArrowStream = "application/vnd.apache.arrow.stream"
)

// Ingest sends one body of records to a dataset: NDJSON (ContentTypeNDJSON)
// or an Arrow IPC stream (ContentTypeArrowStream). When the answer is 200 the
// records are durable. A 400 means none of this body's records were kept; its
// *APIError carries the 1-based Row within this body and the Column.
//
// While the server answers 429 (out of memory budget) or 503, Ingest waits as
// long as its Retry-After asks (or backs off exponentially without one) and
// sends the same bytes again, up to Config.IngestAttempts times. The body is
// a []byte because a retry must send it again; batch large inputs.
//
// On a dataset with a dedup key, records whose key the server accepted
// within the dataset's window (or earlier in the body) are not stored: the
// answer's Duplicates counts them and Accepted the others, so resending a
// body whose answer was lost (a timeout) stores nothing twice; with Accepted
// 0 the offsets are -1.
func (c *Client) Ingest(ctx context.Context, dataset, contentType string, body []byte) (api.IngestResult, error) {
	target := c.endpoint("v1", "ingest", dataset)
	backoff := c.cfg.RetryDelay
	for attempt := 1; ; attempt++ {
		res, err := c.ingestOnce(ctx, target, contentType, bytes.NewReader(body), int64(len(body)))
		if err == nil {
			return res, nil
		}
		ae, ok := err.(*APIError)
		if !ok || (ae.Status != http.StatusTooManyRequests && ae.Status != http.StatusServiceUnavailable) {
			return res, err
		}
		if attempt >= c.cfg.IngestAttempts {
			return res, fmt.Errorf("server still refused the batch after %d attempts: %w", attempt, err)
		}
		wait := ae.RetryAfter
		if wait <= 0 {
			wait = backoff
			backoff = min(2*backoff, c.cfg.MaxRetryDelay)
		}
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry(RetryEvent{Attempt: attempt, Status: ae.Status, Wait: wait, Message: ae.Error()})
		}
		if err := sleep(ctx, wait); err != nil {
			return res, fmt.Errorf("waiting to resend a batch the server refused (%v): %w", ae, err)
		}
	}
}

func (c *Client) ingestOnce(ctx context.Context, target, contentType string, body io.Reader, size int64) (api.IngestResult, error) {
	var out api.IngestResult
	resp, err := c.send(ctx, http.MethodPost, target, contentType, body, size)
	if err != nil {
		return out, err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode >= 300 {
		return out, readAPIError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("decode ingest answer: %w", err)
	}
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
