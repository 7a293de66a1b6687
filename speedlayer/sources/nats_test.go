package sources_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/internal/testsvc"
	"github.com/duet-analytics/duet/speedlayer"
	"github.com/duet-analytics/duet/speedlayer/sources"
)

// natsStream is the stream "EV" (subjects ev.> and other.>) on a real
// nats-server, and what was published to it.
type natsStream struct {
	t   *testing.T
	srv *testsvc.NATS
	js  jetstream.JetStream
	// lastEv is the sequence of the last message published on ev.>, the
	// subjects the dataset reads.
	lastEv uint64
}

func startNATS(t *testing.T) *natsStream {
	t.Helper()
	srv := testsvc.StartNATS(t)
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>", "other.>"}}); err != nil {
		t.Fatal(err)
	}
	return &natsStream{t: t, srv: srv, js: js}
}

func (n *natsStream) source() dataset.Source {
	return dataset.Source{Kind: dataset.SourceNATS, URL: n.srv.URL(), Stream: "EV", Subject: "ev.>"}
}

func (n *natsStream) publish(subject string, data []byte) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ack, err := n.js.Publish(ctx, subject, data, jetstream.WithRetryAttempts(100), jetstream.WithRetryWait(50*time.Millisecond))
	if err != nil {
		n.t.Fatalf("publish to %s: %v", subject, err)
	}
	if strings.HasPrefix(subject, "ev.") {
		n.lastEv = ack.Sequence
	}
}

// publishRows publishes rows on ev.a and ev.b, with a message on other.x
// (which the dataset does not read) now and then.
func (n *natsStream) publishRows(rows []lambdatest.Row) {
	n.t.Helper()
	for i, r := range rows {
		n.publish([]string{"ev.a", "ev.b"}[i%2], rowJSON(r))
		if i%10 == 0 {
			n.publish("other.x", []byte("not an event of the dataset"))
		}
	}
}

// waitConsumed waits until the dataset's positions are after the last
// message on ev.>: every one has been stored or rejected.
func (n *natsStream) waitConsumed(r *rig) {
	n.t.Helper()
	r.waitFor("every message consumed", func() bool {
		b := r.positions()
		if b == nil {
			return false
		}
		var p struct {
			Stream string `json:"stream"`
			Next   uint64 `json:"next"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Stream != "EV" {
			n.t.Fatalf("positions %s: %v", b, err)
		}
		return p.Next == n.lastEv+1
	})
}

func natsConfig() sources.Config {
	return sources.Config{MaxBatch: 17, MaxWait: time.Millisecond, RetryInterval: 5 * time.Millisecond}
}

// TestNATSExactlyOnceAcrossCrashes reads a JetStream stream while the layer
// refuses or fails batches, through a crash mid-stream, a nats-server
// restart, a crash after an archive and a lost event log, and checks after
// each that raw and the view hold every published event exactly once.
func TestNATSExactlyOnceAcrossCrashes(t *testing.T) {
	s := startNATS(t)
	r := newRig(t, s.source(), natsConfig())
	faults := &faultyLayer{}
	r.layer = func(l *speedlayer.Layer) sources.Layer { faults.Layer = l; return faults }
	rnd := rand.New(rand.NewPCG(21, 22))
	var produced []lambdatest.Row
	publish := func(n int) {
		rows := lambdatest.RandomRows(rnd, n)
		s.publishRows(rows)
		produced = append(produced, rows...)
	}

	publish(400)
	r.start()
	r.waitFor("a first part stored", func() bool { return r.rawCount() >= 60 })
	t.Logf("crash with %d of %d messages stored", r.rawCount(), len(produced))
	r.restart()
	s.waitConsumed(r)
	r.n.Check(produced, "after a crash mid-stream")

	// The server restarts under the running source.
	publish(200)
	s.srv.Stop()
	s.srv.Start()
	publish(100)
	s.waitConsumed(r)
	r.n.Check(produced, "after a nats-server restart")

	before := r.archived()
	publish(300)
	r.waitFor("an archive of the new messages", func() bool {
		pos, err := r.n.Layer.ArchivedSourcePositions("ev")
		return err == nil && string(pos) != string(before)
	})
	r.restart()
	s.waitConsumed(r)
	r.n.Check(produced, "after a crash after an archive")

	r.stop()
	r.loseLog()
	publish(250)
	r.start()
	s.waitConsumed(r)
	r.n.Check(produced, "after losing the log")
	if got := r.rawCount(); got != int64(len(produced)) {
		t.Fatalf("raw holds %d events, published %d", got, len(produced))
	}

	if faults.refused.Load() == 0 || faults.failed.Load() == 0 || faults.storedFailed.Load() == 0 {
		t.Fatalf("faults not all injected: %d refused, %d failed, %d failed after storing",
			faults.refused.Load(), faults.failed.Load(), faults.storedFailed.Load())
	}
	if st := r.src.Status(); st.Consumed == 0 || st.Kind != dataset.SourceNATS {
		t.Fatalf("status %+v", st)
	}
}

// TestNATSRejectsBadMessages skips, counts and reports messages that do
// not decode and stores every other one.
func TestNATSRejectsBadMessages(t *testing.T) {
	s := startNATS(t)
	r := newRig(t, s.source(), natsConfig())
	rnd := rand.New(rand.NewPCG(23, 24))
	var good []lambdatest.Row
	for _, bad := range badMessages {
		rows := lambdatest.RandomRows(rnd, 3)
		good = append(good, rows...)
		s.publishRows(rows[:2])
		s.publish("ev.bad", bad)
		s.publishRows(rows[2:])
	}
	r.start()
	s.waitConsumed(r)
	r.n.Check(good, "good messages stored")
	st := r.status()
	if st.Rejected != int64(len(badMessages)) || st.Consumed != int64(len(good)) || st.Lag != 0 {
		t.Fatalf("status: %d consumed, %d rejected; want %d and %d", st.Consumed, st.Rejected, len(good), len(badMessages))
	}
	if !strings.Contains(st.LastRejected, "stream=EV seq=") || !strings.Contains(st.LastRejected, "subject=ev.bad") ||
		!strings.Contains(st.LastRejected, "empty message") {
		t.Fatalf("last rejected %q does not say where and why", st.LastRejected)
	}
	// Only bad messages: nothing to store, but the source moves past them.
	for _, bad := range badMessages[:3] {
		s.publish("ev.bad", bad)
	}
	s.waitConsumed(r)
	r.n.Check(good, "after bad messages only")
}
