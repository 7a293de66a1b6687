package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type counter struct{ n atomic.Int64 }

func (c *counter) add(n int64) { c.n.Add(n) }
func (c *counter) get() int64  { return c.n.Load() }

// load is a fleet of producers sending pre-encoded batches concurrently
// through the duet Go client (POST /v1/ingest), each waiting for the
// acknowledgement (durable and visible) before sending its next batch.
type load struct {
	srv     *serverProc
	p       *payloads
	clients int
	// rate paces the whole fleet to this many events per second; 0 sends
	// as fast as the server acknowledges.
	rate float64

	acked    counter
	requests counter
	mu       sync.Mutex
	latency  []time.Duration
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errOnce  sync.Once
	err      error
	// failed is closed on the first error, so the phase stops early.
	failed chan struct{}
}

// startLoad starts the producers. Their requests run under ctx; stop only
// keeps them from sending more, since a producer that hangs up mid-request
// is not what the benchmark measures.
func startLoad(ctx context.Context, srv *serverProc, p *payloads, clients int, rate float64) *load {
	stopping, cancel := context.WithCancel(ctx)
	l := &load{srv: srv, p: p, clients: clients, rate: rate, cancel: cancel, failed: make(chan struct{})}
	start := time.Now()
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.produce(ctx, stopping, c, start)
		}()
	}
	return l
}

func (l *load) produce(ctx, stopping context.Context, c int, start time.Time) {
	// Each producer sends every clients-th request of the fleet's schedule.
	var interval time.Duration
	if l.rate > 0 {
		interval = time.Duration(float64(l.clients*l.p.eventsPer) / l.rate * float64(time.Second))
	}
	next := start.Add(time.Duration(c) * interval / time.Duration(l.clients))
	for i := c; stopping.Err() == nil; i += l.clients {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-stopping.Done():
					return
				case <-time.After(d):
				}
			}
			next = next.Add(interval)
		}
		body := l.p.bodies[i%len(l.p.bodies)]
		t0 := time.Now()
		res, err := l.srv.Client.Ingest(ctx, datasetName, contentType(l.p.format), body)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.fail(fmt.Errorf("ingest %s batch: %w", formatName(l.p.format), err))
			return
		}
		if res.Accepted != int64(l.p.eventsPer) {
			l.fail(fmt.Errorf("ingest %s batch: server accepted %d of %d events", formatName(l.p.format), res.Accepted, l.p.eventsPer))
			return
		}
		d := time.Since(t0)
		l.acked.add(res.Accepted)
		l.requests.add(1)
		l.mu.Lock()
		l.latency = append(l.latency, d)
		l.mu.Unlock()
	}
}

func (l *load) fail(err error) {
	l.errOnce.Do(func() {
		l.err = err
		close(l.failed)
	})
}

// wait lets the load run for d, returning early with its error if it fails.
func (l *load) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-l.failed:
		return l.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop ends the load once every in-flight request is answered.
func (l *load) stop() error {
	l.cancel()
	l.wg.Wait()
	return l.err
}

// latencies returns and forgets the request latencies recorded so far.
func (l *load) latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.latency
	l.latency = nil
	return out
}

// snapshot is the state of a load and its server at one instant.
type snapshot struct {
	at       time.Time
	acked    int64
	requests int64
	retries  int64
	cpu      time.Duration
	selfCPU  time.Duration
	// machine is the CPU time of every process on the machine.
	machine time.Duration
}

// otherCores is how many cores processes other than the server and the
// load generator used between a and b: other load on a shared machine
// slows the wall-clock figures (not the per-core ones as much).
func otherCores(a, b snapshot) float64 {
	other := (b.machine - a.machine) - (b.cpu - a.cpu) - (b.selfCPU - a.selfCPU)
	return max(0, other.Seconds()/b.at.Sub(a.at).Seconds())
}

func (l *load) snapshot() (snapshot, error) {
	cpu, err := l.srv.CPU()
	if err != nil {
		return snapshot{}, err
	}
	machine, err := machineBusy()
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{at: time.Now(), acked: l.acked.get(), requests: l.requests.get(), retries: l.srv.retries.get(),
		cpu: cpu, selfCPU: selfCPU(), machine: machine}, nil
}

func sortedCopy(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

var errNoProgress = errors.New("no event was acknowledged during the measurement")
