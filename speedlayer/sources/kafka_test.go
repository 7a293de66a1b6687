package sources_test

import (
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
	"github.com/duet-analytics/duet/speedlayer"
	"github.com/duet-analytics/duet/speedlayer/sources"
)

// kafkaTopic is the topic "ev" on an in-process Kafka cluster, and what
// was produced to it.
type kafkaTopic struct {
	t       *testing.T
	cluster *kfake.Cluster
	cl      *kgo.Client
	// ends is each partition's end offset: how many messages it holds.
	ends map[int32]int64
}

func startKafka(t *testing.T, partitions int32) *kafkaTopic {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "ev"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("ev"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &kafkaTopic{t: t, cluster: c, cl: cl, ends: map[int32]int64{}}
}

func (k *kafkaTopic) source() dataset.Source {
	return dataset.Source{Kind: dataset.SourceKafka, Brokers: k.cluster.ListenAddrs(), Topic: "ev"}
}

// produce writes values to partition p.
func (k *kafkaTopic) produce(p int32, values ...[]byte) {
	k.t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Partition: p, Value: v}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := k.cl.ProduceSync(context.Background(), recs...).FirstErr()
		if err == nil {
			break
		}
		// A partition just created is unknown to the producer until
		// its metadata refreshes.
		if time.Now().After(deadline) {
			k.t.Fatalf("produce to partition %d: %v", p, err)
		}
		k.cl.ForceMetadataRefresh()
		time.Sleep(10 * time.Millisecond)
	}
	k.ends[p] += int64(len(values))
}

// produceRows spreads rows over partitions 0..n-1.
func (k *kafkaTopic) produceRows(n int32, rows []lambdatest.Row) {
	k.t.Helper()
	byPart := map[int32][][]byte{}
	for i, r := range rows {
		byPart[int32(i)%n] = append(byPart[int32(i)%n], rowJSON(r))
	}
	for p, vs := range byPart {
		k.produce(p, vs...)
	}
}

// kafkaPositions reads the layer's positions as a Kafka source writes them.
func kafkaPositions(t *testing.T, b []byte) map[int32]int64 {
	t.Helper()
	if b == nil {
		return nil
	}
	var p struct {
		Topic      string          `json:"topic"`
		Partitions map[int32]int64 `json:"partitions"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Topic != "ev" {
		t.Fatalf("positions %s: %v", b, err)
	}
	return p.Partitions
}

// waitConsumed waits until the dataset's positions are at the end of every
// partition: every message produced has been stored or rejected.
func (k *kafkaTopic) waitConsumed(r *rig) {
	k.t.Helper()
	r.waitFor("every message consumed", func() bool {
		return maps.Equal(kafkaPositions(k.t, r.positions()), k.ends)
	})
}

// committed reads the consumer group's committed offsets.
func (k *kafkaTopic) committed(group string) map[int32]int64 {
	k.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = "ev"
	for p := range k.ends {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = []kmsg.OffsetFetchRequestTopic{rt}
	resp, err := req.RequestWith(context.Background(), k.cl)
	if err != nil {
		k.t.Fatal(err)
	}
	out := map[int32]int64{}
	add := func(p int32, off int64, code int16) {
		if err := kerr.ErrorForCode(code); err != nil {
			k.t.Fatalf("offset fetch of partition %d: %v", p, err)
		}
		if off >= 0 {
			out[p] = off
		}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			add(p.Partition, p.Offset, p.ErrorCode)
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(p.Partition, p.Offset, p.ErrorCode)
			}
		}
	}
	return out
}

func kafkaConfig() sources.Config {
	return sources.Config{MaxBatch: 17, MaxWait: time.Millisecond, RetryInterval: 5 * time.Millisecond,
		CommitInterval: 10 * time.Millisecond, MetadataMaxAge: 50 * time.Millisecond}
}

// TestKafkaExactlyOnceAcrossCrashes reads a topic of three partitions while
// the layer refuses or fails batches (before and after storing them), stops
// the source and the node mid-stream, after archives, and with the event log
// lost, and checks after each that raw and the view hold every produced
// event exactly once, and that the group's offsets follow the archive.
func TestKafkaExactlyOnceAcrossCrashes(t *testing.T) {
	const parts = 3
	k := startKafka(t, parts)
	r := newRig(t, k.source(), kafkaConfig())
	faults := &faultyLayer{}
	r.layer = func(l *speedlayer.Layer) sources.Layer { faults.Layer = l; return faults }
	rnd := rand.New(rand.NewPCG(11, 12))
	var produced []lambdatest.Row
	produce := func(n int) {
		rows := lambdatest.RandomRows(rnd, n)
		k.produceRows(parts, rows)
		produced = append(produced, rows...)
	}

	produce(400)
	r.start()
	r.waitFor("a first part stored", func() bool { return r.rawCount() >= 60 })
	t.Logf("crash with %d of %d messages stored", r.rawCount(), len(produced))
	r.restart()
	k.waitConsumed(r)
	r.n.Check(produced, "after a crash mid-stream")
	if got := r.rawCount(); got != int64(len(produced)) {
		t.Fatalf("raw holds %d events, produced %d", got, len(produced))
	}

	// More while running; crash once an archive holds part of them.
	before := r.archived()
	produce(300)
	r.waitFor("an archive of the new messages", func() bool {
		pos, err := r.n.Layer.ArchivedSourcePositions("ev")
		return err == nil && string(pos) != string(before)
	})
	r.restart()
	k.waitConsumed(r)
	r.n.Check(produced, "after a crash after an archive")

	// The log is lost with the node; messages arrive meanwhile. The
	// catalog's archived positions are where the source resumes.
	r.stop()
	r.loseLog()
	produce(250)
	r.start()
	k.waitConsumed(r)
	r.n.Check(produced, "after losing the log")

	// Archived positions reach the consumer group, for Kafka's tools.
	if err := r.n.Layer.Flush(context.Background(), "ev"); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the group's offsets at the end", func() bool { return maps.Equal(k.committed("duet-ev"), k.ends) })
	r.n.Check(produced, "at the end")

	if faults.refused.Load() == 0 || faults.failed.Load() == 0 || faults.storedFailed.Load() == 0 {
		t.Fatalf("faults not all injected: %d refused, %d failed, %d failed after storing",
			faults.refused.Load(), faults.failed.Load(), faults.storedFailed.Load())
	}
	// (The last batch may have been the one failed after storing: the
	// counts of this run are not exact, only the data is.)
	if st := r.src.Status(); st.Throttled == 0 || st.Consumed == 0 || st.Kind != dataset.SourceKafka {
		t.Fatalf("status %+v", st)
	}
}

// TestKafkaPartitionAddedWhileRunning adds a partition to the topic while
// the source reads it: the new partition is found and read from its start.
func TestKafkaPartitionAddedWhileRunning(t *testing.T) {
	k := startKafka(t, 2)
	r := newRig(t, k.source(), kafkaConfig())
	rnd := rand.New(rand.NewPCG(13, 14))
	produced := lambdatest.RandomRows(rnd, 100)
	k.produceRows(2, produced)
	r.start()
	k.waitConsumed(r)

	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "ev", 3
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(context.Background(), k.cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, t2 := range resp.Topics {
		if err := kerr.ErrorForCode(t2.ErrorCode); err != nil {
			t.Fatalf("create partition: %v", err)
		}
	}
	more := lambdatest.RandomRows(rnd, 30)
	for _, row := range more {
		k.produce(2, rowJSON(row))
	}
	produced = append(produced, more...)
	k.waitConsumed(r)
	r.n.Check(produced, "after a partition was added")
	// Resumed, the new partition continues from its positions.
	r.restart()
	again := lambdatest.RandomRows(rnd, 20)
	k.produceRows(3, again)
	produced = append(produced, again...)
	k.waitConsumed(r)
	r.n.Check(produced, "after a restart")
	if st := r.status(); st.Consumed != 20 || st.Rejected != 0 || st.Lag != 0 {
		t.Fatalf("status after the restart: %+v", st)
	}
}

// TestKafkaRejectsBadMessages skips, counts and reports messages that do
// not decode, stores every other one, and moves past a tail of only bad
// messages.
func TestKafkaRejectsBadMessages(t *testing.T) {
	k := startKafka(t, 2)
	r := newRig(t, k.source(), kafkaConfig())
	rnd := rand.New(rand.NewPCG(15, 16))
	var good []lambdatest.Row
	for i, bad := range badMessages {
		rows := lambdatest.RandomRows(rnd, 5)
		good = append(good, rows...)
		vals := [][]byte{rowJSON(rows[0]), rowJSON(rows[1]), bad, rowJSON(rows[2]), rowJSON(rows[3]), rowJSON(rows[4])}
		k.produce(int32(i%2), vals...)
	}
	r.start()
	k.waitConsumed(r)
	r.n.Check(good, "good messages stored")
	st := r.status()
	if st.Rejected != int64(len(badMessages)) || st.Consumed != int64(len(good)) {
		t.Fatalf("status: %d consumed, %d rejected; want %d and %d", st.Consumed, st.Rejected, len(good), len(badMessages))
	}
	if !strings.Contains(st.LastRejected, "topic=ev partition=1 offset=") || !strings.Contains(st.LastRejected, "empty message") {
		t.Fatalf("last rejected %q does not say where and why", st.LastRejected)
	}

	// Only bad messages: nothing to store, but the source moves past them.
	k.produce(0, badMessages[:3]...)
	k.waitConsumed(r)
	if st := r.status(); st.Rejected != int64(len(badMessages)+3) {
		t.Fatalf("rejected %d, want %d", st.Rejected, len(badMessages)+3)
	}
	r.n.Check(good, "after a batch of bad messages")
}
