package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/duet-analytics/duet/api"
)

// readAPIError turns a 4xx/5xx answer into an *APIError, keeping the
// server's message; a body that is not an api.Error (a proxy's page, say)
// contributes its first line.
func readAPIError(resp *http.Response) *APIError {
	ae := &APIError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body api.Error
	if err := json.Unmarshal(raw, &body); err == nil && body.Error != "" {
		ae.Message, ae.Row, ae.Column = body.Error, body.Row, body.Column
		return ae
	}
	text := strings.TrimSpace(string(raw))
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = strings.TrimSpace(text[:i])
	}
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if text != "" {
		ae.Message = fmt.Sprintf("server answered %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), text)
	}
	return ae
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// isDialError reports whether the request never reached a server: nothing
// was sent, so the caller may say the server is unreachable.
func isDialError(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// describeDialError says in a few words why a connection failed, and what to do.
func describeDialError(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return `connection refused (start it with "duet serve")`
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("no such host %q (check --server or DUET_SERVER)", dnsErr.Name)
	case errors.As(err, &netErr) && netErr.Timeout():
		return "connection timed out (check --server or DUET_SERVER, and that the server is up)"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error() + " (check --server or DUET_SERVER)"
	}
	return unwrapURLError(err).Error()
}
