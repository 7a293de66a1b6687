package executor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeDuet is a shell script speaking the executor's command line: the
// launcher appends `executor run --dir DIR` or `executor run --standby`, and
// a standby reads its task's directory from stdin. body runs in the task's
// directory with $mode set to "standby" or "cold".
func fakeDuet(body string) []string {
	script := `
if [ "$3" = "--standby" ]; then
  [ -n "$STANDBY_LOG" ] && echo $$ >> "$STANDBY_LOG"
  echo "warming up" >&2
  read dir || exit 0
  cd "$dir" || exit 9
  mode=standby
else
  mode=cold
fi
` + body
	return []string{"/bin/sh", "-c", script, "sh"}
}

func runLauncher(t *testing.T, l *Local) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func waitStanding(t *testing.T, l *Local, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Standing() != n {
		if time.Now().After(deadline) {
			t.Fatalf("standby executors: %d, want %d", l.Standing(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLaunchReportsStderrAndKeepsOutput(t *testing.T) {
	l, err := NewLocal(Config{Command: fakeDuet(`echo "$mode in $(pwd)"; echo first >&2; echo "$2 failed" >&2; exit 3`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = l.Launch(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "exited with 3: run failed") {
		t.Fatalf("got %v, want the exit code and the last stderr line", err)
	}
	if out := readFile(t, filepath.Join(dir, "stdout")); out != "cold in "+dir+"\n" {
		t.Fatalf("stdout %q: the executor must run in its directory", out)
	}
	if errOut := readFile(t, filepath.Join(dir, "stderr")); errOut != "first\nrun failed\n" {
		t.Fatalf("stderr file %q", errOut)
	}
}

// A standby executor takes the next task; each task still gets a process of
// its own, and the standby's output before its task goes with the task's.
func TestStandbyExecutorTakesTheNextTask(t *testing.T) {
	l, err := NewLocal(Config{Command: fakeDuet(`echo "$mode $$ in $(pwd)"; echo done >&2`), Standby: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runLauncher(t, l)
	var pids []string
	for i := range 3 {
		waitStanding(t, l, 1)
		dir := t.TempDir()
		if err := l.Launch(context.Background(), dir); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		f := strings.Fields(readFile(t, filepath.Join(dir, "stdout")))
		if len(f) != 4 || f[0] != "standby" || f[3] != dir {
			t.Fatalf("task %d: stdout %q, want a standby executor in %s", i, f, dir)
		}
		if errOut := readFile(t, filepath.Join(dir, "stderr")); errOut != "warming up\ndone\n" {
			t.Fatalf("task %d: stderr %q", i, errOut)
		}
		pids = append(pids, f[1])
	}
	if pids[0] == pids[1] || pids[1] == pids[2] || pids[0] == pids[2] {
		t.Fatalf("executor processes %v: each task must have its own", pids)
	}
}

// A standby that dies before its task is not handed one: the task starts an
// executor of its own, and the launcher backs off instead of restarting
// standbys in a tight loop.
func TestDeadStandbyFallsBackToAFreshExecutor(t *testing.T) {
	starts := filepath.Join(t.TempDir(), "starts")
	t.Setenv("STANDBY_LOG", starts)
	script := fakeDuet(`echo "$mode"`)
	script[2] = strings.Replace(script[2], `echo "warming up" >&2`, `echo "warm-up failed" >&2; exit 4`, 1)
	l, err := NewLocal(Config{Command: script, Standby: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runLauncher(t, l)
	time.Sleep(1500 * time.Millisecond)
	if n := strings.Count(readFile(t, starts), "\n"); n < 1 || n > 3 {
		t.Fatalf("%d standby starts in 1.5 s, want 1 to 3 (backing off)", n)
	}
	dir := t.TempDir()
	if err := l.Launch(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if out := readFile(t, filepath.Join(dir, "stdout")); out != "cold\n" {
		t.Fatalf("stdout %q, want a cold executor", out)
	}
}

func TestLaunchKillsTheProcessGroupOnCancel(t *testing.T) {
	for _, standby := range []int{0, 1} {
		t.Run("standby="+strconv.Itoa(standby), func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "child-alive")
			// The executor starts a grandchild; cancelling must stop both.
			l, err := NewLocal(Config{Command: fakeDuet(`(sleep 2; touch ` + marker + `) & sleep 60`), Standby: standby}, nil)
			if err != nil {
				t.Fatal(err)
			}
			runLauncher(t, l)
			waitStanding(t, l, standby)
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
		})
	}
}

// Stopping the launcher stops its waiting standby executors.
func TestRunStopsStandbyExecutors(t *testing.T) {
	starts := filepath.Join(t.TempDir(), "starts")
	t.Setenv("STANDBY_LOG", starts)
	l, err := NewLocal(Config{Command: fakeDuet(`echo "$mode"`), Standby: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runLauncher(t, l)
	waitStanding(t, l, 2)
	stop()
	pids := strings.Fields(readFile(t, starts))
	if len(pids) != 2 {
		t.Fatalf("standby processes %v, want 2", pids)
	}
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("standby executor %d still runs after the launcher stopped", pid)
		}
	}
	if n := l.Standing(); n != 0 {
		t.Fatalf("%d standby executors after stop", n)
	}
}

// TestHeartbeats: the executor's reports reach the launch's Trace with its
// pid; an executor that stops reporting is killed as lost.
func TestHeartbeats(t *testing.T) {
	l, err := NewLocal(Config{HeartbeatTimeout: 2 * time.Second, Command: fakeDuet(`
echo '{"stage":"statement 1 of 2","rows":5}' >&3
echo $$ > pid
if [ -e hang ]; then exec sleep 60; fi
echo '{"stage":"statement 2 of 2","rows":7}' >&3
`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		pid    int
		stages []Status
	)
	ctx := WithTrace(context.Background(), &Trace{
		OnStart:  func(p int, _ string) { pid = p },
		OnStatus: func(s Status) { stages = append(stages, s) },
	})
	dir := t.TempDir()
	if err := l.Launch(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "pid"))); got != strconv.Itoa(pid) {
		t.Fatalf("OnStart pid %d, the executor's %s", pid, got)
	}
	if len(stages) != 2 || stages[0].Stage != "statement 1 of 2" || stages[0].Rows != 5 || stages[1].Rows != 7 {
		t.Fatalf("statuses %+v", stages)
	}

	// Silent for longer than the timeout: killed, and the launch says so.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hang"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = l.Launch(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "executor lost: no heartbeat for 2s") {
		t.Fatalf("a silent executor: %v, want it lost", err)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Fatalf("the silent executor was killed after %s; it sleeps 60s", d)
	}
	hung, _ := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(dir, "pid"))))
	if err := syscall.Kill(hung, 0); err == nil {
		t.Fatalf("the lost executor (pid %d) still runs", hung)
	}
}

// Executors run niced below the launcher, standby and cold ones alike, and
// so does whatever they start: builds give way to ingest and queries.
func TestExecutorsRunAtLowerPriority(t *testing.T) {
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(min(20-raw+7, 19))
	// Field 19 of /proc/PID/stat is the nice value; the command name, field
	// 2, has no spaces here.
	body := `sleep 5 & child=$!
echo "$mode $(cut -d' ' -f19 /proc/$$/stat) $(cut -d' ' -f19 /proc/$child/stat)"
kill $child`
	for _, standby := range []int{0, 1} {
		l, err := NewLocal(Config{Command: fakeDuet(body), Standby: standby, Nice: 7}, nil)
		if err != nil {
			t.Fatal(err)
		}
		runLauncher(t, l)
		waitStanding(t, l, standby)
		dir := t.TempDir()
		if err := l.Launch(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(readFile(t, filepath.Join(dir, "stdout")))
		if len(f) != 3 || f[1] != want || f[2] != want {
			t.Fatalf("standby %d: executor and its child report mode and nice %q, want nice %s for both", standby, f, want)
		}
	}
	if _, err := NewLocal(Config{Nice: 20}, nil); err == nil {
		t.Fatal("nice 20 accepted: the kernel's lowest priority is 19")
	}
}
