// Package benchserver runs a duet server for a benchmark in a process of its
// own: the benchmark program starts itself again with ChildCommand, and the
// child runs the server package exactly as `duet serve` does
// (server.NewReplica on a data directory). So the server's CPU time and
// memory are measured apart from the load generator's, and the child can
// serve CPU and allocation profiles (the duet binary has no pprof endpoint).
package benchserver

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trinodb/trino-go-client/trino"

	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/server"
)

// ChildCommand is the first argument that makes a benchmark program run
// RunChild instead of the benchmark (see ServeIfChild).
const ChildCommand = "serve-child"

// ServeIfChild, first thing in a benchmark program's main, runs the server
// and exits when Start started this process as the benchmark's server.
func ServeIfChild(program string) {
	if len(os.Args) < 2 || os.Args[1] != ChildCommand {
		return
	}
	if err := RunChild(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, program+" server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RunChild is the server process: server.DefaultConfig (what `duet serve`
// runs without flags) on a data directory, with the flags Start passes
// overriding it as the `duet serve` flags of the same names do. Executors
// run the duet binary. It prints "listening ADDR" once the API listens and,
// with -pprof, "pprof ADDR" for a loopback listener serving
// /debug/pprof/profile and /debug/pprof/allocs. SIGTERM stops it.
func RunChild(args []string) error {
	cfg := server.DefaultConfig()
	var duet string
	var profiling bool
	fs := flag.NewFlagSet(ChildCommand, flag.ContinueOnError)
	fs.StringVar(&duet, "duet", "", "duet binary for executors")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "data directory")
	fs.Int64Var(&cfg.SegmentMaxRecords, "segment-max-records", cfg.SegmentMaxRecords, "as duet serve")
	fs.DurationVar(&cfg.SegmentMaxAge, "segment-max-age", cfg.SegmentMaxAge, "as duet serve")
	fs.StringVar(&cfg.CompactionSchedule, "compaction-schedule", cfg.CompactionSchedule, "as duet serve")
	fs.DurationVar(&cfg.MaterializeAfter, "materialize-after", cfg.MaterializeAfter, "as duet serve")
	fs.BoolVar(&profiling, "pprof", false, "serve CPU and allocation profiles on a loopback listener of its own")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Listen = "127.0.0.1:0"
	// `duet serve` runs executors as itself; this process is not duet.
	cfg.Executor.Command = []string{duet}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	rep, err := server.NewReplica(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if profiling {
		stopProfiles, err := serveProfiles()
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	fmt.Printf("listening %s\n", rep.Addr())
	return rep.Run(ctx)
}

// serveProfiles serves the runtime's CPU profile and allocation profile on
// a loopback listener; with ?seconds=N both cover the next N seconds.
func serveProfiles() (func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for profiles: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.Handle("/debug/pprof/allocs", httppprof.Handler("allocs"))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("pprof %s\n", ln.Addr())
	return func() { srv.Close() }, nil
}

// Options configure one server process.
type Options struct {
	DataDir string
	// Duet is the binary executors run.
	Duet string
	// SegmentMaxRecords and SegmentMaxAge override the defaults when set.
	SegmentMaxRecords int64
	SegmentMaxAge     time.Duration
	// NoCompaction turns off the scheduled compaction of the raw archive
	// (hourly by default), which would otherwise fire whenever the clock
	// passes the hour.
	NoCompaction bool
	// MergeAtEveryQuery turns off the materialization of idle views
	// (`--materialize-after 0`): queries merge batch and speed partials,
	// as they do while records keep arriving.
	MergeAtEveryQuery bool
	// Profiling serves profiles (see Proc.Profile).
	Profiling bool
	// User is who the SQL gateway client connects as.
	User string
	// Conns bounds the kept-alive HTTP connections to the server, for as
	// many concurrent clients (default 64).
	Conns int
	// OnRetry, if set, is told of each ingest request Proc.Client resends
	// (refused with 429 or 503), so a benchmark can count them.
	OnRetry func(client.RetryEvent)
}

// Proc is a running server process and the clients of its API and SQL
// gateway.
type Proc struct {
	cmd    *exec.Cmd
	done   chan error
	Client *client.Client
	// Trino is database/sql over trino-go-client, through the SQL gateway,
	// in catalog duet and schema views.
	Trino    *sql.DB
	http     *http.Client
	pprof    string
	stopOnce sync.Once
	stopErr  error
}

// Start starts this program as a server process with ChildCommand and
// waits until it serves the API.
func Start(ctx context.Context, o Options) (*Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start the server: %w", err)
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, err
	}
	args := []string{ChildCommand, "-data-dir", o.DataDir, "-duet", o.Duet}
	if o.SegmentMaxRecords > 0 {
		args = append(args, "-segment-max-records", fmt.Sprint(o.SegmentMaxRecords))
	}
	if o.SegmentMaxAge > 0 {
		args = append(args, "-segment-max-age", o.SegmentMaxAge.String())
	}
	if o.NoCompaction {
		args = append(args, "-compaction-schedule", "")
	}
	if o.MergeAtEveryQuery {
		args = append(args, "-materialize-after", "0s")
	}
	if o.Profiling {
		args = append(args, "-pprof")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	// The server must not outlive the benchmark if the benchmark dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A pipe of our own rather than StdoutPipe: Wait, which runs
	// concurrently, would close StdoutPipe's reading end.
	out, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("start server process: %w", err)
	}
	p := &Proc{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 4)
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { p.done <- cmd.Wait() }()
	var base string
	for base == "" || (o.Profiling && p.pprof == "") {
		select {
		case line := <-lines:
			if a, ok := strings.CutPrefix(line, "listening "); ok {
				base = "http://" + a
			}
			if a, ok := strings.CutPrefix(line, "pprof "); ok {
				p.pprof = "http://" + a
			}
		case err := <-p.done:
			return nil, fmt.Errorf("server process exited before listening: %v", err)
		case <-time.After(2 * time.Minute):
			p.Stop()
			return nil, errors.New("server process did not listen within 2 minutes")
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		}
	}
	if err := p.connect(ctx, base, o); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.waitReady(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *Proc) connect(ctx context.Context, base string, o Options) error {
	conns := o.Conns
	if conns <= 0 {
		conns = 64
	}
	// trino-go-client's default HTTP client keeps two idle connections per
	// host; concurrent dashboard clients would each dial anew.
	p.http = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second,
	}}
	var err error
	p.Client, err = client.NewWithConfig(base, p.http, client.Config{
		IngestAttempts: 100, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: time.Second,
		OnRetry: o.OnRetry,
	})
	if err != nil {
		return err
	}
	key := "benchserver-" + strconv.Itoa(p.cmd.Process.Pid)
	if err := trino.RegisterCustomClient(key, p.http); err != nil {
		return fmt.Errorf("register SQL gateway HTTP client: %w", err)
	}
	dsn, err := url.Parse(p.Client.TrinoDSN(o.User))
	if err != nil {
		return err
	}
	q := dsn.Query()
	q.Set("custom_client", key)
	dsn.RawQuery = q.Encode()
	if p.Trino, err = sql.Open("trino", dsn.String()); err != nil {
		return fmt.Errorf("open SQL gateway client: %w", err)
	}
	p.Trino.SetMaxIdleConns(conns)
	return nil
}

// waitReady waits until the server answers the API: it listens before it
// has loaded its data (a replica leads once it holds the catalog's lock).
func (p *Proc) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		_, err := p.Client.ListDatasets(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after 10 minutes: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("server process exited while starting: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// PID is the server process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// CPU is the CPU time (user and system, all threads: Go's and DuckDB's)
// the server process has used so far.
func (p *Proc) CPU() (time.Duration, error) { return ProcessCPU(p.PID()) }

// Profile writes a CPU profile and an allocation profile (the allocations
// made during the period, not since the start) of the next d, rounded up to
// whole seconds, to cpuPath and allocsPath; an empty path skips that
// profile. It blocks for about d; it needs Options.Profiling.
func (p *Proc) Profile(ctx context.Context, d time.Duration, cpuPath, allocsPath string) error {
	if p.pprof == "" {
		return errors.New("profile: the server was started without Options.Profiling")
	}
	secs := int(math.Ceil(d.Seconds()))
	errs := make(chan error, 2)
	n := 0
	for _, f := range []struct{ path, file string }{{"profile", cpuPath}, {"allocs", allocsPath}} {
		if f.file == "" {
			continue
		}
		n++
		go func() {
			errs <- p.fetchProfile(ctx, fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", p.pprof, f.path, secs), f.file)
		}()
	}
	var err error
	for range n {
		err = errors.Join(err, <-errs)
	}
	return err
}

func (p *Proc) fetchProfile(ctx context.Context, u, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile %s: %w", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
		return fmt.Errorf("fetch profile %s: %s: %s", u, res.Status, b)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	return f.Close()
}

// Stop ends the server gracefully (SIGTERM), killing it if it does not exit
// within a minute, and releases the clients.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		if p.Trino != nil {
			p.Trino.Close()
		}
		if p.http != nil {
			p.http.CloseIdleConnections()
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				p.stopErr = fmt.Errorf("server process: %w", err)
			}
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = errors.New("server process did not stop within a minute after SIGTERM; killed")
		}
	})
	return p.stopErr
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports (the kernel's ABI fixes it).
const clockTicks = 100

// ProcessCPU is the CPU time (user and system, all threads) process pid
// has used so far, from /proc.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// Fields after the command name, which may hold spaces, start at state (3).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	// utime and stime are fields 14 and 15 of the line.
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
