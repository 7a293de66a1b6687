package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/testsvc"
)

// sourceFeed makes the walking skeleton's dataset read a real source: the
// test publishes its events there instead of posting them to duet.
type sourceFeed struct {
	spec    dataset.Source
	publish func(t *testing.T, events [][]byte)
}

// feed delivers requests batches of rows events, over HTTP or through the
// dataset's source, and waits until duet's log holds them all.
func (p *producer) feed(t *testing.T, d *proc, o serveOpts, requests, rows int) {
	t.Helper()
	if o.source == nil {
		p.ingest(t, d.client, requests, rows)
		return
	}
	for range requests {
		fs := p.next(rows)
		o.source.publish(t, bytes.Split(bytes.TrimSuffix(ndjson(fs), []byte("\n")), []byte("\n")))
		p.all = append(p.all, fs...)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ds, err := d.client.GetDataset(ctxT(t), "flights")
		if err != nil {
			t.Fatal(err)
		}
		if ds.Log.EndOffset == int64(len(p.all)) {
			return
		}
		if ds.Log.EndOffset > int64(len(p.all)) || time.Now().After(deadline) {
			t.Fatalf("dataset log ends at %d after %d events published (source status %+v)", ds.Log.EndOffset, len(p.all), ds.SourceStatus)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kafkaFeed is a topic of 3 partitions on franz-go's in-process Kafka
// cluster; events go to the partitions in turn.
func kafkaFeed(t *testing.T) *sourceFeed {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "flights"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("flights"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &sourceFeed{
		spec: dataset.Source{Kind: dataset.SourceKafka, Brokers: c.ListenAddrs(), Topic: "flights"},
		publish: func(t *testing.T, events [][]byte) {
			recs := make([]*kgo.Record, len(events))
			for i, e := range events {
				recs[i] = &kgo.Record{Value: e}
			}
			if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
				t.Fatalf("produce to Kafka: %v", err)
			}
		},
	}
}

// natsFeed is a JetStream stream on a real nats-server.
func natsFeed(t *testing.T) *sourceFeed {
	t.Helper()
	srv := testsvc.StartNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "FLIGHTS", Subjects: []string{"flights.>"}}); err != nil {
		t.Fatal(err)
	}
	return &sourceFeed{
		spec: dataset.Source{Kind: dataset.SourceNATS, URL: srv.URL(), Stream: "FLIGHTS"},
		publish: func(t *testing.T, events [][]byte) {
			futures := make([]jetstream.PubAckFuture, len(events))
			for i, e := range events {
				if futures[i], err = js.PublishAsync("flights.events", e); err != nil {
					t.Fatalf("publish to NATS: %v", err)
				}
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					t.Fatalf("publish to NATS: %v", err)
				case <-time.After(30 * time.Second):
					t.Fatal("no acknowledgement from JetStream within 30s")
				}
			}
		},
	}
}

func TestMergedViewOnS3PostgresAndKafka(t *testing.T) {
	st := startSharedStores(t)
	mergedViewThroughBuildsAndRestart(t, serveOpts{dataDir: t.TempDir(), flags: st.flags, env: st.env, source: kafkaFeed(t)})
}

func TestMergedViewOnS3PostgresAndNATS(t *testing.T) {
	st := startSharedStores(t)
	mergedViewThroughBuildsAndRestart(t, serveOpts{dataDir: t.TempDir(), flags: st.flags, env: st.env, source: natsFeed(t)})
}

// TestSourcedDatasetRefusesHTTPIngest: a dataset fed by a source takes its
// events only from there, and says so; its status shows the source's progress.
func TestSourcedDatasetRefusesHTTPIngest(t *testing.T) {
	feed := kafkaFeed(t)
	p := startServer(t, t.TempDir())
	spec := flightsSpec
	spec.Source = &feed.spec
	if _, err := p.client.CreateDataset(ctxT(t), spec); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.CreateView(ctxT(t), api.ViewRequest{Name: "delays", SQL: viewSQL}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.base+"/v1/ingest/flights", "application/x-ndjson", strings.NewReader(`{"date":"2026-11-01T00:00:00Z","delay":1,"origin":"AMS"}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), `reads its events from Kafka topic \"flights\": publish them there`) {
		t.Fatalf("HTTP ingest into a sourced dataset: %d %s; want 409 naming the topic", resp.StatusCode, body)
	}
	prod := newProducer(3)
	prod.feed(t, p, serveOpts{source: feed}, 2, 50)
	d, err := p.client.GetDataset(ctxT(t), "flights")
	if err != nil {
		t.Fatal(err)
	}
	if d.Source == nil || d.Source.Topic != "flights" || d.SourceStatus == nil || d.SourceStatus.Consumed != 100 || d.SourceStatus.Rejected != 0 {
		t.Fatalf("dataset %+v source status %+v: want the topic and 100 consumed", d.Source, d.SourceStatus)
	}
	assertExact(t, p, prod, "sourced dataset")
	p.stop(t)
}
