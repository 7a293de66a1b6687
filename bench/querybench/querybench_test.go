package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// summarize counts every request of the measurement, and cuts it into
// parts by start time for the spread of the p99.
func TestSummarizePhase(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rs []request
	// 300 requests over 3 s: 1 ms, 2 ms and 3 ms in the first, second and
	// third second, except one 100 ms query in the last.
	for i := range 300 {
		lat := time.Duration(1+i/100) * time.Millisecond
		if i == 299 {
			lat = 100 * time.Millisecond
		}
		rs = append(rs, request{shape: i % len(shapes), start: from.Add(time.Duration(i) * 10 * time.Millisecond), latency: lat})
	}
	p := summarize(systemDuet, stateMerged, 4, phaseRun{requests: rs, from: from, window: 3 * time.Second,
		elapsed: 3 * time.Second, cpu: 1500 * time.Millisecond}, 3)
	if p.Requests != 300 || p.QPS != 100 {
		t.Errorf("requests %d, QPS %g; want 300 and 100", p.Requests, p.QPS)
	}
	if p.P50 != 2 || p.P99 != 3 || p.Max != 100 {
		t.Errorf("p50 %g, p99 %g, max %g ms; want 2, 3 and 100", p.P50, p.P99, p.Max)
	}
	if want := (Summary{Median: 2, Min: 1, Max: 3, N: 3}); p.P99Windows != want {
		t.Errorf("p99 of parts %+v, want %+v", p.P99Windows, want)
	}
	if p.CPUMsPerQuery != 5 || p.Cores != 0.5 {
		t.Errorf("CPU ms per query %g, cores %g; want 5 and 0.5", p.CPUMsPerQuery, p.Cores)
	}
	if len(p.Shapes) != len(shapes) || p.Shapes[0].Requests != 100 {
		t.Errorf("per shape %+v, want %d shapes of 100 requests", p.Shapes, len(shapes))
	}
}

func TestSummary(t *testing.T) {
	if got, want := summary([]float64{3, 1, 2}), (Summary{Median: 2, Min: 1, Max: 3, N: 3}); got != want {
		t.Errorf("summary(3, 1, 2) = %+v, want %+v", got, want)
	}
	if got := summary([]float64{4, 1}); got.Median != 2.5 {
		t.Errorf("median of 4 and 1 = %g, want 2.5", got.Median)
	}
	if got := summary(nil); got.N != 0 {
		t.Errorf("summary of none = %+v", got)
	}
}

func TestSegmentRanges(t *testing.T) {
	got := segmentRanges(1500, 4200, 1000)
	want := [][2]int64{{1500, 2000}, {2000, 3000}, {3000, 4000}, {4000, 4200}}
	if len(got) != len(want) {
		t.Fatalf("segmentRanges(1500, 4200, 1000) = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("segmentRanges(1500, 4200, 1000) = %v, want %v", got, want)
		}
	}
	if got := segmentRanges(5, 5, 10); len(got) != 0 {
		t.Errorf("an empty range gave segments %v", got)
	}
}

func TestSameAnswer(t *testing.T) {
	row := func(vs ...any) []any { return vs }
	base := [][]any{row("2026-01-02 03:00:00", int64(10), 12.5, nil), row("2026-01-02 04:00:00", int64(11), 1e12, "ATL")}
	for _, c := range []struct {
		name string
		got  [][]any
		same bool
	}{
		{"equal", [][]any{row("2026-01-02 03:00:00", int64(10), 12.5, nil), row("2026-01-02 04:00:00", int64(11), 1e12, "ATL")}, true},
		{"average in the last bits", [][]any{row("2026-01-02 03:00:00", int64(10), 12.5*(1+1e-12), nil), row("2026-01-02 04:00:00", int64(11), 1e12+1, "ATL")}, true},
		{"average off", [][]any{row("2026-01-02 03:00:00", int64(10), 12.5001, nil), row("2026-01-02 04:00:00", int64(11), 1e12, "ATL")}, false},
		{"count off by one", [][]any{row("2026-01-02 03:00:00", int64(11), 12.5, nil), row("2026-01-02 04:00:00", int64(11), 1e12, "ATL")}, false},
		{"integer as float", [][]any{row("2026-01-02 03:00:00", 10.0, 12.5, nil), row("2026-01-02 04:00:00", int64(11), 1e12, "ATL")}, false},
		{"null", [][]any{row("2026-01-02 03:00:00", int64(10), 12.5, int64(0)), row("2026-01-02 04:00:00", int64(11), 1e12, "ATL")}, false},
		{"row missing", base[:1], false},
	} {
		if diff := sameAnswer(c.got, base); (diff == "") != c.same {
			t.Errorf("%s: sameAnswer says %q, want same=%t", c.name, diff, c.same)
		}
	}
}

// Drivers give a TIMESTAMP's wall-clock time in different locations.
func TestNormalizeTimestamps(t *testing.T) {
	utc := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	other := time.Date(2026, 1, 2, 3, 0, 0, 0, time.FixedZone("X", 3600))
	if normalize(utc) != normalize(other) {
		t.Errorf("the same wall-clock time normalised to %v and %v", normalize(utc), normalize(other))
	}
	if normalize(int32(7)) != int64(7) || normalize([]byte("ATL")) != "ATL" {
		t.Errorf("int32 and []byte do not normalise to int64 and string")
	}
}

// Every request's window ends within the hour after the last hour of data,
// and its SQL carries the literals.
func TestParamsEndAtTheFreshestData(t *testing.T) {
	last := time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC)
	g := paramGen{origins: []string{"ATL", "LAX"}, lastHour: last}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 1000 {
		p := g.draw(r)
		if !p.now.After(last) || p.now.After(last.Add(time.Hour)) {
			t.Fatalf("now %s is not within the hour after %s", p.now, last)
		}
		seen[p.now.Format(timeLiteral)] = true
		q := shapes[0].sql(duetRelation, p)
		if !strings.Contains(q, "'"+p.origin+"'") || !strings.Contains(q, p.now.Format(timeLiteral)) {
			t.Fatalf("query %q lacks origin %s or now %s", q, p.origin, p.now.Format(timeLiteral))
		}
	}
	if len(seen) < 990 {
		t.Errorf("1000 requests drew only %d distinct times", len(seen))
	}
	if q := shapes[2].sql(rawRelation([]string{"/a.parquet"}), params{now: last}); !strings.Contains(q, "FROM (SELECT date_trunc('hour', date) AS hour") ||
		!strings.Contains(q, "read_parquet(['/a.parquet']") {
		t.Errorf("the baseline's query does not compute the view from the raw files: %s", q)
	}
}

func TestParseList(t *testing.T) {
	got, err := parseList("-clients", "16, 1,4,4", strconv.Atoi)
	if err != nil || len(got) != 3 || got[0] != 1 || got[2] != 16 {
		t.Errorf("parseList = %v, %v; want [1 4 16]", got, err)
	}
	if _, err := parseList("-clients", "1,0", strconv.Atoi); err == nil {
		t.Error("parseList accepted 0")
	}
}

func TestShort(t *testing.T) {
	for n, want := range map[int64]string{50_000_000: "50M", 1_500_000: "1.5M", 200_000: "200k", 999: "999", 100_000_000: "100M"} {
		if got := short(n); got != want {
			t.Errorf("short(%d) = %s, want %s", n, got, want)
		}
	}
}

func testResults() *Results {
	ph := func(sys, state string, clients int, p50, p99 float64) Phase {
		return Phase{System: sys, State: state, Clients: clients, Requests: 100, Seconds: 10, QPS: 10, P50: p50, P99: p99, Max: p99 + 1,
			P99Windows: Summary{Median: p99, Min: p99, Max: p99, N: 3}, Shapes: []ShapeLatency{{Name: shapes[0].Name, Requests: 33, P50: p50, P99: p99}}}
	}
	r := &Results{GeneratedAt: time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC), Setup: Setup{Rows: 50_000_000, Runs: 3, EventsPerDay: 3_333_333}}
	for _, s := range shapes {
		r.Queries = append(r.Queries, Query{Name: s.Name, Description: s.Description, SQL: "SELECT 1"})
	}
	r.Dashboard = []Phase{ph(systemDuet, stateMerged, 1, 5, 12), ph(systemDuckDB, stateRaw, 1, 900, 1500), ph(systemDuet, stateMerged, 16, 40, 45)}
	r.Live = []Phase{ph(systemDuet, stateLive, 1, 8, 20), ph(systemDuet, stateLive, 16, 90, 200)}
	r.BatchOnly = []Phase{ph(systemDuet, stateBatch, 1, 7, 18), ph(systemDuet, stateBatch, 16, 60, 150)}
	d, b := r.Dashboard[0], r.Dashboard[1]
	r.Scales = []Scale{
		{Events: 10_000_000, Days: 3, Duet: d, Baseline: &b, FullBuildSeconds: 0.5, IncrementEvents: 100_000,
			Incremental: Summary{Median: 0.2, Min: 0.1, Max: 0.3, N: 3}},
		{Events: 50_000_000, Days: 15, Duet: d, Baseline: &b, FullBuildSeconds: 1.5, IncrementEvents: 500_000,
			Incremental: Summary{Median: 0.4, Min: 0.3, Max: 0.5, N: 3}},
	}
	r.Checks = []Check{{Events: 50_000_000, When: "merged", Compared: 6, Flights: 50_000_000}}
	r.Targets = r.targets()
	return r
}

func TestTargets(t *testing.T) {
	r := testResults()
	for name, want := range map[string]struct {
		measured float64
		pass     bool
	}{
		latencyTargetName(50_000_000, 1):      {12, true},
		latencyTargetName(50_000_000, 16):     {45, true},
		liveLatencyTargetName(50_000_000, 1):  {20, true},
		liveLatencyTargetName(50_000_000, 16): {200, false},
		speedupTargetName(50_000_000, 1):      {125, true},
		overheadTargetName(1):                 {8.0 / 7, true},
		overheadTargetName(16):                {1.5, false},
	} {
		got := r.target(name)
		if got == nil || got.Measured != want.measured || got.Pass != want.pass {
			t.Errorf("target %q = %+v, want measured %g pass %t", name, got, want.measured, want.pass)
		}
	}
	if r.target(speedupTargetName(50_000_000, 16)) != nil {
		t.Error("a speed-up target at 16 clients, where DuckDB was not measured")
	}
}

func TestRenderSection(t *testing.T) {
	out := renderSection(testResults())
	for _, want := range []string{
		"## Dashboard queries", "Written by `make bench` (`bench/querybench`) on 2026-11-23 04:00 UTC",
		"### Dashboard at 50M events",
		"| 1 | 5.0 | 12.0 | 13.0 | 10.0 | 900.0 | 1500.0 | 1501.0 | 10.0 | 125x | PASS | PASS |",
		"| 16 | 40.0 | 45.0 | 46.0 | 10.0 | — | — | — | — | — | PASS | — |",
		"Merged at every query", "| 16 | 90.0 | 200.0 | 201.0 | 10.0 | 0.00 | 45.0 | 0.00 | MISS |",
		"### Merge overhead at 50M events", "| 16 | 90.0 | 200.0 | 60.0 | 150.0 | 1.50x | 1.33x |",
		"### Scale", "| 10,000,000 | 3.0 |", "0.20 (0.10–0.30)",
		"From 10M to 50M events (5x)",
		"- 50M events, merged: 6 answers equal, 50,000,000 flights",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("section lacks %q:\n%s", want, out)
		}
	}
}
