package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The advisory locks duet takes on PostgreSQL, as (class, key) pairs. The
// two-key form lives apart from the one-bigint form, so another application
// sharing the database with its own advisory locks cannot collide with ours.
// Advisory locks are per database, so two duet catalogs on one server do not
// contend either.
const (
	pgLockClass int32 = 0x64756574 // "duet"
	// pgLockMigrate serialises schema migrations of replicas starting at once.
	pgLockMigrate int32 = 1
	// pgLockWrite serialises write transactions (see pgLockWrites).
	pgLockWrite int32 = 2
	// pgLeaderClass holds leader locks, keyed by a hash of the lock's name.
	pgLeaderClass int32 = 0x6475656c // "duel"
)

// pgUnlockTimeout bounds giving a leader lock back before its session is
// closed, which frees it anyway.
const pgUnlockTimeout = 2 * time.Second

// pgReadConns bounds the read pool: reads cross the network, so more of them
// overlap than on SQLite.
const pgReadConns = 8

// OpenPostgres opens the catalog in the PostgreSQL database dsn names (a URL,
// postgres://user:password@host:5432/database?sslmode=..., or key=value
// pairs) and brings its schema up to date. Several duet replicas may share
// the database and start at once. Errors name the database by host, port and
// name, never with the password.
func OpenPostgres(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's error quotes the DSN, masking passwords only as best it can.
		return nil, errors.New("open catalog: the PostgreSQL DSN cannot be parsed (it is not shown, as it may hold a password): " +
			"give postgres://user:password@host:port/database?sslmode=disable or host=... dbname=... key=value pairs")
	}
	name := "postgres://" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "duet" // tells duet's sessions apart in pg_stat_activity
	}

	// One writer connection, as on SQLite: writers of this process queue in
	// database/sql, and those of other replicas on pgLockWrite.
	write := stdlib.OpenDB(*cfg)
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)

	s := &Store{write: write, logger: logger, name: name, dialect: dialect{
		lockWrites: pgLockWrites,
		textOrder:  ` COLLATE "C"`,
		leaderLock: func(lockName string) leaderLock { return newPGLock(cfg, lockName) },
	}}
	if err := migrateLocked(ctx, write, pgXactLock(pgLockMigrate), schemaMigrations, logger); err != nil {
		write.Close()
		return nil, fmt.Errorf("open catalog %s: %w", name, err)
	}

	// The server refuses writes on the read pool, as SQLite's query_only does.
	readCfg := cfg.Copy()
	readCfg.RuntimeParams["default_transaction_read_only"] = "on"
	read := stdlib.OpenDB(*readCfg)
	read.SetMaxOpenConns(pgReadConns)
	read.SetMaxIdleConns(pgReadConns)
	s.read = read
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open catalog %s: %w", name, err)
	}
	return s, nil
}

// pgLockWrites starts every write transaction on PostgreSQL by taking one
// transaction-level advisory lock, released at commit or rollback, so write
// transactions run one at a time across all replicas, exactly as SQLite runs
// them. The catalog's transactions read and then write on what they read
// (PublishVersion retires the current version and numbers the next; CreateView
// checks its dataset), and under READ COMMITTED two of them could interleave:
// both retire the same version, leaving the other's unretired. Row locks
// (SELECT ... FOR UPDATE) cannot guard a row about to be inserted, and
// SERIALIZABLE would make every caller retry serialization failures. Catalog
// writes are few and short, so one lock costs nothing that matters. The lock
// is the first statement, so every later statement's snapshot is taken after
// the previous writer committed (PostgreSQL makes a commit visible before it
// releases the transaction's locks).
func pgLockWrites(ctx context.Context, tx *sql.Tx) error {
	return pgXactLock(pgLockWrite)(ctx, tx)
}

// pgXactLock takes duet's transaction-level advisory lock key, waiting for it.
func pgXactLock(key int32) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, pgLockClass, key); err != nil {
			return fmt.Errorf("advisory lock %d: %w", key, err)
		}
		return nil
	}
}

// pgLock is PostgreSQL's leader lock: a session advisory lock held on a
// connection of its own, which nothing else uses. The server frees it when
// the session ends: the process died, or its connection was cut.
type pgLock struct {
	cfg  *pgx.ConnConfig
	key  int32
	db   *sql.DB
	conn *sql.Conn
}

func newPGLock(cfg *pgx.ConnConfig, name string) *pgLock {
	h := fnv.New32a()
	h.Write([]byte(name))
	return &pgLock{cfg: cfg, key: int32(h.Sum32())}
}

func (l *pgLock) tryLock(ctx context.Context) (bool, error) {
	if l.conn == nil {
		l.db = stdlib.OpenDB(*l.cfg)
		l.db.SetMaxOpenConns(1)
		conn, err := l.db.Conn(ctx)
		if err != nil {
			_ = l.close(ctx)
			return false, fmt.Errorf("connect: %w", err)
		}
		l.conn = conn
	}
	var ok bool
	if err := l.conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, pgLeaderClass, l.key).Scan(&ok); err != nil {
		return false, fmt.Errorf("try advisory lock: %w", err)
	}
	return ok, nil
}

// check pings the lock's connection: while its session lives it holds the
// lock, since only that session could unlock it.
func (l *pgLock) check(ctx context.Context) error {
	if l.conn == nil {
		return errors.New("lock connection closed")
	}
	if err := l.conn.PingContext(ctx); err != nil {
		return fmt.Errorf("lock connection: %w", err)
	}
	return nil
}

func (l *pgLock) close(ctx context.Context) error {
	var errs []error
	if l.conn != nil {
		// Unlocking explicitly frees the lock at once; closing the session
		// below frees it too, so a failure here (a dead connection) needs
		// nothing more, and waiting long for it would only delay that.
		uctx, cancel := context.WithTimeout(ctx, pgUnlockTimeout)
		_, _ = l.conn.ExecContext(uctx, `SELECT pg_advisory_unlock_all()`)
		cancel()
		errs = append(errs, l.conn.Close())
		l.conn = nil
	}
	if l.db != nil {
		errs = append(errs, l.db.Close()) // ends the session
		l.db = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lock connection: %w", err)
	}
	return nil
}
