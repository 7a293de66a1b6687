package server

import (
	"context"
	"runtime"
	"testing"
)

// TestEngineLeavesACoreToTheServer: unconfigured, the server's engine runs
// one thread fewer than the process's cores (at least one); a configured
// count is kept.
func TestEngineLeavesACoreToTheServer(t *testing.T) {
	for _, c := range []struct{ configured, want int }{
		{0, max(1, runtime.GOMAXPROCS(0)-1)},
		{3, 3},
	} {
		cfg := testConfig(t.TempDir())
		cfg.Engine.Threads = c.configured
		srv := runServer(t, cfg)
		var threads int
		if err := srv.db.QueryRowContext(context.Background(), "SELECT current_setting('threads')").Scan(&threads); err != nil {
			t.Fatal(err)
		}
		if threads != c.want {
			t.Errorf("--threads %d: the engine runs %d threads, want %d", c.configured, threads, c.want)
		}
	}
	for cores, want := range map[int]int{1: 1, 2: 1, 16: 15} {
		if got := engineThreads(cores); got != want {
			t.Errorf("engineThreads(%d) = %d, want %d", cores, got, want)
		}
	}
}
