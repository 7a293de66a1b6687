package main

import (
	"slices"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// Results is everything one run measured; it is written as JSON and
// rendered into BENCHMARKS.md.
type Results struct {
	GeneratedAt time.Time        `json:"generated_at"`
	Machine     benchenv.Machine `json:"machine"`
	Data        DataInfo         `json:"data"`
	Full        Scenario         `json:"full_build"`
	Baseline    Scenario         `json:"direct_duckdb"`
	Incremental Scenario         `json:"incremental_build"`
	// IncrementalCold is the incremental build on executors started with
	// their task rather than a standby one.
	IncrementalCold Scenario   `json:"incremental_build_cold_executor"`
	Targets         []Target   `json:"targets"`
	Checks          []Check    `json:"checks"`
	Versions        []Versions `json:"incremental_versions"`
}

// DataInfo describes the generated master dataset.
type DataInfo struct {
	Rows          int64 `json:"rows"`
	Days          int64 `json:"days"`
	Seed          int64 `json:"seed"`
	SegmentRows   int64 `json:"segment_rows"`
	Files         int   `json:"files"`
	Bytes         int64 `json:"bytes"`
	IncrementRows int64 `json:"increment_rows"`
	// LateDays is how many earlier days each increment's late events fall on.
	LateDays int    `json:"late_days"`
	Runs     int    `json:"runs"`
	ViewSQL  string `json:"view_sql"`
}

// Scenario is the repeated timing of one way of building the view.
type Scenario struct {
	Seconds []float64 `json:"seconds"`
	Summary
	// CPU is the CPU time of this process and the executors.
	CPU Summary `json:"cpu_seconds"`
	// Rows is what throughput counts: every archived row for full builds,
	// the appended rows for incremental ones.
	Rows int64 `json:"rows"`
	// RowsRead is the median number of rows the build read: archive rows, and
	// for an incremental build also the base version's partial rows it merges.
	RowsRead      int64   `json:"rows_read"`
	RowsPerSecond float64 `json:"rows_per_second"`
	// Executor and Uploads are the executor processes' and the output
	// uploads' shares of the time (builds only).
	Executor *Summary `json:"executor_seconds,omitempty"`
	Uploads  *Summary `json:"upload_seconds,omitempty"`
	// Other is the rest of the control plane's time: planning, catalog
	// reads and the publish, the speed layer handoff, garbage collection.
	Other *Summary `json:"other_seconds,omitempty"`
}

// Summary is the median, min and max of repeated timings, in seconds.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Target is one of the goals and whether the run met it.
type Target struct {
	Name string `json:"name"`
	// Ratio is of the medians; RatioOfMinimums, of the fastest runs, is
	// less sensitive to other load on the machine.
	Ratio           float64 `json:"ratio"`
	RatioOfMinimums float64 `json:"ratio_of_minimums"`
	// CPURatio is the ratio of median CPU times.
	CPURatio float64 `json:"cpu_ratio"`
	// Limit is the bound on Ratio: at most it when AtMost, else at least it.
	Limit  float64 `json:"limit"`
	AtMost bool    `json:"at_most"`
	Pass   bool    `json:"pass"`
}

// newTarget compares scenario a with b: the ratio of a's time to b's.
func newTarget(name string, a, b Scenario, limit float64, atMost bool) Target {
	ratio := a.Median / b.Median
	pass := ratio >= limit
	if atMost {
		pass = ratio <= limit
	}
	return Target{Name: name, Ratio: ratio, RatioOfMinimums: a.Min / b.Min, CPURatio: a.CPU.Median / b.CPU.Median,
		Limit: limit, AtMost: atMost, Pass: pass}
}

// Check is one comparison of the merged view with DuckDB's direct answer.
type Check struct {
	When       string `json:"when"`
	Groups     int64  `json:"groups"`
	Flights    int64  `json:"flights"`
	Mismatches int64  `json:"mismatched_groups"`
}

// Versions records what an incremental build published.
type Versions struct {
	Version int64    `json:"version"`
	Base    int64    `json:"base"`
	Kind    string   `json:"kind"`
	Rebuilt []string `json:"rebuilt"`
	Covered int64    `json:"covered"`
}

// sample is one timed run of a scenario.
type sample struct {
	wall, cpu time.Duration
	// parts splits a build's wall-clock time (zero for the baseline).
	parts    buildParts
	rowsRead int64
}

// timings collects one scenario's runs.
type timings []sample

// scenario summarises the runs; rows is what throughput counts.
func (t timings) scenario(rows int64, isBuild bool) Scenario {
	pick := func(f func(sample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(t))
		for i, s := range t {
			out[i] = f(s)
		}
		return out
	}
	wall := pick(func(s sample) time.Duration { return s.wall })
	s := Scenario{Summary: summarize(wall), CPU: summarize(pick(func(s sample) time.Duration { return s.cpu })), Rows: rows}
	read := make([]int64, len(t))
	for i, r := range t {
		read[i] = r.rowsRead
		s.Seconds = append(s.Seconds, r.wall.Seconds())
	}
	s.RowsRead = median(read)
	if s.Median > 0 {
		s.RowsPerSecond = float64(rows) / s.Median
	}
	if isBuild {
		e := summarize(pick(func(s sample) time.Duration { return s.parts.executor }))
		u := summarize(pick(func(s sample) time.Duration { return s.parts.uploads }))
		o := summarize(pick(func(s sample) time.Duration { return s.wall - s.parts.executor - s.parts.uploads }))
		s.Executor, s.Uploads, s.Other = &e, &u, &o
	}
	return s
}

func summarize(ds []time.Duration) Summary {
	secs := make([]float64, len(ds))
	for i, d := range ds {
		secs[i] = d.Seconds()
	}
	slices.Sort(secs)
	return Summary{Median: median(secs), Min: secs[0], Max: secs[len(secs)-1]}
}

// median of an even count is the mean of the middle two.
func median[T int64 | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
