package benchenv

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("Percentile(1..100 ms, %g) = %s, want %s", c.p, got, c.want)
		}
	}
	if got := Percentile(ds[:1], 0.99); got != time.Millisecond {
		t.Errorf("p99 of one = %s, want 1ms", got)
	}
	if got := Percentile(ds[:3], 0.99); got != 3*time.Millisecond {
		t.Errorf("p99 of three = %s, want the largest, 3ms", got)
	}
	if got := Percentile([]time.Duration(nil), 0.5); got != 0 {
		t.Errorf("percentile of none = %s, want 0", got)
	}
}

func TestNewTarget(t *testing.T) {
	for _, c := range []struct {
		measured, limit float64
		atMost, pass    bool
	}{{10, 50, true, true}, {50, 50, true, true}, {51, 50, true, false}, {57, 50, false, true}, {49, 50, false, false}} {
		if got := NewTarget("t", c.measured, c.limit, c.atMost); got.Pass != c.pass {
			t.Errorf("NewTarget(%g, limit %g, at most %v).Pass = %v, want %v", c.measured, c.limit, c.atMost, got.Pass, c.pass)
		}
	}
}
