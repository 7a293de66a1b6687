package executor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// An executor reports to the launcher on a pipe of its own, so that its
// stdout and stderr stay the task's logs: one JSON Status per line, at each
// change of stage and at least every HeartbeatInterval. A launcher that
// hears nothing for its heartbeat timeout takes the executor for lost (hung,
// or cut off from the control plane) and kills it.
const (
	// StatusFDEnv names the environment variable holding the pipe's file
	// descriptor in the executor.
	StatusFDEnv = "DUET_STATUS_FD"
	// HeartbeatInterval is how often an executor reports, changed or not.
	HeartbeatInterval = time.Second
	// statusFD is the pipe's descriptor in the child: the first of
	// exec.Cmd.ExtraFiles.
	statusFD = 3
)

// Status is an executor's heartbeat: what it is doing.
type Status struct {
	Stage     string `json:"stage"`
	Rows      int64  `json:"rows"`
	ElapsedMs int64  `json:"elapsed_ms"`
}

// Trace observes one Launch, as httptrace observes a request: OnStart gets
// the executor's process id and working directory, OnStatus each heartbeat.
// Either may be nil.
type Trace struct {
	OnStart  func(pid int, dir string)
	OnStatus func(Status)
}

type traceKey struct{}

// WithTrace returns a context whose launches report to t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceFrom(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	if t == nil {
		return &Trace{}
	}
	return t
}

// Reporter is the executor's side: it writes heartbeats until Close.
type Reporter struct {
	w     io.WriteCloser
	start time.Time

	mu     sync.Mutex
	status Status
	done   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
}

// NewReporter reports on the pipe the launcher passed, if any: without one
// (an executor run by hand) it reports nowhere.
func NewReporter() *Reporter {
	r := &Reporter{start: time.Now(), done: make(chan struct{})}
	if fd, err := strconv.Atoi(os.Getenv(StatusFDEnv)); err == nil {
		r.w = os.NewFile(uintptr(fd), "status")
	}
	r.wg.Add(1)
	go r.beat()
	return r
}

// Stage reports a new stage; rows start again from zero.
func (r *Reporter) Stage(stage string) {
	r.mu.Lock()
	r.status.Stage, r.status.Rows = stage, 0
	r.mu.Unlock()
	r.send()
}

// Rows reports the rows the stage has processed so far.
func (r *Reporter) Rows(n int64) {
	r.mu.Lock()
	r.status.Rows = n
	r.mu.Unlock()
	r.send()
}

// Close stops the heartbeats.
func (r *Reporter) Close() {
	r.closed.Do(func() {
		close(r.done)
		r.wg.Wait()
		if r.w != nil {
			r.w.Close()
		}
	})
}

func (r *Reporter) beat() {
	defer r.wg.Done()
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
			r.send()
		}
	}
}

func (r *Reporter) send() {
	if r.w == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.ElapsedMs = time.Since(r.start).Milliseconds()
	b, _ := json.Marshal(s) // a Status always encodes
	// A launcher that stopped listening kills the executor anyway.
	_, _ = r.w.Write(append(b, '\n'))
}

// readStatus passes each heartbeat on the pipe to beat until it closes;
// a line that is no Status still counts as a sign of life.
func readStatus(r io.Reader, beat func(Status, error)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var s Status
		err := json.Unmarshal(sc.Bytes(), &s)
		if err != nil {
			err = fmt.Errorf("executor status %q: %w", sc.Text(), err)
		}
		beat(s, err)
	}
}
