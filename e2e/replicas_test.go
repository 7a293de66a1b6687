package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/testsvc"
)

// sharedStores is a catalog on a real PostgreSQL and a bucket on a real
// MinIO: what replicas, or one server beyond one machine, run on.
type sharedStores struct {
	flags []string
	env   []string
	minio *testsvc.MinIO
}

func startSharedStores(t *testing.T) sharedStores {
	t.Helper()
	dsn := testsvc.PostgresDSN(t)
	m := testsvc.StartMinIO(t)
	m.Bucket(t, "duet")
	return sharedStores{
		flags: []string{"--catalog", dsn, "--object-store", "s3://duet/prod", "--s3-endpoint", m.URL(), "--object-cache-bytes", "64000000"},
		env:   []string{"AWS_ACCESS_KEY_ID=" + m.AccessKey(), "AWS_SECRET_ACCESS_KEY=" + m.SecretKey(), "AWS_REGION=us-east-1"},
		minio: m,
	}
}

// waitArchived waits until every accepted event is archived, so the
// events are in the bucket and the catalog, not only in a replica's log.
func waitArchived(t *testing.T, p *proc, events int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := p.client.GetDataset(ctxT(t), "flights")
		if err != nil {
			t.Fatal(err)
		}
		if d.Log.ArchivedOffset == int64(events) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log status %+v: not all %d events archived within a minute", d.Log, events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freezeExecutor starts a job with start and stops the executor that runs
// it with SIGSTOP, so the test can act while the attempt is in the middle.
// It returns the job's id and the executor's pid; resuming or killing it is
// up to the caller. A small build finishes within milliseconds of starting,
// which polling for its executor could miss, so the executors that leader
// (the server running jobs) keeps waiting for a task are stopped before the
// job starts, and the job takes one of them. via is the server the test
// talks to.
func freezeExecutor(t *testing.T, via, leader *proc, start func() string) (jobID string, pid int) {
	t.Helper()
	ctx := ctxT(t)
	frozen := map[int]bool{}
	for deadline := time.Now().Add(30 * time.Second); len(frozen) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server %d has no standby executor to freeze", leader.cmd.Process.Pid)
		}
		standby := standbyExecutors(t, leader.cmd.Process.Pid)
		if len(standby) == 0 {
			continue
		}
		// One just started may still be warming up; the launcher hands
		// out only warmed-up ones.
		time.Sleep(time.Second)
		for _, pid := range standbyExecutors(t, leader.cmd.Process.Pid) {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err == nil {
				frozen[pid] = true
			}
		}
	}
	resume := func(except int) {
		for pid := range frozen {
			if pid != except {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}
	}
	jobID = start()
	for deadline := time.Now().Add(time.Minute); pid == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			resume(0)
			t.Fatalf("build %s never ran on an executor", jobID)
		}
		j, err := via.client.GetJob(ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == api.JobRunning && j.Executor != nil && j.Executor.PID != 0 {
			pid = j.Executor.PID
		}
		if api.JobFinished(j.State) {
			resume(0)
			t.Fatalf("build %s ended (%s) before its executor could be frozen", jobID, j.State)
		}
	}
	resume(pid)
	if !frozen[pid] {
		// Not a standby (it had died, say): freeze it now, which a
		// small build may outrun.
		t.Logf("build %s did not take a frozen standby executor; freezing executor %d as it runs", jobID, pid)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("freeze executor %d of build %s: %v", pid, jobID, err)
		}
	}
	return jobID, pid
}

// standbyExecutors are the pids of server's child processes waiting as
// standby executors.
func standbyExecutors(t *testing.T, server int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command, which is in parentheses: state, ppid.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(server) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte("executor\x00run\x00--standby")) {
			out = append(out, pid)
		}
	}
	return out
}

func TestMergedViewOnS3AndPostgres(t *testing.T) {
	st := startSharedStores(t)
	mergedViewThroughBuildsAndRestart(t, serveOpts{dataDir: t.TempDir(), flags: st.flags, env: st.env})
}

// TestReplicasFailover: two replicas on one PostgreSQL and one bucket. The
// follower forwards everything to the leader; the leader is killed in the
// middle of a build; the follower takes over, the build runs again there
// and publishes one version, and the view stays exact.
func TestReplicasFailover(t *testing.T) {
	st := startSharedStores(t)
	flags := append([]string{"--job-retry-backoff", "100ms"}, st.flags...)
	a := startDuet(t, serveOpts{dataDir: t.TempDir(), flags: flags, env: st.env})
	b := startDuet(t, serveOpts{dataDir: t.TempDir(), flags: flags, env: st.env, follower: true})
	ctx := ctxT(t)

	// Everything through the follower: it forwards to the leader.
	createFlightsAndDelays(t, b)
	prod := newProducer(11)
	prod.ingest(t, b.client, 4, 150)
	assertExact(t, b, prod, "through the follower")
	assertExact(t, a, prod, "on the leader")
	// The leader's own log is on its disk; what it archived is shared.
	waitArchived(t, b, len(prod.all))

	// A build whose executor is frozen, so the leader dies in its middle.
	jobID, pid := freezeExecutor(t, b, a, func() string {
		j, err := b.client.TriggerBuild(ctx, "delays")
		if err != nil {
			t.Fatal(err)
		}
		return j.ID
	})
	// The orphaned executor must not outlive the test.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited

	// The follower takes the lock once PostgreSQL frees the dead leader's.
	killed := time.Now()
	waitLogLines(t, b, 0, 2*time.Minute, `msg="duet serving"`)
	t.Logf("the follower led %s after the leader was killed", time.Since(killed).Round(time.Millisecond))

	j, err := b.client.WaitJob(ctx, jobID, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobSucceeded || j.Attempt != 2 || j.Version == nil || j.Version.Version != 1 {
		t.Fatalf("build after failover: state %s, attempt %d, version %+v (%s); want version 1 by attempt 2", j.State, j.Attempt, j.Version, j.Error)
	}
	// The frozen attempt never publishes: its server is gone, and a
	// publish is a catalog write only the leader makes.
	_ = syscall.Kill(pid, syscall.SIGKILL)
	versions, err := b.client.ListVersions(ctx, "delays")
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 1 || versions[0].Version != 1 || versions[0].JobID != j.ID || versions[0].CoveredOffset != int64(len(prod.all)) {
		t.Fatalf("versions after failover %+v: want exactly version 1, by %s, covering %d offsets", versions, j.ID, len(prod.all))
	}
	assertExact(t, b, prod, "after failover")

	// The new leader ingests and builds on.
	prod.ingest(t, b.client, 2, 100)
	assertExact(t, b, prod, "ingest on the new leader")
	if j := build(t, b); j.Version.Version != 2 {
		t.Fatalf("build on the new leader published version %d, want 2", j.Version.Version)
	}
	assertExact(t, b, prod, "build on the new leader")
	b.stop(t)
}
