// Package server assembles duet's components into one process: catalog,
// object store, engine, speed layer, batch layer, scheduler, serving and the
// SQL gateway, behind one HTTP listener.
package server

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/auth"
	"github.com/duet-analytics/duet/internal/authz"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/executor"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/scheduler"
	"github.com/duet-analytics/duet/serving"
	"github.com/duet-analytics/duet/speedlayer"
	"github.com/duet-analytics/duet/speedlayer/sources"
	"github.com/duet-analytics/duet/sqlgateway"
	"github.com/duet-analytics/duet/ui"
)

// Server is a running duet server.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry

	cat    *catalog.Store
	bucket bucket
	// closeBucket releases the object store's connections and downloads.
	closeBucket func()
	db          *sql.DB
	speed       *speedlayer.Layer
	sources     *sourceRunner
	builder     *batchlayer.Builder
	// launcher keeps standby executors warm while the server runs.
	launcher *executor.Local
	sched    *scheduler.Scheduler
	sqlJobs  *sqlJobs
	clusters *clusterHealth
	// live holds what running jobs' executors report.
	live    *liveJobs
	gateway *sqlgateway.Gateway
	// authz holds the authorization rules; nil allows everything.
	authz *authz.Rules
	// console serves the web console's assets.
	console *ui.Console

	// handler serves the API and the SQL gateway. The server listens itself
	// unless it runs inside a Replica, which owns the listener.
	handler  http.Handler
	listener net.Listener
	http     *http.Server

	// viewMu serialises view and dataset creation.
	viewMu sync.Mutex
	// downstream lists the views that read each view.
	downMu     sync.Mutex
	downstream map[string][]string
}

// New opens every component and recovers the state left in cfg.DataDir; the
// listener is bound so Addr is known before Run.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, logger: logger, registry: prometheus.NewRegistry(), downstream: map[string][]string{}}
	if cfg.replica != nil {
		s.cat = cfg.replica.cat
	}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := s.open(ctx); err != nil {
		s.closeStores()
		return nil, err
	}
	return s, nil
}

// DefaultEngineThreads is the server's engine's thread count when none is
// configured: one core fewer than the process may use, and at least one.
// The server's own work (HTTP, decoding, the event log, the gateway's
// protocol) runs next to the engine's, and DuckDB hands each statement's
// tasks to its workers, which costs a thread wake-up on every statement,
// the speed layer's small ones included. Measured on 2 cores, one engine
// thread against two: 26-46% more events ingested per server core and
// 11-31% less CPU per merged dashboard query (BENCHMARKS.md). Executors run
// one big query each and keep DuckDB's default, one thread per core.
func DefaultEngineThreads() int {
	return engineThreads(runtime.GOMAXPROCS(0))
}

func engineThreads(cores int) int {
	return max(1, cores-1)
}

func (s *Server) dir(parts ...string) string {
	return filepath.Join(append([]string{s.cfg.DataDir}, parts...)...)
}

func (s *Server) open(ctx context.Context) error {
	cfg := s.cfg
	authn, tlsCfg, err := security(cfg)
	if err != nil {
		return err
	}
	if cfg.AuthzFile != "" {
		if s.authz, err = authz.Load(cfg.AuthzFile); err != nil {
			return err
		}
	}
	clusters := clusterFile{}
	if cfg.ClustersFile != "" {
		if clusters, err = loadClusters(cfg.ClustersFile, cfg.Scheduler.Workers); err != nil {
			return err
		}
		cfg.Scheduler.Clusters = clusters.schedulerClusters()
		if err := cfg.Scheduler.Validate(); err != nil {
			return fmt.Errorf("clusters file %s: %w", cfg.ClustersFile, err)
		}
	}
	for _, d := range []string{s.dir(), s.dir("scratch"), s.dir("engine-tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	abs, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.cfg.DataDir = abs

	if s.cat == nil {
		if s.cat, err = openCatalog(ctx, s.cfg, s.logger); err != nil {
			return err
		}
	}
	var objects string
	if s.bucket, objects, err = openBucket(ctx, cfg, s); err != nil {
		return err
	}
	ecfg := cfg.Engine
	if ecfg.Threads == 0 {
		ecfg.Threads = DefaultEngineThreads()
	}
	ecfg.AllowedDirectories = append(ecfg.AllowedDirectories, objects, s.dir("engine-tmp"), s.dir("scratch"))
	ecfg.TempDirectory = s.dir("engine-tmp")
	ecfg.CacheFile = s.dir("view-cache.duckdb")
	if s.db, err = engine.Open(ctx, ecfg, s.logger.With("component", "engine")); err != nil {
		return err
	}
	var archive speedlayer.Bucket = s.bucket
	if cfg.archiveBucket != nil {
		archive = cfg.archiveBucket(s.bucket)
	}
	s.speed, err = speedlayer.New(speedlayer.Config{
		LogDir: s.dir("log"), ScratchDir: s.dir("scratch"),
		SegmentMaxRecords: cfg.SegmentMaxRecords, SegmentMaxAge: cfg.SegmentMaxAge,
		MemoryBudget: cfg.SpeedMemoryBudget, ViewCacheRows: cfg.ViewCacheRows, MaterializeAfter: cfg.MaterializeAfter, CopyGrace: cfg.QueryTimeout, Epoch: cfg.replica.leaderEpoch(),
	}, s.db, s.cat, archive, s.bucket, serving.NewMerger(s.bucket), s.logger.With("component", "speedlayer"), s.registry)
	if err != nil {
		return err
	}
	s.sources = newSourceRunner(s.speed, sources.NewMetrics(s.registry), s.logger.With("component", "sources"))
	s.launcher, err = executor.NewLocal(cfg.Executor, s.logger.With("component", "executor"))
	if err != nil {
		return err
	}
	s.builder, err = batchlayer.NewBuilder(batchlayer.Config{
		ScratchDir: s.dir("scratch"), ExecutorMemory: cfg.Engine.MemoryLimit, ExecutorThreads: cfg.Engine.Threads,
		KeepVersions: cfg.KeepVersions, GCGrace: cfg.GCGrace, CompactionTarget: cfg.CompactionTarget,
	},
		s.cat, s.speed, s.bucket, s.launcher, s.logger.With("component", "batchlayer"))
	if err != nil {
		return err
	}
	s.clusters = newClusterHealth(clusters, s.logger.With("component", "clusters"))
	s.live = newLiveJobs()
	s.sqlJobs = &sqlJobs{
		b: s.builder, speed: s.speed, merger: serving.NewMerger(s.bucket), files: s.bucket, db: s.db, cat: s.cat,
		logger: s.logger.With("component", "sqljobs"),
	}
	nbJobs := &notebookJobs{launcher: s.launcher, bucket: s.bucket, logger: s.logger.With("component", "notebookjobs")}
	runner := jobRunner{b: s.builder, cat: s.cat, sql: s.sqlJobs, nb: nbJobs, clusters: s.clusters, live: s.live, manifests: s.bucket, after: s.afterPublish}
	s.sched, err = scheduler.New(cfg.Scheduler, s.cat, runner, nil, s.logger.With("component", "scheduler"), s.registry)
	if err != nil {
		return err
	}
	if err := s.load(ctx); err != nil {
		return err
	}
	if err := s.loadJobSchedules(ctx); err != nil {
		return err
	}
	if err := s.sqlJobs.restoreTables(ctx); err != nil {
		return fmt.Errorf("restore the tables of schema jobs: %w", err)
	}
	var routing sqlgateway.RoutingConfig
	if cfg.RoutingFile != "" {
		if routing, err = sqlgateway.LoadRoutingFile(cfg.RoutingFile); err != nil {
			return err
		}
	}
	var authorizer sqlgateway.Authorizer
	if s.authz != nil {
		authorizer = s.authz
	}
	s.gateway, err = sqlgateway.New(sqlgateway.Config{
		Catalog: engine.Catalog, QueryTimeout: cfg.QueryTimeout,
		MaxConcurrent: cfg.QueryMaxConcurrent, MaxQueued: cfg.QueryMaxQueued, MaxResultRows: cfg.QueryMaxRows, HistorySize: cfg.QueryHistory,
		Routing: routing, Authorizer: authorizer,
	}, s.db, s.logger.With("component", "sqlgateway"), s.registry)
	if err != nil {
		return err
	}
	nbJobs.gateway = s.gateway.Handler()
	if err := serving.RegisterSystem(ctx, s.db, serving.SystemConfig{Catalog: s.cat, Speed: s.speed, Queries: s.gateway}); err != nil {
		return err
	}
	if s.console, err = ui.New(); err != nil {
		return err
	}
	handler := s.routes()
	if authn != nil {
		handler = s.consoleShell(authn.Handler(handler, "/healthz"))
	}
	s.handler = handler
	if cfg.replica != nil {
		return nil
	}
	if s.listener, err = listen(cfg.Listen, tlsCfg); err != nil {
		return err
	}
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

func listen(addr string, tlsCfg *tls.Config) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	return l, nil
}

// security loads what authentication and TLS need (nil when off), so a bad
// file stops the server before it opens anything.
func security(cfg Config) (*auth.Authenticator, *tls.Config, error) {
	var authn *auth.Authenticator
	if cfg.Auth.Enabled() {
		var err error
		if authn, err = auth.New(cfg.Auth); err != nil {
			return nil, nil, fmt.Errorf("auth: %w", err)
		}
	}
	if cfg.TLSCertFile == "" {
		return authn, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls certificate %s and key %s: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
	}
	return authn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// load brings every dataset and view in the catalog back into the speed
// layer and the scheduler.
func (s *Server) load(ctx context.Context) error {
	datasets, err := s.cat.ListDatasets(ctx)
	if err != nil {
		return err
	}
	for _, d := range datasets {
		if err := s.speed.AddDataset(ctx, d.Spec); err != nil {
			return fmt.Errorf("recover %w", err)
		}
		if err := s.sources.start(d.Spec); err != nil {
			return err
		}
	}
	views, err := s.cat.ListViews(ctx)
	if err != nil {
		return err
	}
	// Views over views start after their upstream: passes until none is left.
	started := map[string]bool{}
	for len(views) > 0 {
		var waiting []catalog.View
		for _, v := range views {
			schema, table, err := viewsql.SourceTable(ctx, s.db, v.SQL)
			if err != nil {
				return fmt.Errorf("recover view %q: %w", v.Name, err)
			}
			if _, derr := s.cat.GetDataset(ctx, table); (schema == "views" || derr != nil) && !started[strings.ToLower(table)] {
				waiting = append(waiting, v)
				continue
			}
			if err := s.startView(ctx, v); err != nil {
				return fmt.Errorf("recover view %q: %w", v.Name, err)
			}
			started[strings.ToLower(v.Name)] = true
		}
		if len(waiting) == len(views) {
			return fmt.Errorf("recover view %q: it reads a view that cannot be started", waiting[0].Name)
		}
		views = waiting
	}
	return nil
}

// planView analyses a view's SQL against what it reads: a dataset, or
// another view (views.<name>). It returns the upstream view's name, if any.
func (s *Server) planView(ctx context.Context, name, sqlText string) (*viewsql.Plan, string, error) {
	schema, table, err := viewsql.SourceTable(ctx, s.db, sqlText)
	if err != nil {
		return nil, "", err
	}
	if schema != "views" {
		d, err := s.cat.GetDataset(ctx, table)
		switch {
		case err == nil:
			plan, err := viewsql.Analyze(ctx, s.db, sqlText, &d.Spec)
			return plan, "", err
		case !errors.Is(err, catalog.ErrNotFound):
			return nil, "", err
		case schema == "raw":
			return nil, "", &viewsql.Error{Msg: fmt.Sprintf("view SQL: the SQL reads raw.%s, which is not a dataset", table)}
		}
	}
	if strings.EqualFold(table, name) {
		return nil, "", &viewsql.Error{Msg: fmt.Sprintf("view SQL: view %q cannot read itself", name)}
	}
	upstream, err := s.speed.Plan(table)
	if err != nil {
		if errors.Is(err, speedlayer.ErrUnknownView) {
			return nil, "", &viewsql.Error{Msg: fmt.Sprintf("view SQL: the SQL reads %q, which is neither a dataset nor a view", table)}
		}
		return nil, "", err
	}
	plan, err := viewsql.AnalyzeOver(ctx, s.db, sqlText, table, upstream)
	return plan, table, err
}

func (s *Server) startView(ctx context.Context, v catalog.View) error {
	plan, upstream, err := s.planView(ctx, v.Name, v.SQL)
	if err != nil {
		return err
	}
	var version *catalog.ViewVersion
	cur, err := s.cat.CurrentVersion(ctx, v.Name)
	switch {
	case err == nil:
		version = &cur
	case !errors.Is(err, catalog.ErrNotFound):
		return err
	}
	if err := s.speed.AddView(ctx, v.Name, plan, version); err != nil {
		return err
	}
	if upstream != "" {
		s.downMu.Lock()
		s.downstream[upstream] = append(s.downstream[upstream], v.Name)
		s.downMu.Unlock()
	}
	if v.Schedule != "" {
		return s.sched.Schedule(v.Name, v.Schedule, scheduler.Catchup(v.Catchup))
	}
	return nil
}

// afterPublish queues builds of the views that read view, so they follow
// their upstream's versions (dependency order).
func (s *Server) afterPublish(ctx context.Context, view string) {
	s.downMu.Lock()
	down := append([]string(nil), s.downstream[view]...)
	s.downMu.Unlock()
	for _, d := range down {
		if _, err := s.sched.Submit(ctx, scheduler.SubmitRequest{Kind: scheduler.KindViewBuild, View: d}); err != nil {
			s.logger.Error("queue downstream build", "view", d, "upstream", view, "err", err)
		}
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() string {
	if s.cfg.replica != nil {
		return s.cfg.replica.Addr()
	}
	return s.listener.Addr().String()
}

// Run serves until ctx is cancelled, then stops taking requests, lets
// running requests finish and stops every component.
func (s *Server) Run(ctx context.Context) error {
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	components := map[string]func(context.Context) error{
		"speedlayer": s.speed.Run, "scheduler": s.sched.Run, "sqlgateway": s.gateway.Run,
		"compaction": s.compactPeriodically, "executors": s.launcher.Run, "clusters": s.clusters.Run,
		"sources": s.sources.run,
	}
	errc := make(chan error, len(components))
	for name, run := range components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(bg); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	serveErr := make(chan error, 1)
	if s.http != nil {
		go func() { serveErr <- s.http.Serve(s.listener) }()
	}
	s.logger.Info("duet serving", "addr", s.Addr(), "data_dir", s.cfg.DataDir, "tls", s.cfg.TLSCertFile != "", "auth", s.cfg.Auth.Enabled())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = err
	case runErr = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if s.http != nil {
		if err := s.http.Shutdown(shutCtx); err != nil {
			s.logger.Warn("http shutdown", "err", err)
		}
	}
	stop()
	wg.Wait()
	s.closeStores()
	s.logger.Info("duet stopped")
	return runErr
}

func (s *Server) closeStores() {
	if s.db != nil {
		s.db.Close()
	}
	// A replica's catalog outlives its server: the leader lock is released
	// through it.
	if s.cat != nil && s.cfg.replica == nil {
		s.cat.Close()
	}
	if s.closeBucket != nil {
		s.closeBucket()
	}
	if s.listener != nil {
		s.listener.Close()
	}
}
