// Package sqlgateway serves SQL over the Trino client protocol (v1), so
// that unmodified Trino clients (trino-go-client, the JS trino-client, JDBC,
// the CLI) query duet. Statements run on a DuckDB database whose catalog
// "duet" holds the schemas views and raw; the gateway is read-only.
//
// The protocol is a chain of HTTP documents: POST /v1/statement answers a
// QUEUED document with a nextUri, and every GET of a nextUri answers the
// next page of rows until a document without nextUri ends the query. Each
// query runs in its own goroutine on its own DuckDB connection and hands its
// pages to the polling clients through a channel, so a slow client holds the
// query back rather than the gateway buffering its result.
package sqlgateway

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/dataset"
)

// Config configures a Gateway. Zero fields take the defaults below.
type Config struct {
	// Catalog is the Trino catalog name, which is also the DuckDB database
	// the statements run in. Default "duet".
	Catalog string `yaml:"catalog"`
	// PageRows bounds the rows of one result document; a document is also
	// cut at about 1 MiB of JSON. Default 1000.
	PageRows int `yaml:"page_rows"`
	// QueryTimeout bounds a query's life, from submission to its last page;
	// a query that exceeds it fails with EXCEEDED_TIME_LIMIT. Default 5m.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// AbandonAfter cancels a query no client has polled for this long.
	// Default 5m.
	AbandonAfter time.Duration `yaml:"abandon_after"`
	// MaxConcurrent bounds the queries running at once; more wait, QUEUED,
	// and run fairly across users. Default 8.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxQueued bounds the queries waiting; beyond it a query fails with
	// QUERY_QUEUE_FULL. Default 1000.
	MaxQueued int `yaml:"max_queued"`
	// MaxResultRows fails a query whose result has more rows. Default
	// 1,000,000; -1 means no limit.
	MaxResultRows int64 `yaml:"max_result_rows"`
	// HistorySize is how many finished queries system.queries keeps.
	// Default 1000.
	HistorySize int `yaml:"history_size"`
	// Version is the server version clients see in /v1/info and
	// SELECT version(). Clients parse a leading number from it. Default "476-duet".
	Version string `yaml:"version"`
	// Authorizer decides which relations each user's SELECTs may read;
	// nil lets every user read every relation of the sandbox.
	Authorizer Authorizer `yaml:"-"`
	// Routing sends statements to other Trino clusters (see routing.go);
	// without clusters every statement runs here.
	Routing RoutingConfig `yaml:"routing"`
}

// Defaults of the query limits, for flags that show them.
const (
	DefaultMaxConcurrent = 8
	DefaultMaxQueued     = 1000
	DefaultMaxResultRows = 1_000_000
	DefaultHistorySize   = 1000
)

const (
	defaultCatalog      = "duet"
	defaultPageRows     = 1000
	defaultQueryTimeout = 5 * time.Minute
	defaultAbandonAfter = 5 * time.Minute
	defaultVersion      = "476-duet"

	// maxPageBytes cuts a document once its rows reach this much JSON.
	maxPageBytes = 1 << 20
	// maxStatementBytes bounds the SQL text of one statement.
	maxStatementBytes = 16 << 20
	// longPollWait is how long a GET waits for rows before answering a
	// document without them (Trino's default maxWait).
	longPollWait = time.Second
	// finishedRetention keeps a finished query so that a retried GET of its
	// last document still gets it.
	finishedRetention = 2 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.Catalog == "" {
		c.Catalog = defaultCatalog
	}
	if c.PageRows == 0 {
		c.PageRows = defaultPageRows
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = defaultQueryTimeout
	}
	if c.AbandonAfter == 0 {
		c.AbandonAfter = defaultAbandonAfter
	}
	if c.Version == "" {
		c.Version = defaultVersion
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.MaxResultRows == 0 {
		c.MaxResultRows = DefaultMaxResultRows
	}
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	return c
}

// Validate reports the first invalid field. Zero fields are valid: they
// take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case !dataset.ValidIdentifier(c.Catalog):
		return fmt.Errorf("sqlgateway: catalog %q must be a plain identifier (letters, digits, underscores)", c.Catalog)
	case c.PageRows < 1:
		return fmt.Errorf("sqlgateway: page_rows must be at least 1, got %d", c.PageRows)
	case c.QueryTimeout < 0:
		return fmt.Errorf("sqlgateway: query_timeout must be positive, got %s", c.QueryTimeout)
	case c.AbandonAfter < 0:
		return fmt.Errorf("sqlgateway: abandon_after must be positive, got %s", c.AbandonAfter)
	case c.MaxConcurrent < 1 || c.MaxQueued < 1 || c.HistorySize < 1:
		return fmt.Errorf("sqlgateway: max_concurrent, max_queued and history_size must be at least 1, got %d, %d and %d", c.MaxConcurrent, c.MaxQueued, c.HistorySize)
	case c.MaxResultRows < -1:
		return fmt.Errorf("sqlgateway: max_result_rows must be positive, or -1 for no limit, got %d", c.MaxResultRows)
	case c.Version[0] < '0' || c.Version[0] > '9':
		return fmt.Errorf("sqlgateway: version %q must start with a number, as clients parse it (e.g. \"476-duet\")", c.Version)
	}
	if err := c.Routing.Validate(); err != nil {
		return fmt.Errorf("sqlgateway: %w", err)
	}
	return nil
}

// Gateway answers the Trino client protocol. Create it with New, serve its
// Handler and run Run for its lifetime.
type Gateway struct {
	cfg     Config
	db      *sql.DB
	logger  *slog.Logger
	metrics *metrics
	started time.Time
	// node distinguishes this process's query ids from other gateways'.
	node string

	mu      sync.Mutex
	queries map[string]*query
	seq     int64
	closed  bool

	producers sync.WaitGroup
	running   atomic.Int64
	admission *admission
	history   *history
	// router is nil when no cluster is configured.
	router  *router
	schemas schemaCache
	conns   *schemaConns
	shapes  *shapeCache
}

// New creates a Gateway running statements on db. A nil logger discards
// logs; a nil registerer skips metric registration.
func New(cfg Config, db *sql.DB, logger *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("sqlgateway: a DuckDB database is required")
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := installInfoSchema(context.Background(), db, cfg.Catalog, cfg.Authorizer); err != nil {
		return nil, fmt.Errorf("sqlgateway: %w", err)
	}
	if err := installFunctions(context.Background(), db, cfg.Catalog); err != nil {
		return nil, fmt.Errorf("sqlgateway: %w", err)
	}
	g := &Gateway{
		cfg:     cfg,
		db:      db,
		logger:  logger,
		started: time.Now(),
		node:    randomHex(3),
		queries: map[string]*query{},

		admission: newAdmission(cfg.MaxConcurrent, cfg.MaxQueued),
		history:   &history{size: cfg.HistorySize},
		conns:     newSchemaConns(cfg.MaxConcurrent),
	}
	m, err := newMetrics(reg, g)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	if g.shapes, err = newShapeCache(reg); err != nil {
		return nil, err
	}
	if len(cfg.Routing.Clusters) > 0 {
		if g.router, err = newRouter(cfg.Routing, cfg.AbandonAfter, logger, reg); err != nil {
			return nil, err
		}
		if cfg.Authorizer != nil {
			g.router.authorize = g.routable
		}
	}
	return g, nil
}

// Run reaps abandoned and finished queries until ctx ends, then cancels
// every running query, waits for them to stop and returns nil.
func (g *Gateway) Run(ctx context.Context) error {
	tick := g.cfg.AbandonAfter / 4
	tick = min(max(tick, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	if g.router != nil {
		monitored := make(chan struct{})
		go func() { defer close(monitored); g.router.monitor(ctx) }()
		defer func() { <-monitored }()
	}
	for {
		select {
		case <-ctx.Done():
			g.shutdown()
			return nil
		case now := <-t.C:
			g.reap(now)
		}
	}
}

// shutdown refuses new queries and cancels the running ones.
func (g *Gateway) shutdown() {
	g.mu.Lock()
	g.closed = true
	qs := make([]*query, 0, len(g.queries))
	for _, q := range g.queries {
		qs = append(qs, q)
	}
	g.mu.Unlock()
	for _, q := range qs {
		q.cancel(errShutdown)
	}
	g.producers.Wait()
	g.conns.close()
}

// reap cancels queries nobody polls and forgets finished ones.
func (g *Gateway) reap(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, q := range g.queries {
		if done := q.doneAt.Load(); done != 0 {
			if now.Sub(time.Unix(0, done)) > finishedRetention {
				delete(g.queries, id)
			}
			continue
		}
		if q.polling.Load() > 0 {
			continue
		}
		if idle := now.Sub(time.Unix(0, q.lastPoll.Load())); idle > g.cfg.AbandonAfter {
			g.logger.Info("cancelling abandoned query", "query_id", id, "user", q.sess.user, "idle", idle.Round(time.Millisecond))
			q.cancel(errAbandoned)
			delete(g.queries, id)
		}
	}
}

// register creates a query for sql, starts running it and returns the
// answer to its submission; base is the URL prefix of its URIs.
func (g *Gateway) register(sqlText string, sess *session, sessErr *queryError, base string) (*servedDoc, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, false
	}
	g.seq++
	now := time.Now()
	id := fmt.Sprintf("%s_%05d_%s", now.UTC().Format("20060102_150405"), g.seq%100000, g.node)
	timeout := g.cfg.QueryTimeout
	if sess != nil && sess.maxRunTime > 0 {
		timeout = min(timeout, sess.maxRunTime)
	}
	q := newQuery(id, randomHex(8), sqlText, sess, now, timeout)
	q.served = q.queued(base)
	g.queries[id] = q
	g.producers.Add(1)
	go g.produce(q, sessErr)
	return q.served, true
}

func (g *Gateway) lookup(id string) *query {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.queries[id]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

type metrics struct {
	queries  *prometheus.CounterVec
	duration prometheus.Histogram
	running  prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_sqlgateway_queries_total",
			Help: "Statements the SQL gateway completed, by final state (finished, failed, canceled).",
		}, []string{"state"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "duet_sqlgateway_query_duration_seconds",
			Help:    "Time from a statement's submission to its end, including the time clients took to fetch its pages.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		running: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "duet_sqlgateway_running_queries",
			Help: "Statements currently executing or waiting for clients to fetch their pages.",
		}, func() float64 { return float64(g.running.Load()) }),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.queries, m.duration, m.running} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sqlgateway: register metrics: %w", err)
		}
	}
	return m, nil
}
