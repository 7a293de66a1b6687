package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// The targets.
const (
	speedupTarget  = 50.0 // DuckDB over the raw files p99 / duet p99, at least
	latencyTarget  = 50.0 // duet dashboard p99, ms, at most
	overheadTarget = 1.3  // merged view p50 / batch view alone p50, at most
)

// Results is everything one run measured; it is written as JSON and
// rendered into BENCHMARKS.md.
type Results struct {
	GeneratedAt time.Time        `json:"generated_at"`
	Machine     benchenv.Machine `json:"machine"`
	Setup       Setup            `json:"setup"`
	Queries     []Query          `json:"queries"`
	// Dashboard is the main size with the last 1% in the speed layer: duet's
	// merged view, materialized as it is while the dataset is idle, and
	// DuckDB over the raw Parquet files.
	Dashboard []Phase `json:"dashboard"`
	// Live is duet's merged view again, merged at every query, as while
	// records keep arriving.
	Live []Phase `json:"live"`
	// BatchOnly is the same queries on duet after a build covered every
	// event: the batch view alone, the speed layer empty, merged at every
	// query like Live.
	BatchOnly []Phase           `json:"batch_only"`
	Scales    []Scale           `json:"scales"`
	Targets   []benchenv.Target `json:"targets"`
	Checks    []Check           `json:"checks"`
	Profiles  *Profiles         `json:"profiles,omitempty"`
}

// Setup is how the run was made.
type Setup struct {
	Rows   int64   `json:"rows"`
	Scales []int64 `json:"scales"`
	// Days is what the largest size spans; EventsPerDay the stream's rate.
	Days         int64   `json:"days"`
	EventsPerDay float64 `json:"events_per_day"`
	Seed         int64   `json:"seed"`
	SegmentRows  int64   `json:"segment_rows"`
	// SpeedPercent of each size is ingested over HTTP after the build.
	SpeedPercent    float64 `json:"speed_percent"`
	IngestBatch     int     `json:"ingest_batch"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	Runs            int     `json:"runs"`
	// GeneratingSeconds is what generating the archive files took.
	GeneratingSeconds float64 `json:"generating_seconds"`
	Server            string  `json:"server"`
	// QueryMaxConcurrent is the SQL gateway's bound on running queries;
	// more wait queued.
	QueryMaxConcurrent int    `json:"query_max_concurrent"`
	ViewSQL            string `json:"view_sql"`
}

// Query is one dashboard query shape, with example literals.
type Query struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	SQL         string `json:"sql"`
}

// Phase is one closed-loop load of the dashboard queries.
type Phase struct {
	// System is duet or duckdb; State what it answers from.
	System   string  `json:"system"`
	State    string  `json:"state"`
	Clients  int     `json:"clients"`
	Requests int     `json:"requests"`
	Seconds  float64 `json:"seconds"`
	QPS      float64 `json:"qps"`
	// Latencies in milliseconds, over every request of the measurement.
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	// P99Windows is the p99 of each equal part of the measurement.
	P99Windows Summary `json:"p99_ms_of_windows"`
	// CPUMsPerQuery and Cores are the answering process's: the server for
	// duet, this program for DuckDB.
	CPUMsPerQuery float64        `json:"cpu_ms_per_query"`
	Cores         float64        `json:"cores"`
	Shapes        []ShapeLatency `json:"shapes"`
}

// ShapeLatency is one query shape's share of a phase.
type ShapeLatency struct {
	Name     string  `json:"name"`
	Requests int     `json:"requests"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
}

// Scale is one size's dashboard query and incremental build.
type Scale struct {
	Events   int64   `json:"events"`
	Archived int64   `json:"archived"`
	Days     float64 `json:"days"`
	Files    int     `json:"archive_files"`
	Bytes    int64   `json:"archive_bytes"`
	// StartSeconds is the server's start on the archive: loading the speed
	// layer computes the view's partials over every unbuilt archived event.
	StartSeconds     float64 `json:"start_seconds"`
	FullBuildSeconds float64 `json:"full_build_seconds"`
	// IngestSeconds is sending the last 1% over HTTP.
	IngestSeconds float64 `json:"ingest_seconds"`
	Duet          Phase   `json:"duet"`
	Baseline      *Phase  `json:"duckdb,omitempty"`
	// IncrementEvents are new before each incremental build, which covers
	// them: archiving them from the speed layer, then building.
	IncrementEvents int64 `json:"increment_events"`
	// Incremental is the wall-clock time from the build request until the
	// job was seen finished; IncrementalJob the job's own duration.
	Incremental    Summary `json:"incremental_build_seconds"`
	IncrementalJob Summary `json:"incremental_job_seconds"`
	// Rebuilt are the days the first incremental build rebuilt.
	Rebuilt []string `json:"rebuilt"`
}

// Summary is the median, min and max of repeated figures.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func summary(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	m := s[n/2]
	if n%2 == 0 {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{Median: m, Min: s[0], Max: s[n-1], N: n}
}

// Check is one comparison of duet's answers with DuckDB's.
type Check struct {
	Events int64  `json:"events"`
	When   string `json:"when"`
	// Compared answers, every shape with several parameter sets; Flights is
	// what the view counts, one per event.
	Compared int   `json:"compared_answers"`
	Flights  int64 `json:"flights"`
}

// Profiles are the server's profiles of the dashboard phase.
type Profiles struct {
	Clients int    `json:"clients"`
	CPU     string `json:"cpu"`
	Allocs  string `json:"allocs"`
}

// phase finds a phase by system and clients.
func phase(ps []Phase, system string, clients int) *Phase {
	for i := range ps {
		if ps[i].System == system && ps[i].Clients == clients {
			return &ps[i]
		}
	}
	return nil
}

// Names of the targets at each number of clients.
func latencyTargetName(events int64, clients int) string {
	return fmt.Sprintf("dashboard p99 at %s events, %d clients, ms", short(events), clients)
}

func liveLatencyTargetName(events int64, clients int) string {
	return fmt.Sprintf("dashboard p99 at %s events, %d clients, merged at every query, ms", short(events), clients)
}

func speedupTargetName(events int64, clients int) string {
	return fmt.Sprintf("DuckDB over the raw files p99 / duet p99 at %s events, %d clients", short(events), clients)
}

func overheadTargetName(clients int) string {
	return fmt.Sprintf("merged view p50 / batch view alone p50, %d clients", clients)
}

// targets are the goals at every number of clients measured.
func (r *Results) targets() []benchenv.Target {
	var out []benchenv.Target
	for _, d := range r.Dashboard {
		if d.System != systemDuet {
			continue
		}
		out = append(out, benchenv.NewTarget(latencyTargetName(r.Setup.Rows, d.Clients), d.P99, latencyTarget, true))
		if b := phase(r.Dashboard, systemDuckDB, d.Clients); b != nil {
			out = append(out, benchenv.NewTarget(speedupTargetName(r.Setup.Rows, d.Clients), b.P99/d.P99, speedupTarget, false))
		}
	}
	for _, d := range r.Live {
		out = append(out, benchenv.NewTarget(liveLatencyTargetName(r.Setup.Rows, d.Clients), d.P99, latencyTarget, true))
		if b := phase(r.BatchOnly, systemDuet, d.Clients); b != nil {
			out = append(out, benchenv.NewTarget(overheadTargetName(d.Clients), d.P50/b.P50, overheadTarget, true))
		}
	}
	return out
}

// target finds a target by name.
func (r *Results) target(name string) *benchenv.Target {
	for i := range r.Targets {
		if r.Targets[i].Name == name {
			return &r.Targets[i]
		}
	}
	return nil
}

// short writes an event count as 50M, 1.5M, 200k or 999.
func short(n int64) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e6)) + "M"
	case n >= 1000 && n%100 == 0:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e3)) + "k"
	}
	return fmt.Sprint(n)
}

func trimZero(s string) string {
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		return s[:len(s)-2]
	}
	return s
}
