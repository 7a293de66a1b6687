package benchenv

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// Common is what every benchmark program is told where to write and what
// to run: its results, the duet binary and its data directory.
type Common struct {
	// Out is the Markdown file whose section the program rewrites; JSON
	// receives the machine-readable results.
	Out, JSON string
	// Duet is the binary that runs executors (`make build` writes bin/duet).
	Duet string
	// WorkDir holds the data; a temporary directory when empty. Keep leaves
	// it in place afterwards.
	WorkDir string
	Keep    bool
}

// Register adds -out, -json, -duet, -workdir and -keep to fs: section names
// the program's section of the Markdown file, json its default results file.
func (c *Common) Register(fs *flag.FlagSet, section, json string) {
	fs.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file to write the "+section+" section into")
	fs.StringVar(&c.JSON, "json", json, "JSON results file")
	fs.StringVar(&c.Duet, "duet", "bin/duet", "duet binary that runs the executors (make build)")
	fs.StringVar(&c.WorkDir, "workdir", "", "directory for the data (default: a new temporary directory)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the data directory afterwards")
}

// Validate requires -out and -json and resolves the duet binary to an
// absolute path: executors and servers run in working directories of their
// own.
func (c *Common) Validate() error {
	if c.Out == "" || c.JSON == "" {
		return errors.New("-out and -json: required")
	}
	duet, err := DuetBinary(c.Duet)
	c.Duet = duet
	return err
}

// Parse parses args with fs; a benchmark takes no positional arguments.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// Main runs a benchmark program named name: a bad flag exits with status
// 2, a failed run (or an interrupted one) with 1.
func Main[C any](name string, parse func([]string) (C, error), run func(context.Context, C, *slog.Logger) error) {
	cfg, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, ProgressLogger(os.Stderr)); err != nil {
		stop()
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// ArrowIPC encodes rec as an uncompressed Arrow IPC stream: an ingest body.
func ArrowIPC(rec arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("encode Arrow IPC: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode Arrow IPC: %w", err)
	}
	return buf.Bytes(), nil
}

// Percentile is the p-quantile (0 < p ≤ 1) of sorted, by nearest rank; 0
// when it is empty.
func Percentile[T ~int64 | ~float64](sorted []T, p float64) T {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Target is one of an issue's goals and whether the run met it.
type Target struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	// Limit is the bound: at most it when AtMost, else at least it.
	Limit  float64 `json:"limit"`
	AtMost bool    `json:"at_most"`
	Pass   bool    `json:"pass"`
}

// NewTarget judges measured against limit.
func NewTarget(name string, measured, limit float64, atMost bool) Target {
	pass := measured >= limit
	if atMost {
		pass = measured <= limit
	}
	return Target{Name: name, Measured: measured, Limit: limit, AtMost: atMost, Pass: pass}
}
