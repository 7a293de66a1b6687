package sqlgateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/internal/engine"
)

func TestLimitsResultRows(t *testing.T) {
	tg := startGateway(t, Config{MaxResultRows: 50, PageRows: 20})
	db := tg.client(t, "")
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM (SELECT * FROM range(50))").Scan(&n); err != nil || n != 50 {
		t.Fatalf("a count is one row: %d, %v", n, err)
	}
	rows, err := db.Query("SELECT * FROM range(50)")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != 100 {
		t.Fatalf("50 rows, at the limit: read %d, %v", n-50, err)
	}
	rows.Close()
	want := "the result has more than 50 rows, the gateway's limit: aggregate, filter or add a LIMIT"
	// A billion rows would be materialized in full before the first is
	// read if the limit were only counted; the query stops at the 51st.
	for _, q := range []string{"SELECT * FROM range(51)", "SELECT * FROM range(1000000000) -- all of them", "SELECT * FROM range(1000000000);"} {
		rows, err := db.Query(q)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		te := trinoError(t, err)
		if te.ErrorName != "GENERIC_INSUFFICIENT_RESOURCES" || te.ErrorCode != 131072 || te.ErrorType != "INSUFFICIENT_RESOURCES" || te.Message != want {
			t.Fatalf("%s: %s %d %s %q", q, te.ErrorName, te.ErrorCode, te.ErrorType, te.Message)
		}
	}
	// The bound keeps the query's order, and its errors' positions.
	if err := db.QueryRow("SELECT range FROM range(100) ORDER BY range DESC;").Scan(&n); err != nil || n != 99 {
		t.Fatalf("ordered query under the bound: %d, %v", n, err)
	}
	_, err = db.Exec("SELECT nosuch FROM range(3)")
	if te := trinoError(t, err); te.ErrorLocation.LineNumber != 1 || te.ErrorLocation.ColumnNumber != 8 {
		t.Fatalf("error location under the bound: %+v (%s)", te.ErrorLocation, te.Message)
	}
}

// TestLimitsQueueIsFairAcrossUsers: with two slots taken by alice's slow
// queries, alice's third and bob's first wait QUEUED; the slot freed by
// cancelling one of alice's goes to bob, who has nothing running, although
// alice's query waited longer; a waiting query beyond MaxQueued fails at
// once. Queries, the source of system.queries, shows it all.
func TestLimitsQueueIsFairAcrossUsers(t *testing.T) {
	tg := startGateway(t, Config{MaxConcurrent: 2, MaxQueued: 2})
	c := tg.raw(t)
	as := func(user string) http.Header { return http.Header{"X-Trino-User": {user}} }
	a1 := c.post(slowQuery, as("alice"))
	a2 := c.post(slowQuery, as("alice"))
	state := func(id string) string {
		for _, q := range tg.g.Queries() {
			if q.ID == id {
				return q.State
			}
		}
		return "absent"
	}
	eventually(t, 5*time.Second, "alice's two queries to run", func() bool {
		return state(a1.ID) == "RUNNING" && state(a2.ID) == "RUNNING"
	})
	a3 := c.post("SELECT 'a3'", as("alice"))
	b1 := c.post("SELECT 'b1'", as("bob"))
	if d := c.get(b1.NextURI); d.Stats["state"] != "QUEUED" || d.Error != nil {
		t.Fatalf("bob's query with both slots taken: %s", d.body)
	}
	if s := state(a3.ID); s != "QUEUED" {
		t.Fatalf("alice's third query: %s, want QUEUED", s)
	}
	if got := tg.metric(t, "duet_sqlgateway_running_queries", nil); got != 2 {
		t.Fatalf("running_queries = %v with two queries running and two queued, want 2", got)
	}
	full := c.post("SELECT 'full'", as("carol"))
	d := c.get(full.NextURI)
	for d.Error == nil && d.NextURI != "" {
		d = c.get(d.NextURI)
	}
	if d.Error == nil || d.Error.ErrorName != "QUERY_QUEUE_FULL" || d.Error.ErrorCode != 131074 ||
		d.Error.Message != "Too many queued queries: 2 are waiting for one of the gateway's 2 query slots" {
		t.Fatalf("a third waiting query: %s", d.body)
	}

	if d := c.do(http.MethodDelete, tg.srv.URL+"/v1/query/"+a1.ID, "", nil); d.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", d.status)
	}
	eventually(t, 5*time.Second, "both waiting queries to finish", func() bool {
		return state(b1.ID) == "FINISHED" && state(a3.ID) == "FINISHED"
	})
	byID := map[string]QueryInfo{}
	for _, q := range tg.g.Queries() {
		byID[q.ID] = q
	}
	for id, want := range map[string]QueryInfo{
		a1.ID:   {User: "alice", SQL: slowQuery, State: "CANCELED", ErrorName: "USER_CANCELED"},
		b1.ID:   {User: "bob", SQL: "SELECT 'b1'", State: "FINISHED", Rows: 1},
		full.ID: {User: "carol", SQL: "SELECT 'full'", State: "FAILED", ErrorName: "QUERY_QUEUE_FULL"},
	} {
		got := byID[id]
		if got.User != want.User || got.SQL != want.SQL || got.State != want.State || got.ErrorName != want.ErrorName || got.Rows != want.Rows {
			t.Errorf("history of %s: %+v, want %+v", id, got, want)
		}
		if got.Ended.Before(got.Created) || (want.State != "FAILED" && got.Started.IsZero()) {
			t.Errorf("history of %s: times created %v started %v ended %v", id, got.Created, got.Started, got.Ended)
		}
	}
	if b, a := byID[b1.ID], byID[a3.ID]; !b.Started.Before(a.Started) {
		t.Errorf("bob's query started %v, after alice's waiting one %v: not fair", b.Started, a.Started)
	}
	if d := c.do(http.MethodDelete, tg.srv.URL+"/v1/query/"+a2.ID, "", nil); d.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", d.status)
	}
}

func TestLimitsHistoryKeepsTheLatest(t *testing.T) {
	tg := startGateway(t, Config{HistorySize: 3})
	db := tg.client(t, "")
	for i := range 5 {
		if _, err := db.Exec("SELECT " + string(rune('0'+i))); err != nil {
			t.Fatal(err)
		}
	}
	var sqls []string
	for _, q := range tg.g.Queries() {
		sqls = append(sqls, q.SQL)
	}
	if strings.Join(sqls, "|") != "SELECT 4|SELECT 3|SELECT 2" {
		t.Fatalf("history: %q, want the last three, newest first", sqls)
	}
}

// TestLimitsMemory: a query needing more memory than the engine's limit
// fails with EXCEEDED_LOCAL_MEMORY_LIMIT, and the server goes on answering.
// (DuckDB bounds all running queries together; it has no per-query limit.)
func TestLimitsMemory(t *testing.T) {
	db, err := engine.Open(context.Background(), engine.Config{MemoryLimit: "64MiB", Threads: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tg := startGatewayOn(t, Config{Catalog: engine.Catalog}, db)
	client := tg.client(t, "")
	var n int64
	err = client.QueryRow("SELECT len(list(range)) FROM range(100000000)").Scan(&n)
	te := trinoError(t, err)
	if te.ErrorName != "EXCEEDED_LOCAL_MEMORY_LIMIT" || te.ErrorType != "INSUFFICIENT_RESOURCES" || !strings.Contains(te.Message, "64.0 MiB") {
		t.Fatalf("a query over the memory limit: %s %s %q", te.ErrorName, te.ErrorType, te.Message)
	}
	if err := client.QueryRow("SELECT count(*) FROM range(1000)").Scan(&n); err != nil || n != 1000 {
		t.Fatalf("after the failed query: %d, %v", n, err)
	}
}
