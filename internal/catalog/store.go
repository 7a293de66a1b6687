// Package catalog is duet's metadata store: datasets, views, the raw archive's
// file list, published view versions and jobs. A catalog transaction is the
// commit point of every multi-step operation (a build's files are invisible
// until the version naming them is published), so everything that must appear
// atomically is written in one transaction here.
//
// The embedded store is a SQLite file (Open); several control-plane replicas
// share a PostgreSQL database instead (OpenPostgres). Both run the same SQL,
// kept to what both accept ($n placeholders, ON CONFLICT, RETURNING, BIGINT
// unix milliseconds for times, JSON as TEXT); what still differs is in dialect.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Sentinel errors, always wrapped with the name of what was looked up or
// created; test with errors.Is.
var (
	// ErrNotFound: the dataset, view, version or job does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a dataset, view or job with that name or ID already exists.
	ErrExists = errors.New("already exists")
)

// busyTimeout is how long a connection waits for another process's write lock
// before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// readConns bounds the read pool. Reads never block the writer in WAL mode,
// and serving asks for current versions many times a second.
const readConns = 4

// Store is the catalog. It is safe for concurrent use.
type Store struct {
	// write has exactly one connection: SQLite admits one writer at a time,
	// and queueing writers in database/sql instead of on the file lock means
	// our own goroutines never see SQLITE_BUSY. Transactions begin IMMEDIATE,
	// so a read-then-write transaction cannot fail to upgrade its lock.
	// Every write goes through inTx or execWrite, never through write itself.
	write *sql.DB
	// read serves single-statement reads; each sees one committed snapshot.
	read    *sql.DB
	logger  *slog.Logger
	dialect dialect
	// name names the database in errors and logs: the SQLite path, or
	// postgres://host:port/database (never the password).
	name string
	// leadersReady is set once the leaders table is known to exist.
	leadersReady atomic.Bool
	// fence, once set (FenceWrites), is the leadership every write
	// transaction must still be the newest of.
	fence atomic.Pointer[Leadership]
}

// dialect is what differs between the databases the catalog runs on.
type dialect struct {
	// lockWrites, when not nil, runs first in every write transaction and
	// blocks until no other writer, in this process or another, is inside one.
	lockWrites func(ctx context.Context, tx *sql.Tx) error
	// textOrder follows a text ORDER BY key so text sorts by bytes on every
	// backend (see Store.byBytes).
	textOrder string
	// leaderLock makes the cross-process lock behind Campaign.
	leaderLock func(name string) leaderLock
}

// byBytes is an ORDER BY key for a text column that sorts by the bytes of its
// UTF-8 text, as SQLite always does; PostgreSQL would otherwise sort by the
// database's collation (en_US puts "alpha" before "Zeta"), so listings would
// come out in a different order on each backend.
func (s *Store) byBytes(column string) string { return column + s.dialect.textOrder }

// Open opens (creating if needed) the SQLite catalog at path and brings its
// schema up to date.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open catalog: path %q: give the path of a database file", path)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open catalog: path %q: a catalog path cannot contain '?' or '#'", path)
	}
	params := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_pragma=journal_mode(WAL)",
		busyTimeout.Milliseconds())

	write, err := sql.Open("sqlite", path+"?"+params+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	s := &Store{write: write, logger: logger, name: path, dialect: dialect{
		// SQLite sorts text by bytes already, and BEGIN IMMEDIATE takes the
		// file's write lock, so writers need nothing more.
		leaderLock: func(name string) leaderLock { return newFileLock(path + ".leader-" + name + ".lock") },
	}}
	if err := migrate(ctx, write, schemaMigrations, logger); err != nil {
		write.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}

	// The read pool opens only after migrations so it never sees an old schema.
	read, err := sql.Open("sqlite", path+"?"+params+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	s.read = read
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	return s, nil
}

// Close closes the store's connections.
func (s *Store) Close() error {
	var errs []error
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close catalog: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping catalog: %w", err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("ping catalog: %w", err)
	}
	return nil
}

// inTx runs fn in a write transaction, committing when it returns nil. Write
// transactions run one at a time across every Store on the database, so fn
// may read and then write on what it read.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if s.dialect.lockWrites != nil {
		if err := s.dialect.lockWrites(ctx, tx); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("lock writers: %w", err)
		}
	}
	if err := s.checkFence(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// execWrite runs one writing statement in a write transaction of its own.
// Every write goes through inTx, even a single statement that is atomic by
// itself: on PostgreSQL a statement outside the write lock could change a row
// between a transaction's read of it and its write, which SQLite's single
// writer never allows.
func (s *Store) execWrite(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// Times are stored as unix milliseconds UTC; a zero time.Time is NULL where a
// column is optional.

func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func toNullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromNullMillis(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMillis(n.Int64)
}

// createdAt defaults an unset creation time to now, at the stored precision.
func createdAt(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return fromMillis(t.UnixMilli())
}
