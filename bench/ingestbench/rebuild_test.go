package main

import (
	"testing"
	"time"
)

// The summary places probes around the publications the probes saw and
// counts only the versions published while probes were sent.
func TestRebuildSummary(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := &rebuilder{builds: []build{
		{submitted: at(-500), finished: at(-100), version: 1, published: at(-110)}, // before the probes
		{submitted: at(-100), finished: at(600), version: 2, published: at(590)},
		{submitted: at(600), finished: at(700), version: 2}, // nothing new
		{submitted: at(700), finished: at(1500), version: 3, published: at(1490)},
	}}
	mk := func(sent, acked, visible int) probe {
		return probe{sent: at(sent), acked: at(acked), visible: at(visible)}
	}
	probes := []probe{
		mk(0, 5, 10),         // far from any publication
		mk(500, 505, 520),    // visible 70 ms before version 2
		mk(580, 585, 600),    // spans version 2's publication
		mk(650, 655, 660),    // sent 60 ms after it
		mk(800, 805, 810),    // far again
		mk(1480, 1485, 1530), // spans version 3's
	}
	s := r.summarize(probes)
	if s.Jobs != 4 || s.Published != 2 || s.FirstVersion != 2 || s.LastVersion != 3 {
		t.Errorf("jobs %d, published %d (versions %d-%d), want 4, 2 (2-3)", s.Jobs, s.Published, s.FirstVersion, s.LastVersion)
	}
	if s.ProbesBefore != 1 || s.ProbesSpanning != 2 || s.ProbesAfter != 1 {
		t.Errorf("probes before/spanning/after a publication: %d/%d/%d, want 1/2/1", s.ProbesBefore, s.ProbesSpanning, s.ProbesAfter)
	}
	if s.NearMax != 45 {
		t.Errorf("near-publication max = %g ms, want 45 (ack to visible of the last probe)", s.NearMax)
	}
	if s.SecondsMax != 0.8 {
		t.Errorf("longest build = %g s, want 0.8", s.SecondsMax)
	}
}
