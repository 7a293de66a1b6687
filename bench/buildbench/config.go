package main

import (
	"flag"
	"fmt"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// Config is what one benchmark run measures and where it writes.
type Config struct {
	// Rows archived before the first build, spread over Days days.
	Rows, Days int64
	// Seed changes the generated values; the same seed gives the same data.
	Seed int64
	// Runs of each scenario; the report gives their median, min and max.
	Runs int
	// SegmentRows is the offsets per archived segment: one archive file per
	// day per segment, as the speed layer's archiver writes them.
	SegmentRows int64
	// IncrementPercent of Rows is appended before each incremental build.
	IncrementPercent float64
	benchenv.Common
}

func parseFlags(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("buildbench", flag.ContinueOnError)
	fs.Int64Var(&c.Rows, "rows", 100_000_000, "rows archived before the first build (at 10M, process start-up dominates a build)")
	fs.Int64Var(&c.Days, "days", 30, "days the rows are spread over")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the generated values")
	fs.IntVar(&c.Runs, "runs", 3, "runs of each scenario")
	fs.Int64Var(&c.SegmentRows, "segment", 1_000_000, "offsets per archived segment")
	fs.Float64Var(&c.IncrementPercent, "increment", 1, "percent of -rows appended before each incremental build")
	c.Register(fs, "build-bench", "bench/results/build.json")
	if err := benchenv.Parse(fs, args); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate names a bad flag and resolves the duet binary to an absolute
// path: executors run in their own working directories.
func (c *Config) Validate() error {
	switch {
	case c.Rows < 1000:
		return fmt.Errorf("-rows: at least 1000, got %d", c.Rows)
	case c.Days < 1 || c.Days > 3650:
		return fmt.Errorf("-days: between 1 and 3650, got %d", c.Days)
	case c.Seed < 0:
		return fmt.Errorf("-seed: must not be negative, got %d", c.Seed)
	case c.Runs < 1:
		return fmt.Errorf("-runs: at least 1, got %d", c.Runs)
	case c.SegmentRows < 1:
		return fmt.Errorf("-segment: at least 1, got %d", c.SegmentRows)
	case c.IncrementPercent <= 0 || c.IncrementPercent > 100:
		return fmt.Errorf("-increment: a percentage in (0, 100], got %g", c.IncrementPercent)
	}
	return c.Common.Validate()
}

// incrementRows is how many rows each incremental run appends.
func (c *Config) incrementRows() int64 {
	return max(1, int64(float64(c.Rows)*c.IncrementPercent/100))
}
