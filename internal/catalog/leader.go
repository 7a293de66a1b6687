package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// A leader lock makes one process of several the only one doing some work
// (the scheduler): Campaign blocks until this process holds the named lock.
// PostgreSQL holds it as a session advisory lock on a connection kept open
// for it, SQLite as an flock on a file beside the database; either way the
// operating system or the server frees it when the holder dies, so another
// process takes over within seconds.
//
// Every acquisition increments the name's epoch in the leaders table. The
// epoch fences a deposed leader: a holder that finds a larger epoch there
// has been replaced (its lock was freed while it still ran) and stops.

// leaderCheckEvery is how often a leader checks that it still holds its lock:
// the longest a lost lock goes unnoticed, give or take checkTimeout.
const leaderCheckEvery = time.Second

// leaderCheckTimeout bounds one check, so a connection that hangs (a network
// partition) counts as lost rather than stalling the watcher.
const leaderCheckTimeout = 5 * time.Second

// leaderRetry is the wait between attempts while another process holds the
// lock: at most this long passes between its release and the takeover.
const leaderRetry = time.Second

// leaderReleaseTimeout bounds Release. Giving the lock up fails safe: a lock
// not given back is freed when its session or file closes, which Release
// does in any case.
const leaderReleaseTimeout = 5 * time.Second

// leaderAttemptTimeout bounds one attempt to take the lock, so an unreachable
// database delays a campaign but never wedges it.
const leaderAttemptTimeout = 10 * time.Second

// leaderLock is one backend's cross-process lock. It is used by one
// goroutine at a time.
type leaderLock interface {
	// tryLock takes the lock if it is free; false if another process holds it.
	tryLock(ctx context.Context) (bool, error)
	// check fails once the lock may no longer be held.
	check(ctx context.Context) error
	// close releases the lock, if held, and what tryLock opened. It may be
	// called again, and tryLock after it starts afresh.
	close(ctx context.Context) error
}

// Leadership is this process's hold on a leader lock, from Campaign.
type Leadership struct {
	store        *Store
	name, holder string
	epoch        int64
	lock         leaderLock

	lost     chan struct{} // closed when the leadership ends, for any reason
	lostOnce sync.Once
	stop     chan struct{} // closed by Release
	stopOnce sync.Once
	done     chan struct{} // closed when the watcher has returned
}

// Name is the lock's name.
func (l *Leadership) Name() string { return l.name }

// Holder is who holds it, as given to Campaign.
func (l *Leadership) Holder() string { return l.holder }

// Epoch numbers this leadership among all of the name's, 1 for the first:
// work stamped with it can be told from a deposed leader's.
func (l *Leadership) Epoch() int64 { return l.epoch }

// Lost is closed when this process no longer holds the lock: the database
// connection holding it died, another holder took a newer epoch, or Release
// was called. The leader must stop leading at once.
func (l *Leadership) Lost() <-chan struct{} { return l.lost }

// Release gives the lock up, so another process can take it at once, and
// closes Lost. It is safe to call more than once and after the lock was lost.
func (l *Leadership) Release() error {
	ctx, cancel := context.WithTimeout(context.Background(), leaderReleaseTimeout)
	defer cancel()
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	var errs []error
	select {
	case <-l.lost: // lost already: the watcher closed the lock
	default:
		l.markLost()
		// Clear the holder first, so Leader stops naming this process; the
		// epoch guard leaves a newer leader's row alone.
		err := l.store.inTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE leaders SET holder = '' WHERE name = $1 AND epoch = $2`, l.name, l.epoch)
			return err
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.lock.close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release leadership %q of catalog %s: %w", l.name, l.store.name, err)
	}
	return nil
}

func (l *Leadership) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// watch checks the lock every leaderCheckEvery until Release, and gives the
// leadership up as soon as a check fails.
func (l *Leadership) watch() {
	defer close(l.done)
	tick := time.NewTicker(leaderCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), leaderCheckTimeout)
		err := l.check(ctx)
		if err != nil {
			l.store.logger.Warn("leadership lost", "name", l.name, "holder", l.holder, "epoch", l.epoch, "err", err)
			l.markLost()
			_ = l.lock.close(ctx) // the lock is gone or must be given up; nothing to report to
		}
		cancel()
		if err != nil {
			return
		}
	}
}

func (l *Leadership) check(ctx context.Context) error {
	if err := l.lock.check(ctx); err != nil {
		return err
	}
	// The lock alone cannot see a file lock on a replaced file, say; the
	// epoch can. A failed read says nothing about the lock, which the check
	// above vouched for, so it only logs.
	holder, epoch, err := l.store.Leader(ctx, l.name)
	if err != nil {
		l.store.logger.Warn("leadership check could not read the leaders table", "name", l.name, "err", err)
		return nil
	}
	if epoch != l.epoch {
		return fmt.Errorf("epoch %d was taken by %q after ours, %d", epoch, holder, l.epoch)
	}
	return nil
}

// Campaign blocks until this process holds the leader lock name, then
// returns the leadership, or until ctx ends (an error wrapping ctx.Err()).
// holder says who leads, for Leader to tell the others (its URL, say; "" =
// hostname/pid). Errors on the way (the database unreachable) are logged and
// retried. The caller must Release the leadership, and stop leading when
// Lost is closed.
func (s *Store) Campaign(ctx context.Context, name, holder string) (*Leadership, error) {
	if err := validLeaderName(name); err != nil {
		return nil, fmt.Errorf("campaign for leadership %q: %w", name, err)
	}
	if holder == "" {
		host, _ := os.Hostname()
		holder = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	lock := s.dialect.leaderLock(name)
	var lastErr error
	next := time.NewTimer(0)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = lock.close(context.WithoutCancel(ctx))
			if lastErr != nil {
				return nil, fmt.Errorf("campaign for leadership %q of catalog %s: %w (last attempt: %v)", name, s.name, ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("campaign for leadership %q of catalog %s: %w", name, s.name, ctx.Err())
		case <-next.C:
		}
		l, err := s.tryLead(ctx, lock, name, holder)
		if l != nil {
			return l, nil
		}
		if err != nil {
			lastErr = err
			_ = lock.close(ctx) // start afresh on the next attempt
			if ctx.Err() == nil {
				s.logger.Warn("leadership campaign attempt failed; retrying", "name", name, "catalog", s.name, "err", err)
			}
		}
		next.Reset(leaderRetry)
	}
}

// tryLead makes one attempt: nil, nil when another process holds the lock.
func (s *Store) tryLead(ctx context.Context, lock leaderLock, name, holder string) (*Leadership, error) {
	ctx, cancel := context.WithTimeout(ctx, leaderAttemptTimeout)
	defer cancel()
	ok, err := lock.tryLock(ctx)
	if err != nil || !ok {
		return nil, err
	}
	var epoch int64
	err = s.inLeadersTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `
INSERT INTO leaders (name, epoch, holder, acquired_at) VALUES ($1, 1, $2, $3)
ON CONFLICT (name) DO UPDATE SET epoch = leaders.epoch + 1, holder = excluded.holder, acquired_at = excluded.acquired_at
RETURNING epoch`, name, holder, toMillis(time.Now())).Scan(&epoch)
	})
	if err != nil {
		return nil, fmt.Errorf("take the next epoch: %w", err)
	}
	l := &Leadership{
		store: s, name: name, holder: holder, epoch: epoch, lock: lock,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.watch()
	s.logger.Info("leadership acquired", "name", name, "holder", holder, "epoch", epoch)
	return l, nil
}

// Leader says who holds the leader lock name, as far as the catalog knows,
// and its epoch: the holder is "" once it has released the lock, and may name
// one that died in the last seconds, before another took over. "", 0 if the
// lock was never taken.
func (s *Store) Leader(ctx context.Context, name string) (holder string, epoch int64, err error) {
	if !s.leadersReady.Load() {
		// The table is made on first use, and the read pool cannot make it.
		if err := s.inLeadersTx(ctx, func(*sql.Tx) error { return nil }); err != nil {
			return "", 0, fmt.Errorf("leader %q: %w", name, err)
		}
	}
	err = s.read.QueryRowContext(ctx, `SELECT holder, epoch FROM leaders WHERE name = $1`, name).Scan(&holder, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("leader %q: %w", name, err)
	}
	return holder, epoch, nil
}

// inLeadersTx is inTx with the leaders table created first if need be. The
// table lives outside the schema migrations: only leader locks use it, and
// creating it is idempotent (inTx's write lock keeps two PostgreSQL replicas
// from racing on CREATE TABLE IF NOT EXISTS, which is not atomic there).
func (s *Store) inLeadersTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if !s.leadersReady.Load() {
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS leaders (
	name        TEXT PRIMARY KEY,
	epoch       BIGINT NOT NULL,
	holder      TEXT NOT NULL,
	acquired_at BIGINT NOT NULL
)`); err != nil {
				return fmt.Errorf("create leaders table: %w", err)
			}
		}
		return fn(tx)
	})
	if err == nil {
		s.leadersReady.Store(true)
	}
	return err
}

// validLeaderName keeps lock names to what is safe in a file name.
func validLeaderName(name string) error {
	if name == "" || len(name) > 100 {
		return errors.New("name must be 1 to 100 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return errors.New("name may contain only letters, digits, '_' and '-'")
		}
	}
	return nil
}

// fileLock is SQLite's leader lock: an exclusive flock on a file beside the
// database. The kernel drops it when the holding process dies; the file is
// opened close-on-exec, so processes the leader starts do not inherit it.
type fileLock struct {
	path string
	f    *os.File
}

func newFileLock(path string) *fileLock { return &fileLock{path: path} }

func (l *fileLock) tryLock(context.Context) (bool, error) {
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return false, fmt.Errorf("open lock file: %w", err)
		}
		l.f = f
	}
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", l.path, err)
	}
	return true, nil
}

// check fails if the lock file was removed or replaced: another process can
// then lock the new file while this one holds the old.
func (l *fileLock) check(context.Context) error {
	if l.f == nil {
		return errors.New("lock file closed")
	}
	held, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("stat held lock file: %w", err)
	}
	now, err := os.Stat(l.path)
	if err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	if !os.SameFile(held, now) {
		return fmt.Errorf("lock file %s was replaced", l.path)
	}
	return nil
}

func (l *fileLock) close(context.Context) error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close() // drops the flock
	l.f = nil
	if err != nil {
		return fmt.Errorf("close lock file: %w", err)
	}
	return nil
}

// ErrFenced: a write by a process whose leadership another has taken since.
var ErrFenced = errors.New("fenced: another process has taken the leadership")

// FenceWrites makes every later write of s check, under the write lock,
// that l is still the newest leadership of its name, and fail with ErrFenced
// otherwise. Lost fires within a second of losing the lock, but a leader
// that is paused or partitioned meanwhile could still publish a version or
// record an archive file over its successor's; the fence closes that window.
func (s *Store) FenceWrites(l *Leadership) { s.fence.Store(l) }

func (s *Store) checkFence(ctx context.Context, tx *sql.Tx) error {
	l := s.fence.Load()
	if l == nil {
		return nil
	}
	var epoch int64
	if err := tx.QueryRowContext(ctx, `SELECT epoch FROM leaders WHERE name = $1`, l.name).Scan(&epoch); err != nil {
		return fmt.Errorf("check leadership %q: %w", l.name, err)
	}
	if epoch != l.epoch {
		l.markLost()
		return fmt.Errorf("%w: leadership %q is at epoch %d, this process holds %d", ErrFenced, l.name, epoch, l.epoch)
	}
	return nil
}
