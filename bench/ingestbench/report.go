package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/duet-analytics/duet/bench/internal/benchdoc"
	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// section is this program's section of BENCHMARKS.md.
const section = "ingest-bench"

func renderSection(r *Results) string {
	var w strings.Builder
	m, wl := r.Machine, r.Workload
	fmt.Fprintf(&w, "## Ingest into the speed layer\n\nWritten by `make bench-ingest` (`bench/ingestbench`) on %s.\n\n", r.GeneratedAt.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&w, "- Machine: %d CPUs (%s), %s GiB memory, %s/%s, data directory on %s\n", m.CPUs, m.CPUModel, gib(m.MemoryBytes), m.OS, m.Arch, m.Filesystem)
	fmt.Fprintf(&w, "- Server: %s; %s (GOMAXPROCS %d), DuckDB %s (%d threads, the server's default: one fewer than its cores). Fsync %s\n",
		wl.Server, m.GoVersion, m.GOMAXPROCS, m.DuckDBVersion, m.ServerEngineThreads, wl.Fsync)
	cols := make([]string, len(wl.Columns))
	for i, c := range wl.Columns {
		cols[i] = c.Name + " " + c.Type
	}
	fmt.Fprintf(&w, "- Events: %d columns (%s); %.0f bytes per event as NDJSON, %.0f as Arrow IPC (uncompressed, one record batch per request), %.0f in Arrow buffers\n",
		len(cols), strings.Join(cols, ", "), wl.NDJSONBytesPerEvent, wl.ArrowIPCBytesPerEvent, wl.ArrowMemoryBytesPerEvt)
	fmt.Fprintf(&w, "- Requests: %s events each, from %s concurrent producers (the duet Go client, `POST /v1/ingest/events`), each waiting for its acknowledgement; "+
		"the bodies (%d distinct batches per format) are encoded before the measurement\n", benchdoc.Thousands(int64(wl.BatchEvents)), orList(wl.Producers), wl.DistinctBodies)
	fmt.Fprintf(&w, "- View `%s`: `%s`\n", viewName, wl.ViewSQL)
	fmt.Fprintf(&w, "- Segments: the defaults (%s records or %s), so sealed segments are archived to Parquet in the background during the measurement, as in production; that work is in the server's CPU time\n",
		benchdoc.Thousands(wl.SegmentMaxRecords), wl.SegmentMaxAge)
	fmt.Fprintf(&w, "- Each throughput phase runs on a fresh server: %.0f s of load, then %.0f s measured (events/s, cores, latencies). "+
		"Per core divides the events acknowledged from the start of the measurement by the CPU time of the server process "+
		"(user and system time of all its threads, DuckDB's included, from /proc) from then until the drain ends: the requests in flight "+
		"answered and every segment sealed meanwhile archived. So archiving is counted even when it lags, and per core is events/s divided "+
		"by the cores used. With the view every format is measured at each number of producers; without it at %d only\n\n",
		wl.WarmupSeconds, wl.DurationSeconds, slices.Max(wl.Producers))

	w.WriteString("| format | view | producers | events/s | server cores | events/s per core | load generator cores | other processes' cores | request p50 ms | request p99 ms | unarchived at the end (drain s) | target | result |\n")
	w.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, t := range r.Throughput {
		view, target, result := "none", "—", "—"
		if t.View {
			view = "`" + viewName + "`"
			if tg, ok := findTarget(r, ingestTargetName(t.Format, t.Producers)); ok {
				target, result = "≥ "+benchdoc.Thousands(int64(tg.Limit)), passMiss(tg)
			}
		}
		fmt.Fprintf(&w, "| %s | %s | %d | %s | %.2f | %s | %.2f | %.2f | %.1f | %.1f | %s (%.1f) | %s | %s |\n", formatName(t.Format), view, t.Producers,
			benchdoc.Thousands(int64(t.EventsPerSecond)), t.Cores, benchdoc.Thousands(int64(t.EventsPerCore)), t.ClientCores, t.OtherCores,
			t.LatencyP50, t.LatencyP99, benchdoc.Thousands(t.UnarchivedAtEnd), t.DrainSeconds, target, result)
	}

	f, fp := r.Freshness, r.FreshnessPublish
	fmt.Fprintf(&w, "\nFreshness, in two phases, each on a fresh server with the view under %s load from %d producers at %.0f%% of the highest sustained rate "+
		"measured above with the view. Every %s a producer sends one %s event with a unique `country`, "+
		"then, from its acknowledgement, queries the merged view through the SQL gateway (Trino protocol, trino-go-client) "+
		"until the answer counts it exactly once (more than once fails the run): `%s`. The time runs to the end of that query. "+
		"In the second phase, from the load's first events until the probes end, the view is rebuilt over and over "+
		"(`POST /v1/views/%s/builds`, the job polled every %s until it finishes, then the next build): each build archives the events "+
		"accepted so far and publishes a version covering them, and the speed layer hands them over to that version in one engine transaction, "+
		"so probes land before, during and after those handoffs. The builds' queries run in executor processes (the duet binary) "+
		"the server starts, so their CPU time shows under other processes' cores; archiving and handoffs are the server's.\n\n",
		formatName(f.Format), f.Producers, 100*f.LoadFraction, f.ProbeInterval, formatName(f.Format), f.Query, viewName, jobPoll)
	w.WriteString("| phase | events/s asked | sent | server cores | other processes' cores | probes | ack → visible p50 ms | p99 ms | max ms | queries per probe, at most | probe request p50 ms | p99 ms | target | result |\n")
	w.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, row := range []struct {
		phase, target string
		f             Freshness
	}{{"load only", freshnessTargetName, f}, {"load and rebuilds", publishTargetName, fp}} {
		target, result := "—", "—"
		if tg, ok := findTarget(r, row.target); ok {
			target, result = fmt.Sprintf("p99 ≤ %g ms", tg.Limit), passMiss(tg)
		}
		x := row.f
		fmt.Fprintf(&w, "| %s | %s | %s | %.2f | %.2f | %d | %.1f | %.1f | %.1f | %d | %.1f | %.1f | %s | %s |\n", row.phase,
			benchdoc.Thousands(int64(x.TargetRate)), benchdoc.Thousands(int64(x.Rate)), x.Cores, x.OtherCores,
			x.Probes, x.P50, x.P99, x.Max, x.MaxPolls, x.AckP50, x.AckP99, target, result)
	}
	if bs := fp.Builds; bs != nil {
		fmt.Fprintf(&w, "\nRebuilds: %d builds (submission to end p50 %.1f s, at most %.1f s); %d versions (%d to %d) published while the probes were sent. "+
			"Around those publications (handoffs), %d probes became visible at most %s before one, %d were sent before one and visible after it, "+
			"and %d were sent at most %s after one: ack → visible p99 %.1f ms, max %.1f ms.\n",
			bs.Jobs, bs.SecondsP50, bs.SecondsMax, bs.Published, bs.FirstVersion, bs.LastVersion,
			bs.ProbesBefore, bs.NearPublish, bs.ProbesSpanning, bs.ProbesAfter, bs.NearPublish, bs.NearP99, bs.NearMax)
	}

	mm := r.Memory
	fmt.Fprintf(&w, "\nMemory: a fresh server with the view and segments that never seal during the measurement "+
		"(`--segment-max-records %d --segment-max-age %s`), so every event stays in the speed layer; %s Arrow IPC events are "+
		"ingested at full speed, and after %s idle the growth of the server's resident set (VmRSS) since the first batch is divided "+
		"by the events it retains. Go heap is the growth of `go_memstats_heap_inuse_bytes` from its /metrics; the rest is mostly DuckDB's tables.\n\n",
		mm.SegmentMaxRecord, mm.SegmentMaxAge, benchdoc.Thousands(mm.Events), memorySettle)
	w.WriteString("| retained events | RSS before MiB | RSS after MiB | RSS bytes per event | of which Go heap | event in Arrow buffers |\n")
	w.WriteString("|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&w, "| %s | %s | %s | %.0f | %.0f | %.0f |\n", benchdoc.Thousands(mm.Events), mib(mm.RSSBefore), mib(mm.RSSAfter),
		mm.BytesPerEvent, mm.GoHeapPerEvent, wl.ArrowMemoryBytesPerEvt)

	w.WriteString("\nOther processes' cores is CPU time that neither the server nor the load generator used (from /proc/stat): " +
		"on a shared machine it slows every wall-clock figure (events/s, latencies, freshness); per-core figures suffer less.\n")
	w.WriteString("\nChecks (the run fails otherwise): after each throughput and freshness phase `raw.events` has one row per log offset and at least " +
		"one per acknowledged event (probes included), and the view's `events` add up to the same count; every probe is counted exactly once " +
		"when it becomes visible; the memory phase archived nothing.\n")
	return w.String()
}

func findTarget(r *Results, name string) (benchenv.Target, bool) {
	for _, t := range r.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return benchenv.Target{}, false
}

func passMiss(t benchenv.Target) string {
	if t.Pass {
		return "PASS"
	}
	return "MISS"
}

func gib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<30)) }

// orList writes numbers as "1", "1 or 8", "1, 4 or 8".
func orList(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
