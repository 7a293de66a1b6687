package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

// TestIngestDeduplicates runs the real server with a dataset that names a
// dedup key: the same body posted twice is stored once, the second answer
// says accepted 0 and how many duplicates, and views do not change.
func TestIngestDeduplicates(t *testing.T) {
	cfg := testConfig(t.TempDir())
	ctx := t.Context()
	srv := runServer(t, cfg)
	base := "http://" + srv.Addr()
	c, err := client.New(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	cols := []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "id", Type: dataset.Varchar}, {Name: "amount", Type: dataset.Bigint}}
	// Bad dedup definitions are refused with the field named.
	for _, bad := range []struct {
		d    api.Dataset
		want string
	}{
		{api.Dataset{Name: "o1", TimeColumn: "ts", Columns: cols, DedupKey: "nope"}, `dedup_key "nope": no such column`},
		{api.Dataset{Name: "o2", TimeColumn: "ts", Columns: cols, DedupKey: "id", DedupWindow: "ten minutes"}, `dedup_window "ten minutes"`},
		{api.Dataset{Name: "o3", TimeColumn: "ts", Columns: cols, DedupKey: "id", DedupWindow: "48h"}, "dedup_window 48h0m0s: must be at most 24h0m0s"},
		{api.Dataset{Name: "o4", TimeColumn: "ts", Columns: cols, DedupWindow: "1m"}, "set only together with dedup_key"},
	} {
		_, err := c.CreateDataset(ctx, bad.d)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, bad.want) {
			t.Errorf("create %+v: got %v, want a 400 saying %q", bad.d, err, bad.want)
		}
	}

	created, err := c.CreateDataset(ctx, api.Dataset{Name: "orders", TimeColumn: "ts", Columns: cols, DedupKey: "ID"})
	if err != nil {
		t.Fatal(err)
	}
	if created.DedupKey != "id" || created.DedupWindow != "10m0s" {
		t.Fatalf("created dataset has dedup key %q window %q, want id and the default 10m0s", created.DedupKey, created.DedupWindow)
	}
	if got, err := c.GetDataset(ctx, "orders"); err != nil || got.DedupKey != "id" || got.DedupWindow != "10m0s" {
		t.Fatalf("GET dataset: %+v, %v", got, err)
	}
	if _, err := c.CreateView(ctx, api.ViewRequest{Name: "totals", SQL: "SELECT count(*) AS n, sum(amount) AS total FROM orders"}); err != nil {
		t.Fatal(err)
	}

	var body bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&body, `{"ts":"2026-11-01T10:%02d:00Z","id":"order-%d","amount":%d}`+"\n", i, i, i+1)
	}
	post := func(b []byte) api.IngestResult {
		t.Helper()
		resp, err := http.Post(base+"/v1/ingest/orders", "application/x-ndjson", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var res api.IngestResult
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &res) != nil {
			t.Fatalf("ingest answered %d: %s", resp.StatusCode, raw)
		}
		if !strings.Contains(string(raw), `"duplicates":`) {
			t.Fatalf("ingest answer %s has no duplicates field", raw)
		}
		return res
	}
	totals := func() (n, total int64) {
		t.Helper()
		if err := srv.db.QueryRowContext(ctx, "SELECT n, total FROM duet.views.totals").Scan(&n, &total); err != nil {
			t.Fatal(err)
		}
		return n, total
	}

	if res := post(body.Bytes()); res != (api.IngestResult{Accepted: 50, FirstOffset: 0, LastOffset: 49}) {
		t.Fatalf("first post: %+v", res)
	}
	n, total := totals()
	if n != 50 || total != 50*51/2 {
		t.Fatalf("view after the first post: n=%d total=%d", n, total)
	}
	// The producer retries: nothing is stored again.
	if res := post(body.Bytes()); res != (api.IngestResult{Accepted: 0, FirstOffset: -1, LastOffset: -1, Duplicates: 50}) {
		t.Fatalf("second post: %+v, want accepted 0, duplicates 50, offsets -1", res)
	}
	if n2, total2 := totals(); n2 != n || total2 != total {
		t.Fatalf("the view changed on a retry: n=%d total=%d, was n=%d total=%d", n2, total2, n, total)
	}
	// A body mixing retries, a repeat within itself and new records.
	mixed := `{"ts":"2026-11-01T11:00:00Z","id":"order-3","amount":1000}
{"ts":"2026-11-01T11:01:00Z","id":"order-50","amount":100}
{"ts":"2026-11-01T11:02:00Z","id":"order-50","amount":1000}
{"ts":"2026-11-01T11:03:00Z","amount":7}
`
	if res := post([]byte(mixed)); res != (api.IngestResult{Accepted: 2, FirstOffset: 50, LastOffset: 51, Duplicates: 2}) {
		t.Fatalf("mixed post: %+v", res)
	}
	if n, total := totals(); n != 52 || total != 50*51/2+107 {
		t.Fatalf("view after the mixed post: n=%d total=%d", n, total)
	}
	var rawRows int64
	if err := srv.db.QueryRowContext(ctx, "SELECT count(*) FROM duet.raw.orders").Scan(&rawRows); err != nil || rawRows != 52 {
		t.Fatalf("raw.orders holds %d rows (%v), want 52", rawRows, err)
	}
	d, err := c.GetDataset(ctx, "orders")
	if err != nil || d.Log == nil || d.Log.EndOffset != 52 {
		t.Fatalf("dataset log %+v (%v), want it to end at offset 52", d.Log, err)
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{`duet_speedlayer_duplicates_total{dataset="orders"} 52`, `duet_speedlayer_dedup_keys{dataset="orders"} 51`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
