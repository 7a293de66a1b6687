package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// freshnessQuery asks the merged view (batch partials UNION ALL speed
// partials, through the SQL gateway's Trino protocol) whether a probe's
// event is visible; the probe's country is unique to it.
func freshnessQuery(probe string) string {
	return fmt.Sprintf("SELECT count(*) FROM views.%s WHERE country = '%s'", viewName, probe)
}

// measureFreshness loads a fresh server at LoadFraction of the sustained rate
// measured with the view, and meanwhile sends one-event probe requests: each
// is timed from its acknowledgement to the end of the first query through
// the SQL gateway whose answer includes it.
func (b *bench) measureFreshness(ctx context.Context) (err error) {
	format := b.cfg.FreshnessFormat
	var sustained float64
	for _, t := range b.res.Throughput {
		if t.Format == format && t.View {
			sustained = t.EventsPerSecond
		}
	}
	if sustained == 0 {
		return fmt.Errorf("freshness: no sustained %s rate was measured", formatName(format))
	}
	rate := b.cfg.LoadFraction * sustained
	srv, err := startServer(ctx, serverOptions{dataDir: serverDir(b.root, "freshness"), duet: b.cfg.Duet})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	if err := srv.setup(ctx, true); err != nil {
		return err
	}
	n := int(b.cfg.FreshnessDuration / b.cfg.ProbeInterval)
	probes := make([][]byte, n)
	names := make([]string, n)
	for i := range probes {
		names[i] = fmt.Sprintf("probe-%06d", i)
		e := b.gen.next()
		e.ts, e.country = time.Now().UTC().Truncate(time.Microsecond), names[i]
		if probes[i], err = encode(format, []event{e}); err != nil {
			return err
		}
	}
	l := startLoad(ctx, srv, b.payloads[format], b.cfg.Clients, rate)
	defer func() { err = errors.Join(err, l.stop()) }()
	if err := l.wait(ctx, min(b.cfg.Warmup, 2*time.Second)); err != nil {
		return err
	}
	s0, err := l.snapshot()
	if err != nil {
		return err
	}
	var visible, acks []time.Duration
	maxPolls := 0
	tick := time.NewTicker(b.cfg.ProbeInterval)
	defer tick.Stop()
	for i := range probes {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.failed:
			return l.err
		case <-tick.C:
		}
		sent := time.Now()
		if _, err := srv.client.Ingest(ctx, datasetName, contentType(format), probes[i]); err != nil {
			return fmt.Errorf("freshness probe %d: %w", i, err)
		}
		acked := time.Now()
		polls, err := srv.pollVisible(ctx, names[i], acked.Add(10*time.Second))
		if err != nil {
			return fmt.Errorf("freshness probe %d: %w", i, err)
		}
		visible = append(visible, time.Since(acked))
		acks = append(acks, acked.Sub(sent))
		maxPolls = max(maxPolls, polls)
	}
	s1, err := l.snapshot()
	if err != nil {
		return err
	}
	if err := l.stop(); err != nil {
		return err
	}
	wall := s1.at.Sub(s0.at).Seconds()
	v, a := sortedCopy(visible), sortedCopy(acks)
	b.res.Freshness = Freshness{
		Format: format, LoadFraction: b.cfg.LoadFraction, TargetRate: rate, Rate: float64(s1.acked-s0.acked) / wall,
		Cores: (s1.cpu - s0.cpu).Seconds() / wall, OtherCores: otherCores(s0, s1), Probes: len(v), ProbeInterval: b.cfg.ProbeInterval.String(),
		P50: ms(percentile(v, 0.5)), P99: ms(percentile(v, 0.99)), Max: ms(v[len(v)-1]),
		AckP50: ms(percentile(a, 0.5)), AckP99: ms(percentile(a, 0.99)), MaxPolls: maxPolls,
		Query: freshnessQuery("probe-NNNNNN"),
	}
	f := b.res.Freshness
	b.logger.Info("freshness", "format", format, "events_per_s", fmt.Sprintf("%.0f", f.Rate), "target_events_per_s", fmt.Sprintf("%.0f", rate),
		"server_cores", fmt.Sprintf("%.2f", f.Cores), "other_cores", fmt.Sprintf("%.2f", f.OtherCores), "probes", f.Probes, "p50_ms", fmt.Sprintf("%.1f", f.P50),
		"p99_ms", fmt.Sprintf("%.1f", f.P99), "max_ms", fmt.Sprintf("%.1f", f.Max), "max_polls", f.MaxPolls)
	return nil
}

// pollVisible queries until the probe's event is visible, returning how
// many queries it took.
func (p *serverProc) pollVisible(ctx context.Context, probe string, deadline time.Time) (int, error) {
	q := freshnessQuery(probe)
	for polls := 1; ; polls++ {
		var n int64
		if err := p.trino.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return polls, fmt.Errorf("query the merged view: %w", err)
		}
		if n > 0 {
			return polls, nil
		}
		if time.Now().After(deadline) {
			return polls, fmt.Errorf("acknowledged event %s still not visible in views.%s after %d queries", probe, viewName, polls)
		}
	}
}
