// Package executor launches ephemeral executors: a fresh `duet executor`
// process per task, with its own working directory, killed when the task's
// context ends. Its output is kept in the working directory for the caller.
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
	"strings"
	"syscall"
	"time"
)

// Local runs executors as child processes of this server.
type Local struct {
	// Command is the duet binary (and leading arguments) to run.
	command []string
	logger  *slog.Logger
}

// NewLocal returns a launcher running command; an empty command runs this
// process's own executable, which is the duet binary in production.
func NewLocal(command []string, logger *slog.Logger) (*Local, error) {
	if len(command) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find duet executable: %w", err)
		}
		command = []string{self}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Local{command: command, logger: logger}, nil
}

// Launch runs one executor in dir and waits for it. Its stdout and stderr go
// to dir/stdout and dir/stderr; a failure reports the last line of stderr.
func (l *Local) Launch(ctx context.Context, dir string, args ...string) error {
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return err
	}
	defer stdout.Close()
	var stderr bytes.Buffer
	errFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return err
	}
	defer errFile.Close()

	cmd := exec.CommandContext(ctx, l.command[0], append(append([]string(nil), l.command[1:]...), args...)...)
	cmd.Dir = dir
	cmd.Stdout = stdout
	cmd.Stderr = io.MultiWriter(errFile, &stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole process group so nothing the executor started outlives it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	l.logger.Debug("executor finished", "args", args, "ms", time.Since(start).Milliseconds(), "err", err)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("executor stopped: %w", ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("executor exited with %d: %s", ee.ExitCode(), lastLine(stderr.String()))
		}
		return fmt.Errorf("start executor: %w", err)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return "(no output)"
}
