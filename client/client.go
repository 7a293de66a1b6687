// Package client talks to a duet server's public HTTP API (/v1/...). The CLI
// uses it; so can any Go program that defines datasets, ingests records or
// manages views. Every method takes a context and returns the server's own
// message as an *APIError when the server refuses a request.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config tunes a Client. The zero value is valid: every field has a default.
type Config struct {
	// IngestAttempts bounds how many times Ingest sends one body while the
	// server answers 429 (out of memory budget) or 503 (unavailable).
	IngestAttempts int
	// RetryDelay is the first wait before resending when the server sends no
	// Retry-After; it doubles on each further attempt, up to MaxRetryDelay.
	// A Retry-After from the server is always honoured as sent.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// OnRetry, if set, is told before each wait, so a CLI can say why it pauses.
	OnRetry func(RetryEvent)
	// Credentials authenticate every request, for a server that requires it.
	Credentials Credentials
}

// Credentials are a bearer token (a JWT), or a user and password, which are
// sent only over https. A server with authentication runs SQL as the
// authenticated user.
type Credentials struct {
	User     string
	Password string
	Token    string
}

// RetryEvent describes one wait before Ingest resends a body.
type RetryEvent struct {
	Attempt int // the attempt that was refused, from 1
	Status  int
	Wait    time.Duration
	Message string
}

const (
	defaultIngestAttempts = 8
	defaultRetryDelay     = 500 * time.Millisecond
	defaultMaxRetryDelay  = 30 * time.Second
)

func (c *Config) applyDefaults() {
	if c.IngestAttempts == 0 {
		c.IngestAttempts = defaultIngestAttempts
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = defaultRetryDelay
	}
	if c.MaxRetryDelay == 0 {
		c.MaxRetryDelay = defaultMaxRetryDelay
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.IngestAttempts < 1:
		return fmt.Errorf("ingest_attempts %d: must be at least 1", c.IngestAttempts)
	case c.RetryDelay < 0:
		return fmt.Errorf("retry_delay %s: must not be negative", c.RetryDelay)
	case c.MaxRetryDelay < c.RetryDelay:
		return fmt.Errorf("max_retry_delay %s: must be at least retry_delay (%s)", c.MaxRetryDelay, c.RetryDelay)
	case c.Credentials.Password != "" && c.Credentials.User == "":
		return errors.New("credentials: a password needs a user")
	case c.Credentials.Password != "" && c.Credentials.Token != "":
		return errors.New("credentials: give a token or a user and password, not both")
	}
	return nil
}

// Client calls one duet server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
	cfg  Config
}

// New returns a client of the server at baseURL (like http://127.0.0.1:8080),
// with the default Config. A nil httpClient gets one with sane timeouts.
func New(baseURL string, httpClient *http.Client) (*Client, error) {
	return NewWithConfig(baseURL, httpClient, Config{})
}

// NewWithConfig is New with a Config.
func NewWithConfig(baseURL string, httpClient *http.Client, cfg Config) (*Client, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	u, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Credentials.Password != "" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: a password is sent only over https", baseURL)
	}
	if httpClient == nil {
		httpClient = defaultHTTPClient()
	}
	return &Client{base: u, http: httpClient, cfg: cfg}, nil
}

func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w (want something like http://127.0.0.1:8080)", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: must start with http:// or https:// (like http://127.0.0.1:8080)", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q: has no host (want something like http://127.0.0.1:8080)", s)
	}
	// The SQL gateway lives at /v1/statement on the same origin and Trino
	// clients read a DSN path as /catalog/schema, so a path prefix cannot work.
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: give only scheme, host and port (like http://127.0.0.1:8080)", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("server URL %q: must not carry a user; the SQL commands take --user", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func defaultHTTPClient() *http.Client {
	return &http.Client{
		// A whole request (an ingest batch included) must finish in this time;
		// callers wanting less pass a context deadline.
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 2 * time.Minute,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
		},
	}
}

// BaseURL is the server's origin, like http://127.0.0.1:8080.
func (c *Client) BaseURL() string { return c.base.String() }

// CloseIdleConnections releases kept-alive connections (at the end of a CLI
// command, or of a test).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// APIError is a request the server answered with a 4xx or 5xx status.
type APIError struct {
	Status int
	// Message is the server's own message, such as `dataset "x" not found`.
	Message string
	// Row (1-based, within the request body) and Column locate an ingest error.
	Row    int
	Column string
	// RetryAfter is the wait the server asked for with a 429 or 503, if any.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
}

// IsStatus reports whether err is (or wraps) an *APIError with this status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// UnreachableError means no answer came from the server at all.
type UnreachableError struct {
	BaseURL string
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach duet server at %s: %s", e.BaseURL, describeDialError(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// endpoint builds an absolute URL, escaping each path segment.
func (c *Client) endpoint(segments ...string) string {
	escaped := make([]string, len(segments))
	for i, s := range segments {
		escaped[i] = url.PathEscape(s)
	}
	return c.base.String() + "/" + strings.Join(escaped, "/")
}

// do sends one request and decodes a 2xx answer into out (if non-nil).
func (c *Client) do(ctx context.Context, method, target, contentType string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	resp, err := c.send(ctx, method, target, contentType, rd, int64(len(body)))
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, resp.Request.URL.Path, err)
	}
	return nil
}

// send makes one request; body (of size bytes) may be nil.
func (c *Client) send(ctx context.Context, method, target, contentType string, body io.Reader, size int64) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, target, contentType, body, size)
	if err != nil {
		return nil, err
	}
	return c.roundTrip(req)
}

// newRequest builds a request with the client's headers and credentials, for
// a caller that adds headers of its own before roundTrip.
func (c *Client) newRequest(ctx context.Context, method, target, contentType string, body io.Reader, size int64) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, target, err)
	}
	if body != nil {
		req.ContentLength = size
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	switch cr := c.cfg.Credentials; {
	case cr.Token != "":
		req.Header.Set("Authorization", "Bearer "+cr.Token)
	case cr.Password != "":
		req.SetBasicAuth(cr.User, cr.Password)
	case cr.User != "":
		// A server without authentication takes the claim, as Trino takes
		// X-Trino-User, to attribute jobs.
		req.Header.Set("X-Duet-User", cr.User)
	}
	return req, nil
}

// roundTrip sends req, telling an unreachable server from a failed request.
func (c *Client) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, ctxErr)
		}
		if isDialError(err) {
			return nil, &UnreachableError{BaseURL: c.BaseURL(), Err: err}
		}
		return nil, fmt.Errorf("%s %s on duet server at %s: %w", req.Method, req.URL.Path, c.BaseURL(), unwrapURLError(err))
	}
	return resp, nil
}

func (c *Client) postJSON(ctx context.Context, target string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode request for %s: %w", target, err)
	}
	return c.do(ctx, http.MethodPost, target, "application/json", body, out)
}

// drainClose lets the connection be reused.
func drainClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	_ = rc.Close()
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
