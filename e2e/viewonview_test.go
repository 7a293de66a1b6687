package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
)

const dailySQL = `SELECT date_trunc('day', hour) AS day, origin, sum(flights) AS flights, sum(total_delay) AS total_delay, min(min_delay) AS min_delay, max(max_delay) AS max_delay FROM views.delays GROUP BY 1, 2`

// TestViewOnView: a rollup view over a view stays equal to its SQL over the
// upstream's exact answer; it is built after its upstream publishes, and
// restarts in dependency order.
func TestViewOnView(t *testing.T) {
	dataDir := t.TempDir()
	p := startServer(t, dataDir)
	ctx := ctxT(t)
	createFlightsAndDelays(t, p)
	if _, err := p.client.CreateView(ctx, api.ViewRequest{Name: "daily", SQL: dailySQL}); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(11)
	check := func(step string) {
		t.Helper()
		assertExact(t, p, prod, step)
		upstream := strings.Replace(dailySQL, "FROM views.delays", "FROM ("+viewSQL+") AS delays", 1)
		q := "SELECT * FROM (%s) ORDER BY day, origin"
		want := recompute(t, prod.all, fmt.Sprintf(q, upstream))
		got := queryRows(t, trinoDB(t, p), fmt.Sprintf(q, "SELECT * FROM views.daily"))
		if err := sameRows(want, got); err != nil {
			t.Fatalf("%s: views.daily differs from its SQL over the recomputed views.delays: %v", step, err)
		}
	}
	prod.ingest(t, p.client, 3, 150)
	check("speed only")
	build(t, p) // builds delays; daily follows
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := p.client.GetView(ctx, "daily")
		if err != nil {
			t.Fatal(err)
		}
		if v.Batch != nil && v.Batch.CoveredOffset == int64(len(prod.all)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daily was not built after delays published: %+v", v.Batch)
		}
		time.Sleep(100 * time.Millisecond)
	}
	check("after builds")
	prod.ingest(t, p.client, 2, 100)
	check("batch and speed")
	p.stop(t)
	p = startServer(t, dataDir)
	check("after restart")

	for _, tc := range []struct{ name, sql, mention string }{
		{"self", "SELECT origin, sum(flights) AS f FROM views.selfish GROUP BY origin", "neither a dataset nor a view"},
		{"groups", "SELECT origin, count(*) AS groups FROM views.delays GROUP BY origin", "count(*)"},
		{"avg", "SELECT origin, avg(avg_delay) AS a FROM views.delays GROUP BY origin", "avg"},
	} {
		status, e, raw := post(t, p.base+"/v1/views", "application/json", []byte(fmt.Sprintf(`{"name":%q,"sql":%q}`, tc.name, tc.sql)))
		if status != 400 || !strings.Contains(e.Error, tc.mention) {
			t.Errorf("view %s: %d %s; want 400 mentioning %q", tc.name, status, raw, tc.mention)
		}
	}
	status, e, _ := post(t, p.base+"/v1/views", "application/json", []byte(`{"name":"loop","sql":"SELECT origin, sum(flights) AS f FROM views.loop GROUP BY origin"}`))
	if status != 400 || !strings.Contains(e.Error, "cannot read itself") {
		t.Errorf("a view reading itself: %d %q", status, e.Error)
	}
	p.stop(t)
}
