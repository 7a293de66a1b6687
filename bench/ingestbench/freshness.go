package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
)

// freshnessQuery asks the merged view (batch partials UNION ALL speed
// partials, through the SQL gateway's Trino protocol) how many times it
// counts a probe's event; the probe's country is unique to it, so the exact
// answer once it is visible is 1, in the speed layer or in a batch version.
func freshnessQuery(probe string) string {
	return fmt.Sprintf("SELECT CAST(coalesce(sum(events), 0) AS BIGINT) FROM views.%s WHERE country = '%s'", viewName, probe)
}

// nearPublish is how close to a version's publication a probe counts as
// landing on the handoff.
const nearPublish = 100 * time.Millisecond

// measureFreshness runs the freshness phase twice: under load only, and
// under the same load while the view is rebuilt over and over, so that
// probes land before, during and after the handoffs of published versions.
func (b *bench) measureFreshness(ctx context.Context) error {
	var err error
	if b.res.Freshness, err = b.freshnessPhase(ctx, false); err != nil {
		return fmt.Errorf("freshness: %w", err)
	}
	if b.res.FreshnessPublish, err = b.freshnessPhase(ctx, true); err != nil {
		return fmt.Errorf("freshness during publishes: %w", err)
	}
	return nil
}

// sustained is the highest rate measured with the view for the format, and
// the number of producers that reached it.
func (b *bench) sustained(format string) (rate float64, producers int) {
	for _, t := range b.res.Throughput {
		if t.Format == format && t.View && t.EventsPerSecond > rate {
			rate, producers = t.EventsPerSecond, t.Producers
		}
	}
	return rate, producers
}

// probe is one probe's timeline.
type probe struct {
	sent, acked, visible time.Time
}

// freshnessPhase loads a fresh server with the view at LoadFraction of the
// sustained rate, and meanwhile sends one-event probe requests: each is
// timed from its acknowledgement to the end of the first query through the
// SQL gateway whose answer includes it. With publish, builds of the view
// run one after another from the start of the load until the probes end.
func (b *bench) freshnessPhase(ctx context.Context, publish bool) (f Freshness, err error) {
	format := b.cfg.FreshnessFormat
	sustained, producers := b.sustained(format)
	if sustained == 0 {
		return f, fmt.Errorf("no sustained %s rate was measured", formatName(format))
	}
	rate := b.cfg.LoadFraction * sustained
	dir := "freshness"
	if publish {
		dir = "freshness-publish"
	}
	srv, err := startServer(ctx, benchserver.Options{DataDir: serverDir(b.root, dir), Duet: b.cfg.Duet})
	if err != nil {
		return f, err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	if err := srv.setup(ctx, true); err != nil {
		return f, err
	}
	n := int(b.cfg.FreshnessDuration / b.cfg.ProbeInterval)
	bodies := make([][]byte, n)
	names := make([]string, n)
	for i := range bodies {
		names[i] = fmt.Sprintf("probe-%06d", i)
		e := b.gen.next()
		e.ts, e.country = time.Now().UTC().Truncate(time.Microsecond), names[i]
		if bodies[i], err = encode(format, []event{e}); err != nil {
			return f, err
		}
	}
	l := startLoad(ctx, srv, b.payloads[format], producers, rate)
	defer func() { err = errors.Join(err, l.stop()) }()
	warmup := time.Now().Add(min(b.cfg.Warmup, 2*time.Second))
	// The builds start with the load's first events (a build of nothing
	// fails), so the probes find a batch version already published and its
	// successors being built.
	var rb *rebuilder
	var builderFailed <-chan struct{} // nil, never ready, without builds
	if publish {
		for l.acked.get() == 0 {
			if err := l.wait(ctx, 10*time.Millisecond); err != nil {
				return f, err
			}
		}
		rb = startRebuilder(ctx, srv)
		defer func() {
			if e := rb.stop(); err == nil {
				err = e
			}
		}()
		builderFailed = rb.failed
	}
	if err := l.wait(ctx, time.Until(warmup)); err != nil {
		return f, err
	}
	s0, err := l.snapshot()
	if err != nil {
		return f, err
	}
	probes := make([]probe, 0, n)
	maxPolls := 0
	tick := time.NewTicker(b.cfg.ProbeInterval)
	defer tick.Stop()
	for i := range bodies {
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-l.failed:
			return f, l.err
		case <-builderFailed:
			return f, rb.err
		case <-tick.C:
		}
		var p probe
		p.sent = time.Now()
		if _, err := srv.Client.Ingest(ctx, datasetName, contentType(format), bodies[i]); err != nil {
			return f, fmt.Errorf("probe %d: %w", i, err)
		}
		p.acked = time.Now()
		polls, err := srv.pollVisible(ctx, names[i], p.acked.Add(10*time.Second))
		if err != nil {
			return f, fmt.Errorf("probe %d: %w", i, err)
		}
		p.visible = time.Now()
		probes = append(probes, p)
		maxPolls = max(maxPolls, polls)
	}
	s1, err := l.snapshot()
	if err != nil {
		return f, err
	}
	if rb != nil {
		// The build running now finishes under the load, so the last probes
		// also land before a publish.
		if err := rb.stop(); err != nil {
			return f, err
		}
	}
	if err := l.stop(); err != nil {
		return f, err
	}
	check, err := srv.checkAccepted(ctx, l.acked.get()+int64(len(probes)), true)
	if err != nil {
		return f, err
	}
	wall := s1.at.Sub(s0.at).Seconds()
	visible, acks := make([]time.Duration, len(probes)), make([]time.Duration, len(probes))
	for i, p := range probes {
		visible[i], acks[i] = p.visible.Sub(p.acked), p.acked.Sub(p.sent)
	}
	v, a := sortedCopy(visible), sortedCopy(acks)
	f = Freshness{
		Format: format, Producers: producers, LoadFraction: b.cfg.LoadFraction, TargetRate: rate, Rate: float64(s1.acked-s0.acked) / wall,
		Cores: (s1.cpu - s0.cpu).Seconds() / wall, OtherCores: otherCores(s0, s1), Probes: len(v), ProbeInterval: b.cfg.ProbeInterval.String(),
		P50: ms(benchenv.Percentile(v, 0.5)), P99: ms(benchenv.Percentile(v, 0.99)), Max: ms(v[len(v)-1]),
		AckP50: ms(benchenv.Percentile(a, 0.5)), AckP99: ms(benchenv.Percentile(a, 0.99)), MaxPolls: maxPolls,
		Query: freshnessQuery("probe-NNNNNN"),
	}
	attrs := []any{"format", format, "producers", producers, "events_per_s", fmt.Sprintf("%.0f", f.Rate), "target_events_per_s", fmt.Sprintf("%.0f", rate),
		"server_cores", fmt.Sprintf("%.2f", f.Cores), "other_cores", fmt.Sprintf("%.2f", f.OtherCores), "probes", f.Probes, "p50_ms", fmt.Sprintf("%.1f", f.P50),
		"p99_ms", fmt.Sprintf("%.1f", f.P99), "max_ms", fmt.Sprintf("%.1f", f.Max), "max_polls", f.MaxPolls, "raw_rows", check.rows}
	if rb != nil {
		builds := rb.summarize(probes)
		if builds.Published == 0 {
			return f, errors.New("no build published a version while the probes were sent: lengthen -freshness-duration")
		}
		f.Builds = &builds
		attrs = append(attrs, "builds", builds.Jobs, "published_during_probes", builds.Published, "versions", fmt.Sprintf("%d-%d", builds.FirstVersion, builds.LastVersion),
			"build_s_p50", fmt.Sprintf("%.2f", builds.SecondsP50), "probes_just_before_publish", builds.ProbesBefore,
			"probes_spanning_publish", builds.ProbesSpanning, "probes_just_after_publish", builds.ProbesAfter,
			"near_publish_max_ms", fmt.Sprintf("%.1f", builds.NearMax))
	}
	b.logger.Info("freshness", append([]any{"during_publish", publish}, attrs...)...)
	return f, nil
}

// pollVisible queries until the probe's event is visible, returning how
// many queries it took. Visible means counted exactly once: a handoff that
// counted it in both the batch version and the speed layer fails the run.
func (p *serverProc) pollVisible(ctx context.Context, probe string, deadline time.Time) (int, error) {
	q := freshnessQuery(probe)
	for polls := 1; ; polls++ {
		var n int64
		if err := p.Trino.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return polls, fmt.Errorf("query the merged view: %w", err)
		}
		switch {
		case n == 1:
			return polls, nil
		case n > 1:
			return polls, fmt.Errorf("views.%s counts the one acknowledged event %s %d times", viewName, probe, n)
		}
		if time.Now().After(deadline) {
			return polls, fmt.Errorf("acknowledged event %s still not visible in views.%s after %d queries", probe, viewName, polls)
		}
	}
}
