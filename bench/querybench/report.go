package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/duet-analytics/duet/bench/internal/benchdoc"
	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/bench/internal/flights"
)

// section is this program's section of BENCHMARKS.md.
const section = "query-bench"

func renderSection(r *Results) string {
	var w strings.Builder
	m, s := r.Machine, r.Setup
	fmt.Fprintf(&w, "## Dashboard queries\n\nWritten by `make bench` (`bench/querybench`) on %s.\n\n", r.GeneratedAt.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&w, "- Machine: %d CPUs (%s), %.1f GiB memory, %s/%s\n", m.CPUs, m.CPUModel, float64(m.MemoryBytes)/(1<<30), m.OS, m.Arch)
	fmt.Fprintf(&w, "- Software: %s (GOMAXPROCS %d), DuckDB %s (%d threads in the server's engine, the server's default: one fewer than its cores; %d, DuckDB's default, in the baseline)\n",
		m.GoVersion, m.GOMAXPROCS, m.DuckDBVersion, m.ServerEngineThreads, m.DuckDBThreads)
	fmt.Fprintf(&w, "- Server: %s. Its SQL gateway runs up to %d queries at once; more wait queued\n", s.Server, s.QueryMaxConcurrent)
	fmt.Fprintf(&w, "- Data: the flights of the build benchmark (seed %d), one stream of %s events a day; every size is a prefix of it (%s). "+
		"Each size's server starts on the first 99%% archived (ZSTD Parquet, one file per day per segment of %s offsets, "+
		"generated in %.0f s for all sizes), builds it into a batch version (`POST /v1/views/delays/builds`, full), then takes the last 1%% "+
		"over HTTP (`POST /v1/ingest/flights`, Arrow IPC, %s events a request) into the speed layer, unbuilt\n",
		s.Seed, benchdoc.Thousands(int64(s.EventsPerDay)), sizesSpan(r), benchdoc.Thousands(s.SegmentRows), s.GeneratingSeconds, benchdoc.Thousands(int64(s.IngestBatch)))
	fmt.Fprintf(&w, "- View `%s`: `%s`\n", flights.View, s.ViewSQL)
	w.WriteString("- Dashboard queries, sent in rotation; each request draws a random origin and a \"now\" to the millisecond within the hour after " +
		"the last hour of data, so every window ends at the freshest events and no two requests carry the same literals (no result cache could answer):\n")
	for _, q := range r.Queries {
		fmt.Fprintf(&w, "  - %s (`%s`): `%s`\n", q.Description, q.Name, q.SQL)
	}
	fmt.Fprintf(&w, "- Load: closed loop; each client sends a query through the Trino protocol (trino-go-client, database/sql), reads the whole answer "+
		"and sends the next. %.0f s of warm-up, then %.0f s measured: every query started in it counts, and those still running at its end "+
		"are waited for, so slow answers are not left out. QPS is those queries over the %.0f s\n", s.WarmupSeconds, s.DurationSeconds, s.DurationSeconds)
	w.WriteString("- Baseline, what a user without duet runs: DuckDB in the benchmark's process (its defaults) runs the same query text with " +
		"`delays` replaced by the view's SQL over `read_parquet([...])` of every raw event's Parquet file, the last 1% included; " +
		"it computes the same answers by definition\n\n")

	renderDashboard(&w, r)
	renderOverhead(&w, r)
	renderScales(&w, r)
	renderPhases(&w, r)

	fmt.Fprintf(&w, "Checks (the run fails otherwise): at every size, duet's answers equal DuckDB's over the raw files (every query shape with "+
		"several parameter sets; exact but for averages, within %g relative), and the view counts one flight per accepted event:\n\n", relTolerance)
	for _, c := range r.Checks {
		fmt.Fprintf(&w, "- %s events, %s: %d answers equal, %s flights\n", short(c.Events), c.When, c.Compared, benchdoc.Thousands(c.Flights))
	}
	w.WriteString("- nothing left the speed layer while the merged view was measured; each incremental build published an `incremental` version covering every accepted event\n")
	if p := r.Profiles; p != nil {
		fmt.Fprintf(&w, "\nProfiles of the server during the %d-client dashboard phase: `go tool pprof %s` (CPU), `go tool pprof -sample_index=alloc_space %s` (allocations during the phase).\n",
			p.Clients, p.CPU, p.Allocs)
	}
	return w.String()
}

func renderDashboard(w *strings.Builder, r *Results) {
	fmt.Fprintf(w, "### Dashboard at %s events\n\n", short(r.Setup.Rows))
	fmt.Fprintf(w, "Duet answers from its merged view (batch version and the last 1%% in the speed layer), materialized: the dataset takes no "+
		"records during the phase, so the server has computed the view's answer once into a table, which it does when a dataset has been idle "+
		"for `--materialize-after`; the next records switch the view back to merging at every query, in the transaction that adds them. "+
		"The next table is the same queries merging at every query, as while records keep arriving. DuckDB recomputes from the raw files. "+
		"Targets: p99 ≤ %.0f ms, and DuckDB's p99 at least %.0fx duet's.\n\n", latencyTarget, speedupTarget)
	w.WriteString("| clients | duet p50 ms | duet p99 ms | duet max ms | duet QPS | DuckDB p50 ms | DuckDB p99 ms | DuckDB max ms | DuckDB QPS | DuckDB p99 / duet p99 | p99 ≤ 50 ms | ≥ 50x |\n")
	w.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, c := range clientsOf(r.Dashboard) {
		d, b := phase(r.Dashboard, systemDuet, c), phase(r.Dashboard, systemDuckDB, c)
		cells := []string{fmt.Sprint(c)}
		cells = append(cells, latencyCells(d)...)
		cells = append(cells, latencyCells(b)...)
		ratio, lat, speed := "—", "—", "—"
		if d != nil {
			lat = result(r.target(latencyTargetName(r.Setup.Rows, c)))
		}
		if t := r.target(speedupTargetName(r.Setup.Rows, c)); t != nil {
			ratio, speed = times(t.Measured), result(t)
		}
		cells = append(cells, ratio, lat, speed)
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	w.WriteString("\n")
	if len(r.Live) == 0 {
		return
	}
	fmt.Fprintf(w, "Merged at every query (the server restarted with `--materialize-after 0`), against its materialized answer above:\n\n")
	w.WriteString("| clients | p50 ms | p99 ms | max ms | QPS | server CPU ms per query | materialized p99 ms | materialized CPU ms per query | p99 ≤ 50 ms |\n")
	w.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, d := range r.Live {
		mp99, mcpu := "—", "—"
		if m := phase(r.Dashboard, systemDuet, d.Clients); m != nil {
			mp99, mcpu = f1(m.P99), f2(m.CPUMsPerQuery)
		}
		fmt.Fprintf(w, "| %d | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %s | %s |\n", d.Clients, d.P50, d.P99, d.Max, d.QPS, d.CPUMsPerQuery,
			mp99, mcpu, result(r.target(liveLatencyTargetName(r.Setup.Rows, d.Clients))))
	}
	w.WriteString("\n")
}

func renderOverhead(w *strings.Builder, r *Results) {
	if len(r.BatchOnly) == 0 {
		return
	}
	fmt.Fprintf(w, "### Merge overhead at %s events\n\n", short(r.Setup.Rows))
	fmt.Fprintf(w, "The same queries on duet, merging at every query, with the last 1%% in the speed layer (merged), and after an incremental build covered every event "+
		"(the batch view alone, the speed layer empty). Target: merged p50 at most %.1fx the batch view's; the p99 and CPU ratios cross-check it.\n\n", overheadTarget)
	w.WriteString("| clients | merged p50 ms | merged p99 ms | batch alone p50 ms | batch alone p99 ms | p50 ratio | p99 ratio | server CPU ms per query, merged / alone | target | result |\n")
	w.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, b := range r.BatchOnly {
		d := phase(r.Live, systemDuet, b.Clients)
		if d == nil {
			continue
		}
		fmt.Fprintf(w, "| %d | %.1f | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.2f / %.2f | ≤ %.1fx | %s |\n", b.Clients, d.P50, d.P99, b.P50, b.P99,
			d.P50/b.P50, d.P99/b.P99, d.CPUMsPerQuery, b.CPUMsPerQuery, overheadTarget, result(r.target(overheadTargetName(b.Clients))))
	}
	w.WriteString("\n")
}

func renderScales(w *strings.Builder, r *Results) {
	if len(r.Scales) == 0 {
		return
	}
	w.WriteString("### Scale\n\n")
	fmt.Fprintf(w, "The dashboard with one client on the merged view, materialized, at each size, and an incremental build after +1%% new events "+
		"(sent over HTTP; the build archives them from the speed layer, then builds), %d runs each: median (min–max). "+
		"Build times run from `POST /v1/views/delays/builds` until the job is seen finished; job s is the job's own duration.\n\n", r.Setup.Runs)
	w.WriteString("| events | days | archive files (MiB) | duet p50 ms | duet p99 ms | DuckDB p50 ms | DuckDB p99 ms | DuckDB p99 / duet p99 | full build s | +1% events | incremental build s | job s | p99 ≤ 50 ms |\n")
	w.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Scales {
		bp50, bp99, ratio := "—", "—", "—"
		if s.Baseline != nil {
			bp50, bp99, ratio = f1(s.Baseline.P50), f1(s.Baseline.P99), times(s.Baseline.P99/s.Duet.P99)
		}
		t := benchenv.NewTarget("", s.Duet.P99, latencyTarget, true)
		fmt.Fprintf(w, "| %s | %.1f | %d (%.0f) | %.1f | %.1f | %s | %s | %s | %.2f | %s | %s | %s | %s |\n",
			benchdoc.Thousands(s.Events), s.Days, s.Files, float64(s.Bytes)/(1<<20), s.Duet.P50, s.Duet.P99, bp50, bp99, ratio,
			s.FullBuildSeconds, benchdoc.Thousands(s.IncrementEvents), spread(s.Incremental, "%.2f"), spread(s.IncrementalJob, "%.2f"), result(&t))
	}
	if n := len(r.Scales); n > 1 {
		a, b := r.Scales[0], r.Scales[n-1]
		fmt.Fprintf(w, "\nFrom %s to %s events (%.0fx): duet's p99 grows %.1fx", short(a.Events), short(b.Events), float64(b.Events)/float64(a.Events), b.Duet.P99/a.Duet.P99)
		if a.Baseline != nil && b.Baseline != nil {
			fmt.Fprintf(w, ", DuckDB's %.1fx", b.Baseline.P99/a.Baseline.P99)
		}
		fmt.Fprintf(w, "; the incremental build %.1fx for %.0fx the new events, while the full build grows %.1fx.\n",
			b.Incremental.Median/a.Incremental.Median, float64(b.IncrementEvents)/float64(a.IncrementEvents), b.FullBuildSeconds/a.FullBuildSeconds)
	}
	w.WriteString("\n")
}

func renderPhases(w *strings.Builder, r *Results) {
	w.WriteString("Every phase: the p99 of each of its equal parts (median, min–max), the CPU time of the answering process (the server for duet, " +
		"this program for DuckDB) per query and the cores it used, and each query shape's p50 / p99 in ms.\n\n")
	w.WriteString("| events | system | answers from | clients | queries | p99 of parts ms | CPU ms per query | cores |")
	for _, q := range r.Queries {
		fmt.Fprintf(w, " %s |", q.Name)
	}
	w.WriteString("\n|---:|---|---|---:|---:|---:|---:|---:|" + strings.Repeat("---:|", len(r.Queries)) + "\n")
	row := func(events int64, p Phase) {
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %s | %.2f | %.2f |", short(events), p.System, p.State, p.Clients, benchdoc.Thousands(int64(p.Requests)),
			spread(p.P99Windows, "%.1f"), p.CPUMsPerQuery, p.Cores)
		for _, q := range r.Queries {
			cell := "—"
			for _, s := range p.Shapes {
				if s.Name == q.Name {
					cell = fmt.Sprintf("%.1f / %.1f", s.P50, s.P99)
				}
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		w.WriteString("\n")
	}
	for _, p := range r.Dashboard {
		row(r.Setup.Rows, p)
	}
	for _, p := range r.Live {
		row(r.Setup.Rows, p)
	}
	for _, p := range r.BatchOnly {
		row(r.Setup.Rows, p)
	}
	for _, s := range r.Scales {
		if s.Events == r.Setup.Rows {
			continue
		}
		row(s.Events, s.Duet)
		if s.Baseline != nil {
			row(s.Events, *s.Baseline)
		}
	}
	w.WriteString("\n")
}

// times writes a ratio with two significant digits or more.
func times(x float64) string {
	if x < 10 {
		return fmt.Sprintf("%.1fx", x)
	}
	return fmt.Sprintf("%.0fx", x)
}

// latencyCells are a phase's p50, p99, max and QPS, or dashes.
func latencyCells(p *Phase) []string {
	if p == nil {
		return []string{"—", "—", "—", "—"}
	}
	return []string{f1(p.P50), f1(p.P99), f1(p.Max), f1(p.QPS)}
}

func clientsOf(ps []Phase) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.Clients)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func result(t *benchenv.Target) string {
	switch {
	case t == nil:
		return "—"
	case t.Pass:
		return "PASS"
	}
	return "MISS"
}

// spread writes a summary as "median (min–max)".
func spread(s Summary, format string) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 {
		return fmt.Sprintf(format, s.Median)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.Median, s.Min, s.Max)
}

// sizesSpan lists each size with the days it spans.
func sizesSpan(r *Results) string {
	var parts []string
	for _, s := range r.Scales {
		parts = append(parts, fmt.Sprintf("%s events span %.1f days", short(s.Events), s.Days))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s events", short(r.Setup.Rows))
	}
	return strings.Join(parts, ", ")
}
