package testsvc

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPostgresDSN: each call gives a fresh, empty database of its own, which
// is gone once its test ends.
func TestPostgresDSN(t *testing.T) {
	var name string
	t.Run("create", func(t *testing.T) {
		// Closed only after the database is dropped (cleanups run last
		// first): the drop must end the session itself.
		var conn *pgx.Conn
		t.Cleanup(func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		})
		dsn := PostgresDSN(t)
		other := PostgresDSN(t)
		if dsn == other {
			t.Fatalf("two calls gave one database: %s", dsn)
		}
		var err error
		conn, err = pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var tables int
		if err := conn.QueryRow(t.Context(), `SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "duet_test_") || tables != 0 {
			t.Fatalf("database %q with %d tables, want a fresh duet_test_ one", name, tables)
		}
		if _, err := conn.Exec(t.Context(), `CREATE TABLE t (x int)`); err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() || name == "" {
		return
	}
	admin := PostgresDSN(t) // any database on the server will do to look
	conn, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}
