package testsvc

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/internal/objstore"
)

func TestMinIOStopStart(t *testing.T) {
	m := StartMinIO(t)
	cfg := m.Bucket(t, "stop-start")
	if cfg.Endpoint != m.Endpoint() || !cfg.Insecure || cfg.AccessKey != m.AccessKey() || cfg.SecretKey != m.SecretKey() {
		t.Fatalf("Bucket config %+v does not point at the server %s", cfg, m.URL())
	}
	if !strings.HasPrefix(m.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %s, want a loopback http URL", m.URL())
	}
	ctx := t.Context()
	b, err := objstore.NewS3(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Upload(ctx, "kept", strings.NewReader("across restarts")); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	m.Stop() // idempotent
	short := cfg
	short.RetryBudget = -1
	if _, err := objstore.NewS3(ctx, short, nil); err == nil || !strings.Contains(err.Error(), m.Endpoint()) {
		t.Fatalf("NewS3 with the server stopped = %v, want an error naming %s", err, m.Endpoint())
	} else {
		t.Logf("server stopped: %v", err)
	}

	m.Start()
	rc, err := b.Get(ctx, "kept")
	if err != nil {
		t.Fatalf("after restart: %v%s", err, m.Tail())
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(data) != "across restarts" {
		t.Fatalf("after restart the object reads %q, %v", data, err)
	}
	if tail := m.Tail(); !strings.Contains(tail, "MinIO output") {
		t.Errorf("Tail() = %q, want the server's output", tail)
	}
	m.Kill()
	m.Start()
	if ok, err := b.Exists(context.Background(), "kept"); !ok || err != nil {
		t.Fatalf("after a crash and restart Exists = %v, %v%s", ok, err, m.Tail())
	}
}
