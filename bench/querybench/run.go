package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/bench/internal/benchdoc"
	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/server"
	"github.com/duet-analytics/duet/sqlgateway"
)

// What answers the dashboard, and from what.
const (
	systemDuet   = "duet"
	systemDuckDB = "duckdb"
	stateMerged  = "merged view, materialized (the dataset idle): batch version and the last 1% in the speed layer"
	stateLive    = "merged view, merged at every query (`--materialize-after 0`): batch version and the last 1% in the speed layer"
	stateBatch   = "batch view alone, merged at every query: a build covered every event"
	stateRaw     = "the view's SQL over the raw Parquet files"
)

// Segments never seal during a run: the last 1% stays in the speed layer
// until a build hands it off.
const (
	neverSealRecords = int64(1) << 40
	neverSealAge     = 24 * time.Hour
)

// bench is one benchmark run's state.
type bench struct {
	cfg    Config
	root   string
	logger *slog.Logger
	pool   *pool
	res    Results
}

func run(ctx context.Context, cfg Config, logger *slog.Logger) (err error) {
	root, cleanup, err := benchenv.DataDir(cfg.WorkDir, "querybench", cfg.Keep, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	machine, err := benchenv.DescribeMachine(ctx)
	if err != nil {
		return fmt.Errorf("describe machine: %w", err)
	}
	logger.Info("machine", "cpus", machine.CPUs, "cpu", machine.CPUModel, "go", machine.GoVersion, "gomaxprocs", machine.GOMAXPROCS,
		"duckdb", machine.DuckDBVersion, "duckdb_threads", machine.DuckDBThreads)
	gen, err := flights.NewGenerator(ctx, flights.Config{Rows: cfg.maxSize(), Days: cfg.Days, Seed: cfg.Seed},
		filepath.Join(root, "pool", "objects"), filepath.Join(root, "pool", "stage"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, gen.Close()) }()
	b := &bench{cfg: cfg, root: root, logger: logger,
		pool: &pool{gen: gen, seg: cfg.SegmentRows, files: map[[2]int64][]catalog.ArchiveFile{}, logger: logger}}
	b.res.Machine = machine
	b.res.Setup = Setup{
		Rows: cfg.Rows, Scales: cfg.Scales, Days: cfg.Days, EventsPerDay: float64(cfg.maxSize()) / float64(cfg.Days),
		Seed: cfg.Seed, SegmentRows: cfg.SegmentRows, SpeedPercent: 1, IngestBatch: cfg.IngestBatch,
		WarmupSeconds: cfg.Warmup.Seconds(), DurationSeconds: cfg.Duration.Seconds(), Runs: cfg.Runs,
		Server: fmt.Sprintf("the server package as `duet serve` runs it (server.NewReplica with server.DefaultConfig) in its own process, "+
			"started by the benchmark, with `--segment-max-records %d --segment-max-age %s` so that nothing leaves the speed layer "+
			"until a build, and the hourly archive compaction off; clients reach it over loopback HTTP. Its views are materialized once "+
			"the dataset is idle (`--materialize-after`, %s by default): the dashboard and scale phases read that answer, and the benchmark "+
			"waits for it. For the phases merged at every query, the batch view alone and the merge overhead, the main size's server is "+
			"restarted with `--materialize-after 0`", neverSealRecords, neverSealAge, server.DefaultConfig().MaterializeAfter),
		QueryMaxConcurrent: sqlgateway.DefaultMaxConcurrent, ViewSQL: flights.ViewSQL(),
	}
	for _, n := range cfg.sizes() {
		if err := b.size(ctx, n); err != nil {
			return fmt.Errorf("%s events: %w", short(n), err)
		}
	}
	b.res.Setup.GeneratingSeconds = b.pool.spent.Seconds()
	return b.write()
}

// sizeRun is one size's server, its DuckDB baseline and what is known of
// the data.
type sizeRun struct {
	n, archived int64
	// end is the log's end: every event the server accepted.
	end        int64
	srv        *benchserver.Proc
	duet, duck system
	gen        paramGen
	scale      Scale
	// answers are DuckDB's answers to the checks, by query.
	answers map[string][][]any
}

// size measures one size: its server starts on the archived 99%, builds
// it, takes the last 1% over HTTP, answers the dashboard merged, then
// builds incrementally (and at the main size answers again from the batch
// view alone).
func (b *bench) size(ctx context.Context, n int64) (err error) {
	isMain, inScales := n == b.cfg.Rows, slices.Contains(b.cfg.Scales, n)
	s := &sizeRun{n: n, archived: n - speedEvents(n), end: n, answers: map[string][][]any{}}
	files, err := b.pool.get(ctx, 0, s.archived)
	if err != nil {
		return err
	}
	tail, err := b.pool.get(ctx, s.archived, n)
	if err != nil {
		return err
	}
	dir := flights.Paths{Dir: filepath.Join(b.root, fmt.Sprintf("events-%d", n))}
	if err := b.pool.linkArchive(ctx, dir, files); err != nil {
		return err
	}
	s.scale = Scale{Events: n, Archived: s.archived, Files: len(files), IncrementEvents: speedEvents(n)}
	for _, f := range files {
		s.scale.Bytes += f.Bytes
	}
	start := time.Now()
	opts := b.serverOptions(dir)
	opts.Profiling = isMain && b.cfg.ProfileDir != ""
	s.srv, err = benchserver.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.srv.Stop()) }()
	s.scale.StartSeconds = time.Since(start).Seconds()
	b.logger.Info("server started", "events", n, "archived", s.archived, "archive_files", len(files), "seconds", f2(s.scale.StartSeconds))

	wall, job, err := build(ctx, s.srv, true)
	if err != nil {
		return err
	}
	if job.Version.CoveredOffset != s.archived {
		return fmt.Errorf("the full build covers offsets below %d, want %d", job.Version.CoveredOffset, s.archived)
	}
	s.scale.FullBuildSeconds = wall.Seconds()
	b.logger.Info("full build", "events", s.archived, "seconds", f2(wall.Seconds()), "job_seconds", f2(float64(job.DurationMs)/1000))

	took, err := ingest(ctx, b.pool.gen, s.srv, s.archived, n, b.cfg.IngestBatch)
	if err != nil {
		return err
	}
	s.scale.IngestSeconds = took.Seconds()
	if err := s.expectSpeed(ctx, n-s.archived); err != nil {
		return err
	}
	b.logger.Info("last 1% ingested over HTTP into the speed layer", "events", n-s.archived, "seconds", f2(took.Seconds()),
		"events_per_s", fmt.Sprintf("%.0f", float64(n-s.archived)/took.Seconds()))

	raw := b.pool.gen.LocalPaths(append(slices.Clone(files), tail...))
	duck, err := openBaseline(slices.Max(append(slices.Clone(b.cfg.BaselineClients), 1)))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, duck.Close()) }()
	s.duet = system{name: systemDuet, db: s.srv.Trino, relation: duetRelation, cpu: s.srv.CPU}
	s.duck = system{name: systemDuckDB, db: duck, relation: rawRelation(raw), cpu: selfCPU}
	var last time.Time
	if err := duck.QueryRowContext(ctx, "SELECT date_trunc('hour', max(date)) FROM "+dataset.ReadParquet(raw)).Scan(&last); err != nil {
		return fmt.Errorf("find the last hour of data: %w", err)
	}
	s.gen = paramGen{origins: flights.Origins(), lastHour: last}
	epoch, err := time.Parse(time.DateTime, flights.Epoch)
	if err != nil {
		return err
	}
	s.scale.Days = last.Add(time.Hour).Sub(epoch).Hours() / 24
	if b.res.Queries == nil {
		for _, sh := range shapes {
			b.res.Queries = append(b.res.Queries, Query{Name: sh.Name, Description: sh.Description, SQL: exampleSQL(sh, s.gen)})
		}
	}
	if err := s.expectMaterialized(ctx, true); err != nil {
		return err
	}
	if err := b.check(ctx, s, "merged: the last 1% in the speed layer, materialized"); err != nil {
		return err
	}

	duetClients, duckClients := []int(nil), []int(nil)
	if isMain {
		duetClients, duckClients = slices.Clone(b.cfg.Clients), slices.Clone(b.cfg.BaselineClients)
	}
	if inScales {
		duetClients, duckClients = addOne(duetClients), addOne(duckClients)
	}
	for _, c := range union(duetClients, duckClients) {
		if slices.Contains(duetClients, c) {
			p, err := b.measure(ctx, s, s.duet, stateMerged, c, isMain && c == slices.Max(duetClients))
			if err != nil {
				return err
			}
			if isMain {
				b.res.Dashboard = append(b.res.Dashboard, p)
			}
			if c == 1 {
				s.scale.Duet = p
			}
		}
		if slices.Contains(duckClients, c) {
			p, err := b.measure(ctx, s, s.duck, stateRaw, c, false)
			if err != nil {
				return err
			}
			if isMain {
				b.res.Dashboard = append(b.res.Dashboard, p)
			}
			if c == 1 {
				s.scale.Baseline = &p
			}
		}
	}
	if err := s.expectArchived(ctx, s.archived); err != nil {
		return fmt.Errorf("during the measurement: %w", err)
	}
	if isMain {
		if err := b.measureLive(ctx, s, dir); err != nil {
			return err
		}
	}

	var walls, jobs []float64
	for r := range b.cfg.Runs {
		if r > 0 {
			inc := speedEvents(n)
			if _, err := ingest(ctx, b.pool.gen, s.srv, s.end, s.end+inc, b.cfg.IngestBatch); err != nil {
				return err
			}
			s.end += inc
		}
		wall, job, err := build(ctx, s.srv, false)
		if err != nil {
			return err
		}
		v, err := s.verifyIncremental(ctx, job)
		if err != nil {
			return err
		}
		walls, jobs = append(walls, wall.Seconds()), append(jobs, float64(job.DurationMs)/1000)
		b.logger.Info("incremental build", "events", n, "run", r+1, "new_events", speedEvents(n), "seconds", f3(wall.Seconds()),
			"job_seconds", f3(float64(job.DurationMs)/1000), "version", v.Version, "rebuilt", v.Rebuilt)
		if r > 0 {
			continue
		}
		s.scale.Rebuilt = v.Rebuilt
		if err := s.expectSpeed(ctx, 0); err != nil {
			return err
		}
		if err := b.check(ctx, s, "after a build covered every event: the batch view alone"); err != nil {
			return err
		}
		if !isMain {
			continue
		}
		for _, c := range b.cfg.Clients {
			p, err := b.measure(ctx, s, s.duet, stateBatch, c, false)
			if err != nil {
				return err
			}
			b.res.BatchOnly = append(b.res.BatchOnly, p)
		}
	}
	s.scale.Incremental, s.scale.IncrementalJob = summary(walls), summary(jobs)
	if inScales {
		b.res.Scales = append(b.res.Scales, s.scale)
	}
	return nil
}

// serverOptions are how every size's server runs: nothing leaves the speed
// layer until a build, no scheduled compaction, a connection per client.
func (b *bench) serverOptions(dir flights.Paths) benchserver.Options {
	return benchserver.Options{
		DataDir: dir.Dir, Duet: b.cfg.Duet, SegmentMaxRecords: neverSealRecords, SegmentMaxAge: neverSealAge, NoCompaction: true,
		User: "querybench", Conns: slices.Max(b.cfg.Clients) + 8,
	}
}

// measureLive restarts the server of the main size with materialization
// off and measures the dashboard merging at every query: what it costs
// while records keep arriving. The builds and the batch view alone that
// follow run on this server, so the merge overhead compares like with like.
func (b *bench) measureLive(ctx context.Context, s *sizeRun, dir flights.Paths) error {
	if err := s.srv.Stop(); err != nil {
		return fmt.Errorf("stop the server: %w", err)
	}
	start := time.Now()
	opts := b.serverOptions(dir)
	opts.MergeAtEveryQuery = true
	srv, err := benchserver.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("restart the server merging at every query: %w", err)
	}
	s.srv = srv
	s.duet.db, s.duet.cpu = srv.Trino, srv.CPU
	b.logger.Info("server restarted merging at every query", "events", s.n, "seconds", f2(time.Since(start).Seconds()))
	if err := s.expectSpeed(ctx, s.end-s.archived); err != nil {
		return err
	}
	if err := b.check(ctx, s, "merged: the last 1% in the speed layer, merged at every query"); err != nil {
		return err
	}
	if err := s.expectMaterialized(ctx, false); err != nil {
		return err
	}
	for _, c := range b.cfg.Clients {
		p, err := b.measure(ctx, s, s.duet, stateLive, c, false)
		if err != nil {
			return err
		}
		b.res.Live = append(b.res.Live, p)
	}
	return nil
}

// expectMaterialized waits until the view's status says whether queries
// read its materialized answer, for a few seconds at most.
func (s *sizeRun) expectMaterialized(ctx context.Context, want bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := s.srv.Client.GetView(ctx, flights.View)
		if err != nil {
			return err
		}
		if v.Speed != nil && v.Speed.Materialized == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("view %s: materialized is not %v after 10 s", flights.View, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// measure runs one query phase, profiling the server through it when asked.
func (b *bench) measure(ctx context.Context, s *sizeRun, sys system, state string, clients int, profile bool) (Phase, error) {
	ps := phaseSpec{clients: clients, warmup: b.cfg.Warmup, duration: b.cfg.Duration, gen: s.gen,
		seed: uint64(b.cfg.Seed)<<32 ^ uint64(clients)}
	profErr := make(chan error, 1)
	if profile && b.cfg.ProfileDir != "" {
		cpu := filepath.Join(b.cfg.ProfileDir, "query-cpu.pprof")
		allocs := filepath.Join(b.cfg.ProfileDir, "query-allocs.pprof")
		b.res.Profiles = &Profiles{Clients: clients, CPU: cpu, Allocs: allocs}
		ps.measuring = func() {
			go func() { profErr <- s.srv.Profile(ctx, b.cfg.Duration, cpu, allocs) }()
		}
	} else {
		profErr <- nil
	}
	pr, err := runPhase(ctx, sys, ps)
	if err != nil {
		return Phase{}, fmt.Errorf("%s phase with %d clients: %w", sys.name, clients, err)
	}
	if err := <-profErr; err != nil {
		return Phase{}, err
	}
	p := summarize(sys.name, state, clients, pr, b.cfg.Runs)
	b.logger.Info("dashboard", "events", s.n, "system", sys.name, "state", state, "clients", clients, "requests", p.Requests,
		"qps", f1(p.QPS), "p50_ms", f1(p.P50), "p99_ms", f1(p.P99), "max_ms", f1(p.Max), "cpu_ms_per_query", f2(p.CPUMsPerQuery), "cores", f2(p.Cores))
	return p, nil
}

// check compares duet's answers with DuckDB's and the view's count of
// flights with the events the server accepted.
func (b *bench) check(ctx context.Context, s *sizeRun, when string) error {
	compared, err := checkAnswers(ctx, s.duet, s.duck, s.gen, b.cfg.Checks, uint64(b.cfg.Seed), s.answers)
	if err != nil {
		return fmt.Errorf("%s: %w", when, err)
	}
	got, err := countFlights(ctx, s.duet.db, s.duet.relation)
	if err != nil {
		return fmt.Errorf("%s: count the view's flights: %w", when, err)
	}
	if got != s.end {
		return fmt.Errorf("%s: the view counts %d flights, the server accepted %d events", when, got, s.end)
	}
	b.res.Checks = append(b.res.Checks, Check{Events: s.n, When: when, Compared: compared, Flights: got})
	b.logger.Info("check", "events", s.n, "when", when, "answers_compared", compared, "flights", got)
	return nil
}

// expectSpeed checks that the view's speed layer holds exactly lag events
// beyond its batch version.
func (s *sizeRun) expectSpeed(ctx context.Context, lag int64) error {
	v, err := s.srv.Client.GetView(ctx, flights.View)
	if err != nil {
		return err
	}
	switch {
	case v.Speed == nil || v.Batch == nil:
		return fmt.Errorf("view %s has no batch version or speed status", flights.View)
	case v.Speed.LagRecords != lag:
		return fmt.Errorf("view %s: %d events in the speed layer beyond the batch version, want %d", flights.View, v.Speed.LagRecords, lag)
	case v.Batch.CoveredOffset+lag != s.end:
		return fmt.Errorf("view %s: the batch version covers offsets below %d, want %d", flights.View, v.Batch.CoveredOffset, s.end-lag)
	}
	return nil
}

// expectArchived checks that the dataset's archive ends at end.
func (s *sizeRun) expectArchived(ctx context.Context, end int64) error {
	d, err := s.srv.Client.GetDataset(ctx, flights.Dataset)
	if err != nil {
		return err
	}
	if d.Log == nil || d.Log.ArchivedOffset != end || d.Log.EndOffset != s.end {
		return fmt.Errorf("dataset %s: log status %+v, want archived offset %d and end %d", flights.Dataset, d.Log, end, s.end)
	}
	return nil
}

// verifyIncremental checks that a build published an incremental version
// covering every accepted event.
func (s *sizeRun) verifyIncremental(ctx context.Context, job api.Job) (api.Version, error) {
	vs, err := s.srv.Client.ListVersions(ctx, flights.View)
	if err != nil {
		return api.Version{}, err
	}
	if len(vs) == 0 || vs[0].Version != job.Version.Version {
		return api.Version{}, fmt.Errorf("version %d of the build is not the newest", job.Version.Version)
	}
	v := vs[0]
	switch {
	case v.Kind != "incremental":
		return v, fmt.Errorf("version %d: kind %q, want incremental", v.Version, v.Kind)
	case v.CoveredOffset != s.end:
		return v, fmt.Errorf("version %d covers offsets below %d, want %d", v.Version, v.CoveredOffset, s.end)
	}
	return v, nil
}

// build asks the server for a build of the view and waits for it. The wall
// time runs from the request until the job is seen finished.
func build(ctx context.Context, srv *benchserver.Proc, full bool) (time.Duration, api.Job, error) {
	start := time.Now()
	job, err := srv.Client.Build(ctx, flights.View, api.BuildRequest{Full: full})
	if err != nil {
		return 0, job, fmt.Errorf("request a build: %w", err)
	}
	if job, err = srv.Client.WaitJob(ctx, job.ID, 5*time.Millisecond); err != nil {
		return 0, job, err
	}
	wall := time.Since(start)
	if job.State != api.JobSucceeded || job.Version == nil {
		return 0, job, fmt.Errorf("build job %s: %s: %s", job.ID, job.State, job.Error)
	}
	return wall, job, nil
}

// openBaseline is a DuckDB with its defaults (as many threads as cores,
// like the server's engine) for up to conns concurrent queries.
func openBaseline(conns int) (*sql.DB, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open baseline duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

// selfCPU is this process's CPU time: DuckDB's when it answers.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// write fills in the targets and writes the JSON file and the Markdown section.
func (b *bench) write() error {
	r := &b.res
	r.GeneratedAt = time.Now().UTC().Truncate(time.Second)
	r.Targets = r.targets()
	for _, t := range r.Targets {
		b.logger.Info("target", "name", t.Name, "measured", f2(t.Measured), "limit", t.Limit, "pass", t.Pass)
	}
	if err := benchdoc.WriteJSON(b.cfg.JSON, r); err != nil {
		return fmt.Errorf("write %s: %w", b.cfg.JSON, err)
	}
	if err := benchdoc.WriteSection(b.cfg.Out, section, renderSection(r)); err != nil {
		return fmt.Errorf("write %s: %w", b.cfg.Out, err)
	}
	b.logger.Info("results written", "markdown", b.cfg.Out, "json", b.cfg.JSON)
	return nil
}

func addOne(xs []int) []int {
	if !slices.Contains(xs, 1) {
		xs = append(xs, 1)
	}
	slices.Sort(xs)
	return xs
}

func union(a, b []int) []int {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

func f1(x float64) string { return fmt.Sprintf("%.1f", x) }
func f2(x float64) string { return fmt.Sprintf("%.2f", x) }
func f3(x float64) string { return fmt.Sprintf("%.3f", x) }
