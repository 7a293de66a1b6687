package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/internal/engine"
)

func TestLockedEngineReadsOnlyAllowedDirectories(t *testing.T) {
	ctx := context.Background()
	allowed, other := t.TempDir(), t.TempDir()
	for _, d := range []string{allowed, other} {
		if err := os.WriteFile(filepath.Join(d, "x.csv"), []byte("a\n1\n2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := engine.Open(ctx, engine.Config{AllowedDirectories: []string{allowed}, MemoryLimit: "1GB", Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM read_csv('"+filepath.Join(allowed, "x.csv")+"')").Scan(&n); err != nil || n != 2 {
		t.Fatalf("reading the allowed directory: n=%d err=%v", n, err)
	}
	for _, q := range []string{
		"SELECT count(*) FROM read_csv('" + filepath.Join(other, "x.csv") + "')",
		"SELECT count(*) FROM read_csv('/etc/passwd')",
	} {
		if err := db.QueryRowContext(ctx, q).Scan(&n); err == nil || !strings.Contains(err.Error(), "Permission") {
			t.Errorf("%s: got %v, want a permission error", q, err)
		}
	}
	for _, q := range []string{"SET enable_external_access = true", "SET memory_limit = '100GB'", "SET allowed_directories = ['/']"} {
		if _, err := db.ExecContext(ctx, q); err == nil {
			t.Errorf("%s: the locked configuration was changed", q)
		}
	}
	// Every pooled connection starts in duet, with its schemas.
	conns := make([]string, 3)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.QueryRowContext(ctx, "SELECT current_database() || ':' || (SELECT string_agg(schema_name, ',' ORDER BY schema_name) FROM information_schema.schemata WHERE catalog_name = 'duet')").Scan(&conns[i]); err != nil {
			t.Fatal(err)
		}
		if conns[i] != "duet:"+engine.InternalSchema+",main,raw,views" {
			t.Fatalf("connection %d starts in %q", i, conns[i])
		}
	}
}
