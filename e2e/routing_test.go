package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRoutingToASecondServer: a duet server standing in as the Trino
// cluster of another's "heavy" group gets the raw scans the routing file
// sends it, through the real Trino client talking to the first server only.
func TestRoutingToASecondServer(t *testing.T) {
	upstream := startServer(t, t.TempDir())
	ctx := ctxT(t)
	createFlightsAndDelays(t, upstream)
	newProducer(5).ingest(t, upstream.client, 2, 100)

	routing := filepath.Join(t.TempDir(), "routing.json")
	if err := os.WriteFile(routing, []byte(fmt.Sprintf(`{
		"clusters": [{"name": "upstream", "url": %q, "group": "heavy"}],
		"rules": [{"name": "raw-scans", "group": "heavy", "schema": "raw"}],
		"health_check": {"interval": "200ms", "timeout": "1s", "failure_threshold": 2}}`, upstream.base)), 0o644); err != nil {
		t.Fatal(err)
	}
	front := startServer(t, t.TempDir(), "--routing-file", routing)
	db := trinoDB(t, front)

	// The front server has no dataset flights: only the upstream can answer.
	if got := fmt.Sprint(scanAll(t, db, "SELECT count(*) FROM raw.flights")); got != "[[200]]" {
		t.Fatalf("routed raw scan = %s, want [[200]] from the upstream", got)
	}
	if got := fmt.Sprint(scanAll(t, db, "SELECT count(*) FROM system.datasets")); got != "[[0]]" {
		t.Fatalf("unrouted query = %s, want the front server's own (no datasets)", got)
	}

	// The upstream stops: past the threshold the fallback (the front server)
	// answers, with its own error for the missing table.
	upstream.stop(t)
	deadline := time.Now().Add(30 * time.Second) // a guard against hanging, not a timing assertion
	for {
		_, err := db.ExecContext(ctx, "SELECT count(*) FROM raw.flights")
		if err != nil && strings.Contains(err.Error(), "flights") && !strings.Contains(err.Error(), "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the front server still routes to the stopped upstream: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
