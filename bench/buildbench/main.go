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
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, newProgressLogger(os.Stderr)); err != nil {
		fmt.Fprintln(os.Stderr, "buildbench:", err)
		os.Exit(1)
	}
}

// newProgressLogger prints one key=value line per step, without timestamps:
// the lines carry their own durations.
func newProgressLogger(w *os.File) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}
