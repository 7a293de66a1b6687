package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duet-analytics/duet/dataset"
)

// natsPositions is a JetStream source's positions: the stream sequence of
// the next message to read.
type natsPositions struct {
	Stream string `json:"stream"`
	Next   uint64 `json:"next"`
}

func parseNATSPositions(stream string, b []byte) (natsPositions, error) {
	p := natsPositions{Stream: stream, Next: 1}
	if b == nil {
		return p, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("read nats positions %q: %w", b, err)
	}
	if p.Stream != stream {
		return p, fmt.Errorf("the dataset's positions are in stream %q but its source reads stream %q", p.Stream, stream)
	}
	if p.Next == 0 {
		return p, fmt.Errorf("read nats positions %q: stream sequences start at 1", b)
	}
	return p, nil
}

// natsStream reads a stream through an ordered consumer: ephemeral, without
// acks, started at the next sequence of the positions, and recreated by the
// client at the sequence after the last delivered message whenever it is
// lost (a server restart), so messages arrive once and in order.
type natsStream struct {
	nc      *nats.Conn
	it      jetstream.MessagesContext
	stream  string
	subject string
	next    uint64
}

func openNATS(ctx context.Context, name string, src dataset.Source, cfg Config, positions []byte, logger *slog.Logger) (stream, error) {
	pos, err := parseNATSPositions(src.Stream, positions)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(src.URL,
		nats.Name("duet-"+name),
		// Keep reconnecting: the consumer survives a server restart.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected; reconnecting", "err", err)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", src.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if st, err := js.Stream(ctx, src.Stream); err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream stream %q: %w", src.Stream, err)
	} else if last := st.CachedInfo().State.LastSeq; pos.Next > last+1 {
		// Sequences are never reused within a stream: one that has not
		// reached the positions was deleted and created again. Reading
		// waits until it gets there; say so rather than seem stuck.
		logger.Warn("the dataset's positions are past the stream's last message: was the stream recreated? messages before the positions are not read",
			"stream", src.Stream, "next", pos.Next, "last_seq", last)
	}
	ocfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if pos.Next > 1 {
		ocfg.DeliverPolicy, ocfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, pos.Next
	}
	if src.Subject != "" {
		ocfg.FilterSubjects = []string{src.Subject}
	}
	cons, err := js.OrderedConsumer(ctx, src.Stream, ocfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream consumer of stream %q from sequence %d: %w", src.Stream, pos.Next, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(cfg.MaxBatch, 10_000)))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read jetstream stream %q: %w", src.Stream, err)
	}
	return &natsStream{nc: nc, it: it, stream: src.Stream, subject: src.Subject, next: pos.Next}, nil
}

func (n *natsStream) poll(ctx context.Context, maxMsgs int, wait time.Duration) (batch, error) {
	var (
		msgs []message
		lag  int64 = -1
	)
	// gather ends wait after the first message: the batch is then complete.
	gather, stop := context.WithCancel(ctx)
	defer stop()
	for len(msgs) < maxMsgs {
		msg, err := n.it.Next(jetstream.NextContext(gather))
		if err != nil {
			if ctx.Err() != nil {
				return batch{}, ctx.Err()
			}
			if len(msgs) > 0 && gather.Err() != nil {
				break
			}
			return batch{}, fmt.Errorf("read jetstream stream %q: %w", n.stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return batch{}, fmt.Errorf("read jetstream stream %q: message metadata: %w", n.stream, err)
		}
		msgs = append(msgs, message{value: msg.Data(), offset: int64(md.Sequence.Stream), subject: msg.Subject()})
		n.next = md.Sequence.Stream + 1
		lag = int64(md.NumPending)
		if len(msgs) == 1 {
			t := time.AfterFunc(wait, stop)
			defer t.Stop()
		}
	}
	positions, err := json.Marshal(natsPositions{Stream: n.stream, Next: n.next})
	if err != nil {
		return batch{}, err
	}
	return batch{msgs: msgs, positions: positions, lag: lag}, nil
}

func (n *natsStream) where(m message) []any {
	return []any{"stream", n.stream, "seq", m.offset, "subject", m.subject}
}

// commit does nothing: an ordered consumer has no durable state to report to.
func (n *natsStream) commit(context.Context, []byte) error { return nil }

func (n *natsStream) close() {
	n.it.Stop()
	n.nc.Close()
}
