package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// testConfig is what the server tests start from: dataDir, a free loopback
// port, two engine threads, no scheduled compaction and no standby
// executors (the test binary is no executor).
func testConfig(dataDir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Listen = "127.0.0.1:0"
	cfg.Engine.Threads = 2
	cfg.CompactionSchedule = ""
	cfg.Executor.Standby = 0
	return cfg
}

// runServer starts a server on cfg and stops it when the test ends; Run
// returning an error fails the test.
func runServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv
}

// refusal is a configuration the server must refuse to start with: edit
// changes testConfig's, and the error must contain want.
type refusal struct {
	name string
	edit func(*Config)
	want string
}

// assertRefused checks every refusal with dir/data as the data directory,
// which no refused start may leave behind.
func assertRefused(t *testing.T, dir string, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		cfg := testConfig(filepath.Join(dir, "data"))
		c.edit(&cfg)
		srv, err := New(context.Background(), cfg, nil)
		if err == nil {
			srv.closeStores()
			t.Errorf("%s: the server started", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %q, want it to contain %q", c.name, err, c.want)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "data")); len(m) != 0 {
		t.Errorf("a refused start left %s behind", m[0])
	}
}
