package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLaunchReportsStderrAndKeepsOutput(t *testing.T) {
	l, err := NewLocal([]string{"/bin/sh", "-c", `echo "working in $(pwd)"; echo first >&2; echo "$1 failed" >&2; exit 3`, "sh"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = l.Launch(context.Background(), dir, "build")
	if err == nil || !strings.Contains(err.Error(), "exited with 3: build failed") {
		t.Fatalf("got %v, want the exit code and the last stderr line", err)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "stdout"))
	if !strings.Contains(string(out), "working in "+dir) {
		t.Fatalf("stdout %q: the executor must run in its directory", out)
	}
	errOut, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	if string(errOut) != "first\nbuild failed\n" {
		t.Fatalf("stderr file %q", errOut)
	}
}

func TestLaunchKillsTheProcessGroupOnCancel(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "child-alive")
	// The executor starts a grandchild; cancelling must stop both.
	l, err := NewLocal([]string{"/bin/sh", "-c", `(sleep 2; touch ` + marker + `) & sleep 60`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = l.Launch(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "executor stopped") {
		t.Fatalf("got %v, want the executor stopped", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a process the executor started outlived the cancelled task")
	}
}
