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
	// Batch is the events per ingest request.
	Batch int
	// Producers are the numbers of producers sending concurrently that the
	// throughput phases with the view are measured at; the phases without
	// it and the memory phase run at the largest.
	Producers producerCounts
	// Bodies distinct pre-encoded requests per format are cycled through.
	Bodies int
	// Warmup runs before, Duration is measured, for each throughput phase.
	Warmup, Duration time.Duration
	// NoView skips the throughput phases without a view.
	NoView bool
	// FreshnessFormat is the format of the freshness phase's load and probes.
	FreshnessFormat string
	// FreshnessDuration is how long probes are sent in each freshness
	// phase (without and with builds publishing); ProbeInterval apart.
	FreshnessDuration, ProbeInterval time.Duration
	// LoadFraction of the measured sustained rate loads the freshness phase.
	LoadFraction float64
	// MemoryEvents are ingested into unarchived segments to measure memory.
	MemoryEvents int64
	// Seed changes the generated values.
	Seed int64
	// ProfileDir, when set, receives a CPU profile of the server per
	// throughput phase (ingest-<format>[-noview]-<producers>p.pprof).
	ProfileDir string
	benchenv.Common
}

func parseFlags(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	fs.IntVar(&c.Batch, "batch", 5000, "events per ingest request")
	c.Producers = producerCounts{1, 8}
	fs.Var(&c.Producers, "producers", "comma-separated numbers of concurrent producers to measure ingest with the view at (the other phases use the largest)")
	fs.IntVar(&c.Bodies, "bodies", 32, "distinct pre-encoded requests per format")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "unmeasured load before each throughput measurement")
	fs.DurationVar(&c.Duration, "duration", 12*time.Second, "measured load per throughput phase")
	fs.BoolVar(&c.NoView, "skip-noview", false, "skip the throughput phases without a view")
	fs.StringVar(&c.FreshnessFormat, "freshness-format", formatArrow, "format of the freshness phase: arrow or ndjson")
	fs.DurationVar(&c.FreshnessDuration, "freshness-duration", 15*time.Second, "how long freshness probes are sent")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", 50*time.Millisecond, "time between freshness probes")
	fs.Float64Var(&c.LoadFraction, "load-fraction", 0.5, "fraction of the measured sustained rate sent during the freshness phase")
	fs.Int64Var(&c.MemoryEvents, "memory-events", 2_000_000, "events ingested into unarchived segments for the memory measurement")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the generated values")
	c.Register(fs, "ingest-bench", "bench/results/ingest.json")
	fs.StringVar(&c.ProfileDir, "profile-dir", "", "write a CPU profile of the server per throughput phase into this directory")
	if err := benchenv.Parse(fs, args); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate names a bad flag and resolves the duet binary to an absolute
// path: the server process runs in its own working directory.
func (c *Config) Validate() error {
	switch {
	case c.Batch < 1 || c.Batch > 1_000_000:
		return fmt.Errorf("-batch: between 1 and 1,000,000, got %d", c.Batch)
	case len(c.Producers) == 0:
		return errors.New("-producers: give at least one number of producers")
	case c.Bodies < 1:
		return fmt.Errorf("-bodies: at least 1, got %d", c.Bodies)
	case c.Warmup < 0:
		return fmt.Errorf("-warmup: must not be negative, got %s", c.Warmup)
	case c.Duration < time.Second:
		return fmt.Errorf("-duration: at least 1s, got %s", c.Duration)
	case c.FreshnessFormat != formatArrow && c.FreshnessFormat != formatNDJSON:
		return fmt.Errorf("-freshness-format: arrow or ndjson, got %q", c.FreshnessFormat)
	case c.FreshnessDuration < time.Second:
		return fmt.Errorf("-freshness-duration: at least 1s, got %s", c.FreshnessDuration)
	case c.ProbeInterval < time.Millisecond:
		return fmt.Errorf("-probe-interval: at least 1ms, got %s", c.ProbeInterval)
	case c.LoadFraction <= 0 || c.LoadFraction > 1:
		return fmt.Errorf("-load-fraction: in (0, 1], got %g", c.LoadFraction)
	case c.MemoryEvents < int64(c.Batch):
		return fmt.Errorf("-memory-events: at least one batch (%d), got %d", c.Batch, c.MemoryEvents)
	case c.Seed < 0:
		return fmt.Errorf("-seed: must not be negative, got %d", c.Seed)
	}
	return c.Common.Validate()
}

// producerCounts is the -producers flag: distinct numbers of producers, in
// the order given.
type producerCounts []int

func (p *producerCounts) String() string {
	s := make([]string, len(*p))
	for i, n := range *p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (p *producerCounts) Set(v string) error {
	var out producerCounts
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return fmt.Errorf("%q: numbers of producers between 1 and 64, separated by commas", v)
		}
		if slices.Contains(out, n) {
			return fmt.Errorf("%q: %d is given twice", v, n)
		}
		out = append(out, n)
	}
	*p = out
	return nil
}

// most is the largest number of producers.
func (p producerCounts) most() int { return slices.Max(p) }
