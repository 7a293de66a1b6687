package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/dataset"
)

func post(t *testing.T, url, contentType string, body []byte) (int, api.Error, []byte) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
			t.Fatalf("%s: status %d with a body that is not an error document: %q", url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, e, raw
}

func TestBadInputIsRejectedAndNothingIsKept(t *testing.T) {
	p := startServer(t, t.TempDir())
	ctx := ctxT(t)
	createFlightsAndDelays(t, p)
	prod := newProducer(3)
	prod.ingest(t, p.client, 1, 10)
	ingestURL := p.base + "/v1/ingest/flights"
	good := `{"date":"2026-11-01T10:00:00Z","delay":5,"origin":"AMS"}` + "\n"

	ingestCases := []struct {
		name, body string
		status     int
		row        int
		column     string
		mention    string
	}{
		{"malformed JSON", good + `{"date":"2026-11-01T10:00:00Z","delay":5,` + "\n", 400, 2, "", "row 2"},
		{"wrong type", good + good + `{"date":"2026-11-01T10:00:00Z","delay":"late","origin":"AMS"}` + "\n", 400, 3, "delay", "bigint"},
		{"fractional integer", `{"date":"2026-11-01T10:00:00Z","delay":1.5,"origin":"AMS"}`, 400, 1, "delay", "delay"},
		{"missing time column", good + `{"delay":5,"origin":"AMS"}`, 400, 2, "date", "date"},
		{"null time column", `{"date":null,"delay":5,"origin":"AMS"}`, 400, 1, "date", "date"},
		{"bad timestamp", `{"date":"yesterday","delay":5,"origin":"AMS"}`, 400, 1, "date", "yesterday"},
		{"unknown column", `{"date":"2026-11-01T10:00:00Z","delay":5,"origin":"AMS","gate":"B3"}`, 400, 1, "gate", "gate"},
		{"not an object", good + `[1,2,3]`, 400, 2, "", "row 2"},
		{"empty body", ``, 400, 0, "", "no rows"},
	}
	for _, tc := range ingestCases {
		status, e, raw := post(t, ingestURL, "application/x-ndjson", []byte(tc.body))
		if status != tc.status || e.Row != tc.row || (tc.column != "" && e.Column != tc.column) || !strings.Contains(e.Error, tc.mention) {
			t.Errorf("%s: got %d %s; want %d row %d column %q mentioning %q", tc.name, status, raw, tc.status, tc.row, tc.column, tc.mention)
		}
	}
	if status, e, _ := post(t, p.base+"/v1/ingest/nosuch", "application/x-ndjson", []byte(good)); status != 404 || !strings.Contains(e.Error, "nosuch") {
		t.Errorf("unknown dataset: %d %q", status, e.Error)
	}
	if status, e, _ := post(t, ingestURL, "text/csv", []byte(good)); status != 415 || !strings.Contains(e.Error, "application/x-ndjson") {
		t.Errorf("unsupported content type: %d %q", status, e.Error)
	}
	if status, _, _ := post(t, ingestURL, "application/vnd.apache.arrow.stream", []byte("not arrow")); status != 400 {
		t.Errorf("malformed Arrow stream: %d", status)
	}

	// Nothing from a rejected request was kept.
	d, err := p.client.GetDataset(ctx, "flights")
	if err != nil {
		t.Fatal(err)
	}
	if d.Log.EndOffset != int64(len(prod.all)) {
		t.Fatalf("log end offset %d after rejected requests, want %d", d.Log.EndOffset, len(prod.all))
	}
	assertExact(t, p, prod, "after rejected requests")

	// An Arrow IPC request is accepted and lands exactly like NDJSON.
	fs := prod.next(20)
	status, _, raw := post(t, ingestURL, "application/vnd.apache.arrow.stream", arrowIPC(t, fs))
	if status != 200 {
		t.Fatalf("arrow ingest: %d %s", status, raw)
	}
	var res api.IngestResult
	if err := json.Unmarshal(raw, &res); err != nil || res.Accepted != 20 || res.FirstOffset != int64(len(prod.all)) {
		t.Fatalf("arrow ingest result %s", raw)
	}
	prod.all = append(prod.all, fs...)
	assertExact(t, p, prod, "after arrow ingest")

	viewCases := []struct {
		name, body string
		status     int
		mention    string
	}{
		{"not mergeable", `{"name":"v1","sql":"SELECT origin, count(DISTINCT delay) AS d FROM flights GROUP BY origin"}`, 400, "DISTINCT"},
		{"syntax error", `{"name":"v2","sql":"SELEC origin FROM flights"}`, 400, "syntax"},
		{"unknown column", `{"name":"v3","sql":"SELECT origin, sum(nope) AS s FROM flights GROUP BY origin"}`, 400, "nope"},
		{"unknown dataset", `{"name":"v4","sql":"SELECT count(*) AS n FROM trains"}`, 400, "trains"},
		{"bad schedule", `{"name":"v5","sql":"SELECT count(*) AS n FROM flights","schedule":"every tuesday"}`, 400, "schedule"},
		{"bad name", `{"name":"no-dashes","sql":"SELECT count(*) AS n FROM flights"}`, 400, "no-dashes"},
		{"duplicate", `{"name":"delays","sql":"SELECT count(*) AS n FROM flights"}`, 409, "already exists"},
		{"unknown field", `{"name":"v6","query":"SELECT 1"}`, 400, "query"},
	}
	for _, tc := range viewCases {
		status, e, raw := post(t, p.base+"/v1/views", "application/json", []byte(tc.body))
		if status != tc.status || !strings.Contains(strings.ToLower(e.Error), strings.ToLower(tc.mention)) {
			t.Errorf("view %s: got %d %s; want %d mentioning %q", tc.name, status, raw, tc.status, tc.mention)
		}
	}
	datasetCases := []struct {
		name, body string
		status     int
		mention    string
	}{
		{"unknown type", `{"name":"t1","time_column":"ts","columns":[{"name":"ts","type":"timestamp"},{"name":"x","type":"uint128"}]}`, 400, "uint128"},
		{"no time column", `{"name":"t2","time_column":"ts","columns":[{"name":"x","type":"bigint"}]}`, 400, "time_column"},
		{"duplicate", `{"name":"flights","time_column":"date","columns":[{"name":"date","type":"timestamp"}]}`, 409, "already exists"},
	}
	for _, tc := range datasetCases {
		status, e, raw := post(t, p.base+"/v1/datasets", "application/json", []byte(tc.body))
		if status != tc.status || !strings.Contains(e.Error, tc.mention) {
			t.Errorf("dataset %s: got %d %s; want %d mentioning %q", tc.name, status, raw, tc.status, tc.mention)
		}
	}
	p.stop(t)
}

func arrowIPC(t *testing.T, fs []flight) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "origin", Type: arrow.BinaryTypes.String},
		{Name: "date", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "delay", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, f := range fs {
		b.Field(0).(*array.StringBuilder).Append(f.Origin)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(f.Date.UnixMicro()))
		if f.Delay == nil {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Int64Builder).Append(*f.Delay)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestColumnNamedLikeThePartitionDirectory: archive files live under dt=...
// directories; a dataset column named dt must keep its own values.
func TestColumnNamedLikeThePartitionDirectory(t *testing.T) {
	p := startServer(t, t.TempDir(), "--segment-max-records", "1")
	ctx := ctxT(t)
	spec := api.Dataset{Name: "ev", TimeColumn: "ts", Columns: []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "dt", Type: dataset.Varchar}}}
	if _, err := p.client.CreateDataset(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.CreateView(ctx, api.ViewRequest{Name: "by_dt", SQL: "SELECT dt, count(*) AS n FROM ev GROUP BY dt"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b"} {
		if _, err := p.client.Ingest(ctx, "ev", "application/x-ndjson", []byte(`{"ts":"2026-11-01T10:00:00Z","dt":"`+v+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	buildView(t, p, "by_dt")
	db := trinoDB(t, p)
	for _, q := range []string{"SELECT string_agg(dt, ',' ORDER BY dt) FROM raw.ev", "SELECT string_agg(dt, ',' ORDER BY dt) FROM views.by_dt"} {
		var got string
		if err := db.QueryRowContext(ctx, q).Scan(&got); err != nil || got != "a,b" {
			t.Fatalf("%s = %q, %v; want a,b", q, got, err)
		}
	}
	p.stop(t)
}
