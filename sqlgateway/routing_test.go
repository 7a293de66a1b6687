package sqlgateway

import (
	"context"
	"database/sql"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/dataset"
)

const upstreamVersion = "477-upstream"

// upstream is a second gateway standing in as a Trino cluster, served on a
// fixed loopback address so it can be stopped and started again.
type upstream struct {
	t    *testing.T
	tg   *testGateway // its srv is unused: the gateway is served by http
	addr string
	http *http.Server
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	db := newEngine(t)
	if _, err := db.Exec("CREATE TABLE raw.upstream_only AS SELECT range AS id FROM range(42)"); err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, tg: startGatewayOn(t, Config{Version: upstreamVersion, PageRows: 10}, db)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.serve(ln)
	t.Cleanup(u.stop)
	return u
}

func (u *upstream) url() string { return "http://" + u.addr }

func (u *upstream) serve(ln net.Listener) {
	u.http = &http.Server{Handler: u.tg.g.Handler()}
	go func() { _ = u.http.Serve(ln) }()
}

func (u *upstream) stop() {
	if u.http != nil {
		_ = u.http.Close()
		u.http = nil
	}
}

func (u *upstream) restart() {
	u.t.Helper()
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		u.t.Fatalf("listen again on %s: %v", u.addr, err)
	}
	u.serve(ln)
}

// routingConfig sends group "heavy" to up, carol's statements and those on
// schema raw to "heavy", with fast health checks.
func routingConfig(up *upstream) RoutingConfig {
	return RoutingConfig{
		Clusters: []Cluster{{Name: "up1", URL: up.url(), Group: "heavy"}},
		Rules: []RoutingRule{
			{Name: "carol", Group: "heavy", User: "car.l"},
			{Name: "raw-scans", Group: "heavy", Schema: "raw"},
		},
		HealthCheck: HealthCheck{Interval: dataset.Duration(30 * time.Millisecond), Timeout: dataset.Duration(time.Second), FailureThreshold: 2},
	}
}

// dsnClient opens trino-go-client on tg as user, with session schema.
func dsnClient(t *testing.T, tg *testGateway, user, schema string) *sql.DB {
	t.Helper()
	db, err := sql.Open("trino", strings.Replace(tg.srv.URL, "http://", "http://"+user+"@", 1)+"?catalog=duet&schema="+schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func versionOf(t *testing.T, db *sql.DB, args ...any) string {
	t.Helper()
	var v string
	if err := db.QueryRow("SELECT version()", args...).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

var heavy = sql.Named("X-Trino-Routing-Group", "heavy")

func TestRoutingByHeaderUserAndSchema(t *testing.T) {
	up := startUpstream(t)
	tg := startGateway(t, Config{Routing: routingConfig(up)})
	alice := dsnClient(t, tg, "alice", "views")

	if v := versionOf(t, alice); v != defaultVersion {
		t.Fatalf("alice without a header: version %q, want the local %q", v, defaultVersion)
	}
	if v := versionOf(t, alice, heavy); v != upstreamVersion {
		t.Fatalf("with X-Trino-Routing-Group heavy: version %q, want the upstream's %q", v, upstreamVersion)
	}
	carol := dsnClient(t, tg, "carol", "views")
	if v := versionOf(t, carol); v != upstreamVersion {
		t.Fatalf("carol (rule by user): version %q, want the upstream's", v)
	}
	if v := versionOf(t, carol, sql.Named("X-Trino-Routing-Group", "local")); v != defaultVersion {
		t.Fatalf("carol with header local: version %q, want the local one", v)
	}
	var n int
	if err := alice.QueryRow(`SELECT count(*) FROM "raw".upstream_only`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("a statement naming schema raw: n=%d err=%v, want the upstream's 42 rows", n, err)
	}
	inRaw := dsnClient(t, tg, "alice", "raw")
	if err := inRaw.QueryRow("SELECT count(*) FROM upstream_only").Scan(&n); err != nil || n != 42 {
		t.Fatalf("session schema raw: n=%d err=%v, want the upstream's 42 rows", n, err)
	}
	if err := alice.QueryRow("SELECT count(*) FROM views.totals").Scan(&n); err != nil || n != 1 {
		t.Fatalf("a views statement runs locally: n=%d err=%v", n, err)
	}
	err := alice.QueryRow("SELECT 1", sql.Named("X-Trino-Routing-Group", "nope")).Scan(&n)
	if err == nil || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "heavy, local") {
		t.Fatalf("unknown routing group: %v, want an error naming it and the known groups", err)
	}
	if got := tg.metric(t, "duet_sqlgateway_routed_queries_total", map[string]string{"cluster": "up1"}); got != 4 {
		t.Fatalf("routed to up1: %v, want 4", got)
	}
	if got := up.tg.metric(t, "duet_sqlgateway_queries_total", map[string]string{"state": "finished"}); got != 4 {
		t.Fatalf("the upstream finished %v statements, want 4", got)
	}
}

func TestRoutingProxiesTheWholeExchange(t *testing.T) {
	up := startUpstream(t)
	tg := startGateway(t, Config{Routing: routingConfig(up)})
	db := dsnClient(t, tg, "alice", "views")

	// The upstream pages 10 rows at a time: 300 pages through the proxy.
	rows, err := db.Query("SELECT range AS x FROM range(3000)", heavy)
	if err != nil {
		t.Fatal(err)
	}
	var n, sum int64
	for rows.Next() {
		var x int64
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		n, sum = n+1, sum+x
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if n != 3000 || sum != 3000*2999/2 {
		t.Fatalf("got %d rows summing to %d, want 3000 rows summing to %d", n, sum, 3000*2999/2)
	}

	raw := tg.raw(t)
	hdr := http.Header{"X-Trino-Routing-Group": {"heavy"}, "X-Trino-Schema": {"views"}}
	docs := raw.run("SELECT range FROM range(25)", hdr)
	if got := docs[0].header.Get(headerRoutedTo); got != "up1" {
		t.Fatalf("%s: %q, want up1", headerRoutedTo, got)
	}
	for _, d := range docs {
		if !strings.HasPrefix(d.InfoURI, tg.srv.URL+"/") || d.NextURI != "" && !strings.HasPrefix(d.NextURI, tg.srv.URL+"/") {
			t.Fatalf("a document points away from the gateway: infoUri %q nextUri %q", d.InfoURI, d.NextURI)
		}
	}
	if len(rowsOf(docs)) != 25 || len(docs) < 4 {
		t.Fatalf("got %d rows in %d documents, want 25 in pages of 10", len(rowsOf(docs)), len(docs))
	}
	info := raw.get(docs[0].InfoURI)
	if info.status != http.StatusOK || !strings.Contains(string(info.body), `"state":"FINISHED"`) || !strings.Contains(string(info.body), "range(25)") {
		t.Fatalf("infoUri through the gateway: %d %s", info.status, info.body)
	}
	// Session headers of the upstream's answers reach the client.
	docs = raw.run("USE raw", hdr)
	if got := docs[len(docs)-1].header.Get("X-Trino-Set-Schema"); got != "raw" {
		t.Fatalf("X-Trino-Set-Schema after a routed USE: %q, want raw", got)
	}
	// A local query's URIs are not taken for a routed one's.
	if local := raw.run("SELECT 1", nil); len(rowsOf(local)) != 1 || local[0].header.Get(headerRoutedTo) != LocalGroup {
		t.Fatalf("local statement: %d rows, routed to %q", len(rowsOf(local)), local[0].header.Get(headerRoutedTo))
	}
}

func TestRoutingCancelReachesTheUpstream(t *testing.T) {
	up := startUpstream(t)
	tg := startGateway(t, Config{Routing: routingConfig(up)})
	db := dsnClient(t, tg, "alice", "views")
	canceled := func() float64 {
		return up.tg.metric(t, "duet_sqlgateway_queries_total", map[string]string{"state": "canceled"})
	}
	const long = "SELECT sum(a.range * b.range) FROM range(1000000) a CROSS JOIN range(1000000) b"

	// trino-go-client cancels with DELETE /v1/query/{id}.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		rows, err := db.QueryContext(ctx, long, heavy)
		if err == nil {
			rows.Close()
		}
		errc <- err
	}()
	eventually(t, 10*time.Second, "the upstream to run the query", func() bool {
		return up.tg.metric(t, "duet_sqlgateway_running_queries", nil) == 1
	})
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled query succeeded")
	}
	eventually(t, 5*time.Second, "the upstream query to be canceled", func() bool { return canceled() == 1 })

	// Other clients DELETE the nextUri.
	raw := tg.raw(t)
	doc := raw.post(long, http.Header{"X-Trino-Routing-Group": {"heavy"}})
	eventually(t, 10*time.Second, "the upstream to run the second query", func() bool {
		return up.tg.metric(t, "duet_sqlgateway_running_queries", nil) == 1
	})
	if d := raw.do(http.MethodDelete, doc.NextURI, "", nil); d.status != http.StatusNoContent {
		t.Fatalf("DELETE nextUri through the gateway: %d %s", d.status, d.body)
	}
	eventually(t, 5*time.Second, "the second upstream query to be canceled", func() bool { return canceled() == 2 })
	if got := tg.metric(t, "duet_sqlgateway_running_queries", nil); got != 0 {
		t.Fatalf("the gateway ran %v statements itself", got)
	}
}

func TestRoutingSkipsAnUnhealthyClusterAndRecovers(t *testing.T) {
	up := startUpstream(t)
	tg := startGateway(t, Config{Routing: routingConfig(up)})
	db := dsnClient(t, tg, "alice", "views")
	healthy := func() float64 {
		return tg.metric(t, "duet_sqlgateway_cluster_healthy", map[string]string{"cluster": "up1"})
	}
	if v := versionOf(t, db, heavy); v != upstreamVersion {
		t.Fatalf("before the stop: version %q, want the upstream's", v)
	}

	up.stop()
	eventually(t, 5*time.Second, "up1 to be marked unhealthy", func() bool { return healthy() == 0 })
	if v := versionOf(t, db, heavy); v != defaultVersion {
		t.Fatalf("with up1 down: version %q, want the local fallback's", v)
	}
	docs := tg.raw(t).run("SELECT 1", http.Header{"X-Trino-Routing-Group": {"heavy"}})
	if note := docs[0].header.Get(headerRoutingFallback); !strings.Contains(note, `no healthy cluster in group "heavy"`) {
		t.Fatalf("%s: %q, want it to say group heavy has no healthy cluster", headerRoutingFallback, note)
	}
	if got := tg.metric(t, "duet_sqlgateway_routing_fallbacks_total", map[string]string{"group": "heavy"}); got != 2 {
		t.Fatalf("fallbacks from heavy: %v, want 2", got)
	}

	up.restart()
	eventually(t, 5*time.Second, "up1 to be healthy again", func() bool { return healthy() == 1 })
	if v := versionOf(t, db, heavy); v != upstreamVersion {
		t.Fatalf("after the restart: version %q, want the upstream's", v)
	}
}

func TestRoutingReroutesWhenAClusterRefusesConnections(t *testing.T) {
	up := startUpstream(t)
	cfg := routingConfig(up)
	// Probes too rare to notice the stop: the failed connection must.
	cfg.HealthCheck.Interval = dataset.Duration(time.Hour)
	tg := startGateway(t, Config{Routing: cfg})
	up.stop()
	docs := tg.raw(t).run("SELECT version()", http.Header{"X-Trino-Routing-Group": {"heavy"}})
	if rows := rowsOf(docs); len(rows) != 1 || rows[0][0] != defaultVersion {
		t.Fatalf("got %v, want the local version", rows)
	}
	if note := docs[0].header.Get(headerRoutingFallback); !strings.Contains(note, `cluster "up1" unreachable`) {
		t.Fatalf("%s: %q, want it to name the unreachable cluster", headerRoutingFallback, note)
	}
}

func TestRoutingConfigValidation(t *testing.T) {
	ok := Cluster{Name: "t1", URL: "https://trino:8443", Group: "heavy"}
	cases := []struct {
		name string
		cfg  RoutingConfig
		want string
	}{
		{"local cluster name", RoutingConfig{Clusters: []Cluster{{Name: "local", URL: ok.URL, Group: "g"}}}, `name "local"`},
		{"duplicate name", RoutingConfig{Clusters: []Cluster{ok, ok}}, "two clusters"},
		{"local group", RoutingConfig{Clusters: []Cluster{{Name: "a", URL: ok.URL, Group: "local"}}}, "group is required"},
		{"url path", RoutingConfig{Clusters: []Cluster{{Name: "a", URL: "http://h:1/x", Group: "g"}}}, "without a path"},
		{"url scheme", RoutingConfig{Clusters: []Cluster{{Name: "a", URL: "ftp://h", Group: "g"}}}, "http(s)://"},
		{"password over http", RoutingConfig{Clusters: []Cluster{{Name: "a", URL: "http://h:1", Group: "g", User: "u", Password: "p"}}}, "https"},
		{"password without user", RoutingConfig{Clusters: []Cluster{{Name: "a", URL: ok.URL, Group: "g", Password: "p"}}}, "needs a user"},
		{"rule group", RoutingConfig{Clusters: []Cluster{ok}, Rules: []RoutingRule{{Name: "r", Group: "x", User: "a"}}}, `group "x" has no cluster`},
		{"rule without condition", RoutingConfig{Clusters: []Cluster{ok}, Rules: []RoutingRule{{Name: "r", Group: "heavy"}}}, "at least one"},
		{"rule regexp", RoutingConfig{Clusters: []Cluster{ok}, Rules: []RoutingRule{{Name: "r", Group: "heavy", Source: "("}}}, "not a regular expression"},
		{"fallback", RoutingConfig{Clusters: []Cluster{ok}, FallbackGroup: "x"}, "fallback_group"},
		{"threshold", RoutingConfig{Clusters: []Cluster{ok}, HealthCheck: HealthCheck{FailureThreshold: -1}}, "failure_threshold"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
		if _, err := New(Config{Routing: c.cfg}, newEngine(t), nil, nil); err == nil {
			t.Errorf("%s: New accepted the configuration", c.name)
		}
	}

	path := filepath.Join(t.TempDir(), "routing.json")
	file := `{"clusters":[{"name":"t1","url":"https://trino:8443","group":"heavy","user":"svc","password":"pw"}],
		"rules":[{"name":"etl","group":"heavy","source":"airflow.*","client_tags":["etl"]}],
		"fallback_group":"local","health_check":{"interval":"15s","failure_threshold":2}}`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadRoutingFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clusters[0].Password != "pw" || cfg.Rules[0].ClientTags[0] != "etl" || time.Duration(cfg.HealthCheck.Interval) != 15*time.Second {
		t.Fatalf("loaded %+v", cfg)
	}
	if err := os.WriteFile(path, []byte(`{"clusters":[],"rulez":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRoutingFile(path); err == nil || !strings.Contains(err.Error(), "rulez") {
		t.Fatalf("misspelt field: %v", err)
	}
}

func TestRoutingRules(t *testing.T) {
	rt, err := newRouter(RoutingConfig{
		Clusters: []Cluster{{Name: "t1", URL: "http://t1:8080", Group: "etl"}, {Name: "t2", URL: "http://t2:8080", Group: "adhoc"}},
		Rules: []RoutingRule{
			{Name: "airflow", Group: "etl", Source: "airflow.*", ClientTags: []string{"batch"}},
			{Name: "raw", Group: "etl", Schema: "raw"},
		},
		DefaultGroup: "adhoc",
	}, time.Minute, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		source string
		tags   []string
		schema string
		sql    string
		want   string
	}{
		{"airflow-2", []string{"batch", "x"}, "", "SELECT 1", "etl"},
		{"airflow-2", []string{"x"}, "", "SELECT 1", "adhoc"},
		{"my-airflow", []string{"batch"}, "", "SELECT 1", "adhoc"},
		{"", nil, "RAW", "SELECT 1", "etl"},
		{"", nil, "", "SELECT * FROM duet.raw.t", "etl"},
		{"", nil, "", `SELECT * FROM "raw"."t"`, "etl"},
		{"", nil, "", "SELECT 'raw.t' AS s -- raw.t", "adhoc"},
		{"", nil, "", "SELECT raw FROM views.t", "adhoc"},
	}
	for _, c := range cases {
		got, qe := rt.group("", &session{user: "u", source: c.source, clientTags: c.tags, schema: c.schema}, c.sql)
		if qe != nil || got != c.want {
			t.Errorf("source %q tags %v schema %q sql %q: group %q (%v), want %q", c.source, c.tags, c.schema, c.sql, got, qe, c.want)
		}
	}
	if _, qe := rt.group("nope", &session{}, "SELECT 1"); qe == nil {
		t.Error("an unknown header group was accepted")
	}
}

func TestPathQueryID(t *testing.T) {
	for path, want := range map[string]string{
		"/v1/query/q1":                                   "q1",
		"/v1/statement/queued/q2/s/1":                    "q2",
		"/v1/statement/executing/q3/s/7":                 "q3",
		"/v1/statement/executing/partialCancel/q4/0/s/1": "q4",
		"/v1/statement":                                  "",
		"/v1/info":                                       "",
	} {
		if got := pathQueryID(path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}
