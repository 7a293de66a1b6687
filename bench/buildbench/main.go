// Command buildbench measures how fast duet's batch layer builds a view: a
// full build and an incremental build (after 1% new data) of the demo view
// over a generated master dataset, each next to DuckDB running the same SQL
// directly, in the same run. It writes its section of BENCHMARKS.md and a
// JSON file. `make bench` runs it; it is a program, not a timed test, so the
// figures come from one undisturbed process per run.
package main

import "github.com/duet-analytics/duet/bench/internal/benchenv"

func main() { benchenv.Main("buildbench", parseFlags, run) }
