package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchdoc"
)

// section is this program's section of BENCHMARKS.md.
const section = "build-bench"

func renderSection(r *Results) string {
	var w strings.Builder
	m, d := r.Machine, r.Data
	fmt.Fprintf(&w, "## Batch builds\n\nWritten by `make bench` (`bench/buildbench`) on %s.\n\n", r.GeneratedAt.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&w, "- Machine: %d CPUs (%s), %s GiB memory, %s/%s\n", m.CPUs, m.CPUModel, gib(m.MemoryBytes), m.OS, m.Arch)
	fmt.Fprintf(&w, "- Software: %s (GOMAXPROCS %d), DuckDB %s (%d threads, its default, in executors and in the baseline)\n",
		m.GoVersion, m.GOMAXPROCS, m.DuckDBVersion, m.DuckDBThreads)
	fmt.Fprintf(&w, "- Data: %s archived rows over %d days (seed %d) in %d ZSTD Parquet files, one per day per segment of %s offsets, %s MiB\n",
		benchdoc.Thousands(d.Rows), d.Days, d.Seed, d.Files, benchdoc.Thousands(d.SegmentRows), mib(d.Bytes))
	fmt.Fprintf(&w, "- View `delays`: `%s`\n", d.ViewSQL)
	fmt.Fprintf(&w, "- Each scenario runs %d times. Before each incremental build %s rows are appended at new offsets: "+
		"nine in ten on the last day, the rest late events on %d earlier days\n\n", d.Runs, benchdoc.Thousands(d.IncrementRows), d.LateDays)

	w.WriteString("| scenario | rows | median s | min s | max s | CPU s | rows/s | measure | target | result |\n")
	w.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|---|\n")
	full, inc, cold := r.Targets[0], r.Targets[1], r.Targets[2]
	row(&w, "full build (`duet executor`)", benchdoc.Thousands(r.Full.Rows), r.Full, fmt.Sprintf("%.2fx direct DuckDB", full.Ratio), full)
	row(&w, "direct DuckDB `COPY ... TO` Parquet", benchdoc.Thousands(r.Baseline.Rows), r.Baseline, "baseline", Target{})
	row(&w, "incremental build after +"+benchdoc.Thousands(r.Incremental.Rows)+" rows",
		fmt.Sprintf("%s new, %s read", benchdoc.Thousands(r.Incremental.Rows), benchdoc.Thousands(r.Incremental.RowsRead)),
		r.Incremental, fmt.Sprintf("%.1fx faster than full", inc.Ratio), inc)
	row(&w, "same, on a cold executor (`--executor-standby 0`)",
		fmt.Sprintf("%s new, %s read", benchdoc.Thousands(r.IncrementalCold.Rows), benchdoc.Thousands(r.IncrementalCold.RowsRead)),
		r.IncrementalCold, fmt.Sprintf("%.1fx faster than full", cold.Ratio), Target{})

	fmt.Fprintf(&w, "\nTimes are wall-clock; CPU s is the median CPU time of this process and its executors. "+
		"Ratios are of the medians. Other load on the machine inflates wall-clock times, so two cross-checks: "+
		"the ratios of the fastest runs are %.2fx and %.1fx, those of median CPU times %.2fx and %.1fx.\n\n",
		full.RatioOfMinimums, inc.RatioOfMinimums, full.CPURatio, inc.CPURatio)
	w.WriteString("Builds run on a fresh `duet executor` process each, as a server runs them: by default the server keeps one " +
		"standby executor started and warmed up (DuckDB opened, a small aggregate written as Parquet and read back), which " +
		"takes the next task and exits after it; a new one then warms up. The cold row starts each executor with its task. " +
		"CPU s includes the standby's warm-up.\n\n")
	w.WriteString("Where a build's time goes (medians, seconds): the executor process (start, DuckDB query, Parquet output, " +
		"counting the output's rows), uploading its output files, and the rest of the control plane (planning, " +
		"catalog, the speed layer handoff, garbage collection).\n\n")
	w.WriteString("| build | total | executor process | output uploads | rest of control plane |\n|---|---:|---:|---:|---:|\n")
	for _, b := range []struct {
		name string
		s    Scenario
	}{{"full", r.Full}, {"incremental", r.Incremental}, {"incremental, cold executor", r.IncrementalCold}} {
		fmt.Fprintf(&w, "| %s | %.2f | %.2f | %.2f | %.2f |\n", b.name, b.s.Median, b.s.Executor.Median, b.s.Uploads.Median, b.s.Other.Median)
	}
	w.WriteString("\n")
	w.WriteString("Checks (the run fails otherwise):\n\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&w, "- %s: the merged view `duet.views.delays` equals DuckDB's direct result in all %s groups (%s flights, one per archived row)\n",
			c.When, benchdoc.Thousands(c.Groups), benchdoc.Thousands(c.Flights))
	}
	for _, v := range r.Versions {
		fmt.Fprintf(&w, "- version %d is `%s` on version %d and rebuilt only %s\n", v.Version, v.Kind, v.Base, strings.Join(v.Rebuilt, ", "))
	}
	return w.String()
}

func row(w *strings.Builder, name, rows string, s Scenario, measure string, t Target) {
	target, result := "—", "—"
	if t.Name != "" {
		target, result = fmt.Sprintf("≥ %gx", t.Limit), "MISS"
		if t.AtMost {
			target = fmt.Sprintf("≤ %gx", t.Limit)
		}
		if t.Pass {
			result = "PASS"
		}
	}
	fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s |\n",
		name, rows, s.Median, s.Min, s.Max, s.CPU.Median, benchdoc.Thousands(int64(s.RowsPerSecond)), measure, target, result)
}

func since(t time.Time) string { return fmt.Sprintf("%.2f", time.Since(t).Seconds()) }

func rate(rows int64, d time.Duration) string { return fmt.Sprintf("%.0f", float64(rows)/d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func gib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<30)) }
