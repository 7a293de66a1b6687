package sources_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/goleak"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/speedlayer"
	"github.com/duet-analytics/duet/speedlayer/sources"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// rowJSON is an event as a producer writes it.
func rowJSON(r lambdatest.Row) []byte {
	m := map[string]any{"ts": r.TS.Format(time.RFC3339Nano), "k": r.K}
	if r.V != nil {
		m["v"] = *r.V
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// badMessages do not decode into the harness's dataset, each for another reason.
var badMessages = [][]byte{
	[]byte(`{"ts": "2026-11-01T20:00:00Z", "k": "a", "v": "five"}`), // wrong type
	[]byte(`{"ts": "2026-11-01T20:00:00Z", "k": "a", "nope": 1}`),   // unknown column
	[]byte(`{"k": "a", "v": 1}`),                                    // no time
	[]byte(`{"ts": "2026-11-01T20:00:00Z", "k": `),                  // torn JSON
	[]byte(`["not", "an", "object"]`),
	nil, // empty
}

// rig is a node of the harness with a Source reading its dataset, started
// and stopped as a process would be.
type rig struct {
	t      *testing.T
	dir    string
	opts   lambdatest.Options
	cfg    sources.Config
	layer  func(*speedlayer.Layer) sources.Layer // wraps the layer (faults); nil: the layer
	logger *slog.Logger

	n      *lambdatest.Node
	src    *sources.Source
	cancel context.CancelFunc
	done   chan error
}

func newRig(t *testing.T, src dataset.Source, cfg sources.Config) *rig {
	spec := lambdatest.Spec
	spec.Source = &src
	r := &rig{
		t: t, dir: t.TempDir(), cfg: cfg,
		opts:   lambdatest.Options{SegmentRecords: 40, Spec: &spec, Views: []lambdatest.View{{Name: "v", SQL: lambdatest.ViewSQL}}},
		logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	t.Cleanup(r.stop)
	return r
}

// testWriter sends logs to the test's log, so a failure shows them.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (r *rig) start() {
	r.t.Helper()
	r.n = lambdatest.Start(r.t, r.dir, r.opts)
	var layer sources.Layer = r.n.Layer
	if r.layer != nil {
		layer = r.layer(r.n.Layer)
	}
	src, err := sources.New(r.n.Spec, layer, r.cfg, r.logger, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.src, r.cancel, r.done = src, cancel, make(chan error, 1)
	go func() { r.done <- src.Run(ctx) }()
}

// stop stops the source and then the node: whatever the source had not
// stored is read again by the next start.
func (r *rig) stop() {
	if r.n == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("source Run: %v", err)
	}
	r.n.Stop()
	r.n = nil
}

func (r *rig) restart() {
	r.t.Helper()
	r.stop()
	r.start()
}

// loseLog deletes the stopped node's event logs: only the catalog and the
// archive remain.
func (r *rig) loseLog() {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.dir, "log")); err != nil {
		r.t.Fatal(err)
	}
}

// waitFor polls cond; the deadline only guards against a hang.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("waited 90s for %s; source status %+v", what, r.src.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) positions() []byte {
	r.t.Helper()
	p, err := r.n.Layer.SourcePositions("ev")
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// status returns the source's status once it has counted the batch that
// brought the layer to its current positions (the layer stores a batch
// before the source counts it).
func (r *rig) status() sources.Status {
	r.t.Helper()
	var st sources.Status
	r.waitFor("the source's status to count the last batch", func() bool {
		st = r.src.Status()
		return st.Positions == string(r.positions())
	})
	return st
}

func (r *rig) rawCount() int64 {
	r.t.Helper()
	var n int64
	if err := r.n.DB.QueryRow("SELECT count(*) FROM duet.raw.ev").Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// archived waits until the layer has archived something and returns the
// archived positions.
func (r *rig) archived() []byte {
	r.t.Helper()
	var pos []byte
	r.waitFor("an archive", func() bool {
		var err error
		pos, err = r.n.Layer.ArchivedSourcePositions("ev")
		if err != nil {
			r.t.Fatal(err)
		}
		return pos != nil
	})
	return pos
}

// faultyLayer is the real layer with faults injected in IngestSourced: a
// memory refusal before storing, a failure before storing, and a failure
// after storing (the answer lost), each on every few calls.
type faultyLayer struct {
	*speedlayer.Layer
	mu                            sync.Mutex
	calls                         int
	refused, failed, storedFailed atomic.Int64
}

func (f *faultyLayer) IngestSourced(ctx context.Context, ds string, rec arrow.RecordBatch, pos []byte) (speedlayer.Ingested, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	switch {
	case call%5 == 1:
		f.refused.Add(1)
		return speedlayer.Ingested{First: -1}, &speedlayer.BudgetError{Dataset: ds, Records: 1, RetryAfter: time.Millisecond}
	case call%11 == 3:
		f.failed.Add(1)
		return speedlayer.Ingested{First: -1}, fmt.Errorf("injected failure before storing")
	case call%13 == 7:
		if _, err := f.Layer.IngestSourced(ctx, ds, rec, pos); err != nil {
			return speedlayer.Ingested{First: -1}, err
		}
		f.storedFailed.Add(1)
		return speedlayer.Ingested{First: -1}, fmt.Errorf("injected failure after storing")
	}
	return f.Layer.IngestSourced(ctx, ds, rec, pos)
}
