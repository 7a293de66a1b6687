package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/bench/internal/benchenv"
)

// jobPoll is how often the rebuild loop asks whether its build finished:
// often, so the next build follows closely.
const jobPoll = 25 * time.Millisecond

// build is one build job of the rebuild loop.
type build struct {
	submitted, finished time.Time
	// version is the view's version after the build; published is when it
	// was published, zero when the build found nothing new to publish.
	version   int64
	published time.Time
}

// rebuilder builds the view over and over through the API (POST
// /v1/views/{view}/builds, then polling the job until it is final): each
// build archives the records accepted so far and publishes a version that
// covers them, handing them over from the speed layer to the batch layer.
type rebuilder struct {
	srv      *serverProc
	stopping chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	// builds is written by the loop until done is closed.
	builds []build
	err    error
	// failed is closed when the loop ends with an error.
	failed chan struct{}
}

func startRebuilder(ctx context.Context, srv *serverProc) *rebuilder {
	r := &rebuilder{srv: srv, stopping: make(chan struct{}), done: make(chan struct{}), failed: make(chan struct{})}
	go func() {
		defer close(r.done)
		if r.err = r.loop(ctx); r.err != nil {
			close(r.failed)
		}
	}()
	return r
}

func (r *rebuilder) loop(ctx context.Context) error {
	var last int64
	for {
		select {
		case <-r.stopping:
			return nil
		default:
		}
		b := build{submitted: time.Now()}
		job, err := r.srv.Client.TriggerBuild(ctx, viewName)
		if err != nil {
			return fmt.Errorf("submit a build of %s: %w", viewName, err)
		}
		if job, err = r.srv.Client.WaitJob(ctx, job.ID, jobPoll); err != nil {
			return fmt.Errorf("build %s of %s: %w", job.ID, viewName, err)
		}
		b.finished = time.Now()
		if job.State != api.JobSucceeded {
			return fmt.Errorf("build %s of %s ended %s: %s", job.ID, viewName, job.State, job.Error)
		}
		if job.Version == nil {
			return fmt.Errorf("build %s of %s succeeded without a version", job.ID, viewName)
		}
		b.version = job.Version.Version
		if b.version != last {
			b.published = job.Version.PublishedAt
			last = b.version
		}
		r.builds = append(r.builds, b)
	}
}

// stop lets the running build finish and ends the loop.
func (r *rebuilder) stop() error {
	r.stopOnce.Do(func() { close(r.stopping) })
	<-r.done
	return r.err
}

// summarize relates the builds to the probes, once the loop has stopped.
func (r *rebuilder) summarize(probes []probe) Builds {
	s := Builds{Jobs: len(r.builds), NearPublish: nearPublish.String()}
	if len(probes) == 0 {
		return s
	}
	from, to := probes[0].sent, probes[len(probes)-1].visible
	var secs, near []time.Duration
	for _, b := range r.builds {
		secs = append(secs, b.finished.Sub(b.submitted))
		if b.published.IsZero() || b.published.Before(from) || b.published.After(to) {
			continue
		}
		s.Published++
		if s.FirstVersion == 0 {
			s.FirstVersion = b.version
		}
		s.LastVersion = b.version
	}
	for _, p := range probes {
		for _, b := range r.builds {
			if b.published.IsZero() {
				continue
			}
			switch at := b.published; {
			case p.visible.Before(at) && !p.visible.Before(at.Add(-nearPublish)):
				s.ProbesBefore++
			case !p.sent.After(at) && !p.visible.Before(at):
				s.ProbesSpanning++
			case p.sent.After(at) && !p.sent.After(at.Add(nearPublish)):
				s.ProbesAfter++
			default:
				continue
			}
			near = append(near, p.visible.Sub(p.acked))
			break
		}
	}
	secs = sortedCopy(secs)
	if len(secs) > 0 {
		s.SecondsP50, s.SecondsMax = benchenv.Percentile(secs, 0.5).Seconds(), secs[len(secs)-1].Seconds()
	}
	near = sortedCopy(near)
	if len(near) > 0 {
		s.NearP99, s.NearMax = ms(benchenv.Percentile(near, 0.99)), ms(near[len(near)-1])
	}
	return s
}
