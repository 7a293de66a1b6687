// Package e2e runs the real duet binary as a user would and checks the
// system's one invariant through real clients: a merged view equals the
// view's SQL recomputed from scratch over every accepted record.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duet-analytics/duet/client"
)

var duetBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "duet-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	duetBin = filepath.Join(dir, "duet")
	build := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", duetBin, "../cmd/duet")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build duet:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `duet serve`.
type proc struct {
	cmd    *exec.Cmd
	base   string
	client *client.Client
	mu     sync.Mutex
	log    bytes.Buffer
	exited chan error
}

var addrRe = regexp.MustCompile(`msg="duet serving" addr=([0-9.:]+)`)

// startServer runs `duet serve` on dataDir with a free port and small
// segments, so archiving and handoff happen often during a test.
func startServer(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	return startDuet(t, serveOpts{dataDir: dataDir, flags: extra})
}

// serveOpts says how to run `duet serve`: the environment it gets beyond
// this process's, and whether to wait only until it listens as a follower
// (a replica waiting for the leader lock) instead of until it serves.
type serveOpts struct {
	dataDir  string
	flags    []string
	env      []string
	follower bool
	// source, when set, makes mergedViewThroughBuildsAndRestart's dataset
	// read its events from a Kafka topic or NATS stream.
	source *sourceFeed
}

var followerRe = regexp.MustCompile(`msg="duet replica waiting for the leader lock" addr=([0-9.:]+)`)

func startDuet(t *testing.T, o serveOpts) *proc {
	t.Helper()
	args := append([]string{"serve", "--data-dir", o.dataDir, "--listen", "127.0.0.1:0",
		"--segment-max-records", "400", "--segment-max-age", "300ms", "--threads", "2", "--memory-limit", "2GB"}, o.flags...)
	p := &proc{cmd: exec.Command(duetBin, args...), exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), o.env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := addrRe
	if o.follower {
		ready = followerRe
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := ready.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("server log (%s):\n%s", o.dataDir, p.log.String())
			p.mu.Unlock()
		}
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case err := <-p.exited:
		t.Fatalf("duet serve exited before listening: %v\n%s", err, p.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("duet serve did not start within 60s\n%s", p.logText())
	}
	p.client, err = client.New(p.base, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("duet serve did not exit cleanly after SIGTERM: %v\n%s", err, p.logText())
		}
		if !strings.Contains(p.logText(), "duet stopped") {
			t.Fatalf("server exited without its shutdown message\n%s", p.logText())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("duet serve still running 30s after SIGTERM\n%s", p.logText())
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// logLines counts the lines of the server's log that hold every one of subs.
func logLines(p *proc, subs ...string) int { return len(matchingLines(p, subs...)) }

func matchingLines(p *proc, subs ...string) []string {
	var out []string
	for line := range strings.SplitSeq(p.logText(), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// waitLogLines waits until more than before lines of the log hold all of subs.
func waitLogLines(t *testing.T, p *proc, before int, within time.Duration, subs ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("new log line with %q", subs), within, 20*time.Millisecond, func() bool {
		return logLines(p, subs...) > before
	})
}

func waitFor(t *testing.T, what string, within, every time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, within)
		}
		time.Sleep(every)
	}
}
