package main

import (
	"fmt"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// The targets.
const (
	arrowTarget     = 1_000_000 // Arrow IPC events/s per core, at least
	ndjsonTarget    = 300_000   // NDJSON events/s per core, at least
	freshnessTarget = 50.0      // ms, p99 ack -> visible in a merged query, at most
)

// Names of the targets, one per throughput phase with the view and one per
// freshness phase.
const (
	freshnessTargetName = "freshness p99, ms from ack to visible in a merged query"
	publishTargetName   = "freshness during batch publishes p99, ms from ack to visible in a merged query"
)

func ingestTargetName(format string, producers int) string {
	plural := "s"
	if producers == 1 {
		plural = ""
	}
	return fmt.Sprintf("%s ingest with %d producer%s, events/s per core", formatName(format), producers, plural)
}

// Results is everything one run measured; it is written as JSON and
// rendered into BENCHMARKS.md.
type Results struct {
	GeneratedAt time.Time    `json:"generated_at"`
	Machine     Machine      `json:"machine"`
	Workload    Workload     `json:"workload"`
	Throughput  []Throughput `json:"throughput"`
	Freshness   Freshness    `json:"freshness"`
	// FreshnessPublish is the same measurement while the view is rebuilt
	// over and over, so probes land before, during and after handoffs.
	FreshnessPublish Freshness         `json:"freshness_during_publish"`
	Memory           Memory            `json:"memory"`
	Targets          []benchenv.Target `json:"targets"`
}

// Workload describes the events, the requests and the server setup.
type Workload struct {
	Columns []Column `json:"columns"`
	// Bytes per event on the wire, and of the Arrow buffers in memory.
	NDJSONBytesPerEvent    float64 `json:"ndjson_bytes_per_event"`
	ArrowIPCBytesPerEvent  float64 `json:"arrow_ipc_bytes_per_event"`
	ArrowMemoryBytesPerEvt float64 `json:"arrow_memory_bytes_per_event"`
	BatchEvents            int     `json:"batch_events"`
	// Producers are the producer counts measured with the view; the
	// phases without it and the memory phase run at the largest.
	Producers      []int  `json:"producers"`
	DistinctBodies int    `json:"distinct_bodies"`
	ViewSQL        string `json:"view_sql"`
	// SegmentMaxRecords and SegmentMaxAge of the throughput and freshness
	// phases (the server's defaults).
	SegmentMaxRecords int64   `json:"segment_max_records"`
	SegmentMaxAge     string  `json:"segment_max_age"`
	Fsync             string  `json:"fsync"`
	Server            string  `json:"server"`
	WarmupSeconds     float64 `json:"warmup_seconds"`
	DurationSeconds   float64 `json:"duration_seconds"`
}

// Column is one column of the benchmarked dataset.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Throughput is one measured phase of sustained ingest.
type Throughput struct {
	Format string `json:"format"`
	View   bool   `json:"view"`
	// Producers send concurrently, each waiting for its acknowledgement.
	Producers int   `json:"producers"`
	Events    int64 `json:"events"`
	// Requests acknowledged and requests refused (429/503) and resent.
	Requests int64   `json:"requests"`
	Retries  int64   `json:"retries"`
	Seconds  float64 `json:"seconds"`
	// ServerCPUSeconds is the server process's CPU time (all threads) from
	// the start of the measurement until the requests in flight at its end
	// were answered and the segments sealed meanwhile archived (DrainSeconds
	// after the end, using DrainCPUSeconds).
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	DrainSeconds     float64 `json:"archive_drain_seconds"`
	DrainCPUSeconds  float64 `json:"archive_drain_cpu_seconds"`
	// UnarchivedAtEnd is how many events were not archived yet when the
	// load stopped: about one segment when archiving keeps up.
	UnarchivedAtEnd int64 `json:"unarchived_at_end"`
	// Cores is the server's CPU use while the load ran.
	Cores float64 `json:"server_cores"`
	// ClientCores is the load generator's CPU use, competing for the same cores.
	ClientCores float64 `json:"client_cores"`
	// OtherCores is what other processes on the machine used meanwhile.
	OtherCores      float64 `json:"other_cores"`
	EventsPerSecond float64 `json:"events_per_second"`
	// EventsPerCore is the events acknowledged from the start of the
	// measurement until the drain per server CPU second (ServerCPUSeconds):
	// events/s per core used.
	EventsPerCore float64 `json:"events_per_core_second"`
	MBPerSecond   float64 `json:"wire_mb_per_second"`
	// Request latencies (send to acknowledgement), milliseconds.
	LatencyP50 float64 `json:"request_latency_p50_ms"`
	LatencyP99 float64 `json:"request_latency_p99_ms"`
	// ArchivedEnd is the archived offset after the phase.
	ArchivedEnd int64 `json:"archived_offset_end"`
}

// Freshness is the ack -> visible measurement under partial load.
type Freshness struct {
	Format string `json:"format"`
	// Producers send the load (the count that reached the sustained rate).
	Producers int `json:"producers"`
	// TargetRate is LoadFraction of the measured sustained rate; Rate what was sent.
	LoadFraction float64 `json:"load_fraction"`
	TargetRate   float64 `json:"target_events_per_second"`
	Rate         float64 `json:"events_per_second"`
	Cores        float64 `json:"server_cores"`
	OtherCores   float64 `json:"other_cores"`
	Probes       int     `json:"probes"`
	// ProbeInterval is the time between probes.
	ProbeInterval string `json:"probe_interval"`
	// Ack -> first query result showing the probe, milliseconds.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// Send -> ack of the probe's own one-event request, milliseconds.
	AckP50 float64 `json:"ack_p50_ms"`
	AckP99 float64 `json:"ack_p99_ms"`
	// Polls is the most queries one probe needed before it was visible.
	MaxPolls int    `json:"max_polls"`
	Query    string `json:"query"`
	// Builds is the rebuild loop of the phase during publishes; nil in the other.
	Builds *Builds `json:"builds,omitempty"`
}

// Builds is what the rebuild loop of the freshness phase during publishes
// did: one build of the view after another, each waited for.
type Builds struct {
	// Jobs is every build of the loop, which runs from the load's first
	// events until the probes ended and the build running then finished;
	// Published is how many versions (handoffs) were published while the
	// probes were sent (from the first probe sent to the last one visible).
	Jobs      int `json:"jobs"`
	Published int `json:"published"`
	// FirstVersion and LastVersion are the first and last of those versions.
	FirstVersion int64 `json:"first_version"`
	LastVersion  int64 `json:"last_version"`
	// Job durations, submission to final state, seconds.
	SecondsP50 float64 `json:"job_seconds_p50"`
	SecondsMax float64 `json:"job_seconds_max"`
	// Probes around a version's publication (its handoff): visible at most
	// NearPublish before it, sent before and visible after it (spanning),
	// or sent at most NearPublish after it. NearP99 and NearMax are the
	// ack -> visible of all of those, ms.
	NearPublish    string  `json:"near_publish"`
	ProbesBefore   int     `json:"probes_just_before_publish"`
	ProbesSpanning int     `json:"probes_spanning_publish"`
	ProbesAfter    int     `json:"probes_just_after_publish"`
	NearP99        float64 `json:"near_publish_p99_ms"`
	NearMax        float64 `json:"near_publish_max_ms"`
}

// Memory is the server's resident memory per retained (unarchived) event.
type Memory struct {
	Events           int64   `json:"retained_events"`
	ArchivedEnd      int64   `json:"archived_offset_end"`
	RSSBefore        int64   `json:"rss_before_bytes"`
	RSSAfter         int64   `json:"rss_after_bytes"`
	BytesPerEvent    float64 `json:"rss_bytes_per_event"`
	GoHeapPerEvent   float64 `json:"go_heap_inuse_bytes_per_event"`
	SegmentMaxRecord int64   `json:"segment_max_records"`
	SegmentMaxAge    string  `json:"segment_max_age"`
}
