package server

import (
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
)

func TestViewPolicy(t *testing.T) {
	zero, seven := 0, 7
	for _, tc := range []struct {
		req  api.ViewRequest
		want jobPolicy
	}{
		{api.ViewRequest{}, jobPolicy{Catchup: "skip", MaxRetries: 3, Timeout: time.Hour}},
		{api.ViewRequest{Catchup: "all", MaxRetries: &zero, Timeout: "90s"}, jobPolicy{Catchup: "all", MaxRetries: 0, Timeout: 90 * time.Second}},
		{api.ViewRequest{Catchup: "once", MaxRetries: &seven, Timeout: "2h30m"}, jobPolicy{Catchup: "once", MaxRetries: 7, Timeout: 150 * time.Minute}},
	} {
		if got, err := viewPolicy(tc.req); err != nil || got != tc.want {
			t.Errorf("viewPolicy(%+v) = %+v, %v; want %+v", tc.req, got, err, tc.want)
		}
	}
	neg, huge := -1, 101
	for _, tc := range []struct {
		req  api.ViewRequest
		want string
	}{
		{api.ViewRequest{Catchup: "sometimes"}, `catchup "sometimes": use skip`},
		{api.ViewRequest{MaxRetries: &neg}, "max_retries -1: give a number from 0 to 100"},
		{api.ViewRequest{MaxRetries: &huge}, "max_retries 101"},
		{api.ViewRequest{Timeout: "soon"}, `timeout "soon": give a duration of at least 1s`},
		{api.ViewRequest{Timeout: "10ms"}, `timeout "10ms"`},
	} {
		if _, err := viewPolicy(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("viewPolicy(%+v) = %v, want an error with %q", tc.req, err, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 30 * time.Minute: "30m", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s",
		45 * time.Second: "45s", 2*time.Hour + 5*time.Second: "2h0m5s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("formatDuration(%s) does not parse back: %v, %v", d, back, err)
		}
	}
}
