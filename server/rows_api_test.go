package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	_ "github.com/trinodb/trino-go-client/trino"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
)

var (
	duetBinOnce sync.Once
	duetBin     string
	duetBinErr  error
)

// executorBinary builds the duet binary once, for servers whose tests run
// builds: the test binary is no executor.
func executorBinary(t *testing.T) string {
	t.Helper()
	duetBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "duet-server-test-bin-")
		if err != nil {
			duetBinErr = err
			return
		}
		duetBin = filepath.Join(dir, "duet")
		out, err := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", duetBin, "../cmd/duet").CombinedOutput()
		if err != nil {
			duetBinErr = fmt.Errorf("build duet: %v\n%s", err, out)
		}
	})
	if duetBinErr != nil {
		t.Fatal(duetBinErr)
	}
	return duetBin
}

// rowsFixture is a server with a dataset of flights and views over it.
type rowsFixture struct {
	t    *testing.T
	base string
	c    *client.Client
	gw   *sql.DB
	next int // records ingested so far
}

const rowsDelaysSQL = `SELECT date_trunc('hour', date) AS hour, origin, count(*) AS flights, sum(delay) AS total_delay,
	min(delay) AS min_delay, max(delay) AS max_delay, avg(delay) AS avg_delay, approx_distinct(tail) AS tails
	FROM flights GROUP BY 1, 2`

// TestRowsAPI runs the rows API on a real server: its answers equal the
// SQL gateway's for the equivalent SQL over views.<name> (and a rollup
// equals a view grouped by fewer keys) in every format, after ingest, a
// build's handoff and a rollback; the ETag changes exactly when the state
// does; If-None-Match answers 304 without a query; repeats come from the cache.
func TestRowsAPI(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Executor.Command = []string{executorBinary(t)}
	cfg.QueryMaxRows = 5000
	srv := runServer(t, cfg)
	f := &rowsFixture{t: t, base: "http://" + srv.Addr()}
	var err error
	if f.c, err = client.New(f.base, nil); err != nil {
		t.Fatal(err)
	}
	defer f.c.CloseIdleConnections()
	if f.gw, err = sql.Open("trino", f.c.TrinoDSN("tester")); err != nil {
		t.Fatal(err)
	}
	defer f.gw.Close()
	ctx := t.Context()
	cols := []dataset.Column{{Name: "date", Type: dataset.Timestamp}, {Name: "delay", Type: dataset.Bigint},
		{Name: "origin", Type: dataset.Varchar}, {Name: "tail", Type: dataset.Varchar}}
	if _, err := f.c.CreateDataset(ctx, api.Dataset{Name: "flights", TimeColumn: "date", Columns: cols}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []api.ViewRequest{
		{Name: "delays", SQL: rowsDelaysSQL},
		// The same aggregates by origin only: what a rollup of delays to
		// origin must equal exactly.
		{Name: "by_origin", SQL: `SELECT origin, count(*) AS flights, sum(delay) AS total_delay, min(delay) AS min_delay,
			max(delay) AS max_delay, avg(delay) AS avg_delay, approx_distinct(tail) AS tails FROM flights GROUP BY origin`},
		{Name: "late", SQL: "SELECT date, origin, delay FROM flights WHERE delay > 40"},
		{Name: "per_origin", SQL: "SELECT origin, count(*) AS n FROM flights GROUP BY origin"},
	} {
		if _, err := f.c.CreateView(ctx, v); err != nil {
			t.Fatal(err)
		}
	}

	f.ingest(600)
	f.checkAnswers("after ingest")
	tag1 := f.etag("delays", "group_by=origin")
	if again := f.etag("delays", "group_by=origin"); again != tag1 {
		t.Fatalf("nothing changed, but the ETag went from %s to %s", tag1, again)
	}

	// A repeat is a cache hit, and If-None-Match a 304 without a query.
	hits, queried := f.metric("duet_serving_result_cache_hits_total"), f.metric(`duet_server_rows_answers_total{answer="queried"}`)
	f.etag("delays", "group_by=origin")
	if h := f.metric("duet_serving_result_cache_hits_total"); h != hits+1 {
		t.Errorf("a repeated request: cache hits went from %v to %v, want one more", hits, h)
	}
	resp := f.get("delays", "group_by=origin", map[string]string{"If-None-Match": tag1})
	if resp.status != http.StatusNotModified || len(resp.body) != 0 || resp.header.Get("ETag") != tag1 {
		t.Fatalf("If-None-Match with the current ETag: %d %q (ETag %s), want 304 with no body", resp.status, resp.body, resp.header.Get("ETag"))
	}
	if q := f.metric(`duet_server_rows_answers_total{answer="queried"}`); q != queried {
		t.Errorf("304 and a cache hit ran %v queries", q-queried)
	}
	if n := f.metric(`duet_server_rows_answers_total{answer="not_modified"}`); n != 1 {
		t.Errorf("not_modified answers: %v, want 1", n)
	}

	// New events: a new tag, and the old one no longer matches.
	f.ingest(150)
	tag2 := f.etag("delays", "group_by=origin")
	if tag2 == tag1 {
		t.Fatalf("ingest did not change the ETag %s", tag1)
	}
	if resp := f.get("delays", "group_by=origin", map[string]string{"If-None-Match": tag1}); resp.status != http.StatusOK {
		t.Fatalf("If-None-Match with a stale ETag: %d, want 200", resp.status)
	}
	f.checkAnswers("after more ingest")

	// A build hands its offsets over to the batch layer: same answers,
	// new tag.
	f.build("delays")
	tag3 := f.etag("delays", "group_by=origin")
	if tag3 == tag2 || !strings.HasPrefix(tag3, `"v1.`) {
		t.Fatalf("after the first build the ETag is %s (was %s), want a new one of version 1", tag3, tag2)
	}
	f.checkAnswers("after build 1")
	f.ingest(200)
	f.build("delays")
	f.checkAnswers("after build 2")
	tag4 := f.etag("delays", "")
	if !strings.HasPrefix(tag4, `"v2.`) {
		t.Fatalf("after the second build the ETag is %s, want version 2", tag4)
	}
	if _, err := f.c.Rollback(ctx, "delays", 1); err != nil {
		t.Fatal(err)
	}
	tag5 := f.etag("delays", "")
	if tag5 == tag4 || !strings.HasPrefix(tag5, `"v1.`) {
		t.Fatalf("after the rollback to version 1 the ETag is %s (was %s)", tag5, tag4)
	}
	f.checkAnswers("after rollback to 1")
	f.ingest(50)
	f.checkAnswers("after ingest over the rollback")

	f.checkErrors()
}

func (f *rowsFixture) ingest(n int) {
	f.t.Helper()
	var b bytes.Buffer
	origins := []string{"ATL", "BOS", "JFK", "SFO", "ORD"}
	for i := f.next; i < f.next+n; i++ {
		// Three days, out of order; delays -10..89; some tails repeat.
		ts := time.Date(2026, 11, 1+(i/7)%3, (i*5)%24, i%60, 0, 0, time.UTC)
		fmt.Fprintf(&b, `{"date":%q,"delay":%d,"origin":%q,"tail":"N%d"}`+"\n", ts.Format(time.RFC3339), (i*37)%100-10, origins[(i/3)%len(origins)], i%41)
	}
	f.next += n
	if _, err := f.c.Ingest(f.t.Context(), "flights", "application/x-ndjson", b.Bytes()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *rowsFixture) build(view string) {
	f.t.Helper()
	job, err := f.c.Build(f.t.Context(), view, api.BuildRequest{})
	if err != nil {
		f.t.Fatal(err)
	}
	job, err = f.c.WaitJob(f.t.Context(), job.ID, 100*time.Millisecond)
	if err != nil || job.State != "succeeded" {
		f.t.Fatalf("build of %s: %s %s (%v)", view, job.State, job.Error, err)
	}
}

type rowsResp struct {
	status int
	header http.Header
	body   []byte
}

func (f *rowsFixture) get(view, query string, header map[string]string) rowsResp {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), http.MethodGet, f.base+"/v1/views/"+view+"/rows?"+query, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return rowsResp{resp.StatusCode, resp.Header, body}
}

func (f *rowsFixture) etag(view, query string) string {
	f.t.Helper()
	resp := f.get(view, query, nil)
	if resp.status != http.StatusOK {
		f.t.Fatalf("%s?%s: %d %s", view, query, resp.status, resp.body)
	}
	if resp.header.Get("Cache-Control") != "no-cache" {
		f.t.Errorf("Cache-Control %q, want no-cache", resp.header.Get("Cache-Control"))
	}
	return resp.header.Get("ETag")
}

func (f *rowsFixture) metric(name string) float64 {
	f.t.Helper()
	for _, line := range strings.Split(get(f.t, f.base+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}

// rowsCase is a request of the rows API and the SQL that must answer the
// same rows through the gateway.
type rowsCase struct {
	view, query, sql string
}

var rowsCases = []rowsCase{
	{"delays", "", "SELECT * FROM views.delays ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"},
	{"delays", "from=2026-11-02&to=2026-11-02T12:00:00Z&filter=origin=ATL&order=-flights&columns=hour,flights,avg_delay",
		`SELECT hour, flights, avg_delay FROM views.delays WHERE hour >= TIMESTAMP '2026-11-02 00:00:00' AND hour < TIMESTAMP '2026-11-02 12:00:00'
		 AND origin = 'ATL' ORDER BY flights DESC, hour, origin, total_delay, min_delay, max_delay, avg_delay, tails`},
	{"delays", "filter=flights>=2&filter=origin!=SFO&filter=avg_delay<50.5&order=-total_delay&limit=7",
		`SELECT * FROM views.delays WHERE flights >= 2 AND origin <> 'SFO' AND avg_delay < 50.5 ORDER BY total_delay DESC, hour, origin, flights, min_delay, max_delay, avg_delay, tails LIMIT 7`},
	// A rollup equals the view grouped by fewer keys...
	{"delays", "group_by=origin", "SELECT * FROM views.by_origin ORDER BY origin"},
	// ...and equals the rollup over the view's rows where that is exact.
	{"delays", "group_by=origin&filter=flights>=2&filter=hour>=2026-11-02&columns=origin,flights,total_delay,min_delay,max_delay&order=-flights",
		`SELECT origin, sum(flights), sum(total_delay), min(min_delay), max(max_delay) FROM views.delays
		 WHERE flights >= 2 AND hour >= TIMESTAMP '2026-11-02' GROUP BY origin ORDER BY 2 DESC, origin`},
	// Filters on aggregates apply to the view's rows, before the rollup.
	{"delays", "group_by=origin&filter=avg_delay>=40&filter=tails>=2&columns=origin,flights,total_delay",
		`SELECT origin, sum(flights), sum(total_delay) FROM views.delays WHERE avg_delay >= 40 AND tails >= 2 GROUP BY origin ORDER BY origin`},
	{"delays", "group_by=hour&from=2026-11-01T20:00:00Z&to=2026-11-02T03:00:00Z&columns=hour,flights,total_delay",
		`SELECT hour, sum(flights), sum(total_delay) FROM views.delays WHERE hour >= TIMESTAMP '2026-11-01 20:00:00'
		 AND hour < TIMESTAMP '2026-11-02 03:00:00' GROUP BY hour ORDER BY hour`},
	// All keys rolled up: one row, as the view's SQL without GROUP BY.
	{"delays", "group_by=&columns=flights,total_delay,min_delay,max_delay,avg_delay",
		"SELECT count(*), sum(delay), min(delay), max(delay), avg(delay) FROM raw.flights"},
	{"late", "time=date&from=2026-11-02&filter=delay>=80&order=-delay,date&limit=20",
		`SELECT * FROM views.late WHERE date >= TIMESTAMP '2026-11-02' AND delay >= 80 ORDER BY delay DESC, date, origin LIMIT 20`},
}

// checkAnswers compares every case in every format with the gateway.
func (f *rowsFixture) checkAnswers(stage string) {
	f.t.Helper()
	for _, c := range rowsCases {
		want := f.gatewayRows(c.sql)
		if len(want) == 0 {
			f.t.Fatalf("%s: %s has no rows; the case tests nothing", stage, c.sql)
		}
		resp := f.get(c.view, c.query, nil)
		if resp.status != http.StatusOK {
			f.t.Fatalf("%s: %s?%s: %d %s", stage, c.view, c.query, resp.status, resp.body)
		}
		var doc api.Rows
		dec := json.NewDecoder(bytes.NewReader(resp.body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			f.t.Fatalf("%s: %s?%s: %v", stage, c.view, c.query, err)
		}
		got := make([][]string, len(doc.Rows))
		for i, r := range doc.Rows {
			got[i] = make([]string, len(r))
			for j, v := range r {
				got[i][j] = canonical(v)
			}
		}
		f.compare(stage+" json", c, got, want)
		v, _ := f.c.GetView(f.t.Context(), c.view)
		if v.Speed == nil || doc.LogEndOffset != v.Speed.LogEndOffset || doc.CoveredOffset != v.Speed.FromOffset {
			f.t.Errorf("%s: %s?%s says log end %d covered %d; the view says %+v", stage, c.view, c.query, doc.LogEndOffset, doc.CoveredOffset, v.Speed)
		}
		if len(doc.Columns) != len(want[0]) {
			f.t.Errorf("%s: %s?%s has columns %v", stage, c.view, c.query, doc.Columns)
		}

		csvResp := f.get(c.view, c.query, map[string]string{"Accept": "text/csv"})
		records, err := csv.NewReader(bytes.NewReader(csvResp.body)).ReadAll()
		if err != nil || csvResp.header.Get("Content-Type") != "text/csv" || csvResp.header.Get("ETag") == resp.header.Get("ETag") {
			f.t.Fatalf("%s: CSV %s?%s: %v %s (ETag %s)", stage, c.view, c.query, err, csvResp.header.Get("Content-Type"), csvResp.header.Get("ETag"))
		}
		for i := range records[1:] {
			for j := range records[i+1] {
				records[i+1][j] = canonical(records[i+1][j])
			}
		}
		f.compare(stage+" csv", c, records[1:], want)

		arrowResp := f.get(c.view, c.query, map[string]string{"Accept": "application/vnd.apache.arrow.stream"})
		rd, err := ipc.NewReader(bytes.NewReader(arrowResp.body), ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			f.t.Fatalf("%s: Arrow %s?%s: %v (%d %s)", stage, c.view, c.query, err, arrowResp.status, arrowResp.body)
		}
		var fromArrow [][]string
		for rd.Next() {
			rec := rd.RecordBatch()
			for i := range int(rec.NumRows()) {
				row := make([]string, rec.NumCols())
				for j, col := range rec.Columns() {
					row[j] = canonical(jsonValue(col, i))
				}
				fromArrow = append(fromArrow, row)
			}
		}
		rd.Release()
		f.compare(stage+" arrow", c, fromArrow, want)
	}
}

func (f *rowsFixture) compare(stage string, c rowsCase, got, want [][]string) {
	f.t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		f.t.Errorf("%s: %s?%s answered\n%v\nthe gateway's %s answers\n%v", stage, c.view, c.query, got, strings.Join(strings.Fields(c.sql), " "), want)
	}
}

func (f *rowsFixture) gatewayRows(query string) [][]string {
	f.t.Helper()
	var out [][]string
	for _, vals := range lambdatest.QueryAll(f.t.Context(), f.t, f.gw, query) {
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = canonical(v)
		}
		out = append(out, row)
	}
	return out
}

var gatewayTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?$`)

// canonical spells a value the same whichever way it came: numbers by
// their float64 value, timestamps as RFC 3339 in UTC.
func canonical(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case json.Number:
		return canonical(string(x))
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case string:
		if gatewayTimestamp.MatchString(x) {
			if t, err := time.Parse("2006-01-02 15:04:05.999999999", x); err == nil {
				return canonical(t)
			}
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return strconv.FormatInt(n, 10)
		}
		if fl, err := strconv.ParseFloat(x, 64); err == nil {
			return canonical(fl)
		}
		return x
	}
	return fmt.Sprint(v)
}

// checkErrors asks for what cannot be answered: each error names its cause.
func (f *rowsFixture) checkErrors() {
	f.t.Helper()
	for _, c := range []struct {
		view, query string
		accept      string
		status      int
		want        string
	}{
		{"nope", "", "", 404, `view "nope" not found`},
		{"delays", "filter=nope=1", "", 400, `filter: the view has no column "nope"`},
		{"delays", "filter=flights=many", "", 400, `filter "flights=many": column "flights" is BIGINT`},
		{"delays", "filter=origin", "", 400, `filter "origin": write <column><op><value>`},
		{"delays", "from=yesterday", "", 400, `from "yesterday"`},
		{"delays", "time=origin&from=2026-11-01", "", 400, `time: column "origin" is VARCHAR`},
		{"per_origin", "from=2026-11-01", "", 400, "from/to: the view has no time key column"},
		{"delays", "group_by=flights", "", 400, `group_by: "flights" is not a key of the view`},
		{"late", "group_by=origin", "", 400, "group_by: the view is a projection"},
		{"delays", "group_by=origin&columns=hour", "", 400, `columns: the rollup by group_by has no column "hour"`},
		{"delays", "order=-zzz", "", 400, `order: the view has no column "zzz"`},
		{"delays", "limit=-1", "", 400, "limit"},
		{"delays", "limit=5001", "", 400, "limit 5001: at most 5000"},
		{"delays", "limt=5", "", 400, `unknown parameter "limt"`},
		{"delays", "", "text/html", 406, "Accept"},
	} {
		var h map[string]string
		if c.accept != "" {
			h = map[string]string{"Accept": c.accept}
		}
		resp := f.get(c.view, c.query, h)
		var e api.Error
		if resp.status != c.status || json.Unmarshal(resp.body, &e) != nil || !strings.Contains(e.Error, c.want) {
			f.t.Errorf("%s?%s: %d %s, want %d naming %q", c.view, c.query, resp.status, resp.body, c.status, c.want)
		}
	}
	// The Go client reads the rows and polls with the ETag.
	ctx := f.t.Context()
	got, err := f.c.Rows(ctx, "delays", client.RowsQuery{GroupBy: []string{"origin"}, Columns: []string{"origin", "flights"}, Order: []string{"-flights"}, Limit: 2})
	if err != nil || len(got.Rows.Rows) != 2 || !got.Truncated || got.ETag == "" {
		f.t.Fatalf("client: %+v, %v", got, err)
	}
	again, err := f.c.Rows(ctx, "delays", client.RowsQuery{GroupBy: []string{"origin"}, Columns: []string{"origin", "flights"}, Order: []string{"-flights"}, Limit: 2, IfNoneMatch: got.ETag})
	if err != nil || !again.NotModified || again.ETag != got.ETag {
		f.t.Fatalf("client poll: %+v, %v", again, err)
	}
	if _, err := f.c.Rows(context.Background(), "nope", client.RowsQuery{}); !client.IsStatus(err, 404) {
		f.t.Fatalf("client, unknown view: %v", err)
	}
}
