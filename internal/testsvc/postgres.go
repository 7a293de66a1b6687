package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the PostgreSQL server tests use: a DSN of a database on
// it (postgres, say) as a user allowed to create databases.
const PostgresEnv = "DUET_TEST_POSTGRES"

// DefaultPostgres is the server used when PostgresEnv is unset: a local one
// that trusts loopback connections, as Debian's package sets it up.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// postgresTimeout bounds each administrative step, so a server that accepts
// connections but hangs fails the test instead of stalling it.
const postgresTimeout = 30 * time.Second

// PostgresDSN returns the DSN of a fresh, empty database made for this test
// on the PostgreSQL server PostgresEnv names, dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	return PostgresDSNWithOptions(t, "")
}

// PostgresDSNWithOptions is PostgresDSN with options appended to CREATE
// DATABASE, e.g. "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
// for a database whose text sorts otherwise than by bytes.
func PostgresDSNWithOptions(t testing.TB, options string) string {
	t.Helper()
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		admin = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Missing(t, "PostgreSQL", "cannot connect to the server "+PostgresEnv+" names (default "+DefaultPostgres+"): "+err.Error()+
			"; install and start one (apt-get install postgresql; pg_ctlcluster <version> main start) with trust for 127.0.0.1, "+
			"or set "+PostgresEnv+" to the DSN of an admin database on a server you have")
	}
	defer conn.Close(context.Background())

	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "duet_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" "+options); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		// FORCE ends sessions the test left open.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(t, admin, name)
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s is not a valid URL", PostgresEnv) // not err: it would show a password
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String()
	}
	// key=value pairs: a later dbname overrides an earlier one.
	return dsn + " dbname=" + name
}
