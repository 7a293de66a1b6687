package sqlgateway

import (
	"context"
	"sync"
	"testing"
)

// TestKeptConnectionsStayInTheirSchema: connections kept in a session
// schema serve only statements in that schema, statements in two schemas
// interleaved each resolve their own names, a failed statement's
// connection is not kept, and the engine's pool stays in its default
// schema.
func TestKeptConnectionsStayInTheirSchema(t *testing.T) {
	tg := startGateway(t, Config{})
	inViews, inRaw := tg.client(t, ""), tg.client(t, "")
	ctx := context.Background()
	rawConn, err := inRaw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rawConn.Close()
	if _, err := rawConn.ExecContext(ctx, "USE raw"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 3 {
		wg.Go(func() {
			for range 30 {
				var n int64
				if err := inViews.QueryRowContext(ctx, "SELECT n FROM totals").Scan(&n); err != nil || n != 100 {
					errs <- err
					return
				}
			}
		})
	}
	for range 30 {
		var n int64
		if err := rawConn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil || n != 100 {
			t.Fatalf("in schema raw: n=%d err=%v", n, err)
		}
		// Names of the other schema do not resolve here.
		if err := rawConn.QueryRowContext(ctx, "SELECT n FROM totals").Scan(&n); err == nil {
			t.Fatal("totals resolved in schema raw: a connection kept in views served it")
		}
	}
	// The failed statement's connection went back to the pool; this one
	// is kept.
	var n int64
	if err := rawConn.QueryRowContext(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil || n != 100 {
		t.Fatalf("in schema raw: n=%d err=%v", n, err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("in schema views: %v", err)
	}
	tg.g.conns.mu.Lock()
	kept := map[string]int{}
	for schema, conns := range tg.g.conns.idle {
		kept[schema] = len(conns)
	}
	tg.g.conns.mu.Unlock()
	if kept["views"] == 0 || kept["raw"] != 1 || kept["views"] > DefaultMaxConcurrent {
		t.Fatalf("kept connections by schema %v; want one in raw and some in views, at most %d", kept, DefaultMaxConcurrent)
	}
	var schema string
	if err := tg.db.QueryRow("SELECT current_schema()").Scan(&schema); err != nil || schema != "main" {
		t.Fatalf("DuckDB pool schema = %q (%v), want main", schema, err)
	}
}
