// Package sources reads datasets' events from the external logs they name
// (dataset.Source): a Kafka topic or a NATS JetStream stream, exactly once.
//
// The source stays the system of record. Each batch of messages goes to the
// speed layer with the source's positions after it
// (speedlayer.Layer.IngestSourced), which stores both in one log frame and
// archives them in one catalog transaction; a Source always resumes from
// the layer's SourcePositions, never from its own memory or from the
// source's consumer groups. So a crash at any point, of duet or of the
// source, neither loses nor duplicates a message: the batch in flight is
// either durable with its positions, and is not read again, or not durable
// at all, and is read again.
//
// A message that does not decode into a row of the dataset is skipped,
// counted and logged with where it is (topic/partition/offset or
// stream/sequence) and why; it never stops the stream. A batch the speed
// layer refuses for memory (backpressure) is retried as it is until taken.
// Any other failure reconnects and resumes from the layer's positions.
package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/ingest"
	"github.com/duet-analytics/duet/speedlayer"
)

// Layer is what a Source needs of the speed layer (*speedlayer.Layer).
type Layer interface {
	// SourcePositions is where to resume: after the last record stored.
	SourcePositions(dataset string) ([]byte, error)
	// ArchivedSourcePositions is where the source stood at the archive's end.
	ArchivedSourcePositions(dataset string) ([]byte, error)
	// IngestSourced stores rec (nil when every message was rejected)
	// together with the positions after it.
	IngestSourced(ctx context.Context, dataset string, rec arrow.RecordBatch, positions []byte) (speedlayer.Ingested, error)
}

// Config tunes how a Source batches and retries.
type Config struct {
	// MaxBatch is the most messages one batch holds (default 10,000).
	MaxBatch int `yaml:"max_batch"`
	// MaxWait is how long a batch waits for more messages after its first
	// (default 10ms): the freshness a busy stream trades for larger batches.
	MaxWait time.Duration `yaml:"max_wait"`
	// RetryInterval is how long to wait before reconnecting after a
	// failure (default 1s); it doubles while failures follow each other
	// without a batch stored between them, up to 30s.
	RetryInterval time.Duration `yaml:"retry_interval"`
	// CommitInterval is how often a Kafka source commits the archived
	// offsets to its consumer group (default 5s).
	CommitInterval time.Duration `yaml:"commit_interval"`
	// MetadataMaxAge is how often a Kafka source refreshes the topic's
	// metadata, which finds partitions added while it runs (default 30s).
	MetadataMaxAge time.Duration `yaml:"metadata_max_age"`
	// Allocator allocates decoded batches; nil means memory.DefaultAllocator.
	Allocator memory.Allocator `yaml:"-"`
}

// DefaultConfig holds the defaults Validate fills in.
func DefaultConfig() Config {
	return Config{MaxBatch: 10_000, MaxWait: 10 * time.Millisecond, RetryInterval: time.Second,
		CommitInterval: 5 * time.Second, MetadataMaxAge: 30 * time.Second}
}

// Validate fills defaults and names a bad field.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.MaxWait == 0 {
		c.MaxWait = d.MaxWait
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = d.RetryInterval
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = d.CommitInterval
	}
	if c.MetadataMaxAge == 0 {
		c.MetadataMaxAge = d.MetadataMaxAge
	}
	if c.Allocator == nil {
		c.Allocator = memory.DefaultAllocator
	}
	switch {
	case c.MaxBatch < 0:
		return fmt.Errorf("sources.max_batch: must be positive, got %d", c.MaxBatch)
	case c.MaxWait < 0:
		return fmt.Errorf("sources.max_wait: must be positive, got %s", c.MaxWait)
	case c.RetryInterval < 0:
		return fmt.Errorf("sources.retry_interval: must be positive, got %s", c.RetryInterval)
	case c.CommitInterval < 0:
		return fmt.Errorf("sources.commit_interval: must be positive, got %s", c.CommitInterval)
	case c.MetadataMaxAge < 0:
		return fmt.Errorf("sources.metadata_max_age: must be positive, got %s", c.MetadataMaxAge)
	}
	return nil
}

// Status is what a Source has done since it started.
type Status struct {
	Dataset string
	Kind    dataset.SourceKind
	// Consumed counts messages stored in the dataset; Rejected messages
	// that did not decode (skipped); Batches the batches handed to the layer.
	Consumed, Rejected, Batches int64
	// Throttled counts the times the speed layer refused a batch for
	// memory; the batch was retried.
	Throttled int64
	// Lag is how many messages the source holds after Positions, as of
	// the last batch; -1 when unknown.
	Lag int64
	// Positions is where the source stands after the last batch (the
	// source's own encoding, JSON).
	Positions string
	// LastRejected says where the last rejected message was and why.
	LastRejected string
	// LastError is the last failure (reconnected after) or refusal, and
	// LastErrorAt when it happened.
	LastError   string
	LastErrorAt time.Time
}

// message is one message read from a source.
type message struct {
	value []byte
	// partition (Kafka) and offset (Kafka offset, JetStream stream
	// sequence) say where it is; subject is a JetStream message's subject.
	partition int32
	offset    int64
	subject   string
}

// batch is what one poll of a stream returns.
type batch struct {
	msgs []message
	// positions is where the stream stands after msgs.
	positions []byte
	// lag is how many messages remain after them, -1 when unknown.
	lag int64
}

// stream is one connection to a source, positioned after the positions it
// was opened with.
type stream interface {
	// poll waits for a message (or ctx's end), then gathers up to max
	// messages for at most wait and returns them.
	poll(ctx context.Context, max int, wait time.Duration) (batch, error)
	// where describes a message's place for logs, as slog key/value pairs.
	where(m message) []any
	// commit reports the archived positions to the source's own bookkeeping
	// (Kafka consumer group offsets); best effort.
	commit(ctx context.Context, positions []byte) error
	close()
}

// opener connects to the source and positions a stream after positions
// (nil: at the source's beginning).
type opener func(ctx context.Context, positions []byte) (stream, error)

// Source reads one dataset's events from its source into the speed layer.
type Source struct {
	spec    dataset.Spec
	layer   Layer
	cfg     Config
	logger  *slog.Logger
	metrics *Metrics
	open    opener
	// commits is false for a source with nothing to commit to.
	commits bool
	rejects rejectSampler

	mu     sync.Mutex
	status Status
}

// New makes a Source for spec, whose Source must be set and validated.
// metrics may be nil.
func New(spec dataset.Spec, layer Layer, cfg Config, logger *slog.Logger, metrics *Metrics) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if spec.Source == nil {
		return nil, fmt.Errorf("dataset %q: no source to read from", spec.Name)
	}
	if spec.Source.Format != dataset.FormatJSON {
		return nil, fmt.Errorf("dataset %q: source.format %q: only json is supported", spec.Name, spec.Source.Format)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	s := &Source{
		spec: spec, layer: layer, cfg: cfg, metrics: metrics,
		logger:  logger.With("dataset", spec.Name, "source", string(spec.Source.Kind)),
		rejects: rejectSampler{window: time.Minute, limit: 20},
		status:  Status{Dataset: spec.Name, Kind: spec.Source.Kind, Lag: -1},
	}
	switch spec.Source.Kind {
	case dataset.SourceKafka:
		s.open = func(ctx context.Context, positions []byte) (stream, error) {
			return openKafka(ctx, spec.Name, *spec.Source, cfg, positions, s.logger)
		}
		s.commits = true
	case dataset.SourceNATS:
		s.open = func(ctx context.Context, positions []byte) (stream, error) {
			return openNATS(ctx, spec.Name, *spec.Source, cfg, positions, s.logger)
		}
	default:
		return nil, fmt.Errorf("dataset %q: source.kind %q: unknown source", spec.Name, spec.Source.Kind)
	}
	return s, nil
}

// Status returns what the source has done so far.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Run reads the source until ctx is cancelled, reconnecting after failures,
// and then returns nil.
func (s *Source) Run(ctx context.Context) error {
	wait := s.cfg.RetryInterval
	for {
		progressed, err := s.consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			wait = s.cfg.RetryInterval
		}
		s.failed(err)
		s.logger.Error("source failed; resuming from the dataset's positions", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, max(s.cfg.RetryInterval, maxRetryInterval))
	}
}

// maxRetryInterval bounds the wait between reconnections.
const maxRetryInterval = 30 * time.Second

// consume connects at the layer's positions and ingests batches until an
// error or ctx's end; progressed tells whether it stored any batch.
func (s *Source) consume(ctx context.Context) (progressed bool, err error) {
	positions, err := s.layer.SourcePositions(s.spec.Name)
	if err != nil {
		return false, fmt.Errorf("read the dataset's source positions: %w", err)
	}
	st, err := s.open(ctx, positions)
	if err != nil {
		return false, err
	}
	defer st.close()
	s.logger.Info("source connected", "positions", string(positions))

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // the committer stops before st closes
	if s.commits {
		wg.Go(func() { s.commitArchived(ctx, st) })
	}

	dec := ingest.NewJSONMessages(&s.spec, s.cfg.Allocator)
	defer dec.Release()
	for {
		b, err := st.poll(ctx, s.cfg.MaxBatch, s.cfg.MaxWait)
		if err != nil {
			return progressed, err
		}
		var rejected int64
		for _, m := range b.msgs {
			if err := dec.Add(m.value); err != nil {
				rejected++
				s.reject(st, m, err)
			}
		}
		rec, err := dec.Finish()
		if err != nil {
			return progressed, err
		}
		err = s.ingest(ctx, rec, b.positions)
		var stored int64
		if rec != nil {
			stored = rec.NumRows()
			rec.Release()
		}
		if err != nil {
			return progressed, fmt.Errorf("store a batch of %d messages: %w", len(b.msgs), err)
		}
		progressed = true
		s.consumed(stored, rejected, b)
	}
}

// ingest hands a batch to the layer, waiting out backpressure: the batch is
// retried as it is, so nothing is dropped and the stream simply slows down.
func (s *Source) ingest(ctx context.Context, rec arrow.RecordBatch, positions []byte) error {
	for {
		_, err := s.layer.IngestSourced(ctx, s.spec.Name, rec, positions)
		var be *speedlayer.BudgetError
		if !errors.As(err, &be) {
			return err
		}
		s.mu.Lock()
		s.status.Throttled++
		s.status.LastError, s.status.LastErrorAt = err.Error(), time.Now()
		s.mu.Unlock()
		s.metrics.throttled.WithLabelValues(s.spec.Name).Inc()
		if !sleep(ctx, max(be.RetryAfter, 10*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

func (s *Source) consumed(stored, rejected int64, b batch) {
	s.mu.Lock()
	s.status.Consumed += stored
	s.status.Rejected += rejected
	s.status.Batches++
	s.status.Lag = b.lag
	s.status.Positions = string(b.positions)
	s.mu.Unlock()
	s.metrics.consumed.WithLabelValues(s.spec.Name).Add(float64(stored))
	s.metrics.lag.WithLabelValues(s.spec.Name).Set(float64(b.lag))
}

func (s *Source) reject(st stream, m message, err error) {
	var re *ingest.RowError
	reason := err.Error()
	if errors.As(err, &re) {
		reason = re.Reason
		if re.Column != "" {
			reason = fmt.Sprintf("column %q: %s", re.Column, re.Reason)
		}
	}
	args := append(st.where(m), "reason", reason)
	s.mu.Lock()
	s.status.LastRejected = keyValues(args)
	s.mu.Unlock()
	s.metrics.rejected.WithLabelValues(s.spec.Name).Inc()
	if log, suppressed := s.rejects.allow(time.Now()); log {
		if suppressed > 0 {
			args = append(args, "not_logged_before", suppressed)
		}
		s.logger.Warn("message rejected: skipped", args...)
	}
}

func (s *Source) failed(err error) {
	s.mu.Lock()
	s.status.LastError, s.status.LastErrorAt = err.Error(), time.Now()
	s.mu.Unlock()
	s.metrics.failures.WithLabelValues(s.spec.Name).Inc()
}

// commitArchived reports the archived positions to the source every
// CommitInterval when they moved. Only archived ones: they can no longer be
// taken back by a crash, so the source's view never runs ahead of duet's.
func (s *Source) commitArchived(ctx context.Context, st stream) {
	var last []byte
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pos, err := s.layer.ArchivedSourcePositions(s.spec.Name)
		if err != nil || pos == nil || string(pos) == string(last) {
			continue
		}
		if err := st.commit(ctx, pos); err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("commit archived positions to the source (best effort; retried)", "err", err)
			}
			continue
		}
		last = pos
	}
}

// keyValues writes slog key/value pairs as k=v k=v.
func keyValues(kv []any) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%v=%v", kv[i], kv[i+1])
	}
	return b.String()
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// rejectSampler logs at most limit rejected messages per window; every
// message is still counted, and the next logged one says how many were not.
type rejectSampler struct {
	window     time.Duration
	limit      int
	start      time.Time
	n          int
	suppressed int
}

func (r *rejectSampler) allow(now time.Time) (ok bool, suppressed int) {
	if now.Sub(r.start) >= r.window {
		r.start, r.n = now, 0
	}
	if r.n >= r.limit {
		r.suppressed++
		return false, 0
	}
	r.n++
	suppressed, r.suppressed = r.suppressed, 0
	return true, suppressed
}

// Metrics are the sources' metrics, shared by every Source of a server.
type Metrics struct {
	consumed, rejected, throttled, failures *prometheus.CounterVec
	lag                                     *prometheus.GaugeVec
}

// NewMetrics makes the metrics and registers them with reg unless it is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_source_messages_total", Help: "Messages read from a dataset's source and stored.",
		}, []string{"dataset"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_source_rejected_total", Help: "Messages of a dataset's source skipped because they did not decode.",
		}, []string{"dataset"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_source_throttled_total", Help: "Batches the speed layer refused for memory and the source retried.",
		}, []string{"dataset"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_source_failures_total", Help: "Times a source failed and resumed from the dataset's positions.",
		}, []string{"dataset"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "duet_source_lag_messages", Help: "Messages in the source after the last batch read (-1: unknown).",
		}, []string{"dataset"}),
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.rejected, m.throttled, m.failures, m.lag)
	}
	return m
}
