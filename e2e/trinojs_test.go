package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/client"
)

// trinoJSDir holds the JavaScript suite: its package.json pins the npm
// trino-client version and package-lock.json the whole dependency tree.
const trinoJSDir = "testdata/trinojs"

// TestTrinoJSClientSuite runs the official JavaScript Trino client (npm
// trino-client) against a real server: the suite in testdata/trinojs
// checks results, types, paging, errors, cancellation, metadata statements
// and session headers as the client decodes them.
func TestTrinoJSClientSuite(t *testing.T) {
	node := requireTool(t, "node")
	script := installTrinoJS(t, requireTool(t, "npm"))
	requireNodeMajor(t, node, 18) // the suite uses the global fetch

	p := startServer(t, t.TempDir())
	ctx := ctxT(t)
	createFlightsAndDelays(t, p)
	// The suite expects the first four events in a batch version of the
	// view and the rest in the speed layer only.
	events, err := os.ReadFile(filepath.Join(trinoJSDir, "flights.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(bytes.TrimSpace(events), []byte("\n"))
	if len(lines) != 8 {
		t.Fatalf("%s/flights.ndjson has %d events; suite.mjs expects 8", trinoJSDir, len(lines))
	}
	ingestLines(t, p, lines[:4])
	buildView(t, p, "delays")
	ingestLines(t, p, lines[4:])

	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, node, script, p.base)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	type result struct {
		Check string `json:"check"`
		OK    bool   `json:"ok"`
		Ms    int64  `json:"ms"`
		Error string `json:"error"`
	}
	var failed []string
	passed := 0
	for line := range strings.Lines(stdout.String()) {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Check == "" {
			failed = append(failed, "unexpected output: "+strings.TrimSpace(line))
			continue
		}
		if !r.OK {
			failed = append(failed, fmt.Sprintf("%s: %s", r.Check, r.Error))
			continue
		}
		passed++
	}
	if runErr != nil || len(failed) > 0 || passed == 0 {
		t.Fatalf("JavaScript Trino client suite (node %s %s): %v; %d checks passed, %d failed:\n%s\nstderr:\n%s",
			script, p.base, runErr, passed, len(failed), strings.Join(failed, "\n"), stderr.String())
	}
	t.Logf("JavaScript Trino client suite: %d checks passed\n%s", passed, stdout.String())
}

// requireTool finds a program the suite needs. A missing one fails the
// test: the test command installs the npm package, but Node.js itself is
// part of the machine the suite runs on.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: the JavaScript Trino client suite needs Node.js 18 or later with npm (install them, e.g. apt-get install nodejs npm)", name)
	}
	return path
}

func requireNodeMajor(t *testing.T, node string, min int) {
	t.Helper()
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < min {
		t.Fatalf("%s is Node.js %s: the JavaScript Trino client suite needs Node.js %d or later", node, version, min)
	}
}

func ingestLines(t *testing.T, p *proc, lines [][]byte) {
	t.Helper()
	res, err := p.client.Ingest(ctxT(t), "flights", client.ContentTypeNDJSON, bytes.Join(lines, nil))
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if res.Accepted != int64(len(lines)) {
		t.Fatalf("ingest accepted %d of %d events", res.Accepted, len(lines))
	}
}

// installTrinoJS installs the suite's npm packages with npm ci into a cache
// directory outside the repository, keyed by the package files' hash, so
// that later runs reuse it and a fresh machine installs it. It returns the
// path of the suite script, placed beside node_modules so that its import
// of trino-client resolves there.
func installTrinoJS(t *testing.T, npm string) string {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(trinoJSDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pkg, lock, suite := read("package.json"), read("package-lock.json"), read("suite.mjs")
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	parent := filepath.Join(cache, "duet-trinojs")
	dir := filepath.Join(parent, shortHash(pkg, lock))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "trino-client", "package.json")); errors.Is(err, os.ErrNotExist) {
		npmCI(t, npm, parent, dir, pkg, lock)
	} else if err != nil {
		t.Fatal(err)
	}
	// Named by its content: runs of different checkouts sharing the
	// install do not overwrite each other's script.
	script := filepath.Join(dir, "suite-"+shortHash(suite)+".mjs")
	if _, err := os.Stat(script); err == nil {
		return script
	}
	tmp, err := os.CreateTemp(dir, "suite-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := tmp.Write(suite)
	if err := errors.Join(werr, tmp.Close(), os.Rename(tmp.Name(), script)); err != nil {
		os.Remove(tmp.Name())
		t.Fatalf("place the suite in %s: %v", dir, err)
	}
	return script
}

// npmCI installs into a fresh directory and renames it to dir, so that dir
// only ever holds a complete install, also when test processes race.
func npmCI(t *testing.T, npm, parent, dir string, pkg, lock []byte) {
	t.Helper()
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(parent, "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s (installing the trino-client npm package for the JavaScript suite): %v\n%s", tmp, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "node_modules")); statErr != nil {
			t.Fatalf("move the npm install to %s: %v", dir, err)
		}
		// Another test process installed the same packages first.
	}
}

func shortHash(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
