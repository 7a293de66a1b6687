package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
)

// leadership is the name of the lock the serving replica holds.
const leadership = "duet-leader"

// Replica is `duet serve`: one of any number of processes sharing a catalog
// (and, beyond one machine, an S3 bucket). Exactly one, the leader, holds the
// catalog's leader lock and runs the whole server: speed layer, sources,
// archiving, the scheduler. The others forward every request to it and wait
// for the lock, so when the leader dies another takes over within seconds,
// recovering its state from the catalog and the bucket.
type Replica struct {
	cfg       Config
	logger    *slog.Logger
	cat       *catalog.Store
	listener  net.Listener
	advertise string
	handler   atomic.Pointer[http.Handler]

	// epoch is this replica's leadership epoch once it leads.
	epoch int64

	leaderMu   sync.Mutex
	leaderURL  *url.URL
	leaderSeen time.Time
}

// NewReplica opens the catalog and binds the listener, so Addr is known
// before Run.
func NewReplica(ctx context.Context, cfg Config, logger *slog.Logger) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	_, tlsCfg, err := security(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	r := &Replica{cfg: cfg, logger: logger}
	if r.cat, err = openCatalog(ctx, cfg, logger); err != nil {
		return nil, err
	}
	if r.listener, err = listen(cfg.Listen, tlsCfg); err != nil {
		r.cat.Close()
		return nil, err
	}
	r.advertise = cfg.AdvertiseURL
	if r.advertise == "" {
		scheme := "http"
		if tlsCfg != nil {
			scheme = "https"
		}
		r.advertise = scheme + "://" + r.listener.Addr().String()
	}
	var follow http.Handler = http.HandlerFunc(r.forward)
	r.handler.Store(&follow)
	return r, nil
}

// Addr is the address the replica listens on.
func (r *Replica) Addr() string { return r.listener.Addr().String() }

// Run serves as a follower until this replica wins the leader lock, then as
// the leader until ctx ends or the lock is lost. Losing the lock ends Run
// with an error: a replica that may no longer be the only leader must stop
// writing at once, and its supervisor restarts it as a follower.
func (r *Replica) Run(ctx context.Context) error {
	httpSrv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { (*r.handler.Load()).ServeHTTP(w, req) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(r.listener) }()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
		defer cancel()
		_ = httpSrv.Shutdown(shutCtx)
	}()

	r.logger.Info("duet replica waiting for the leader lock", "addr", r.Addr(), "advertise", r.advertise)
	defer r.cat.Close()
	lead, err := r.cat.Campaign(ctx, leadership, r.advertise)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("campaign for leadership: %w", err)
	}
	// Deferred after Close, so it runs first.
	defer lead.Release()
	r.cat.FenceWrites(lead)
	r.epoch = lead.Epoch()
	r.logger.Info("duet replica leads", "epoch", lead.Epoch())

	cfg := r.cfg
	cfg.replica = r
	srv, err := New(ctx, cfg, r.logger)
	if err != nil {
		return err
	}
	h := srv.handler
	r.handler.Store(&h)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lost atomic.Bool
	go func() {
		select {
		case <-lead.Lost():
			lost.Store(true)
			r.logger.Error("lost the leader lock; stopping so another replica can lead")
			cancel()
		case <-runCtx.Done():
		}
	}()
	go func() {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.logger.Error("http server", "err", err)
			cancel()
		}
	}()
	err = srv.Run(runCtx)
	if lost.Load() {
		return errors.New("lost the leader lock")
	}
	return err
}

// forward sends a follower's request to the leader, unchanged (Host
// included, so the Trino protocol's nextUri keeps pointing at this replica).
func (r *Replica) forward(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/healthz" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "role": "follower"})
		return
	}
	target, err := r.leader(req.Context())
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "no leader to forward to yet: %v", err)
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			r.forgetLeader()
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "forward to the leader %s: %v", target, err)
		},
	}
	proxy.ServeHTTP(w, req)
}

// leader is the leader's URL, read from the catalog at most once a second.
func (r *Replica) leader(ctx context.Context) (*url.URL, error) {
	r.leaderMu.Lock()
	defer r.leaderMu.Unlock()
	if r.leaderURL != nil && time.Since(r.leaderSeen) < time.Second {
		return r.leaderURL, nil
	}
	holder, _, err := r.cat.Leader(ctx, leadership)
	if err != nil {
		return nil, err
	}
	if holder == "" || holder == r.advertise {
		return nil, errors.New("no replica holds the leader lock")
	}
	u, err := url.Parse(holder)
	if err != nil {
		return nil, fmt.Errorf("leader URL %q: %w", holder, err)
	}
	r.leaderURL, r.leaderSeen = u, time.Now()
	return u, nil
}

func (r *Replica) forgetLeader() {
	r.leaderMu.Lock()
	r.leaderURL = nil
	r.leaderMu.Unlock()
}

// leaderEpoch is the epoch the speed layer writes its logs under when
// replicas share a PostgreSQL catalog, each with logs of its own; 0 for a
// server on its own (r nil), or on a SQLite catalog, which only processes
// sharing one data directory, and so one log directory, can share. Then a
// log behind the archive means it was lost, and recovery says so.
func (r *Replica) leaderEpoch() int64 {
	if r == nil || !isPostgres(r.cfg.Catalog) {
		return 0
	}
	return r.epoch
}
