package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trinodb/trino-go-client/trino"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
)

const testAuthzRules = `{
  "groups": {"analysts": ["alice", "bob"], "ops": ["root"]},
  "read": [
    {"group": "analysts", "tables": ["views.*", "system.views"]},
    {"user": "carol", "tables": ["views.delays", "raw.flights"]},
    {"user": "*", "tables": ["system.queries"]}
  ],
  "ingest": [{"user": "loader", "datasets": ["flights"]}],
  "admin": [{"group": "ops"}]
}`

// authzConfig is a server on dataDir with bearer tokens signed by
// testJWTSecret and testAuthzRules, their files written in dir.
func authzConfig(t *testing.T, dir, dataDir string) Config {
	t.Helper()
	writeTestFile(t, filepath.Join(dir, "jwt-secret"), testJWTSecret)
	writeTestFile(t, filepath.Join(dir, "authz.json"), testAuthzRules)
	cfg := testConfig(dataDir)
	cfg.Auth.JWTSecretFile = filepath.Join(dir, "jwt-secret")
	cfg.AuthzFile = filepath.Join(dir, "authz.json")
	return cfg
}

// TestAuthorizationMatrix runs the real server with bearer-token
// authentication and a rules file, and checks what each user may do with
// the real trino-go-client and duet's client: each denial with its exact
// error.
func TestAuthorizationMatrix(t *testing.T) {
	dir := t.TempDir()
	cfg := authzConfig(t, dir, filepath.Join(dir, "data"))
	ctx := t.Context()
	srv := runServer(t, cfg)
	clients := map[string]*client.Client{}
	as := func(user string) *client.Client {
		if c, ok := clients[user]; ok {
			return c
		}
		c, err := client.NewWithConfig("http://"+srv.Addr(), nil, client.Config{Credentials: client.Credentials{Token: hs256Token(t, user, time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		clients[user] = c
		return c
	}

	cols := []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "carrier", Type: dataset.Varchar}, {Name: "delay", Type: dataset.Bigint}}
	for _, name := range []string{"flights", "weather"} {
		if _, err := as("root").CreateDataset(ctx, api.Dataset{Name: name, TimeColumn: "ts", Columns: cols}); err != nil {
			t.Fatal(err)
		}
	}
	for name, sqlText := range map[string]string{
		"delays": "SELECT carrier, sum(delay) AS total FROM flights GROUP BY carrier",
		"counts": "SELECT count(*) AS n FROM flights",
	} {
		if _, err := as("root").CreateView(ctx, api.ViewRequest{Name: name, SQL: sqlText}); err != nil {
			t.Fatal(err)
		}
	}
	rows := []byte(`{"ts": "2026-01-01T10:00:00Z", "carrier": "AA", "delay": 5}` + "\n" + `{"ts": "2026-01-01T11:00:00Z", "carrier": "BB", "delay": 7}` + "\n")

	t.Run("REST API", func(t *testing.T) {
		for _, c := range []struct {
			user, action string
			call         func(*client.Client) error
			status       int // 0: allowed
			message      string
		}{
			{"loader", "ingest into flights", func(c *client.Client) error { _, err := c.Ingest(ctx, "flights", ContentTypeNDJSON, rows); return err }, 0, ""},
			{"loader", "ingest into weather", func(c *client.Client) error { _, err := c.Ingest(ctx, "weather", ContentTypeNDJSON, rows); return err },
				403, "Access Denied: user loader cannot ingest into dataset weather"},
			{"loader", "ingest into a missing dataset", func(c *client.Client) error { _, err := c.Ingest(ctx, "nope", ContentTypeNDJSON, rows); return err },
				403, "Access Denied: user loader cannot ingest into dataset nope"},
			{"alice", "ingest into flights", func(c *client.Client) error { _, err := c.Ingest(ctx, "flights", ContentTypeNDJSON, rows); return err },
				403, "Access Denied: user alice cannot ingest into dataset flights"},
			{"root", "ingest into flights", func(c *client.Client) error { _, err := c.Ingest(ctx, "flights", ContentTypeNDJSON, rows); return err },
				403, "Access Denied: user root cannot ingest into dataset flights"},
			{"alice", "create a dataset", func(c *client.Client) error {
				_, err := c.CreateDataset(ctx, api.Dataset{Name: "x", TimeColumn: "ts", Columns: cols})
				return err
			}, 403, "Access Denied: user alice cannot create datasets: that needs the admin right of the authorization rules"},
			{"loader", "create a view", func(c *client.Client) error {
				_, err := c.CreateView(ctx, api.ViewRequest{Name: "x", SQL: "SELECT count(*) AS n FROM flights"})
				return err
			}, 403, "Access Denied: user loader cannot create views: that needs the admin right of the authorization rules"},
			{"alice", "build a view", func(c *client.Client) error { _, err := c.TriggerBuild(ctx, "delays"); return err },
				403, "Access Denied: user alice cannot build views: that needs the admin right of the authorization rules"},
			{"alice", "roll back a view", func(c *client.Client) error { _, err := c.Rollback(ctx, "delays", 1); return err },
				403, "Access Denied: user alice cannot roll back views: that needs the admin right of the authorization rules"},
			{"alice", "backfill a view", func(c *client.Client) error {
				_, err := c.Backfill(ctx, "delays", "2026-01-01", "2026-01-02")
				return err
			},
				403, "Access Denied: user alice cannot backfill views: that needs the admin right of the authorization rules"},
			{"alice", "compact a dataset", func(c *client.Client) error { _, err := c.Compact(ctx, "flights"); return err },
				403, "Access Denied: user alice cannot compact datasets: that needs the admin right of the authorization rules"},
			{"alice", "list jobs", func(c *client.Client) error { _, err := c.ListJobs(ctx, client.JobFilter{}); return err },
				403, "Access Denied: user alice cannot list jobs: that needs the admin right of the authorization rules"},
			{"alice", "read a job", func(c *client.Client) error { _, err := c.GetJob(ctx, "j1"); return err },
				403, "Access Denied: user alice cannot read jobs: that needs the admin right of the authorization rules"},
			{"alice", "submit a job", func(c *client.Client) error {
				_, err := c.SubmitJob(ctx, api.JobRequest{Kind: api.JobKindSQL, SQL: "SELECT 1"})
				return err
			},
				403, "Access Denied: user alice cannot submit jobs: that needs the admin right of the authorization rules"},
			{"alice", "read a job's output", func(c *client.Client) error { _, err := c.JobOutputFiles(ctx, "j1"); return err },
				403, "Access Denied: user alice cannot read job output: that needs the admin right of the authorization rules"},
			{"alice", "kill a job", func(c *client.Client) error { _, err := c.KillJob(ctx, "j1"); return err },
				403, "Access Denied: user alice cannot kill jobs: that needs the admin right of the authorization rules"},
			{"root", "list jobs", func(c *client.Client) error { _, err := c.ListJobs(ctx, client.JobFilter{}); return err }, 0, ""},
			{"root", "kill a missing job", func(c *client.Client) error { _, err := c.KillJob(ctx, "j1"); return err }, 404, `job "j1" not found`},
			{"alice", "read view counts", func(c *client.Client) error { _, err := c.GetView(ctx, "counts"); return err }, 0, ""},
			{"carol", "read view counts", func(c *client.Client) error { _, err := c.GetView(ctx, "counts"); return err },
				403, "Access Denied: user carol cannot read view counts"},
			{"carol", "list versions of counts", func(c *client.Client) error { _, err := c.ListVersions(ctx, "counts"); return err },
				403, "Access Denied: user carol cannot read view counts"},
			{"carol", "read dataset flights", func(c *client.Client) error { _, err := c.GetDataset(ctx, "flights"); return err }, 0, ""},
			{"alice", "read dataset flights", func(c *client.Client) error { _, err := c.GetDataset(ctx, "flights"); return err },
				403, "Access Denied: user alice cannot read dataset flights"},
		} {
			err := c.call(as(c.user))
			var ae *client.APIError
			switch {
			case c.status == 0 && err != nil:
				t.Errorf("%s may %s: %v", c.user, c.action, err)
			case c.status != 0 && (!errors.As(err, &ae) || ae.Status != c.status || ae.Message != c.message):
				t.Errorf("%s may not %s: got %v, want %d %q", c.user, c.action, err, c.status, c.message)
			}
		}
		// Lists show only what the user may read.
		for user, want := range map[string][]string{"alice": {"counts", "delays"}, "carol": {"delays"}, "root": nil} {
			views, err := as(user).ListViews(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range views {
				got = append(got, v.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("views %s sees: %q, want %q", user, got, want)
			}
		}
		for user, want := range map[string][]string{"carol": {"flights"}, "alice": nil} {
			ds, err := as(user).ListDatasets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.Name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("datasets %s sees: %q, want %q", user, got, want)
			}
		}
	})

	t.Run("SQL", func(t *testing.T) {
		dbs := map[string]*sql.DB{}
		defer func() {
			for _, db := range dbs {
				db.Close()
			}
		}()
		db := func(user string) *sql.DB {
			if d, ok := dbs[user]; ok {
				return d
			}
			d, err := sql.Open("trino", as(user).TrinoDSN("")) // catalog duet, schema views
			if err != nil {
				t.Fatal(err)
			}
			dbs[user] = d
			return d
		}
		cannotSelect := "Access Denied: Cannot select from table "
		for _, c := range []struct {
			user, query string
			err         string // "" when allowed
		}{
			{"alice", "SELECT count(*) FROM views.delays", ""},
			{"alice", "SELECT count(*) FROM delays", ""},
			{"alice", "SELECT count(*) FROM duet.views.counts", ""},
			{"alice", "SELECT count(*) FROM system.views", ""},
			{"alice", "SELECT count(*) FROM raw.flights", cannotSelect + "raw.flights"},
			{"alice", "SELECT count(*) FROM system.jobs", cannotSelect + "system.jobs"},
			{"bob", "SELECT count(*) FROM Views.Counts", ""},
			{"carol", "SELECT count(*) FROM delays", ""},
			{"carol", "SELECT count(*) FROM raw.flights", ""},
			{"carol", "SELECT count(*) FROM counts", cannotSelect + "views.counts"},
			{"carol", "SELECT count(*) FROM duet.views.counts", cannotSelect + "views.counts"},
			{"carol", `SELECT count(*) FROM "COUNTS"`, cannotSelect + "views.counts"},
			{"carol", "SELECT count(*) FROM delays JOIN counts ON true", cannotSelect + "views.counts"},
			{"carol", "SELECT count(*) FROM delays WHERE total > (SELECT n FROM counts)", cannotSelect + "views.counts"},
			{"carol", "SELECT count(*) FROM delays WHERE carrier IN (SELECT carrier FROM raw.flights)", ""},
			// A CTE named like a table is the CTE, not the table...
			{"carol", "WITH counts AS (SELECT * FROM delays) SELECT count(*) FROM counts", ""},
			{"carol", "WITH RECURSIVE counts(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counts WHERE n < 3) SELECT count(*) FROM counts", ""},
			// ...and reads nothing it may not: not in its body, where its own
			// name is the table, nor outside its scope.
			{"carol", "WITH delays AS (SELECT * FROM counts) SELECT count(*) FROM delays", cannotSelect + "views.counts"},
			{"carol", "WITH counts AS (SELECT * FROM counts) SELECT count(*) FROM counts", cannotSelect + "views.counts"},
			{"carol", "WITH a AS (SELECT 1 AS n), counts AS (SELECT * FROM a) SELECT count(*) FROM counts, views.counts", cannotSelect + "views.counts"},
			{"carol", "WITH RECURSIVE counts AS (SELECT * FROM counts UNION ALL SELECT * FROM counts WHERE false) SELECT count(*) FROM counts", cannotSelect + "views.counts"},
			{"carol", "SELECT count(*) FROM (WITH counts AS (SELECT 1 AS n) SELECT * FROM counts) AS s, counts", cannotSelect + "views.counts"},
			{"mallory", "SELECT count(*) FROM delays", cannotSelect + "views.delays"},
			{"mallory", "SELECT count(*) FROM range(3)", ""},
			{"mallory", "SELECT count(*) FROM information_schema.tables", ""},
			{"root", "SELECT count(*) FROM delays", cannotSelect + "views.delays"},
		} {
			var n int64
			err := db(c.user).QueryRowContext(ctx, c.query).Scan(&n)
			checkTrinoError(t, c.user+": "+c.query, err, c.err)
		}
		// Prepared statements are checked as they run.
		var n int64
		err := db("carol").QueryRowContext(ctx, "SELECT count(*) FROM counts WHERE n > ?", 0).Scan(&n)
		checkTrinoError(t, "carol: prepared", err, cannotSelect+"views.counts")

		// system.queries shows a user their own queries, an admin everyone's,
		// also where the table is named unqualified in session schema system.
		for _, c := range []struct{ user, query, want string }{
			{"alice", `SELECT count(*) FROM system.queries WHERE "user" <> 'alice'`, "0"},
			{"alice", `SELECT count(*) > 0 FROM system.queries WHERE "user" = 'alice'`, "true"},
			{"carol", `WITH q AS (SELECT * FROM duet.system.queries) SELECT count(DISTINCT "user") FROM q`, "1"},
			{"root", `SELECT count(DISTINCT "user") >= 3 FROM system.queries`, "true"},
		} {
			var got string
			if err := db(c.user).QueryRowContext(ctx, c.query).Scan(&got); err != nil || got != c.want {
				t.Errorf("%s: %s = %s, %v; want %s", c.user, c.query, got, err, c.want)
			}
		}
		sysDB, err := sql.Open("trino", strings.Replace(as("bob").TrinoDSN(""), "schema=views", "schema=system", 1))
		if err != nil {
			t.Fatal(err)
		}
		defer sysDB.Close()
		var others int64
		if err := sysDB.QueryRowContext(ctx, `SELECT count(*) FROM queries WHERE "user" <> 'bob'`).Scan(&others); err != nil || others != 0 {
			t.Errorf("bob in session schema system sees %d queries of others, %v", others, err)
		}

		// information_schema lists only what the user may read.
		for user, want := range map[string][]string{
			"alice": {"system.queries", "system.views", "views.counts", "views.delays"},
			"carol": {"raw.flights", "system.queries", "views.delays"},
		} {
			got := queryStrings(t, db(user), "SELECT table_schema || '.' || table_name FROM information_schema.tables ORDER BY 1")
			if !slices.Equal(got, want) {
				t.Errorf("information_schema.tables for %s: %q, want %q", user, got, want)
			}
		}
		if got := queryStrings(t, db("carol"), "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'views'"); !slices.Equal(got, []string{"delays"}) {
			t.Errorf("information_schema.columns of views for carol: %q", got)
		}

		// Metadata lists and describes only what the user may read.
		for user, want := range map[string][]string{"alice": {"counts", "delays"}, "carol": {"delays"}, "mallory": nil} {
			got := queryStrings(t, db(user), "SHOW TABLES FROM views")
			if !slices.Equal(got, want) {
				t.Errorf("SHOW TABLES for %s: %q, want %q", user, got, want)
			}
		}
		_, err = db("carol").QueryContext(ctx, "DESCRIBE views.counts")
		checkTrinoError(t, "carol: DESCRIBE", err, "Access Denied: Cannot show columns of table views.counts")
		_, err = db("carol").QueryContext(ctx, "SHOW CREATE VIEW counts")
		checkTrinoError(t, "carol: SHOW CREATE VIEW", err, "Access Denied: Cannot show create table for views.counts")
		if got := queryStrings(t, db("carol"), "SHOW COLUMNS FROM delays"); !slices.Equal(got, []string{"carrier", "total"}) {
			t.Errorf("SHOW COLUMNS FROM delays for carol: %q", got)
		}
	})
}

// checkTrinoError checks that err is the Trino error PERMISSION_DENIED with
// message want, or nil when want is "".
func checkTrinoError(t *testing.T, what string, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return
	}
	var te *trino.ErrTrino
	if !errors.As(err, &te) {
		t.Errorf("%s: got %v, want PERMISSION_DENIED %q", what, err, want)
		return
	}
	if te.ErrorName != "PERMISSION_DENIED" || te.ErrorCode != 4 || te.Message != want {
		t.Errorf("%s: got %s %q, want PERMISSION_DENIED %q", what, te.ErrorName, te.Message, want)
	}
}

// queryStrings is the first column of a query's rows.
func queryStrings(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	var out []string
	for _, row := range lambdatest.QueryAll(context.Background(), t, db, query) {
		out = append(out, row[0].(string))
	}
	return out
}

// TestStartupRefusesBadAuthz checks that a bad rules file, or rules without
// authentication, stop the server before it opens anything.
func TestStartupRefusesBadAuthz(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	writeTestFile(t, secret, testJWTSecret)
	bad := filepath.Join(dir, "bad.json")
	writeTestFile(t, bad, "{\n  \"read\": [{\"user\": \"a\", \"tables\": [\"views\"]}]\n}\n")
	good := filepath.Join(dir, "good.json")
	writeTestFile(t, good, testAuthzRules)
	assertRefused(t, dir, []refusal{
		{"bad pattern", func(c *Config) { c.Auth.JWTSecretFile, c.AuthzFile = secret, bad },
			"authz file " + bad + `: read[0] (user "a"): tables[0]: "views": write schema.table, each part a name or *, such as views.delays, views.* or system.*`},
		{"missing file", func(c *Config) { c.Auth.JWTSecretFile, c.AuthzFile = secret, filepath.Join(dir, "nope.json") }, "authz file: open "},
		{"rules without authentication", func(c *Config) { c.AuthzFile = good },
			"authz_file " + good + ": authorization rules need authenticated users: set --auth-password-file (with --tls-cert and --tls-key), --auth-jwt-secret-file or --auth-jwks-file"},
	})
}

// TestAuthorizationWithRouting: under authorization rules, a statement
// leaves for a Trino cluster (here a second duet server) only after duet
// has checked what it reads; what duet cannot check runs here instead.
func TestAuthorizationWithRouting(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	upstream := runServer(t, testConfig(filepath.Join(dir, "upstream")))
	up, err := client.New("http://"+upstream.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.CloseIdleConnections)
	cols := []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "carrier", Type: dataset.Varchar}, {Name: "delay", Type: dataset.Bigint}}
	if _, err := up.CreateDataset(ctx, api.Dataset{Name: "flights", TimeColumn: "ts", Columns: cols}); err != nil {
		t.Fatal(err)
	}
	rows := []byte(`{"ts": "2026-01-01T10:00:00Z", "carrier": "AA", "delay": 5}` + "\n" + `{"ts": "2026-01-01T11:00:00Z", "carrier": "BB", "delay": 7}` + "\n")
	if _, err := up.Ingest(ctx, "flights", ContentTypeNDJSON, rows); err != nil {
		t.Fatal(err)
	}

	writeTestFile(t, filepath.Join(dir, "routing.json"), `{
		"clusters": [{"name": "upstream", "url": "http://`+upstream.Addr()+`", "group": "heavy"}],
		"rules": [{"name": "raw-scans", "group": "heavy", "schema": "raw"}]}`)
	cfg := authzConfig(t, dir, filepath.Join(dir, "front"))
	cfg.RoutingFile = filepath.Join(dir, "routing.json")
	front := runServer(t, cfg)

	trinoDB := func(user string) *sql.DB {
		c, err := client.NewWithConfig("http://"+front.Addr(), nil, client.Config{Credentials: client.Credentials{Token: hs256Token(t, user, time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := sql.Open("trino", c.TrinoDSN(""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	carol, alice := trinoDB("carol"), trinoDB("alice")
	// The front server has no dataset flights: a count is the upstream's.
	var n int64
	if err := carol.QueryRowContext(ctx, "SELECT count(*) FROM raw.flights").Scan(&n); err != nil || n != 2 {
		t.Fatalf("carol's routed raw scan: %d, %v; want the upstream's 2 rows", n, err)
	}
	denied := "Access Denied: Cannot select from table raw.flights"
	for _, q := range []string{
		"SELECT count(*) FROM raw.flights",
		"SELECT count(*) FROM views.delays JOIN raw.flights ON true",
		"WITH f AS (SELECT * FROM raw.flights) SELECT count(*) FROM f",
	} {
		err := alice.QueryRowContext(ctx, q).Scan(&n)
		checkTrinoError(t, "alice: "+q, err, denied)
	}
	err = carol.QueryRowContext(ctx, "SELECT count(*) FROM raw.flights, read_csv('/etc/passwd')").Scan(&n)
	checkTrinoError(t, "carol: read_csv", err, "Access Denied: table function read_csv is not available: queries read duet's views, raw and system schemas, not files or engine internals")
	err = carol.QueryRowContext(ctx, "SELECT count(*) FROM hive.raw.flights").Scan(&n)
	checkTrinoError(t, "carol: another catalog", err, "Access Denied: cannot read hive.raw.flights: catalog hive is not available; use catalog duet")

	// What duet cannot parse as a query runs here, and the answer says so.
	for stmt, routedTo := range map[string]string{"SELECT count(*) FROM raw.flights": "upstream", "SHOW TABLES": "local"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+front.Addr()+"/v1/statement", strings.NewReader(stmt))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+hs256Token(t, "carol", time.Hour))
		req.Header.Set("X-Trino-User", "carol")
		req.Header.Set("X-Trino-Schema", "raw") // routes to the heavy group
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Duet-Routed-To"); got != routedTo {
			t.Errorf("%s: X-Duet-Routed-To %q, want %q", stmt, got, routedTo)
		}
		if fallback := resp.Header.Get("X-Duet-Routing-Fallback"); (routedTo == "local") != strings.Contains(fallback, "authorization rules") {
			t.Errorf("%s: X-Duet-Routing-Fallback %q", stmt, fallback)
		}
	}
}
