package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/speedlayer"
)

// gatedArchive is the server's real archive bucket behind a gate: uploads
// wait until the test opens it, as on an object store that hangs.
type gatedArchive struct {
	speedlayer.Bucket
	open    chan struct{}
	blocked atomic.Int64
}

func (g *gatedArchive) Upload(ctx context.Context, name string, r io.Reader) error {
	select {
	case <-g.open:
	default:
		g.blocked.Add(1)
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Bucket.Upload(ctx, name, r)
}

// ndjsonBatch is n events of request req; each note starts with "rNNNNN:".
func ndjsonBatch(rnd *rand.Rand, req, n int) []byte {
	var b bytes.Buffer
	base := time.Date(2026, 11, 1, 22, 0, 0, 0, time.UTC)
	for i := range n {
		ts := base.Add(time.Duration(rnd.Int64N(int64(4 * time.Hour))))
		fmt.Fprintf(&b, `{"ts":%q,"k":"%c","v":%d,"note":"r%05d:%d:%016x%016x"}`+"\n",
			ts.Format(time.RFC3339Nano), 'a'+rnd.IntN(4), rnd.Int64N(1_000_000), req, i, rnd.Uint64(), rnd.Uint64())
	}
	return b.Bytes()
}

// TestIngestAnswers429AtMemoryBudget runs the real server with its archiver
// stuck: ingest answers 429 with Retry-After and a JSON error, appends
// nothing, and counts the refusal in /metrics; the client waits and resends,
// and once archiving resumes its batch is accepted; raw.ev and the view hold
// exactly the acknowledged events.
func TestIngestAnswers429AtMemoryBudget(t *testing.T) {
	gate := &gatedArchive{open: make(chan struct{})}
	cfg := testConfig(t.TempDir())
	cfg.SegmentMaxRecords = 10_000
	cfg.SpeedMemoryBudget = "8MiB"
	cfg.archiveBucket = func(b speedlayer.Bucket) speedlayer.Bucket {
		gate.Bucket = b
		return gate
	}
	ctx := t.Context()
	srv := runServer(t, cfg)
	// Released before the server stops (cleanups run last first), so its
	// archiver is not left waiting.
	t.Cleanup(func() {
		select {
		case <-gate.open:
		default:
			close(gate.open)
		}
	})
	base := "http://" + srv.Addr()
	c, err := client.New(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	_, err = c.CreateDataset(ctx, api.Dataset{Name: "ev", TimeColumn: "ts", Columns: []dataset.Column{
		{Name: "ts", Type: dataset.Timestamp}, {Name: "k", Type: dataset.Varchar},
		{Name: "v", Type: dataset.Bigint}, {Name: "note", Type: dataset.Varchar},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateView(ctx, api.ViewRequest{Name: "by_k", SQL: "SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k"}); err != nil {
		t.Fatal(err)
	}

	rnd := rand.New(rand.NewPCG(9, 9))
	var accepted int64
	var refused []string
	req := 0
	for len(refused) < 3 {
		if req > 500 {
			t.Fatalf("no 429 in %d requests (%d events accepted)", req, accepted)
		}
		req++
		resp, err := http.Post(base+"/v1/ingest/ev", "application/x-ndjson", bytes.NewReader(ndjsonBatch(rnd, req, 2000)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			var res api.IngestResult
			if err := json.Unmarshal(body, &res); err != nil || res.Accepted != 2000 || res.FirstOffset != accepted {
				t.Fatalf("200 answer %s (%v), want 2000 events from offset %d", body, err, accepted)
			}
			accepted += res.Accepted
		case http.StatusTooManyRequests:
			refused = append(refused, fmt.Sprintf("r%05d", req))
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("429 with Retry-After %q, want whole seconds >= 1", resp.Header.Get("Retry-After"))
			}
			var e api.Error
			if resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &e) != nil {
				t.Fatalf("429 body %q (%s), want a JSON error", body, resp.Header.Get("Content-Type"))
			}
			for _, want := range []string{`dataset "ev": request not accepted, none of its 2000 records were stored`, "memory budget of 8.0 MiB", "retry in 1s"} {
				if !strings.Contains(e.Error, want) {
					t.Errorf("429 error %q does not say %q", e.Error, want)
				}
			}
			d, err := c.GetDataset(ctx, "ev")
			if err != nil || d.Log == nil || d.Log.EndOffset != accepted {
				t.Fatalf("after a 429 the dataset is %+v (%v), want its log to end at %d", d.Log, err, accepted)
			}
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("ingest answered %d: %s", resp.StatusCode, body)
		}
	}
	if gate.blocked.Load() == 0 {
		t.Fatal("the archiver never tried to upload: the test did not block it")
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`duet_speedlayer_ingest_refused_total{dataset="ev"} %d`, len(refused)),
		"duet_speedlayer_memory_budget_bytes 8.388608e+06", "duet_speedlayer_retained_bytes ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The client resends a refused batch after Retry-After; the archiver is
	// released once it has been refused, and the batch then goes in.
	retries := make(chan client.RetryEvent, 100)
	rc, err := client.NewWithConfig(base, nil, client.Config{IngestAttempts: 60, OnRetry: func(e client.RetryEvent) { retries <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.CloseIdleConnections()
	type result struct {
		res api.IngestResult
		err error
	}
	// Checkpoints compress what the stuck layer holds, so a batch may go in
	// before one is refused; the archiver is released at the first refusal.
	for released := false; !released; {
		if req > 500 {
			t.Fatalf("the client was never refused in %d requests", req)
		}
		req++
		sent := make(chan result, 1)
		go func() {
			res, err := rc.Ingest(ctx, "ev", client.ContentTypeNDJSON, ndjsonBatch(rnd, req, 2000))
			sent <- result{res, err}
		}()
		var r result
		select {
		case r = <-sent:
		case first := <-retries:
			if first.Status != http.StatusTooManyRequests || first.Wait != time.Second || !strings.Contains(first.Message, "memory budget") {
				t.Errorf("first retry event %+v, want a 429 with the server's 1s Retry-After", first)
			}
			close(gate.open)
			released = true
			r = <-sent
		}
		if r.err != nil {
			t.Fatalf("the client gave up (archiver released: %v): %v", released, r.err)
		}
		if r.res.Accepted != 2000 || r.res.FirstOffset != accepted {
			t.Fatalf("batch answered %+v, want 2000 events from offset %d", r.res, accepted)
		}
		accepted += r.res.Accepted
	}

	// Every acknowledged event is in raw.ev and in the view; no refused one is.
	var rawRows, leaked, viewRows int64
	quoted := make([]string, len(refused))
	for i, id := range refused {
		quoted[i] = dataset.QuoteString(id)
	}
	row := srv.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM duet.raw.ev),
		(SELECT count(*) FROM duet.raw.ev WHERE split_part(note, ':', 1) IN (`+strings.Join(quoted, ", ")+`)),
		(SELECT sum(n) FROM duet.views.by_k)`)
	if err := row.Scan(&rawRows, &leaked, &viewRows); err != nil {
		t.Fatal(err)
	}
	if rawRows != accepted || viewRows != accepted || leaked != 0 {
		t.Fatalf("raw.ev holds %d events (%d of refused requests) and views.by_k counts %d; want the %d acknowledged", rawRows, leaked, viewRows, accepted)
	}
	var diff int64
	err = srv.db.QueryRowContext(ctx, `SELECT count(*) FROM (
		(SELECT k, count(*) AS n, sum(v) AS s FROM duet.raw.ev GROUP BY k EXCEPT ALL SELECT k, n, s FROM duet.views.by_k)
		UNION ALL (SELECT k, n, s FROM duet.views.by_k EXCEPT ALL SELECT k, count(*), sum(v) FROM duet.raw.ev GROUP BY k))`).Scan(&diff)
	if err != nil || diff != 0 {
		t.Fatalf("views.by_k differs from its SQL over raw.ev in %d rows (%v)", diff, err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}
