package server

import (
	"context"
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
