package sqlgateway

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/internal/engine"
)

// TestSandboxRefusesEscapes runs escape attempts through the real Trino
// client against an engine set up as the server sets it up: locked down,
// but allowed to read its data directory, where a secret file lies. The
// engine alone would let a SELECT read that file; the gateway must not.
// sandboxEngine is an engine set up as the server sets it up, with duet's
// internal schema, a dataset, a view and a micro-batch table, and a secret
// file in the directory it may read.
func sandboxEngine(t *testing.T) (db *sql.DB, dir, secret string) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	secret = filepath.Join(dir, "objects", "secret.csv")
	if err := os.MkdirAll(filepath.Dir(secret), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("password\nhunter2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := engine.Open(ctx, engine.Config{AllowedDirectories: []string{dir}, Threads: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		"CREATE TABLE duet.__duet_internal.secrets AS SELECT 42 AS x",
		"CREATE TABLE duet.raw.events AS SELECT range AS id FROM range(10)",
		"CREATE VIEW duet.views.totals AS SELECT count(*) AS n FROM duet.raw.events",
		"CREATE TABLE memory.main.mb_events_1 AS SELECT 1 AS x",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db, dir, secret
}

// TestInformationSchemaListsOnlyVisibleObjects: BI tools read
// information_schema on connect; it lists the catalog's schemas, tables and
// columns, never duet's internal ones or the engine's other catalogs.
func TestInformationSchemaListsOnlyVisibleObjects(t *testing.T) {
	db, _, _ := sandboxEngine(t)
	tg := startGatewayOn(t, Config{Catalog: engine.Catalog}, db)
	client := tg.client(t, "")
	list := func(query string) []string {
		t.Helper()
		rows, err := client.Query(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for query, want := range map[string][]string{
		"SELECT schema_name FROM information_schema.schemata ORDER BY 1":                                                                             {"information_schema", "main", "raw", "views"},
		"SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_name = 'events'":                                         {"id bigint"},
		"SELECT data_type FROM information_schema.columns WHERE table_name = 'totals'":                                                               {"bigint"},
		"SELECT table_schema || '.' || table_name FROM information_schema.tables ORDER BY 1":                                                         {"raw.events", "views.totals"},
		"SELECT table_name FROM duet.information_schema.tables WHERE table_schema = 'raw'":                                                           {"events"},
		"SELECT column_name FROM \"duet\".information_schema.columns WHERE table_name = 'totals'":                                                    {"n"},
		"SELECT table_name FROM system.information_schema.views":                                                                                     {"totals"},
		"SELECT t.table_name FROM information_schema.tables AS t JOIN information_schema.columns AS c USING (table_name) WHERE c.column_name = 'id'": {"events"},
	} {
		if got := list(query); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", query, got, want)
		}
	}
}

func TestSandboxRefusesEscapes(t *testing.T) {
	ctx := context.Background()
	db, dir, secret := sandboxEngine(t)
	// The premise: the engine itself reads the file.
	var got string
	if err := db.QueryRowContext(ctx, "SELECT password FROM read_csv("+quote(secret)+")").Scan(&got); err != nil || got != "hunter2" {
		t.Fatalf("the engine should read files under its allowed directory: %q, %v", got, err)
	}

	tg := startGatewayOn(t, Config{Catalog: engine.Catalog}, db)
	client := tg.client(t, "")
	fileDenied := "Access Denied: table function %s is not available: queries read duet's views, raw and system schemas, not files or engine internals"
	for query, want := range map[string]string{
		"SELECT * FROM read_csv(" + quote(secret) + ")":                                                   strings.ReplaceAll(fileDenied, "%s", "read_csv"),
		"SELECT * FROM read_text(" + quote(secret) + ")":                                                  strings.ReplaceAll(fileDenied, "%s", "read_text"),
		"SELECT * FROM glob(" + quote(dir+"/*") + ")":                                                     strings.ReplaceAll(fileDenied, "%s", "glob"),
		"SELECT * FROM duckdb_tables()":                                                                   strings.ReplaceAll(fileDenied, "%s", "duckdb_tables"),
		"SELECT * FROM query('SELECT 1')":                                                                 strings.ReplaceAll(fileDenied, "%s", "query"),
		"SELECT n FROM views.totals WHERE EXISTS (SELECT 1 FROM read_csv(" + quote(secret) + "))":         strings.ReplaceAll(fileDenied, "%s", "read_csv"),
		"WITH s AS (SELECT * FROM read_parquet(" + quote(dir+"/objects/x.parquet") + ")) SELECT * FROM s": strings.ReplaceAll(fileDenied, "%s", "read_parquet"),
		"SELECT * FROM " + quote(secret):                                                                  `Access Denied: "` + secret + `" is not a table: queries cannot read files`,
		"SELECT * FROM __duet_internal.secrets":                                                           "Access Denied: cannot read __duet_internal.secrets: schema __duet_internal is internal to duet",
		"SELECT * FROM duet.__duet_internal.secrets":                                                      "Access Denied: cannot read duet.__duet_internal.secrets: schema __duet_internal is internal to duet",
		"SELECT * FROM views.totals, (SELECT * FROM __duet_internal.x)":                                   "Access Denied: cannot read __duet_internal.x: schema __duet_internal is internal to duet",
		"SELECT * FROM memory.main.mb_events_1":                                                           "Access Denied: cannot read memory.main.mb_events_1: catalog memory is not available; use catalog duet",
		"SELECT * FROM system.main.duckdb_settings":                                                       "Access Denied: cannot read system.main.duckdb_settings: catalog system is not available; use catalog duet",
		"SELECT count(*) FROM duckdb_tables":                                                              "Access Denied: cannot read duckdb_tables: it is the engine's own catalog; query information_schema",
		"SELECT * FROM views.totals JOIN (SELECT 1 FROM sqlite_master) ON true":                           "Access Denied: cannot read sqlite_master: it is the engine's own catalog; query information_schema",
		"SELECT * FROM (SHOW ALL TABLES)":                                                                 "Access Denied: SHOW inside a query lists the engine's own catalog: use SHOW TABLES, SHOW SCHEMAS or information_schema",
		"SELECT * FROM temp.main.t":                                                                       "Access Denied: cannot read temp.main.t: catalog temp is not available; use catalog duet",
	} {
		_, err := client.Exec(query)
		te := trinoError(t, err)
		if te.ErrorName != "PERMISSION_DENIED" || te.ErrorCode != 4 || te.Message != want {
			t.Errorf("%s:\n got %s %q\nwant PERMISSION_DENIED %q", query, te.ErrorName, te.Message, want)
		}
	}
	for _, stmt := range []string{
		"INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true", "PRAGMA enable_profiling",
		"COPY (SELECT 1) TO " + quote(dir+"/objects/out.csv"), "ATTACH " + quote(dir+"/x.db") + " AS x",
	} {
		_, err := client.Exec(stmt)
		if te := trinoError(t, err); te.ErrorName != "PERMISSION_DENIED" || !strings.HasPrefix(te.Message, "duet's SQL gateway is read-only: ") {
			t.Errorf("%s: got %s %q, want the read-only refusal", stmt, te.ErrorName, te.Message)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "out.csv")); !os.IsNotExist(err) {
		t.Errorf("COPY TO left a file: %v", err)
	}

	// What analysts use keeps working: row generators, CTEs, the metadata schemas.
	var n int64
	for query, want := range map[string]int64{
		"SELECT n FROM views.totals":                                                 10,
		"SELECT count(*) FROM range(5)":                                              5,
		"SELECT sum(x) FROM generate_series(1, 4) AS t(x)":                           10,
		"SELECT count(*) FROM unnest([1, 2, 3])":                                     3,
		"WITH c AS (SELECT id FROM raw.events) SELECT count(*) FROM c":               10,
		"SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'raw'": 1,
		"SELECT count(*) FROM (DESCRIBE raw.events)":                                 1,
	} {
		if err := client.QueryRow(query).Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d, %v; want %d", query, n, err, want)
		}
	}
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
