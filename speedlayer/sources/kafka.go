package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duet-analytics/duet/dataset"
)

// kafkaPositions is a Kafka source's positions: for each partition of the
// topic read so far, the offset of its next message.
type kafkaPositions struct {
	Topic      string          `json:"topic"`
	Partitions map[int32]int64 `json:"partitions"`
}

func parseKafkaPositions(topic string, b []byte) (kafkaPositions, error) {
	p := kafkaPositions{Topic: topic, Partitions: map[int32]int64{}}
	if b == nil {
		return p, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("read kafka positions %q: %w", b, err)
	}
	if p.Topic != topic {
		return p, fmt.Errorf("the dataset's positions are in topic %q but its source reads topic %q", p.Topic, topic)
	}
	if p.Partitions == nil {
		p.Partitions = map[int32]int64{}
	}
	return p, nil
}

// kafkaStream reads every partition of a topic directly (no group
// membership: duet, not the group, assigns and positions the partitions).
// Partitions are found at start and then every MetadataMaxAge, and one not
// in the positions is read from its earliest offset.
type kafkaStream struct {
	cl     *kgo.Client
	topic  string
	group  string
	logger *slog.Logger

	// next and hw (high watermarks, for the lag) are poll's own.
	next map[int32]int64
	hw   map[int32]int64

	mu       sync.Mutex
	assigned map[int32]bool
	start    map[int32]int64 // the positions opened with
	topicID  [16]byte        // from metadata; OffsetCommit v10+ names topics by ID

	stop context.CancelFunc
	wg   sync.WaitGroup
}

func openKafka(ctx context.Context, name string, src dataset.Source, cfg Config, positions []byte, logger *slog.Logger) (stream, error) {
	pos, err := parseKafkaPositions(src.Topic, positions)
	if err != nil {
		return nil, err
	}
	minAge := max(10*time.Millisecond, min(5*time.Second, cfg.MetadataMaxAge))
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(src.Brokers...),
		kgo.ClientID("duet-"+name),
		kgo.MetadataMinAge(minAge),
		kgo.MetadataMaxAge(max(minAge, cfg.MetadataMaxAge)),
		// Aborted transactions' messages were never written, as far as
		// readers of the topic are concerned.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A partition found while a fetch waits on the others joins the
		// next fetch: a short wait bounds how late its first messages are.
		kgo.FetchMaxWait(time.Second),
		kgo.WithLogger(kgoLogger{logger}),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", src.Brokers, err)
	}
	k := &kafkaStream{
		cl: cl, topic: src.Topic, group: src.Group, logger: logger,
		next: map[int32]int64{}, hw: map[int32]int64{},
		assigned: map[int32]bool{}, start: pos.Partitions,
	}
	for p, off := range pos.Partitions {
		k.next[p] = off
	}
	parts, err := k.partitions(ctx)
	if err != nil {
		cl.Close()
		return nil, err
	}
	k.assign(parts)
	bg, stop := context.WithCancel(context.Background())
	k.stop = stop
	k.wg.Go(func() { k.watchPartitions(bg, cfg.MetadataMaxAge) })
	return k, nil
}

// partitions asks the cluster for the topic's partitions.
func (k *kafkaStream) partitions(ctx context.Context) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(k.topic)
	req.Topics = []kmsg.MetadataRequestTopic{t}
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return nil, fmt.Errorf("kafka metadata of topic %q: %w", k.topic, err)
	}
	var out []int32
	for _, rt := range resp.Topics {
		if rt.Topic == nil || *rt.Topic != k.topic {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return nil, fmt.Errorf("kafka topic %q: %w", k.topic, err)
		}
		k.mu.Lock()
		k.topicID = rt.TopicID
		k.mu.Unlock()
		for _, p := range rt.Partitions {
			out = append(out, p.Partition)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kafka topic %q: the cluster lists no partitions of it", k.topic)
	}
	slices.Sort(out)
	return out, nil
}

// assign starts reading the partitions not read yet: after their
// positions, or from their earliest offset when they have none.
func (k *kafkaStream) assign(parts []int32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	add := map[int32]kgo.Offset{}
	for _, p := range parts {
		if k.assigned[p] {
			continue
		}
		if off, ok := k.start[p]; ok {
			add[p] = kgo.NewOffset().At(off)
		} else {
			add[p] = kgo.NewOffset().AtStart()
		}
		if len(k.assigned) > 0 {
			k.logger.Info("kafka partition found; reading it from its earliest offset", "topic", k.topic, "partition", p)
		}
	}
	if len(add) == 0 {
		return
	}
	k.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{k.topic: add})
	for p := range add {
		k.assigned[p] = true
	}
}

func (k *kafkaStream) watchPartitions(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		parts, err := k.partitions(ctx)
		if err != nil {
			if ctx.Err() == nil {
				k.logger.Warn("look for new kafka partitions; retried", "err", err)
			}
			continue
		}
		k.assign(parts)
	}
}

func (k *kafkaStream) poll(ctx context.Context, maxMsgs int, wait time.Duration) (batch, error) {
	var (
		msgs     []message
		deadline time.Time
	)
	for len(msgs) < maxMsgs {
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			break
		}
		fetches := k.pollUntil(ctx, deadline, maxMsgs-len(msgs))
		if err := ctx.Err(); err != nil {
			return batch{}, err
		}
		var ferr error
		fetches.EachError(func(topic string, p int32, err error) {
			var loss *kgo.ErrDataLoss
			switch {
			case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			case errors.As(err, &loss):
				// The offset to resume from is gone (retention, or the
				// topic was recreated): the client went on from the
				// earliest offset it has, and that loss is the source's.
				k.logger.Error("kafka partition lost messages before duet read them", "topic", topic, "partition", p, "err", err)
			default:
				ferr = errors.Join(ferr, fmt.Errorf("kafka topic %q partition %d: %w", topic, p, err))
			}
		})
		if ferr != nil {
			return batch{}, ferr
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				msgs = append(msgs, message{value: r.Value, partition: r.Partition, offset: r.Offset})
				k.next[r.Partition] = r.Offset + 1
			}
			if p.HighWatermark >= 0 {
				k.hw[p.Partition] = p.HighWatermark
			}
		})
		if len(msgs) > 0 && deadline.IsZero() {
			deadline = time.Now().Add(wait)
		}
	}
	positions, err := json.Marshal(kafkaPositions{Topic: k.topic, Partitions: k.next})
	if err != nil {
		return batch{}, err
	}
	lag := int64(-1)
	if len(k.hw) > 0 {
		lag = 0
	}
	for p, hw := range k.hw {
		if n, ok := k.next[p]; ok && hw > n {
			lag += hw - n
		}
	}
	return batch{msgs: msgs, positions: positions, lag: lag}, nil
}

// pollUntil polls for up to n records, waiting at most until deadline
// unless it is zero.
func (k *kafkaStream) pollUntil(ctx context.Context, deadline time.Time, n int) kgo.Fetches {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return k.cl.PollRecords(ctx, n)
}

func (k *kafkaStream) where(m message) []any {
	return []any{"topic", k.topic, "partition", m.partition, "offset", m.offset}
}

// commit commits positions as the group's offsets the way admin tools do
// (no member, generation -1): the group never joins, so its offsets are
// for people and tools to read, and duet never reads them back.
func (k *kafkaStream) commit(ctx context.Context, positions []byte) error {
	pos, err := parseKafkaPositions(k.topic, positions)
	if err != nil {
		return err
	}
	if len(pos.Partitions) == 0 {
		return nil
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = k.group
	req.Generation = -1
	t := kmsg.NewOffsetCommitRequestTopic()
	k.mu.Lock()
	t.Topic, t.TopicID = k.topic, k.topicID
	k.mu.Unlock()
	for p, off := range pos.Partitions {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, off
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = []kmsg.OffsetCommitRequestTopic{t}
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", k.group, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return fmt.Errorf("commit offset of group %q, topic %q partition %d: %w", k.group, rt.Topic, rp.Partition, err)
			}
		}
	}
	return nil
}

func (k *kafkaStream) close() {
	k.stop()
	k.wg.Wait()
	k.cl.Close()
}

// kgoLogger passes the Kafka client's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (g kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (g kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		g.l.Error("kafka client: "+msg, keyvals...)
	case kgo.LogLevelWarn:
		g.l.Warn("kafka client: "+msg, keyvals...)
	default:
		g.l.Debug("kafka client: "+msg, keyvals...)
	}
}
