package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// system is what answers the dashboard: duet through the SQL gateway, or
// DuckDB over the raw Parquet files in this process.
type system struct {
	name     string
	db       *sql.DB
	relation string
	// cpu is the CPU time the answering process has used so far.
	cpu func() (time.Duration, error)
}

// request is one measured query.
type request struct {
	shape   int
	start   time.Time
	latency time.Duration
}

// phaseSpec is one closed-loop load: clients each send a query, wait for
// the whole answer, and send the next, for warmup and then duration.
type phaseSpec struct {
	clients          int
	warmup, duration time.Duration
	seed             uint64
	gen              paramGen
	// measuring, if set, is called when the measurement starts.
	measuring func()
}

// phaseRun is what one phase recorded.
type phaseRun struct {
	// requests started during the measurement, each answered in full:
	// queries still running at its end are waited for, so slow answers are
	// not left out.
	requests []request
	// from is when the measurement started; it lasted window.
	from   time.Time
	window time.Duration
	// elapsed runs from the start of the measurement until the last
	// counted answer; cpu is the answering process's CPU time meanwhile.
	elapsed, cpu time.Duration
}

func runPhase(parent context.Context, sys system, ps phaseSpec) (phaseRun, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	start := time.Now()
	from, to := start.Add(ps.warmup), start.Add(ps.warmup+ps.duration)
	var (
		mu       sync.Mutex
		requests []request
		firstErr error
		wg       sync.WaitGroup
	)
	for c := range ps.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(ps.seed, uint64(c)))
			var mine []request
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if !t0.Before(to) {
					break
				}
				s := (c + i) % len(shapes)
				q := shapes[s].sql(sys.relation, ps.gen.draw(r))
				if _, err := query(ctx, sys.db, q, false); err != nil {
					mu.Lock()
					if firstErr == nil && ctx.Err() == nil {
						firstErr = fmt.Errorf("%s, %s: %w", sys.name, shapes[s].Name, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				if !t0.Before(from) {
					mine = append(mine, request{shape: s, start: t0, latency: time.Since(t0)})
				}
			}
			mu.Lock()
			requests = append(requests, mine...)
			mu.Unlock()
		}()
	}
	var cpu0 time.Duration
	var cpuErr error
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(from)):
		cpu0, cpuErr = sys.cpu()
		if ps.measuring != nil {
			ps.measuring()
		}
	}
	wg.Wait()
	end := time.Now()
	if firstErr != nil {
		return phaseRun{}, firstErr
	}
	if err := parent.Err(); err != nil {
		return phaseRun{}, err
	}
	cpu1, err := sys.cpu()
	if cpuErr != nil || err != nil {
		return phaseRun{}, fmt.Errorf("%s: read CPU time: %v %v", sys.name, cpuErr, err)
	}
	if len(requests) == 0 {
		return phaseRun{}, fmt.Errorf("%s: no query started during the %s measured with %d clients; raise -duration", sys.name, ps.duration, ps.clients)
	}
	slices.SortFunc(requests, func(a, b request) int { return a.start.Compare(b.start) })
	return phaseRun{requests: requests, from: from, window: ps.duration, elapsed: end.Sub(from), cpu: cpu1 - cpu0}, nil
}

// query runs q and reads its whole answer, normalised when keep is set.
func query(ctx context.Context, db *sql.DB, q string, keep bool) ([][]any, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out [][]any
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		if keep {
			row := make([]any, len(vals))
			for i, v := range vals {
				row[i] = normalize(v)
			}
			out = append(out, row)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// latencies are the sorted latencies of the requests that match.
func latencies(rs []request, match func(request) bool) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		if match(r) {
			out = append(out, r.latency)
		}
	}
	slices.Sort(out)
	return out
}

// summarize turns a phase's requests into its figures. The window is also
// cut into windows equal parts by start time, and the p99 of each part
// summarised: how much the p99 moves within the phase.
func summarize(sys string, state string, clients int, pr phaseRun, windows int) Phase {
	all := latencies(pr.requests, func(request) bool { return true })
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	p := Phase{
		System: sys, State: state, Clients: clients, Requests: len(all), Seconds: pr.window.Seconds(),
		QPS: float64(len(all)) / pr.window.Seconds(),
		P50: ms(benchenv.Percentile(all, 0.5)), P99: ms(benchenv.Percentile(all, 0.99)), Max: ms(all[len(all)-1]), Mean: ms(sum) / float64(len(all)),
		CPUMsPerQuery: ms(pr.cpu) / float64(len(all)), Cores: pr.cpu.Seconds() / pr.elapsed.Seconds(),
	}
	for s := range shapes {
		l := latencies(pr.requests, func(r request) bool { return r.shape == s })
		if len(l) > 0 {
			p.Shapes = append(p.Shapes, ShapeLatency{Name: shapes[s].Name, Requests: len(l), P50: ms(benchenv.Percentile(l, 0.5)), P99: ms(benchenv.Percentile(l, 0.99))})
		}
	}
	from := pr.from
	var p99s []float64
	for w := range windows {
		lo := from.Add(pr.window * time.Duration(w) / time.Duration(windows))
		hi := from.Add(pr.window * time.Duration(w+1) / time.Duration(windows))
		l := latencies(pr.requests, func(r request) bool { return !r.start.Before(lo) && r.start.Before(hi) })
		if len(l) > 0 {
			p99s = append(p99s, ms(benchenv.Percentile(l, 0.99)))
		}
	}
	p.P99Windows = summary(p99s)
	return p
}
