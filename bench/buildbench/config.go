package main

import (
	"errors"
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
	// Out is the Markdown file whose build-bench section is rewritten.
	Out string
	// JSON receives the machine-readable results.
	JSON string
	// Duet is the duet binary executors run (`make build` writes bin/duet).
	Duet string
	// WorkDir holds the data directory; a temporary directory when empty.
	WorkDir string
	// Keep leaves the data directory in place afterwards.
	Keep bool
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
	fs.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file to write the build-bench section into")
	fs.StringVar(&c.JSON, "json", "bench/results/build.json", "JSON results file")
	fs.StringVar(&c.Duet, "duet", "bin/duet", "duet binary the executors run (make build)")
	fs.StringVar(&c.WorkDir, "workdir", "", "directory for the data (default: a new temporary directory)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the data directory afterwards")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
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
	case c.Out == "" || c.JSON == "":
		return errors.New("-out and -json: required")
	}
	duet, err := benchenv.DuetBinary(c.Duet)
	c.Duet = duet
	return err
}

// incrementRows is how many rows each incremental run appends.
func (c *Config) incrementRows() int64 {
	return max(1, int64(float64(c.Rows)*c.IncrementPercent/100))
}
