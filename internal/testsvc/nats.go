package testsvc

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// NATSEnv names a nats-server binary to use instead of the one on PATH or in
// /usr/sbin.
const NATSEnv = "DUET_TEST_NATS_SERVER"

// NATSInstall is how to get nats-server.
const NATSInstall = "apt-get install nats-server"

const natsReadyTimeout = 60 * time.Second

// NATS is a nats-server with JetStream run for one test: its store in a
// temporary directory, on a free loopback port. Its Start, Stop, Kill and
// Tail come from process; a restart keeps the port and store, and Start
// waits until JetStream is ready.
type NATS struct {
	process
	bin      string
	storeDir string
	port     int
	monitor  int // the HTTP monitoring port, for the readiness check
}

// StartNATS starts a nats-server with JetStream that is killed when the test
// ends. It calls Missing when there is no nats-server binary.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	bin, ok := findBinary(NATSEnv, "nats-server", "/usr/sbin/nats-server")
	if !ok {
		Missing(t, "nats-server", NATSInstall)
	}
	dir := t.TempDir()
	n := &NATS{
		bin:      bin,
		storeDir: filepath.Join(dir, "store"),
		port:     FreePort(t),
		monitor:  FreePort(t),
	}
	n.process = process{
		t:       t,
		name:    "nats-server",
		where:   n.URL(),
		logPath: filepath.Join(dir, "nats.log"),
		command: n.command,
		ready: func(exited <-chan struct{}) error {
			// /healthz answers 200 only once JetStream is up.
			url := fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitor)
			return waitReady(url, exited, natsReadyTimeout)
		},
	}
	t.Cleanup(n.Stop)
	n.Start()
	return n
}

// URL is the client URL, nats://127.0.0.1:port.
func (n *NATS) URL() string { return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

func (n *NATS) command() *exec.Cmd {
	return exec.Command(n.bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(n.port),
		"-m", strconv.Itoa(n.monitor), "-sd", n.storeDir)
}
