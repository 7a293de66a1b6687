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
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == benchserver.ChildCommand {
		if err := benchserver.RunChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "ingestbench server:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, benchenv.ProgressLogger(os.Stderr)); err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}
