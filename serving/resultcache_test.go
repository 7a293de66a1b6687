package serving

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestResultCache checks the bound (least recently used out first), that
// an answer of another state never hits, and that storing a view's new
// state drops its older answers.
func TestResultCache(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := NewResultCache(4*(entryOverhead+100), reg)
	body := func(b byte) Answer { return Answer{Body: bytes.Repeat([]byte{b}, 100)} }
	k := func(view, state, req string) ResultKey { return ResultKey{View: view, State: state, Request: req} }

	c.Put(k("a", "s1", "q1"), body('1'))
	c.Put(k("a", "s1", "q2"), body('2'))
	c.Put(k("b", "s1", "q1"), body('3'))
	c.Put(k("b", "s1", "q2"), body('4'))
	if _, ok := c.Get(k("a", "s1", "q1")); !ok { // now most recently used
		t.Fatal("a/q1 missing")
	}
	c.Put(k("b", "s1", "q3"), body('5')) // evicts a/q2, the least recently used
	if _, ok := c.Get(k("a", "s1", "q2")); ok {
		t.Error("a/q2 outlived the bound")
	}
	if got, ok := c.Get(k("a", "s1", "q1")); !ok || got.Body[0] != '1' {
		t.Errorf("a/q1: %v %v", ok, got.Body[:1])
	}
	if _, ok := c.Get(k("a", "s2", "q1")); ok {
		t.Error("an answer of state s1 hit for state s2")
	}
	c.Put(k("a", "s2", "q1"), body('6'))
	if _, ok := c.Get(k("a", "s1", "q1")); ok {
		t.Error("view a's answer of its old state s1 was kept after s2 was stored")
	}
	if _, ok := c.Get(k("b", "s1", "q3")); !ok {
		t.Error("view b's answers went with view a's state")
	}
	c.Put(k("a", "s2", "big"), Answer{Body: make([]byte, 2*(entryOverhead+100))})
	if _, ok := c.Get(k("a", "s2", "big")); ok {
		t.Error("an answer over a quarter of the bound was kept")
	}
	if n := counter(t, c.metrics.evictions); n != 1 {
		t.Errorf("evictions %v, want 1", n)
	}
	if hits, misses := counter(t, c.metrics.hits), counter(t, c.metrics.misses); hits != 3 || misses != 4 {
		t.Errorf("hits %v misses %v, want 3 and 4", hits, misses)
	}
	off := NewResultCache(0, nil)
	off.Put(k("a", "s", "q"), body('x'))
	if _, ok := off.Get(k("a", "s", "q")); ok {
		t.Error("a cache of 0 bytes kept an answer")
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
