package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchserver"
)

// Segments of the memory phase never seal by size or age while it runs, so
// every ingested event stays retained (unarchived) in the speed layer.
const (
	memorySegmentRecords = 1 << 40
	memorySegmentAge     = 24 * time.Hour
	// memorySettle lets the server finish in-flight work before measuring.
	memorySettle = 2 * time.Second
)

// measureMemory ingests MemoryEvents Arrow events at full speed into a
// fresh server with the view, and divides the growth of its resident memory
// by the number of events it retains.
func (b *bench) measureMemory(ctx context.Context) (err error) {
	srv, err := startServer(ctx, benchserver.Options{DataDir: serverDir(b.root, "memory"), Duet: b.cfg.Duet,
		SegmentMaxRecords: memorySegmentRecords, SegmentMaxAge: memorySegmentAge})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	if err := srv.setup(ctx, true); err != nil {
		return err
	}
	p := b.payloads[formatArrow]
	// One batch first, so that what is set up on the first ingest (engine
	// tables' first blocks, connections) is in the baseline.
	if _, err := srv.Client.Ingest(ctx, datasetName, contentType(p.format), p.bodies[0]); err != nil {
		return fmt.Errorf("first batch: %w", err)
	}
	time.Sleep(memorySettle)
	before, err := srv.memoryState(ctx)
	if err != nil {
		return err
	}
	l := startLoad(ctx, srv, p, b.cfg.Producers.most(), 0)
	for l.acked.get() < b.cfg.MemoryEvents {
		if err := l.wait(ctx, 20*time.Millisecond); err != nil {
			l.stop()
			return err
		}
	}
	if err := l.stop(); err != nil {
		return err
	}
	time.Sleep(memorySettle)
	after, err := srv.memoryState(ctx)
	if err != nil {
		return err
	}
	if after.archivedEnd != 0 {
		return fmt.Errorf("memory: the server archived offsets up to %d; the retained events must stay unarchived", after.archivedEnd)
	}
	events := after.retained - before.retained
	b.res.Memory = Memory{
		Events: after.retained, ArchivedEnd: after.archivedEnd, RSSBefore: before.rss, RSSAfter: after.rss,
		BytesPerEvent:    float64(after.rss-before.rss) / float64(events),
		GoHeapPerEvent:   float64(after.heapInuse-before.heapInuse) / float64(events),
		SegmentMaxRecord: memorySegmentRecords, SegmentMaxAge: memorySegmentAge.String(),
	}
	m := b.res.Memory
	b.logger.Info("memory", "retained_events", m.Events, "rss_before_mib", mib(m.RSSBefore), "rss_after_mib", mib(m.RSSAfter),
		"rss_bytes_per_event", fmt.Sprintf("%.1f", m.BytesPerEvent), "go_heap_bytes_per_event", fmt.Sprintf("%.1f", m.GoHeapPerEvent))
	return nil
}

type memoryState struct {
	rss, heapInuse        int64
	retained, archivedEnd int64
}

func (p *serverProc) memoryState(ctx context.Context) (memoryState, error) {
	var s memoryState
	var err error
	if s.rss, err = p.rss(); err != nil {
		return s, err
	}
	d, err := p.Client.GetDataset(ctx, datasetName)
	if err != nil {
		return s, fmt.Errorf("read dataset status: %w", err)
	}
	if d.Log == nil {
		return s, errors.New("dataset status has no log figures")
	}
	s.retained, s.archivedEnd = d.Log.EndOffset-d.Log.ArchivedOffset, d.Log.ArchivedOffset
	heap, err := p.metric(ctx, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return s, err
	}
	s.heapInuse = int64(heap)
	return s, nil
}

// metric reads one unlabelled sample from the server's /metrics.
func (p *serverProc) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Client.BaseURL()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	// Two requests a phase: the shared client's pooled connections are
	// not worth exposing for them.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read /metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read /metrics: %w", err)
	}
	return 0, fmt.Errorf("/metrics has no sample %s", name)
}

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
