// Package executor launches ephemeral executors: a fresh `duet executor`
// process per task, with its own working directory, killed when the task's
// context ends. Its output is kept in the working directory for the caller.
//
// Starting a process and its engine costs tens of milliseconds, more than an
// incremental build's query; so the launcher keeps standby executors, started
// and warmed up ahead of time, each of which still runs exactly one task.
package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config of the local launcher.
type Config struct {
	// Command is the duet binary and leading arguments; empty runs this
	// process's own executable, which is the duet binary in production.
	Command []string `yaml:"command"`
	// Standby is how many executors wait, started and warmed up, for a task;
	// 0 starts each executor when its task arrives.
	Standby int `yaml:"standby"`
	// HeartbeatTimeout is how long an executor may stay silent before it is
	// taken for lost and killed (it reports every HeartbeatInterval).
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	// Nice is how much lower than this process's the CPU priority of
	// executors is (added to its nice value, at most 19), so builds and jobs
	// on the same machine give way to ingest and queries; 0 keeps it equal.
	Nice int `yaml:"nice"`
}

// DefaultNice is what `duet serve` lowers executors' CPU priority by.
const DefaultNice = 10

// DefaultHeartbeatTimeout leaves room for a machine too busy to schedule the
// executor's heartbeat for a while.
const DefaultHeartbeatTimeout = 30 * time.Second

// Validate fills defaults and names a bad field.
func (c *Config) Validate() error {
	if c.Standby < 0 {
		return fmt.Errorf("executor.standby: must not be negative, got %d", c.Standby)
	}
	if c.Nice < 0 || c.Nice > 19 {
		return fmt.Errorf("executor.nice: must be between 0 and 19, got %d", c.Nice)
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.HeartbeatTimeout < 2*HeartbeatInterval {
		return fmt.Errorf("executor.heartbeat_timeout %s: must be at least %s, twice the heartbeat interval", c.HeartbeatTimeout, 2*HeartbeatInterval)
	}
	if len(c.Command) == 0 {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("executor.command: find duet executable: %w", err)
		}
		c.Command = []string{self}
	}
	return nil
}

// Local runs executors as child processes of this server.
type Local struct {
	cfg    Config
	logger *slog.Logger

	mu       sync.Mutex
	running  bool // Run keeps the standby pool filled
	idle     []*process
	starting int
	failures int // standbys in a row that died before their task
	refill   chan struct{}
}

// NewLocal returns a launcher. Standby executors are kept only while Run runs.
func NewLocal(cfg Config, logger *slog.Logger) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Local{cfg: cfg, logger: logger, refill: make(chan struct{}, 1)}, nil
}

// Run keeps cfg.Standby executors waiting until ctx ends, then stops them.
func (l *Local) Run(ctx context.Context) error {
	l.mu.Lock()
	l.running = true
	l.mu.Unlock()
	defer l.stopIdle()
	l.wake()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.refill:
		}
		for l.needStandby() {
			l.startStandby()
		}
	}
}

// Standing reports how many standby executors are waiting for a task.
func (l *Local) Standing() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.idle {
		if !p.exited() {
			n++
		}
	}
	return n
}

func (l *Local) wake() {
	select {
	case l.refill <- struct{}{}:
	default:
	}
}

func (l *Local) needStandby() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running && len(l.idle)+l.starting < l.cfg.Standby
}

// startStandby starts one standby executor, after a backoff when the
// previous ones died before their task (a broken binary must not spin).
func (l *Local) startStandby() {
	l.mu.Lock()
	l.starting++
	backoff := time.Duration(0)
	if l.failures > 0 {
		backoff = min(time.Second<<min(l.failures-1, 6), time.Minute)
	}
	l.mu.Unlock()
	go func() {
		time.Sleep(backoff)
		p, err := l.start("", "executor", "run", "--standby")
		l.mu.Lock()
		defer l.mu.Unlock()
		l.starting--
		if err != nil {
			l.failures++
			l.logger.Error("start standby executor", "err", err)
			l.wake()
			return
		}
		if !l.running {
			p.stop()
			return
		}
		l.idle = append(l.idle, p)
		go func() {
			<-p.done
			l.mu.Lock()
			defer l.mu.Unlock()
			for i, q := range l.idle {
				if q == p { // it died waiting: replace it
					l.idle = append(l.idle[:i], l.idle[i+1:]...)
					l.failures++
					l.logger.Warn("standby executor exited before its task", "err", p.err, "stderr", lastLine(p.early.String()))
					l.wake()
					break
				}
			}
		}()
	}()
}

// take hands out a waiting standby executor, nil when there is none.
func (l *Local) take() *process {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.idle) > 0 {
		p := l.idle[0]
		l.idle = l.idle[1:]
		if !p.exited() {
			return p
		}
	}
	return nil
}

func (l *Local) stopIdle() {
	l.mu.Lock()
	l.running = false
	idle := l.idle
	l.idle = nil
	l.mu.Unlock()
	for _, p := range idle {
		p.stop()
	}
	for _, p := range idle {
		<-p.done
	}
}

// Launch runs one executor in dir and waits for it. Its stdout and stderr go
// to dir/stdout and dir/stderr; a failure reports the last line of stderr.
func (l *Local) Launch(ctx context.Context, dir string) error {
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return err
	}
	defer stdout.Close()
	errFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return err
	}
	defer errFile.Close()
	var stderr bytes.Buffer

	began := time.Now()
	p, standby := l.take(), true
	if p != nil {
		p.stdout.to(stdout)
		p.stderr.to(io.MultiWriter(errFile, &stderr))
		if _, err := io.WriteString(p.stdin, dir+"\n"); err != nil {
			p.stop()
			<-p.done
			p = nil // it died just now: start one for this task instead
		}
		p.closeStdin()
	}
	if p == nil {
		standby = false
		if p, err = l.start(dir, "executor", "run", "--dir", dir); err != nil {
			return fmt.Errorf("start executor: %w", err)
		}
		p.stdout.to(stdout)
		p.stderr.to(io.MultiWriter(errFile, &stderr))
	}
	if standby {
		l.mu.Lock()
		l.failures = 0
		l.mu.Unlock()
	}
	// The replacement warms up once this task is done, not alongside it.
	defer l.wake()
	lost := l.watch(ctx, p, dir)
	l.logger.Debug("executor finished", "dir", dir, "standby", standby, "ms", time.Since(began).Milliseconds(), "err", p.err)
	if lost {
		return fmt.Errorf("executor lost: no heartbeat for %s; killed it", l.cfg.HeartbeatTimeout)
	}
	if p.err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("executor stopped: %w", ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			return fmt.Errorf("executor exited with %d: %s", ee.ExitCode(), lastLine(stderr.String()))
		}
		return fmt.Errorf("executor: %w", p.err)
	}
	return nil
}

// watch waits for the executor to exit, passing its heartbeats to the
// context's Trace. It kills the executor when ctx ends or when it has been
// silent for the heartbeat timeout, and reports the latter.
func (l *Local) watch(ctx context.Context, p *process, dir string) (lost bool) {
	trace := traceFrom(ctx)
	if trace.OnStart != nil {
		trace.OnStart(p.cmd.Process.Pid, dir)
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	read := make(chan struct{})
	go func() {
		defer close(read)
		readStatus(p.status, func(s Status, err error) {
			last.Store(time.Now().UnixNano())
			if err != nil {
				l.logger.Warn("executor status", "err", err)
			} else if trace.OnStatus != nil {
				trace.OnStatus(s)
			}
		})
	}()
	defer func() { <-read }() // every return is after the exit, which closes the pipe
	tick := time.NewTicker(min(l.cfg.HeartbeatTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return false
		case <-ctx.Done():
			p.kill()
			<-p.done
			return false
		case now := <-tick.C:
			if now.Sub(time.Unix(0, last.Load())) > l.cfg.HeartbeatTimeout {
				l.logger.Warn("executor lost: no heartbeat", "pid", p.cmd.Process.Pid, "timeout", l.cfg.HeartbeatTimeout)
				p.kill()
				<-p.done
				return true
			}
		}
	}
}

// statusDrain bounds reading an exited executor's last heartbeats.
const statusDrain = time.Second

// process is one executor process in its own process group, so that killing
// it kills anything it started.
type process struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	status         *os.File // the executor's heartbeats (see Status)
	stdout, stderr *switchWriter
	early          *bytes.Buffer // stderr before the process had a task
	done           chan struct{}
	err            error // Wait's result, set before done is closed
	stdinOnce      sync.Once
}

// start starts an executor process cfg.Nice below this process's priority.
func (l *Local) start(dir string, args ...string) (*process, error) {
	if l.cfg.Nice == 0 {
		return start(l.cfg.Command, dir, args...)
	}
	// On Linux a nice value is per thread and a child takes its parent
	// thread's. So the executor is started from a thread of its own, niced
	// first and never used again (the goroutine ends locked to it, which
	// ends the thread): the executor runs at the lower priority from its
	// first instruction. Renicing it once started left a cold executor's
	// first moments at the server's priority.
	type started struct {
		p   *process
		err error
	}
	ch := make(chan started, 1)
	go func() {
		runtime.LockOSThread()
		if err := reniceThread(l.cfg.Nice); err != nil {
			l.logger.Warn("executor runs at the server's CPU priority", "err", err)
		}
		p, err := start(l.cfg.Command, dir, args...)
		ch <- started{p, err}
	}()
	r := <-ch
	return r.p, r.err
}

// reniceThread adds by to the calling thread's nice value, at most 19.
func reniceThread(by int) error {
	// The kernel answers getpriority with 20 - nice.
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return fmt.Errorf("read own priority: %w", err)
	}
	nice := min(20-raw+by, 19)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice); err != nil {
		return fmt.Errorf("set nice %d: %w", nice, err)
	}
	return nil
}

func start(command []string, dir string, args ...string) (*process, error) {
	cmd := exec.Command(command[0], append(append([]string(nil), command[1:]...), args...)...)
	cmd.Dir = dir
	p := &process{cmd: cmd, early: &bytes.Buffer{}, done: make(chan struct{})}
	p.stdout, p.stderr = &switchWriter{w: io.Discard}, &switchWriter{w: p.early}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Output pipes a killed executor's children still hold must not block Wait.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("status pipe: %w", err)
	}
	p.status = statusR
	cmd.ExtraFiles = []*os.File{statusW}
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", StatusFDEnv, statusFD))
	err = cmd.Start()
	statusW.Close() // the child has its own; ours would keep the pipe open
	if err != nil {
		statusR.Close()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		// The last heartbeats may still be in the pipe: closing it now
		// would drop them. A watcher reads up to EOF, which comes as the
		// executor's end closed, or up to the deadline when a killed
		// executor's children still hold that end.
		p.status.SetReadDeadline(time.Now().Add(statusDrain))
		close(p.done)
		time.AfterFunc(statusDrain, func() { p.status.Close() })
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) closeStdin() { p.stdinOnce.Do(func() { p.stdin.Close() }) }

// stop ends a standby executor: with no task on stdin it exits by itself; a
// kill follows if it does not.
func (p *process) stop() {
	p.closeStdin()
	go func() {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.kill()
		}
	}()
}

func (p *process) kill() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// switchWriter sends a process's output where its task wants it, once the
// process has a task.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// to redirects the output, passing on what was written before.
func (s *switchWriter) to(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if buf, ok := s.w.(*bytes.Buffer); ok && buf.Len() > 0 {
		_, _ = w.Write(buf.Bytes())
	}
	s.w = w
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return "(no output)"
}
