package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchdoc"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
	"github.com/duet-analytics/duet/server"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// bench is one benchmark run's state.
type bench struct {
	cfg    Config
	root   string
	logger *slog.Logger
	// payloads per format, and the events of the memory phase's warm-up.
	payloads map[string]*payloads
	gen      *generator
	res      Results
}

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	root, cleanup, err := benchenv.DataDir(cfg.WorkDir, "ingestbench", cfg.Keep, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	b := &bench{cfg: cfg, root: root, logger: logger, payloads: map[string]*payloads{}}
	steps := []func(context.Context) error{b.prepare, b.measureThroughput, b.measureFreshness, b.measureMemory, b.write}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// prepare generates and encodes the request bodies (not measured).
func (b *bench) prepare(ctx context.Context) error {
	start := time.Now()
	b.gen = newGenerator(b.cfg.Seed, start)
	batches := make([][]event, b.cfg.Bodies)
	for i := range batches {
		batches[i] = b.gen.batch(b.cfg.Batch)
	}
	for _, f := range []string{formatArrow, formatNDJSON} {
		p, err := makePayloads(f, batches)
		if err != nil {
			return err
		}
		b.payloads[f] = p
	}
	def := server.DefaultConfig()
	spec := eventsSpec()
	w := Workload{
		NDJSONBytesPerEvent:    b.payloads[formatNDJSON].bytesPerEvt,
		ArrowIPCBytesPerEvent:  b.payloads[formatArrow].bytesPerEvt,
		ArrowMemoryBytesPerEvt: float64(arrowMemoryBytes(batches[0])) / float64(len(batches[0])),
		BatchEvents:            b.cfg.Batch, Producers: []int(b.cfg.Producers), DistinctBodies: b.cfg.Bodies, ViewSQL: viewSQL,
		SegmentMaxRecords: def.SegmentMaxRecords, SegmentMaxAge: def.SegmentMaxAge.String(),
		Fsync: "on: the event log fsyncs every request before the acknowledgement (the only mode `duet serve` has)",
		Server: "the server package with server.DefaultConfig (what `duet serve` runs) in its own process, " +
			"started by the benchmark; clients reach it over loopback HTTP",
		WarmupSeconds: b.cfg.Warmup.Seconds(), DurationSeconds: b.cfg.Duration.Seconds(),
	}
	for _, c := range spec.Columns {
		w.Columns = append(w.Columns, Column{Name: c.Name, Type: string(c.Type)})
	}
	b.res.Workload = w
	machine, err := benchenv.DescribeMachine(ctx)
	if err != nil {
		return fmt.Errorf("read DuckDB version: %w", err)
	}
	b.res.Machine = Machine{Machine: machine, Filesystem: filesystemOf(b.root)}
	b.logger.Info("payloads encoded", "events", b.cfg.Bodies*b.cfg.Batch, "ndjson_bytes_per_event", fmt.Sprintf("%.1f", w.NDJSONBytesPerEvent),
		"arrow_ipc_bytes_per_event", fmt.Sprintf("%.1f", w.ArrowIPCBytesPerEvent), "seconds", since(start))
	return nil
}

// measureThroughput runs one sustained-load phase per format and number of
// producers with the view, and (unless -skip-noview) one per format without
// it at the largest number of producers, each on a fresh server.
func (b *bench) measureThroughput(ctx context.Context) error {
	for _, view := range []bool{true, false} {
		if !view && b.cfg.NoView {
			continue
		}
		producers := []int(b.cfg.Producers)
		if !view {
			producers = []int{b.cfg.Producers.most()}
		}
		for _, f := range []string{formatArrow, formatNDJSON} {
			for _, n := range producers {
				t, err := b.throughputPhase(ctx, f, view, n)
				if err != nil {
					return fmt.Errorf("throughput of %s (view: %t, %d producers): %w", formatName(f), view, n, err)
				}
				b.res.Throughput = append(b.res.Throughput, t)
			}
		}
	}
	return nil
}

func phaseName(format string, view bool, producers int) string {
	name := format
	if !view {
		name += "-noview"
	}
	return fmt.Sprintf("%s-%dp", name, producers)
}

func (b *bench) throughputPhase(ctx context.Context, format string, view bool, producers int) (t Throughput, err error) {
	name := phaseName(format, view, producers)
	profile := ""
	if b.cfg.ProfileDir != "" {
		profile = filepath.Join(b.cfg.ProfileDir, "ingest-"+name+".pprof")
	}
	srv, err := startServer(ctx, benchserver.Options{DataDir: serverDir(b.root, "throughput-"+name), Duet: b.cfg.Duet, Profiling: profile != ""})
	if err != nil {
		return t, err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	if err := srv.setup(ctx, view); err != nil {
		return t, err
	}
	p := b.payloads[format]
	l := startLoad(ctx, srv, p, producers, 0)
	defer func() { err = errors.Join(err, l.stop()) }()
	if err := l.wait(ctx, b.cfg.Warmup); err != nil {
		return t, err
	}
	s0, err := l.snapshot()
	if err != nil {
		return t, err
	}
	l.latencies()
	// The CPU profile covers the measurement (rounded up to whole seconds).
	// An early return leaves the fetch to end when the server stops.
	var profiled chan error
	if profile != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- srv.Profile(ctx, b.cfg.Duration, profile, "") }()
	}
	if err := l.wait(ctx, b.cfg.Duration); err != nil {
		return t, err
	}
	s1, err := l.snapshot()
	if err != nil {
		return t, err
	}
	lat := sortedCopy(l.latencies())
	backlog, err := srv.unarchived(ctx)
	if err != nil {
		return t, err
	}
	if err := l.stop(); err != nil {
		return t, err
	}
	// Archiving the segments sealed during the measurement is part of
	// ingesting them: wait for it and count its CPU time, so that an
	// archiver falling behind cannot make the figure look better.
	if _, err := srv.waitArchived(ctx, server.DefaultConfig().SegmentMaxRecords+int64(b.cfg.Batch)); err != nil {
		return t, err
	}
	drained, err := srv.CPU()
	if err != nil {
		return t, err
	}
	if profiled != nil {
		if err := <-profiled; err != nil {
			return t, fmt.Errorf("cpu profile: %w", err)
		}
	}
	events := s1.acked - s0.acked
	if events == 0 {
		return t, errNoProgress
	}
	wall := s1.at.Sub(s0.at).Seconds()
	cpu := (drained - s0.cpu).Seconds()
	// The CPU time runs on until the drain, so it counts the events of the
	// requests still in flight when the measurement ended too.
	perCore := float64(l.acked.get()-s0.acked) / cpu
	t = Throughput{
		Format: format, View: view, Producers: producers, Events: events, Requests: s1.requests - s0.requests, Retries: s1.retries - s0.retries,
		Seconds: wall, ServerCPUSeconds: cpu, Cores: (s1.cpu - s0.cpu).Seconds() / wall,
		UnarchivedAtEnd: backlog, DrainSeconds: time.Since(s1.at).Seconds(), DrainCPUSeconds: (drained - s1.cpu).Seconds(),
		ClientCores:     (s1.selfCPU - s0.selfCPU).Seconds() / wall,
		OtherCores:      otherCores(s0, s1),
		EventsPerSecond: float64(events) / wall, EventsPerCore: perCore,
		MBPerSecond: float64(events) * p.bytesPerEvt / wall / 1e6,
		LatencyP50:  ms(benchenv.Percentile(lat, 0.5)), LatencyP99: ms(benchenv.Percentile(lat, 0.99)),
	}
	check, err := srv.checkAccepted(ctx, s1.acked, view)
	if err != nil {
		return t, err
	}
	t.ArchivedEnd = check.archivedEnd
	b.logger.Info("throughput", "format", format, "view", view, "producers", producers, "events_per_s", fmt.Sprintf("%.0f", t.EventsPerSecond),
		"server_cores", fmt.Sprintf("%.2f", t.Cores), "events_per_core_s", fmt.Sprintf("%.0f", t.EventsPerCore),
		"client_cores", fmt.Sprintf("%.2f", t.ClientCores), "other_cores", fmt.Sprintf("%.2f", t.OtherCores), "latency_p50_ms", fmt.Sprintf("%.1f", t.LatencyP50),
		"latency_p99_ms", fmt.Sprintf("%.1f", t.LatencyP99), "retries", t.Retries, "unarchived_at_end", t.UnarchivedAtEnd,
		"drain_s", fmt.Sprintf("%.2f", t.DrainSeconds), "drain_cpu_s", fmt.Sprintf("%.2f", t.DrainCPUSeconds),
		"archived_offset", check.archivedEnd, "raw_rows", check.rows)
	return t, nil
}

// unarchived is how many accepted events the server has not archived yet.
func (p *serverProc) unarchived(ctx context.Context) (int64, error) {
	d, err := p.Client.GetDataset(ctx, datasetName)
	if err != nil {
		return 0, fmt.Errorf("read dataset status: %w", err)
	}
	if d.Log == nil {
		return 0, errors.New("dataset status has no log figures")
	}
	return d.Log.EndOffset - d.Log.ArchivedOffset, nil
}

// waitArchived waits until every sealed segment is archived: fewer than
// openMax events (the most an open segment holds) are left unarchived.
func (p *serverProc) waitArchived(ctx context.Context, openMax int64) (time.Duration, error) {
	start := time.Now()
	for {
		n, err := p.unarchived(ctx)
		if err != nil {
			return 0, err
		}
		if n < openMax {
			return time.Since(start), nil
		}
		if time.Since(start) > 2*time.Minute {
			return 0, fmt.Errorf("the server still had %d events unarchived 2 minutes after the load stopped", n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// accepted is what the server holds after a phase.
type accepted struct {
	rows, archivedEnd int64
}

// checkAccepted verifies that the server kept every acknowledged event: the
// raw table has one row per log offset, at least as many as acknowledged
// (requests abandoned at the end may have been kept unacknowledged), and
// the view counts each of them once.
func (p *serverProc) checkAccepted(ctx context.Context, acked int64, view bool) (accepted, error) {
	d, err := p.Client.GetDataset(ctx, datasetName)
	if err != nil {
		return accepted{}, fmt.Errorf("read dataset status: %w", err)
	}
	if d.Log == nil {
		return accepted{}, errors.New("dataset status has no log figures")
	}
	var a accepted
	a.archivedEnd = d.Log.ArchivedOffset
	if err := p.Trino.QueryRowContext(ctx, "SELECT count(*) FROM raw."+datasetName).Scan(&a.rows); err != nil {
		return a, fmt.Errorf("count raw rows: %w", err)
	}
	if a.rows != d.Log.EndOffset || a.rows < acked {
		return a, fmt.Errorf("raw.%s has %d rows; the log ends at offset %d and %d events were acknowledged", datasetName, a.rows, d.Log.EndOffset, acked)
	}
	if view {
		var n int64
		if err := p.Trino.QueryRowContext(ctx, "SELECT CAST(sum(events) AS BIGINT) FROM views."+viewName).Scan(&n); err != nil {
			return a, fmt.Errorf("sum the view's counts: %w", err)
		}
		if n != a.rows {
			return a, fmt.Errorf("views.%s counts %d events, raw.%s has %d rows", viewName, n, datasetName, a.rows)
		}
	}
	return a, nil
}

// write fills in the targets and writes the JSON file and the Markdown section.
func (b *bench) write(context.Context) error {
	r := &b.res
	r.GeneratedAt = time.Now().UTC().Truncate(time.Second)
	for _, t := range r.Throughput {
		if !t.View {
			continue
		}
		limit := float64(ndjsonTarget)
		if t.Format == formatArrow {
			limit = arrowTarget
		}
		r.Targets = append(r.Targets, benchenv.NewTarget(ingestTargetName(t.Format, t.Producers), t.EventsPerCore, limit, false))
	}
	r.Targets = append(r.Targets, benchenv.NewTarget(freshnessTargetName, r.Freshness.P99, freshnessTarget, true),
		benchenv.NewTarget(publishTargetName, r.FreshnessPublish.P99, freshnessTarget, true))
	for _, t := range r.Targets {
		b.logger.Info("target", "name", t.Name, "measured", fmt.Sprintf("%.1f", t.Measured), "limit", t.Limit, "pass", t.Pass)
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

func since(t time.Time) string { return fmt.Sprintf("%.2f", time.Since(t).Seconds()) }
