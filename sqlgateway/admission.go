package sqlgateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// admission bounds the queries running at once. Beyond the limit a query
// waits (its documents say QUEUED); when a slot frees, it goes to the
// waiting query of the user with the fewest queries running, the oldest
// first among equals, so one user's burst of dashboard queries cannot
// starve another user's single query. Past maxQueued waiting queries a new
// one fails at once with QUERY_QUEUE_FULL.
type admission struct {
	limit, maxQueued int

	mu      sync.Mutex
	running map[string]int // per user
	total   int
	waiting []*waiter
}

type waiter struct {
	user  string
	ready chan struct{}
}

func newAdmission(limit, maxQueued int) *admission {
	return &admission{limit: limit, maxQueued: maxQueued, running: map[string]int{}}
}

// acquire returns once user's query may run, or with ctx's error if it ends
// first.
func (a *admission) acquire(ctx context.Context, user string) error {
	a.mu.Lock()
	if a.total < a.limit && len(a.waiting) == 0 {
		a.start(user)
		a.mu.Unlock()
		return nil
	}
	if len(a.waiting) >= a.maxQueued {
		a.mu.Unlock()
		return newQueryError(errQueueFull, fmt.Sprintf(
			"Too many queued queries: %d are waiting for one of the gateway's %d query slots", len(a.waiting), a.limit))
	}
	w := &waiter{user: user, ready: make(chan struct{})}
	a.waiting = append(a.waiting, w)
	a.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		if i := slices.Index(a.waiting, w); i >= 0 {
			a.waiting = slices.Delete(a.waiting, i, i+1)
			return ctx.Err()
		}
		// Admitted as ctx ended: hand the slot on.
		a.finishLocked(user)
		return ctx.Err()
	}
}

// release frees user's slot for the next waiting query.
func (a *admission) release(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.finishLocked(user)
}

func (a *admission) start(user string) {
	a.total++
	a.running[user]++
}

func (a *admission) finishLocked(user string) {
	a.total--
	if a.running[user]--; a.running[user] == 0 {
		delete(a.running, user)
	}
	for a.total < a.limit && len(a.waiting) > 0 {
		next := 0
		for i, w := range a.waiting {
			if a.running[w.user] < a.running[a.waiting[next].user] {
				next = i
			}
		}
		w := a.waiting[next]
		a.waiting = slices.Delete(a.waiting, next, next+1)
		a.start(w.user)
		close(w.ready)
	}
}

// QueryInfo describes a query the gateway ran, for duet's system.queries.
type QueryInfo struct {
	ID, User, Source, SQL string
	// State is QUEUED, RUNNING, FINISHED, FAILED or CANCELED.
	State                   string
	Created, Started, Ended time.Time // Started and Ended are zero until then
	Rows                    int64
	ErrorName, Error        string
}

// history keeps the latest finished queries, newest last.
type history struct {
	mu   sync.Mutex
	size int
	done []QueryInfo
}

func (h *history) add(q QueryInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.done) == h.size {
		h.done = slices.Delete(h.done, 0, 1)
	}
	h.done = append(h.done, q)
}

// Queries lists the queries that are queued or running and the latest
// finished ones (up to the configured history size), newest first.
func (g *Gateway) Queries() []QueryInfo {
	g.history.mu.Lock()
	out := slices.Clone(g.history.done)
	g.history.mu.Unlock()
	finished := map[string]bool{}
	for _, q := range out {
		finished[q.ID] = true
	}
	g.mu.Lock()
	for id, q := range g.queries {
		if !finished[id] && q.doneAt.Load() == 0 {
			out = append(out, q.info())
		}
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b QueryInfo) int { return b.Created.Compare(a.Created) })
	return out
}

// info describes q while it is queued or running.
func (q *query) info() QueryInfo {
	qi := QueryInfo{ID: q.id, User: q.sess.user, Source: q.sess.source, SQL: q.sql, State: "QUEUED", Created: q.created}
	if ns := q.started.Load(); ns != 0 {
		qi.State, qi.Started = "RUNNING", time.Unix(0, ns)
	}
	return qi
}
