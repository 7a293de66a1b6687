// Command ingestbench measures duet's ingest path on this machine: sustained
// ingest throughput into the speed layer (events/s per server core, Arrow IPC
// and NDJSON, from 1 and 8 concurrent producers, with and without a view),
// freshness (acknowledgement to visible in a merged query) under half that
// load, alone and while the view is rebuilt and its versions published over
// and over, and resident memory per retained event. Every figure comes through the real HTTP API of a real
// server running in its own process. It writes its section of BENCHMARKS.md
// and a JSON file; `make bench-ingest` runs it (and `make bench` with the
// other benchmarks). It is a program, not a timed test.
package main

import (
	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
)

func main() {
	benchserver.ServeIfChild("ingestbench")
	benchenv.Main("ingestbench", parseFlags, run)
}
