package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/trinodb/trino-go-client/trino" // registers the "trino" driver

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/server"
)

// childCommand makes this program a duet server: the benchmark starts itself
// again with it, so the server runs in its own process (its CPU time and
// memory are measured apart from the load generator's) on exactly the server
// package `duet serve` runs, and can write a CPU profile (the duet binary has
// no pprof endpoint).
const childCommand = "serve-child"

// runChild is the server process: server.DefaultConfig (what `duet serve`
// runs without flags) on a data directory, with segment sizes optionally
// overridden, as `duet serve --segment-max-records --segment-max-age` do.
// Executors run the duet binary. It prints "listening ADDR" once the listener is bound. SIGUSR1 starts a
// CPU profile, SIGUSR2 stops it; SIGTERM stops the server.
func runChild(args []string) error {
	cfg := server.DefaultConfig()
	var profile, duet string
	fs := flag.NewFlagSet(childCommand, flag.ContinueOnError)
	fs.StringVar(&duet, "duet", "", "duet binary for executors")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "data directory")
	fs.Int64Var(&cfg.SegmentMaxRecords, "segment-max-records", cfg.SegmentMaxRecords, "as duet serve")
	fs.DurationVar(&cfg.SegmentMaxAge, "segment-max-age", cfg.SegmentMaxAge, "as duet serve")
	fs.StringVar(&profile, "cpuprofile", "", "file SIGUSR1..SIGUSR2 profiles into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Listen = "127.0.0.1:0"
	// `duet serve` runs executors as itself; this process is not duet.
	cfg.Executor.Command = []string{duet}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	if profile != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := profileOnSignal(ctx, profile); err != nil {
				logger.Error("cpu profile", "err", err)
			}
		}()
	}
	fmt.Printf("listening %s\n", srv.Addr())
	err = srv.Run(ctx)
	stop()
	wg.Wait()
	return err
}

// profileOnSignal profiles the CPU between SIGUSR1 and SIGUSR2 (or the end).
func profileOnSignal(ctx context.Context, path string) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	var f *os.File
	stopProfile := func() error {
		if f == nil {
			return nil
		}
		pprof.StopCPUProfile()
		err := f.Close()
		f = nil
		return err
	}
	defer stopProfile()
	for {
		select {
		case <-ctx.Done():
			return stopProfile()
		case s := <-sigs:
			if s == syscall.SIGUSR2 {
				if err := stopProfile(); err != nil {
					return err
				}
				continue
			}
			if f != nil {
				continue
			}
			var err error
			if f, err = os.Create(path); err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				f = nil
				return err
			}
		}
	}
}

// serverOptions configure one server process.
type serverOptions struct {
	dataDir string
	// duet is the binary executors run.
	duet string
	// segmentMaxRecords and segmentMaxAge override the defaults when set.
	segmentMaxRecords int64
	segmentMaxAge     time.Duration
	// profile is where SIGUSR1..SIGUSR2 write a CPU profile ("" for none).
	profile string
}

// serverProc is a running server process and the clients of its API and
// SQL gateway.
type serverProc struct {
	cmd    *exec.Cmd
	pid    int
	done   chan error
	client *client.Client
	http   *http.Client
	trino  *sql.DB
	// retries counts ingest requests refused with 429 or 503 and resent.
	retries  *counter
	stopOnce sync.Once
	stopErr  error
}

func startServer(ctx context.Context, o serverOptions) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start the server: %w", err)
	}
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return nil, err
	}
	args := []string{childCommand, "-data-dir", o.dataDir, "-duet", o.duet}
	if o.segmentMaxRecords > 0 {
		args = append(args, "-segment-max-records", fmt.Sprint(o.segmentMaxRecords))
	}
	if o.segmentMaxAge > 0 {
		args = append(args, "-segment-max-age", o.segmentMaxAge.String())
	}
	if o.profile != "" {
		args = append(args, "-cpuprofile", o.profile)
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
	p := &serverProc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan error, 1), retries: &counter{}}
	addr := make(chan string, 1)
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { p.done <- cmd.Wait() }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-p.done:
		return nil, fmt.Errorf("server process exited before listening: %v", err)
	case <-time.After(2 * time.Minute):
		p.stop()
		return nil, errors.New("server process did not listen within 2 minutes")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	// Enough kept-alive connections for every load client and the probes.
	p.http = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
	}}
	p.client, err = client.NewWithConfig(base, p.http, client.Config{
		IngestAttempts: 100, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: time.Second,
		OnRetry: func(client.RetryEvent) { p.retries.add(1) },
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	if p.trino, err = sql.Open("trino", p.client.TrinoDSN("ingestbench")); err != nil {
		p.stop()
		return nil, fmt.Errorf("open SQL gateway client: %w", err)
	}
	return p, nil
}

// setup defines the benchmark's dataset and, when withView, its view.
func (p *serverProc) setup(ctx context.Context, withView bool) error {
	spec := eventsSpec()
	if _, err := p.client.CreateDataset(ctx, api.Dataset{Name: spec.Name, TimeColumn: spec.TimeColumn, Columns: spec.Columns}); err != nil {
		return fmt.Errorf("create dataset %s: %w", spec.Name, err)
	}
	if withView {
		if _, err := p.client.CreateView(ctx, api.ViewRequest{Name: viewName, SQL: viewSQL}); err != nil {
			return fmt.Errorf("create view %s: %w", viewName, err)
		}
	}
	return nil
}

func (p *serverProc) cpu() (time.Duration, error) { return processCPU(p.pid) }
func (p *serverProc) rss() (int64, error)         { return processRSS(p.pid) }

// startProfile and stopProfile bracket the CPU profile of a server started
// with serverOptions.profile.
func (p *serverProc) startProfile() error { return p.cmd.Process.Signal(syscall.SIGUSR1) }
func (p *serverProc) stopProfile() error  { return p.cmd.Process.Signal(syscall.SIGUSR2) }

// stop ends the server gracefully (SIGTERM), killing it if it does not exit
// within a minute, and releases the clients.
func (p *serverProc) stop() error {
	p.stopOnce.Do(func() {
		if p.trino != nil {
			p.trino.Close()
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

// serverDir is a new data directory for one server under the run's directory.
func serverDir(root, name string) string { return filepath.Join(root, name) }
