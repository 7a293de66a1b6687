package scheduler

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
)

// This file holds the scheduler's decisions as pure functions of state and
// now; scheduler.go carries them out.

// RetryDelay is the wait after failed attempt n (from 1) before the next:
// base, doubled for each further attempt, at most max.
func RetryDelay(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// ExclusionKey names what a job must not run concurrently with: its view, or
// for a job without one, its kind and parameters (one compaction of a
// dataset at a time).
func ExclusionKey(j catalog.Job) string {
	if j.View != "" {
		return "view:" + j.View
	}
	q := url.Values{}
	for k, v := range j.Params {
		q.Set(k, v)
	}
	return "job:" + j.Kind + "?" + q.Encode() // Encode sorts by key
}

// Placement is a job to start and the cluster it starts on.
type Placement struct {
	Job     catalog.Job
	Cluster string
}

// PlanStarts picks the queued jobs to start at now, given the running ones:
// oldest first (queued is oldest first), only those whose NextAttemptAt has
// come, at most one per ExclusionKey counting the running jobs, each on a
// cluster Place picks, within the clusters' slots.
func PlanStarts(queued, running []catalog.Job, now time.Time, clusters []Cluster, healthy func(string) bool) []Placement {
	busy := make(map[string]bool, len(running))
	load := map[string]int{}
	for _, j := range running {
		busy[ExclusionKey(j)] = true
		load[j.Cluster]++
	}
	var out []Placement
	for _, j := range queued {
		k := ExclusionKey(j)
		if j.NextAttemptAt.After(now) || busy[k] {
			continue
		}
		c, ok := Place(j.Criteria, clusters, load, healthy)
		if !ok {
			continue
		}
		busy[k] = true
		load[c]++
		out = append(out, Placement{Job: j, Cluster: c})
	}
	return out
}

// Place picks a job's cluster: the first criterion (a set of tags) that
// some healthy cluster has all of decides, and among those clusters the
// least loaded (running jobs per slot) with a free slot; none free means
// the job waits, even if a later criterion has room. No criteria means
// the clusters tagged DefaultTag.
func Place(criteria [][]string, clusters []Cluster, load map[string]int, healthy func(string) bool) (string, bool) {
	if len(criteria) == 0 {
		criteria = [][]string{{DefaultTag}}
	}
	for _, want := range criteria {
		var best *Cluster
		matched := false
		for i := range clusters {
			c := &clusters[i]
			if !hasTags(c.Tags, want) || healthy != nil && !healthy(c.Name) {
				continue
			}
			matched = true
			if load[c.Name] >= c.Slots {
				continue
			}
			// load/slots below best's, without division.
			if best == nil || load[c.Name]*best.Slots < load[best.Name]*c.Slots {
				best = c
			}
		}
		if matched {
			if best == nil {
				return "", false
			}
			return best.Name, true
		}
	}
	return "", false
}

// Placeable reports whether some cluster, healthy or not, meets one of
// the criteria: a job that no cluster could ever take is refused.
func Placeable(criteria [][]string, clusters []Cluster) bool {
	if len(criteria) == 0 {
		criteria = [][]string{{DefaultTag}}
	}
	for _, want := range criteria {
		for _, c := range clusters {
			if hasTags(c.Tags, want) {
				return true
			}
		}
	}
	return false
}

func hasTags(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// nextRetry is the earliest NextAttemptAt after now among queued; zero if none.
func nextRetry(queued []catalog.Job, now time.Time) time.Time {
	var next time.Time
	for _, j := range queued {
		if j.NextAttemptAt.After(now) && (next.IsZero() || j.NextAttemptAt.Before(next)) {
			next = j.NextAttemptAt
		}
	}
	return next
}

// Why an attempt's context was cancelled (context.Cause); any other cause
// (the scheduler's own context ending) means the server is stopping.
var (
	errKilled   = errors.New("killed on request")
	errTimedOut = errors.New("attempt timed out")
)

// attemptEnd is how one attempt ended.
type attemptEnd struct {
	version int64
	err     error // the Runner's
	// cause is context.Cause of the attempt's context if it was cancelled.
	cause error
	// interrupted: the process running the attempt stopped (found at start-up).
	interrupted bool
}

// backoff is the retry delay policy.
type backoff struct{ base, max time.Duration }

// settle returns the job after an attempt ended at now: succeeded, or queued
// again after a backoff while attempts remain, or in its final state.
func settle(j catalog.Job, end attemptEnd, now time.Time, b backoff) catalog.Job {
	j.FinishedAt = now
	j.NextAttemptAt = time.Time{}
	maxAttempts := max(j.MaxAttempts, 1)
	retry := func(final, msg string, delay time.Duration) catalog.Job {
		j.Error = msg
		if j.Attempt < maxAttempts {
			j.State = StateQueued
			j.NextAttemptAt = now.Add(delay)
			return j
		}
		j.State = final
		return j
	}
	switch {
	case end.err == nil && !end.interrupted:
		// A Runner that finished just as it was cancelled still finished.
		j.State, j.Error, j.Version = StateSucceeded, "", end.version
		return j
	case errors.Is(end.cause, errKilled):
		j.State, j.Error = StateKilled, fmt.Sprintf("killed on request during attempt %d", j.Attempt)
		return j
	case errors.Is(end.cause, errTimedOut):
		return retry(StateTimedOut, fmt.Sprintf("attempt %d timed out after %s", j.Attempt, j.Timeout),
			RetryDelay(b.base, b.max, j.Attempt))
	case end.interrupted || end.cause != nil:
		// Not the job's fault: retry at once, but the attempt counts, so a
		// job that brings the server down cannot loop forever.
		return retry(StateFailed, fmt.Sprintf("interrupted: the server stopped during attempt %d", j.Attempt), 0)
	default:
		return retry(StateFailed, end.err.Error(), RetryDelay(b.base, b.max, j.Attempt))
	}
}

// finished reports whether a job state is final.
func finished(state string) bool {
	return slices.Contains([]string{StateSucceeded, StateFailed, StateKilled, StateTimedOut}, state)
}
