package testsvc

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a server binary run for one test, which can be stopped, killed
// and started again. The server types embed it for Start, Stop, Kill and
// Tail; the fields before mu are set once, before the first Start.
type process struct {
	t       testing.TB
	name    string // the server, in messages: "MinIO"
	where   string // where it listens, in messages
	logPath string // its output, appended to across restarts
	// command builds the command that runs the server; an exec.Cmd runs
	// only once, so each Start needs a fresh one.
	command func() *exec.Cmd
	// ready waits until the server answers, or fails early once exited is
	// closed.
	ready func(exited <-chan struct{}) error

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	log    *os.File
}

// Start starts the server (again, after Stop: same port and data) and waits
// until it is ready.
func (p *process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("%s at %s is already running", p.name, p.where)
	}
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := p.command()
	cmd.Stdout = log
	cmd.Stderr = log
	// Its own process group, so a terminal's ^C goes to the test, which
	// then stops the server through Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		p.t.Fatalf("start %s (%s): %v", p.name, cmd.Args[0], err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited, p.log = cmd, exited, log
	if err := p.ready(exited); err != nil {
		p.stopLocked(syscall.SIGKILL)
		p.t.Fatalf("%s at %s did not become ready: %v%s", p.name, p.where, err, p.Tail())
	}
}

// waitReady polls url until it answers 200 OK, the server exits or timeout
// passes.
func waitReady(url string, exited <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the server exited")
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("after %s: %v", timeout, last)
}

// Stop stops the server (SIGTERM, then SIGKILL if it takes over 5 s) and
// waits for it to exit. It may be called again, and Start may follow.
func (p *process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked(syscall.SIGTERM)
}

// Kill stops the server abruptly, as a crash would: connections in the
// middle of a request break. Start may follow.
func (p *process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked(syscall.SIGKILL)
}

func (p *process) stopLocked(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.log.Close()
	p.cmd, p.exited, p.log = nil, nil, nil
}

// Tail is the end of the server's output, to put in a failure message.
func (p *process) Tail() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("\n(no %s output: %v)", p.name, err)
	}
	const max = 4 << 10
	if len(data) > max {
		data = data[len(data)-max:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Sprintf("\n(%s printed nothing)", p.name)
	}
	return "\n" + p.name + " output (" + p.logPath + "):\n" + string(data)
}
