package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/duet-analytics/duet/api"
)

// RowsQuery asks GET /v1/views/{name}/rows for some of a view's rows.
// The zero value asks for the view's first 1000 rows.
type RowsQuery struct {
	// From and To bound the view's time key column (or Time) to
	// [From, To); zero means unbounded.
	From, To time.Time
	// Time names the timestamp or date column From and To apply to.
	Time string
	// Filters are <column><op><value> conditions, ANDed: "origin=ATL",
	// "flights>=10" (op one of =, !=, <, <=, >, >=).
	Filters []string
	// GroupBy rolls the view up to these keys; nil leaves the view's own
	// rows, an empty non-nil slice rolls every row into one.
	GroupBy []string
	// Columns and Order (-col for descending) as the server takes them.
	Columns, Order []string
	// Limit bounds the rows (0: the server's default of 1000).
	Limit int64
	// IfNoneMatch is an ETag of an earlier answer: if the answer would be
	// the same, the server says so without sending it (Rows.NotModified).
	IfNoneMatch string
}

// Rows is an answer of GET /v1/views/{name}/rows.
type Rows struct {
	api.Rows
	// ETag names this answer; send it as RowsQuery.IfNoneMatch to poll.
	ETag string
	// NotModified: the answer is still the one IfNoneMatch named; only
	// ETag is set.
	NotModified bool
	// Truncated: more rows matched than Limit.
	Truncated bool
}

// Values encodes q as the endpoint's query parameters.
func (q RowsQuery) Values() url.Values {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Time != "" {
		v.Set("time", q.Time)
	}
	for _, f := range q.Filters {
		v.Add("filter", f)
	}
	if q.GroupBy != nil {
		v.Set("group_by", strings.Join(q.GroupBy, ","))
	}
	if len(q.Columns) > 0 {
		v.Set("columns", strings.Join(q.Columns, ","))
	}
	if len(q.Order) > 0 {
		v.Set("order", strings.Join(q.Order, ","))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.FormatInt(q.Limit, 10))
	}
	return v
}

// Rows reads a view's rows as JSON.
func (c *Client) Rows(ctx context.Context, view string, q RowsQuery) (Rows, error) {
	target := c.endpoint("v1", "views", view, "rows")
	if v := q.Values(); len(v) > 0 {
		target += "?" + v.Encode()
	}
	req, err := c.newRequest(ctx, http.MethodGet, target, "", nil, 0)
	if err != nil {
		return Rows{}, err
	}
	if q.IfNoneMatch != "" {
		req.Header.Set("If-None-Match", q.IfNoneMatch)
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return Rows{}, err
	}
	defer drainClose(resp.Body)
	out := Rows{ETag: resp.Header.Get("ETag"), Truncated: resp.Header.Get("X-Duet-Truncated") == "true"}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		out.NotModified = true
		return out, nil
	case resp.StatusCode >= 300:
		return Rows{}, readAPIError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out.Rows); err != nil {
		return Rows{}, fmt.Errorf("decode rows of view %s: %w", view, err)
	}
	return out, nil
}
