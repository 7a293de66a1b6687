// Command querybench measures duet's dashboard queries on this machine, each
// next to its baseline in the same run: p50/p99 latency and QPS of realistic
// dashboard queries at 1, 4 and 16 concurrent clients through the Trino
// protocol against a real server whose merged view holds most events in a
// batch version and the last 1% in the speed layer, next to DuckDB
// recomputing the same answers from the raw Parquet files; the merge
// overhead (the same queries once a build covered everything); and how the
// query and an incremental build grow from 10M to 100M events. Answers
// that differ from DuckDB's fail the run. It writes its section of
// BENCHMARKS.md and a JSON file; `make bench-query` runs it (and `make
// bench` with the other benchmarks). It is a program, not a timed test.
package main

import (
	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
)

func main() {
	benchserver.ServeIfChild("querybench")
	benchenv.Main("querybench", parseFlags, run)
}
