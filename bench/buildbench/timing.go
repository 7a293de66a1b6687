package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
)

// buildTimer adds up where a build's time goes: the executor process, and
// the uploads of its outputs. The rest is the control plane's own work.
// Uploads run concurrently, so they count as the span from the first start
// to the last end.
type buildTimer struct {
	mu                   sync.Mutex
	parts                buildParts
	uploadFrom, uploadTo time.Time
}

// buildParts is where one build's time went.
type buildParts struct {
	executor, uploads time.Duration
}

func (t *buildTimer) snapshot() buildParts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parts
}

func (t *buildTimer) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.parts, t.uploadFrom, t.uploadTo = buildParts{}, time.Time{}, time.Time{}
}

func (t *buildTimer) uploaded(start, end time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.uploadFrom.IsZero() || start.Before(t.uploadFrom) {
		t.uploadFrom = start
	}
	if end.After(t.uploadTo) {
		t.uploadTo = end
	}
	t.parts.uploads = t.uploadTo.Sub(t.uploadFrom)
}

// timedLauncher times each executor process.
type timedLauncher struct {
	inner batchlayer.Launcher
	timer *buildTimer
}

func (l *timedLauncher) Launch(ctx context.Context, dir string) error {
	start := time.Now()
	err := l.inner.Launch(ctx, dir)
	l.timer.mu.Lock()
	l.timer.parts.executor += time.Since(start)
	l.timer.mu.Unlock()
	return err
}

// timedBucket times the builder's uploads.
type timedBucket struct {
	batchlayer.Bucket
	timer *buildTimer
}

func (b *timedBucket) Upload(ctx context.Context, name string, r io.Reader) error {
	start := time.Now()
	err := b.Bucket.Upload(ctx, name, r)
	b.timer.uploaded(start, time.Now())
	return err
}

// cpuTime is the CPU time (user and system) this process and its waited-for
// children (executors) have used so far. Other load on the machine inflates
// wall-clock time far more than CPU time, so ratios of CPU time cross-check
// the wall-clock ones.
func cpuTime() (time.Duration, error) {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			return 0, fmt.Errorf("getrusage: %w", err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total, nil
}

// measure runs fn and returns its wall-clock and CPU time.
func measure(fn func() error) (wall, cpu time.Duration, err error) {
	c0, err := cpuTime()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return 0, 0, err
	}
	wall = time.Since(start)
	c1, err := cpuTime()
	if err != nil {
		return 0, 0, err
	}
	return wall, c1 - c0, nil
}
