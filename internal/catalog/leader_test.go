package catalog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/internal/testsvc"
)

// patience bounds waits for something that happens within seconds, failing
// the test only if it hangs: these are not timing assertions.
const patience = time.Minute

// leaderBackend opens two replicas of one catalog and can end the lock a
// leader holds behind its back.
type leaderBackend struct {
	name string
	open func(t *testing.T) (a, b *Store)
	// usurp makes the lock l holds takeable by another process while l's
	// process goes on: what a partition or a crash of its connection does.
	usurp func(t *testing.T, s *Store, l *Leadership)
}

func leaderBackends() []leaderBackend {
	return []leaderBackend{
		{
			name: "SQLite",
			open: func(t *testing.T) (*Store, *Store) {
				path := filepath.Join(t.TempDir(), "catalog.db")
				return openSQLite(t, path), openSQLite(t, path)
			},
			// A removed lock file: the next campaigner locks a new one.
			usurp: func(t *testing.T, s *Store, l *Leadership) {
				if err := os.Remove(s.name + ".leader-" + l.Name() + ".lock"); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "PostgreSQL",
			open: func(t *testing.T) (*Store, *Store) {
				dsn := testsvc.PostgresDSN(t)
				return openPostgres(t, dsn), openPostgres(t, dsn)
			},
			// The holder's session killed by the server, as when its
			// connection is cut: PostgreSQL frees the lock.
			usurp: func(t *testing.T, s *Store, l *Leadership) {
				var pid int64
				err := s.read.QueryRowContext(t.Context(), `
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2`,
					int64(uint32(pgLeaderClass)), int64(uint32(newPGLock(nil, l.Name()).key))).Scan(&pid)
				if err != nil {
					t.Fatalf("find the session holding leader lock %q: %v", l.Name(), err)
				}
				var ok bool
				if err := s.write.QueryRowContext(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
					t.Fatalf("terminate session %d: %v, %v", pid, ok, err)
				}
			},
		},
	}
}

type campaignResult struct {
	l   *Leadership
	err error
}

func campaignAsync(ctx context.Context, s *Store, holder string) <-chan campaignResult {
	c := make(chan campaignResult, 1)
	go func() {
		l, err := s.Campaign(ctx, "scheduler", holder)
		c <- campaignResult{l, err}
	}()
	return c
}

func awaitLeadership(t *testing.T, c <-chan campaignResult) *Leadership {
	t.Helper()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.l.Release() })
		return r.l
	case <-time.After(patience):
		t.Fatalf("no leadership after %s", patience)
		return nil
	}
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(patience):
		t.Fatalf("%s did not happen within %s", what, patience)
	}
}

func wantLeader(t *testing.T, s *Store, holder string, epoch int64) {
	t.Helper()
	h, e, err := s.Leader(t.Context(), "scheduler")
	if err != nil || h != holder || e != epoch {
		t.Fatalf("Leader = %q, %d, %v; want %q, %d", h, e, err, holder, epoch)
	}
}

// wantNoLeadership: while another holds the lock, a campaign gets nothing.
func wantNoLeadership(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	l, err := s.Campaign(ctx, "scheduler", "intruder")
	if err == nil {
		l.Release()
		t.Fatal("Campaign won the lock while another process held it")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign = %v, want context.DeadlineExceeded", err)
	}
}

func TestLeaderLock(t *testing.T) {
	for _, be := range leaderBackends() {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			a, b := be.open(t)
			wantLeader(t, b, "", 0)

			la := awaitLeadership(t, campaignAsync(ctx, a, "replica-a"))
			if la.Epoch() != 1 || la.Holder() != "replica-a" || la.Name() != "scheduler" {
				t.Fatalf("first leadership: epoch %d, holder %q, name %q", la.Epoch(), la.Holder(), la.Name())
			}
			wantLeader(t, b, "replica-a", 1)
			wantNoLeadership(t, b)
			select {
			case <-la.Lost():
				t.Fatal("Lost closed while the lock was held")
			default:
			}

			// Released: the waiting replica takes over with the next epoch.
			waiting := campaignAsync(ctx, b, "replica-b")
			if err := la.Release(); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, la.Lost(), "Lost after Release")
			lb := awaitLeadership(t, waiting)
			if lb.Epoch() != 2 {
				t.Fatalf("epoch after takeover = %d, want 2", lb.Epoch())
			}
			wantLeader(t, a, "replica-b", 2)
			if err := la.Release(); err != nil {
				t.Fatalf("second Release: %v", err)
			}
			wantLeader(t, a, "replica-b", 2) // the old leader's release leaves the new one alone

			// A fenced store writes while its leadership is the newest.
			b.FenceWrites(lb)
			mustCreateDataset(t, b, "by_leader")

			// The lock taken from under a live leader: another replica gets
			// it, and the deposed leader learns it lost.
			be.usurp(t, a, lb)
			lc := awaitLeadership(t, campaignAsync(ctx, a, "replica-c"))
			if lc.Epoch() != 3 {
				t.Fatalf("epoch after usurping = %d, want 3", lc.Epoch())
			}
			// Before or after it notices, the deposed leader writes nothing.
			err := b.CreateDataset(ctx, Dataset{Spec: spec("by_deposed"), CreatedAt: t0})
			wantErr(t, "write by the deposed leader", err, ErrFenced)
			if _, err := a.GetDataset(ctx, "by_deposed"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the deposed leader's write is visible: %v", err)
			}
			mustCreateDataset(t, a, "by_new_leader")
			waitClosed(t, lb.Lost(), "Lost on the deposed leader")
			if err := lb.Release(); err != nil {
				t.Fatalf("Release after loss: %v", err)
			}
			wantLeader(t, b, "replica-c", 3)
			select {
			case <-lc.Lost():
				t.Fatal("the new leader lost its lock")
			default:
			}
			if err := lc.Release(); err != nil {
				t.Fatal(err)
			}
			wantLeader(t, b, "", 3)
		})
	}
}

// leaderHelperEnv, set to a catalog path, makes TestLeaderHelperProcess a
// leader in a process of its own.
const leaderHelperEnv = "DUET_CATALOG_LEADER_HELPER"

// TestLeaderSQLiteAcrossProcesses: a process leading on a SQLite catalog dies
// (SIGKILL, nothing released); another process then takes over.
func TestLeaderSQLiteAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	s := openSQLite(t, path)

	cmd := exec.Command(os.Args[0], "-test.run=^TestLeaderHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), leaderHelperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // its end makes the helper exit should this test die first
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	leading := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "leading ") {
				leading <- line
			}
		}
		close(leading)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-leading:
		if !ok {
			t.Fatal("the helper process ended without leading")
		}
		if line != "leading epoch=1" {
			t.Fatalf("helper says %q, want leading epoch=1", line)
		}
	case <-time.After(patience):
		t.Fatal("the helper process did not lead")
	}
	wantLeader(t, s, "helper", 1)
	wantNoLeadership(t, s)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	l := awaitLeadership(t, campaignAsync(t.Context(), s, "survivor"))
	if l.Epoch() != 2 {
		t.Fatalf("epoch after the helper died = %d, want 2", l.Epoch())
	}
	wantLeader(t, s, "survivor", 2)
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestLeaderHelperProcess leads on the catalog leaderHelperEnv names until
// killed or until its stdin closes; outside that it does nothing.
func TestLeaderHelperProcess(t *testing.T) {
	path := os.Getenv(leaderHelperEnv)
	if path == "" {
		t.Skip("the subprocess of TestLeaderSQLiteAcrossProcesses")
	}
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.Campaign(t.Context(), "scheduler", "helper")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	fmt.Printf("leading epoch=%d\n", l.Epoch())
	io.Copy(io.Discard, os.Stdin)
}

func TestCampaignErrors(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "catalog.db"))
	for _, name := range []string{"", "a/b", "../x", "has space", strings.Repeat("x", 101)} {
		if l, err := s.Campaign(t.Context(), name, ""); err == nil {
			l.Release()
			t.Errorf("Campaign(%q) succeeded, want an error", name)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if l, err := s.Campaign(ctx, "scheduler", ""); !errors.Is(err, context.Canceled) {
		if l != nil {
			l.Release()
		}
		t.Fatalf("Campaign(cancelled) = %v, want context.Canceled", err)
	}
	// The default holder names this host and process.
	l, err := s.Campaign(t.Context(), "scheduler", "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if want := fmt.Sprintf("/%d", os.Getpid()); !strings.HasSuffix(l.Holder(), want) {
		t.Errorf("default holder %q does not end in %q", l.Holder(), want)
	}
}
