package sqlgateway

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/internal/authz"
	"github.com/duet-analytics/duet/internal/engine"
)

func TestStatementShapeBlanksOnlyPlainLiterals(t *testing.T) {
	shape := func(text string) (string, bool) {
		t.Helper()
		toks, qe := lex(text)
		if qe != nil {
			t.Fatalf("lex %s: %v", text, qe)
		}
		return statementShape(text, toks)
	}
	a, okA := shape("SELECT x FROM t WHERE o = 'ATL' AND h > TIMESTAMP '2026-01-01 00:00:00' LIMIT 10")
	b, okB := shape("SELECT x FROM t WHERE o = 'it''s' AND h > TIMESTAMP '2025-12-31 23:00:00.5' LIMIT 7.5")
	if !okA || !okB || a != b {
		t.Errorf("statements differing only in literals have shapes %q (%v) and %q (%v), want one", a, okA, b, okB)
	}
	for _, other := range []string{
		"SELECT x FROM u WHERE o = 'ATL' AND h > TIMESTAMP '2026-01-01 00:00:00' LIMIT 10",
		"SELECT x FROM t WHERE o = 'ATL' AND h >= TIMESTAMP '2026-01-01 00:00:00' LIMIT 10",
		"SELECT x FROM t WHERE o = 'ATL' AND h > TIMESTAMP '2026-01-01 00:00:00' LIMIT  10",
		"SELECT x FROM t WHERE o = ATL AND h > TIMESTAMP '2026-01-01 00:00:00' LIMIT 10",
	} {
		if s, ok := shape(other); ok && s == a {
			t.Errorf("%s shares the shape of another statement", other)
		}
	}
	// Where DuckDB's lexer could draw a literal's bounds elsewhere, a
	// different text could hide code in what lex takes for a literal.
	for _, text := range []string{
		`SELECT E'\' FROM t`,
		"SELECT $$x$$ FROM t",
		"SELECT $1 FROM t",
		"SELECT 1 FROM t -- '",
		"SELECT 1 /* ' */ FROM t",
		"SELECT X'00' FROM t",
		"SELECT U&'d' FROM t",
		"SELECT 0x1F FROM t",
		"SELECT 1e5x FROM t",
		"SELECT 1.2.3 FROM t",
		"SELECT 1 FROM t WHERE x = '" + strings.Repeat("a", maxShapeText) + "'",
	} {
		if s, ok := shape(text); ok {
			t.Errorf("%s has the shape %q; want it never cached", text, s)
		}
	}
}

// TestShapeCacheAnswersLikeTheCheck runs statements twice through the real
// client with other literals: the second of each shape is admitted from
// the cache, and must answer as if it had been checked, rewrites included.
func TestShapeCacheAnswersLikeTheCheck(t *testing.T) {
	db, _, _ := sandboxEngine(t)
	tg := startGatewayOn(t, Config{Catalog: engine.Catalog}, db)
	client := tg.client(t, "")
	for _, c := range []struct {
		first, second string
		want          string
	}{
		{"SELECT count(*) FROM raw.events WHERE id < 3", "SELECT count(*) FROM raw.events WHERE id < 7", "7"},
		// information_schema is rewritten to the catalog's visible objects.
		{"SELECT table_name FROM information_schema.tables WHERE table_schema = 'views'",
			"SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'", "events"},
		// A Trino function the gateway renames.
		{"SELECT every(id < 100) FROM raw.events WHERE id > 1", "SELECT every(id < 5) FROM raw.events WHERE id > 2", "false"},
		// current_user is the session user.
		{"SELECT current_user || 'a'", "SELECT current_user || 'b'", "aliceb"},
		// A bare NULL is typed unknown, a string literal varchar.
		{"SELECT NULL, 'x' AS s", "SELECT NULL, 'yy' AS s", "<nil>"},
	} {
		if _, err := client.Exec(c.first); err != nil {
			t.Fatalf("%s: %v", c.first, err)
		}
		hits := tg.metric(t, "duet_sqlgateway_shape_cache_hits_total", nil)
		rows, err := client.Query(c.second)
		if err != nil {
			t.Fatalf("%s: %v", c.second, err)
		}
		cols, _ := rows.Columns()
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if !rows.Next() {
			t.Fatalf("%s: no row (%v)", c.second, rows.Err())
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", c.second, err)
		}
		rows.Close()
		if s := fmt.Sprint(values[0]); s != c.want {
			t.Errorf("%s = %s, want %s", c.second, s, c.want)
		}
		if n := tg.metric(t, "duet_sqlgateway_shape_cache_hits_total", nil); n != hits+1 {
			t.Errorf("%s: shape cache hits went from %v to %v, want one more", c.second, hits, n)
		}
	}
}

// TestShapeCacheKeepsTheSandbox: a shape admitted once does not admit what
// its check would refuse: a string naming a relation (a file, by its
// value), another user's or another schema's relations.
func TestShapeCacheKeepsTheSandbox(t *testing.T) {
	db, _, secret := sandboxEngine(t)
	rules, err := authz.Parse([]byte(`{"read": [{"user": "alice", "tables": ["views.*", "raw.events"]}, {"user": "bob", "tables": ["views.*"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tg := startGatewayOn(t, Config{Catalog: engine.Catalog, Authorizer: rules}, db)
	alice := tg.client(t, "")
	bobDB, err := sql.Open("trino", strings.Replace(tg.srv.URL, "http://", "http://bob@", 1)+"?catalog=duet&schema=views")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bobDB.Close() })
	rawDB, err := sql.Open("trino", strings.Replace(tg.srv.URL, "http://", "http://alice@", 1)+"?catalog=duet&schema=raw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rawDB.Close() })

	var n int64
	// The view named by a string: DuckDB reads the relation it names.
	if err := alice.QueryRow("SELECT count(*) FROM 'totals' WHERE 1 < 2").Scan(&n); err != nil || n != 1 {
		t.Fatalf("a string naming a view: %d, %v", n, err)
	}
	_, err = alice.Exec("SELECT count(*) FROM " + quote(secret) + " WHERE 1 < 2")
	if te := trinoError(t, err); te.ErrorName != "PERMISSION_DENIED" || !strings.Contains(te.Message, "queries cannot read files") {
		t.Errorf("a file named by a string in a known shape: %s %q, want PERMISSION_DENIED", te.ErrorName, te.Message)
	}

	if err := alice.QueryRow("SELECT count(*) FROM raw.events WHERE id < 4").Scan(&n); err != nil || n != 4 {
		t.Fatalf("alice reads raw.events: %d, %v", n, err)
	}
	_, err = bobDB.Exec("SELECT count(*) FROM raw.events WHERE id < 5")
	if te := trinoError(t, err); te.ErrorName != "PERMISSION_DENIED" {
		t.Errorf("bob, in a shape alice was admitted to: %s %q, want PERMISSION_DENIED", te.ErrorName, te.Message)
	}

	// Unqualified names resolve in the session schema: totals in raw is
	// another table, which alice may not read.
	if _, err := db.Exec("CREATE TABLE duet.raw.totals AS SELECT 1 AS n"); err != nil {
		t.Fatal(err)
	}
	if err := alice.QueryRow("SELECT count(*) FROM totals WHERE 1 < 2").Scan(&n); err != nil || n != 1 {
		t.Fatalf("alice reads totals in schema views: %d, %v", n, err)
	}
	_, err = rawDB.Exec("SELECT count(*) FROM totals WHERE 1 < 3")
	if te := trinoError(t, err); te.ErrorName != "PERMISSION_DENIED" || !strings.Contains(te.Message, "raw.totals") {
		t.Errorf("alice in schema raw, in a shape admitted in schema views: %s %q, want PERMISSION_DENIED on raw.totals", te.ErrorName, te.Message)
	}
}
