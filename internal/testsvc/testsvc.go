// Package testsvc gives tests the real servers duet runs against in
// production: MinIO for S3, PostgreSQL, nats-server with JetStream. Each
// server is started (or each database created) for the test that asks, on a
// free loopback port, and removed when it ends.
//
// `make test` installs or starts what is missing and sets
// DUET_TEST_REQUIRE_SERVICES=1, so in CI a component that cannot be had fails
// the test loudly; a developer running `go test` without it gets a skip that
// names what is missing and how to get it.
package testsvc

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireEnv, when set to 1, turns every skip for a missing component into a
// failure.
const RequireEnv = "DUET_TEST_REQUIRE_SERVICES"

// Missing ends the test because a component it needs is not available: a
// failure when RequireEnv is set, otherwise a skip naming what and how.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s is not available (%s=1, so this fails rather than skips): %s", what, RequireEnv, how)
	}
	t.Skipf("skipping: %s is not available: %s (make test sets it up)", what, how)
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// findBinary locates a server binary: the path in env if set, else name on
// PATH, else the first of extra that exists.
func findBinary(env, name string, extra ...string) (string, bool) {
	if p := os.Getenv(env); p != "" {
		_, err := os.Stat(p)
		return p, err == nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, p := range extra {
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// goBin is where `go install` puts binaries.
func goBin() string {
	if d := os.Getenv("GOBIN"); d != "" {
		return d
	}
	if d := os.Getenv("GOPATH"); d != "" {
		return filepath.Join(filepath.SplitList(d)[0], "bin")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go", "bin")
}
