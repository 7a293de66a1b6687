package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BENCHMARKS.md holds one section per benchmark program between its own
// markers; this program rewrites only its own section.
const (
	startMarker = "<!-- build-bench:start -->"
	endMarker   = "<!-- build-bench:end -->"
	newDocument = "# Benchmarks\n\nFigures measured by `make bench`. Each section is written by its benchmark program between its markers; rerun the program rather than editing them.\n"
)

func renderSection(r *Results) string {
	var w strings.Builder
	m, d := r.Machine, r.Data
	fmt.Fprintf(&w, "## Batch builds\n\nWritten by `make bench` (`bench/buildbench`) on %s.\n\n", r.GeneratedAt.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&w, "- Machine: %d CPUs (%s), %s GiB memory, %s/%s\n", m.CPUs, m.CPUModel, gib(m.MemoryBytes), m.OS, m.Arch)
	fmt.Fprintf(&w, "- Software: %s (GOMAXPROCS %d), DuckDB %s (%d threads, its default, in executors and in the baseline)\n",
		m.GoVersion, m.GOMAXPROCS, m.DuckDBVersion, m.DuckDBThreads)
	fmt.Fprintf(&w, "- Data: %s archived rows over %d days (seed %d) in %d ZSTD Parquet files, one per day per segment of %s offsets, %s MiB\n",
		thousands(d.Rows), d.Days, d.Seed, d.Files, thousands(d.SegmentRows), mib(d.Bytes))
	fmt.Fprintf(&w, "- View `delays`: `%s`\n", d.ViewSQL)
	fmt.Fprintf(&w, "- Each scenario runs %d times. Before each incremental build %s rows are appended at new offsets: "+
		"nine in ten on the last day, the rest late events on %d earlier days\n\n", d.Runs, thousands(d.IncrementRows), d.LateDays)

	w.WriteString("| scenario | rows | median s | min s | max s | CPU s | rows/s | measure | target | result |\n")
	w.WriteString("|---|---:|---:|---:|---:|---:|---:|---|---|---|\n")
	full, inc := r.Targets[0], r.Targets[1]
	row(&w, "full build (`duet executor`)", thousands(r.Full.Rows), r.Full, fmt.Sprintf("%.2fx direct DuckDB", full.Ratio), full)
	row(&w, "direct DuckDB `COPY ... TO` Parquet", thousands(r.Baseline.Rows), r.Baseline, "baseline", Target{})
	row(&w, "incremental build after +"+thousands(r.Incremental.Rows)+" rows",
		fmt.Sprintf("%s new, %s read", thousands(r.Incremental.Rows), thousands(r.Incremental.RowsRead)),
		r.Incremental, fmt.Sprintf("%.1fx faster than full", inc.Ratio), inc)

	fmt.Fprintf(&w, "\nTimes are wall-clock; CPU s is the median CPU time of this process and its executors. "+
		"Ratios are of the medians. Other load on the machine inflates wall-clock times, so two cross-checks: "+
		"the ratios of the fastest runs are %.2fx and %.1fx, those of median CPU times %.2fx and %.1fx.\n\n",
		full.RatioOfMinimums, inc.RatioOfMinimums, full.CPURatio, inc.CPURatio)
	w.WriteString("Where a build's time goes (medians, seconds): the executor process (start, DuckDB query, Parquet output, " +
		"counting the output's rows), uploading its output files, and the rest of the control plane (planning, " +
		"catalog, the speed layer handoff, garbage collection).\n\n")
	w.WriteString("| build | total | executor process | output uploads | rest of control plane |\n|---|---:|---:|---:|---:|\n")
	for _, b := range []struct {
		name string
		s    Scenario
	}{{"full", r.Full}, {"incremental", r.Incremental}} {
		fmt.Fprintf(&w, "| %s | %.2f | %.2f | %.2f | %.2f |\n", b.name, b.s.Median, b.s.Executor.Median, b.s.Uploads.Median, b.s.Other.Median)
	}
	w.WriteString("\n")
	w.WriteString("Checks (the run fails otherwise):\n\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&w, "- %s: the merged view `duet.views.delays` equals DuckDB's direct result in all %s groups (%s flights, one per archived row)\n",
			c.When, thousands(c.Groups), thousands(c.Flights))
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
		name, rows, s.Median, s.Min, s.Max, s.CPU.Median, thousands(int64(s.RowsPerSecond)), measure, target, result)
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeSection replaces this program's section of the Markdown file,
// creating the file, or appending the section, when missing.
func writeSection(path, section string) error {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = []byte(newDocument)
	case err != nil:
		return err
	}
	return writeFileAtomic(path, []byte(replaceSection(string(old), section)))
}

func replaceSection(doc, section string) string {
	block := startMarker + "\n" + section + endMarker + "\n"
	i, j := strings.Index(doc, startMarker), strings.Index(doc, endMarker)
	if i >= 0 && j > i {
		return doc[:i] + block + strings.TrimPrefix(doc[j+len(endMarker):], "\n")
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + block
}

func writeJSON(path string, r *Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic replaces path by a complete file or leaves it as it was.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file private; results are for everyone to read.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func since(t time.Time) string { return fmt.Sprintf("%.2f", time.Since(t).Seconds()) }

func rate(rows int64, d time.Duration) string { return fmt.Sprintf("%.0f", float64(rows)/d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

func gib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<30)) }
