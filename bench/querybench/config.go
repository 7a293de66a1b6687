package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// Config is what one benchmark run measures and where it writes.
type Config struct {
	// Rows is the main size: the events of the dashboard and merge
	// overhead scenarios.
	Rows int64
	// Scales are the sizes of the scale scenario.
	Scales []int64
	// Days the largest size spans. Every size is a prefix of one event
	// stream, so smaller ones span proportionally fewer days.
	Days int64
	// Seed changes the generated values; the same seed gives the same data.
	Seed int64
	// SegmentRows is the offsets per archived segment: one archive file per
	// day per segment, as the speed layer's archiver writes them.
	SegmentRows int64
	// Clients are the concurrent dashboard clients of each duet phase;
	// BaselineClients those of each DuckDB phase at the main size.
	Clients, BaselineClients []int
	// Warmup runs before, Duration is measured, for each query phase.
	Warmup, Duration time.Duration
	// Runs is the incremental builds per size, and the windows each query
	// phase is split into for the spread of its p99.
	Runs int
	// Checks is the parameter sets per query shape whose answers are
	// compared between duet and DuckDB.
	Checks int
	// IngestBatch is the events per ingest request.
	IngestBatch int
	// ProfileDir, when set, receives a CPU and an allocation profile of the
	// server during the dashboard phase with the most clients.
	ProfileDir string
	benchenv.Common
}

func parseFlags(args []string) (Config, error) {
	var c Config
	var scales, clients, baseline string
	fs := flag.NewFlagSet("querybench", flag.ContinueOnError)
	fs.Int64Var(&c.Rows, "rows", 50_000_000, "events of the dashboard and merge overhead scenarios (the main size)")
	fs.StringVar(&scales, "scales", "10000000,50000000,100000000", "comma-separated event counts of the scale scenario")
	fs.Int64Var(&c.Days, "days", 30, "days the largest size spans; smaller sizes are prefixes of the same events")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the generated values")
	fs.Int64Var(&c.SegmentRows, "segment", 1_000_000, "offsets per archived segment")
	fs.StringVar(&clients, "clients", "1,4,16", "comma-separated concurrent dashboard clients of the duet phases")
	fs.StringVar(&baseline, "baseline-clients", "1,4", "comma-separated concurrent clients of the DuckDB phases at the main size (a raw recompute takes seconds at 16)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured queries before each query phase")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time of each query phase")
	fs.IntVar(&c.Runs, "runs", 3, "incremental builds per size; windows per query phase for the spread of p99")
	fs.IntVar(&c.Checks, "checks", 2, "parameter sets per query shape whose answers duet and DuckDB must agree on")
	fs.IntVar(&c.IngestBatch, "ingest-batch", 50_000, "events per ingest request")
	c.Register(fs, "query-bench", "bench/results/query.json")
	fs.StringVar(&c.ProfileDir, "profile-dir", "", "write CPU and allocation profiles of the server during the dashboard phase with the most clients into this directory")
	if err := benchenv.Parse(fs, args); err != nil {
		return Config{}, err
	}
	var err error
	if c.Scales, err = parseList("-scales", scales, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }); err != nil {
		return Config{}, err
	}
	if c.Clients, err = parseList("-clients", clients, strconv.Atoi); err != nil {
		return Config{}, err
	}
	if c.BaselineClients, err = parseList("-baseline-clients", baseline, strconv.Atoi); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// parseList parses a comma-separated list of positive numbers, sorted
// without duplicates.
func parseList[T int | int64](name, s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		if f == "" {
			continue
		}
		n, err := parse(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive number", name, f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Validate names a bad flag and resolves the duet binary to an absolute
// path: the server process runs in its own working directory.
func (c *Config) Validate() error {
	switch {
	case c.Rows < 1000:
		return fmt.Errorf("-rows: at least 1000, got %d", c.Rows)
	case len(c.Scales) > 0 && c.Scales[0] < 1000:
		return fmt.Errorf("-scales: each at least 1000, got %d", c.Scales[0])
	case c.Days < 1 || c.Days > 3650:
		return fmt.Errorf("-days: between 1 and 3650, got %d", c.Days)
	case c.Seed < 0:
		return fmt.Errorf("-seed: must not be negative, got %d", c.Seed)
	case c.SegmentRows < 1:
		return fmt.Errorf("-segment: at least 1, got %d", c.SegmentRows)
	case len(c.Clients) == 0 || c.Clients[len(c.Clients)-1] > 256:
		return errors.New("-clients: between 1 and 256 clients, at least one phase")
	case len(c.BaselineClients) > 0 && c.BaselineClients[len(c.BaselineClients)-1] > 256:
		return errors.New("-baseline-clients: at most 256")
	case c.Warmup < 0:
		return fmt.Errorf("-warmup: must not be negative, got %s", c.Warmup)
	case c.Duration < time.Second:
		return fmt.Errorf("-duration: at least 1s, got %s", c.Duration)
	case c.Runs < 1:
		return fmt.Errorf("-runs: at least 1, got %d", c.Runs)
	case c.Checks < 1:
		return fmt.Errorf("-checks: at least 1, got %d", c.Checks)
	case c.IngestBatch < 1 || c.IngestBatch > 1_000_000:
		return fmt.Errorf("-ingest-batch: between 1 and 1,000,000, got %d", c.IngestBatch)
	}
	return c.Common.Validate()
}

// sizes are every size measured, ascending: the scales and the main size.
func (c *Config) sizes() []int64 {
	s := append(slices.Clone(c.Scales), c.Rows)
	slices.Sort(s)
	return slices.Compact(s)
}

// maxSize is the largest size: the generated event stream spans Days days
// at its length.
func (c *Config) maxSize() int64 { return slices.Max(c.sizes()) }

// speedEvents is the last 1% of n: ingested over HTTP, not yet built. Each
// incremental build adds as many.
func speedEvents(n int64) int64 { return max(1, n/100) }
