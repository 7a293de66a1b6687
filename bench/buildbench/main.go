// Command buildbench measures how fast duet's batch layer builds a view: a
// full build and an incremental build (after 1% new data) of the demo view
// over a generated master dataset, each next to DuckDB running the same SQL
// directly, in the same run. It writes its section of BENCHMARKS.md and a
// JSON file. `make bench` runs it; it is a program, not a timed test, so the
// figures come from one undisturbed process per run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, benchenv.ProgressLogger(os.Stderr)); err != nil {
		fmt.Fprintln(os.Stderr, "buildbench:", err)
		os.Exit(1)
	}
}
