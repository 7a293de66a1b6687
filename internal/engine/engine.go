// Package engine opens duet's embedded DuckDB: one in-process database whose
// catalog "duet" holds the user-visible schemas (views, raw) and the speed
// layer's internal state, locked down so user SQL can read only duet's data.
package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/dataset"
)

// Catalog and schema names inside the engine.
const (
	Catalog        = "duet"
	ViewsSchema    = "views"
	RawSchema      = "raw"
	InternalSchema = "__duet_internal"
	// SystemSchema holds duet's own metadata as tables (package serving
	// defines them). DuckDB also has a catalog named system, so DuckDB
	// needs the qualified duet.system; the SQL gateway qualifies it.
	SystemSchema = "system"
	// CacheCatalog is a database in a file (Config.CacheFile) for tables
	// the engine can rebuild at will from the object store: copies of batch
	// versions, which queries read faster than the versions' Parquet files.
	// A file because DuckDB's buffer manager may then evict its blocks
	// under memory pressure rather than fail, and because their memory is
	// tagged BASE_TABLE, apart from the in-memory tables (IN_MEMORY_TABLE)
	// the speed layer's memory budget counts.
	CacheCatalog = "duet_cache"
)

// Config bounds the engine.
type Config struct {
	// MemoryLimit as DuckDB understands it ("2GB", "512MiB"); empty keeps DuckDB's default.
	MemoryLimit string `yaml:"memory_limit"`
	// Threads; 0 keeps DuckDB's default (one per core).
	Threads int `yaml:"threads"`
	// AllowedDirectories are the only paths SQL may read once the engine is locked.
	AllowedDirectories []string `yaml:"allowed_directories"`
	// TempDirectory is where DuckDB spills; must be inside AllowedDirectories when set.
	TempDirectory string `yaml:"temp_directory"`
	// CacheFile, when set, holds CacheCatalog; whatever it held before is
	// discarded at Open.
	CacheFile string `yaml:"-"`
	// Unlocked leaves external access on (for the executor, which writes its
	// output with COPY); user-facing engines are always locked.
	Unlocked bool `yaml:"-"`
}

// maxIdleConns is how many connections the engine keeps open between
// statements: enough for the gateway's concurrent queries, the speed layer's
// writers and the API's readers.
const maxIdleConns = 64

// Open creates the engine. Every pooled connection starts in catalog duet.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*sql.DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheFile != "" {
		for _, f := range []string{cfg.CacheFile, cfg.CacheFile + ".wal"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("discard engine cache: %w", err)
			}
		}
	}
	var (
		once    sync.Once
		initErr error
	)
	connector, err := duckdb.NewConnector("", func(ex driver.ExecerContext) error {
		once.Do(func() { initErr = setup(ctx, ex, cfg) })
		if initErr != nil {
			return initErr
		}
		_, err := ex.ExecContext(ctx, "USE "+Catalog, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	db := sql.OpenDB(connector)
	// database/sql keeps two idle connections by default: under concurrent
	// queries every other one would open a DuckDB connection (a client
	// context and its temporary catalog) and close it again.
	db.SetMaxIdleConns(maxIdleConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise duckdb: %w", err)
	}
	logger.Debug("engine opened", "memory_limit", cfg.MemoryLimit, "threads", cfg.Threads)
	return db, nil
}

// setup runs once per database, on its first connection.
func setup(ctx context.Context, ex driver.ExecerContext, cfg Config) error {
	stmts := []string{
		"ATTACH IF NOT EXISTS ':memory:' AS " + Catalog,
		"CREATE SCHEMA IF NOT EXISTS " + Catalog + "." + ViewsSchema,
		"CREATE SCHEMA IF NOT EXISTS " + Catalog + "." + RawSchema,
		"CREATE SCHEMA IF NOT EXISTS " + Catalog + "." + InternalSchema,
	}
	if cfg.CacheFile != "" {
		stmts = append(stmts, "ATTACH "+dataset.QuoteString(cfg.CacheFile)+" AS "+CacheCatalog)
	}
	for _, s := range append(stmts, Settings(cfg)...) {
		if _, err := ex.ExecContext(ctx, s, nil); err != nil {
			return fmt.Errorf("engine setup %q: %w", s, err)
		}
	}
	return nil
}

// Settings are the statements that apply cfg's limits to a DuckDB database
// and, unless it is Unlocked, lock it down: SQL then reads only
// AllowedDirectories and can change no setting. An executor, which opens its
// database before its task names the limits, runs them itself.
func Settings(cfg Config) []string {
	var stmts []string
	if cfg.MemoryLimit != "" {
		stmts = append(stmts, "SET memory_limit = "+dataset.QuoteString(cfg.MemoryLimit))
	}
	if cfg.Threads > 0 {
		stmts = append(stmts, fmt.Sprintf("SET threads = %d", cfg.Threads))
	}
	if cfg.TempDirectory != "" {
		stmts = append(stmts, "SET temp_directory = "+dataset.QuoteString(cfg.TempDirectory))
	}
	if !cfg.Unlocked {
		if len(cfg.AllowedDirectories) > 0 {
			quoted := make([]string, len(cfg.AllowedDirectories))
			for i, d := range cfg.AllowedDirectories {
				quoted[i] = dataset.QuoteString(strings.TrimSuffix(d, "/") + "/")
			}
			stmts = append(stmts, "SET allowed_directories = ["+strings.Join(quoted, ", ")+"]")
		}
		stmts = append(stmts,
			"SET enable_external_access = false",
			"SET autoinstall_known_extensions = false",
			"SET autoload_known_extensions = false",
			"SET lock_configuration = true",
		)
	}
	return stmts
}

// Arrow gives fn the connection's Arrow interface. duckdb-go's Conn.Raw holds
// the connection, so the Arrow handle is taken inside Raw and used after it.
func Arrow(conn *sql.Conn) (*duckdb.Arrow, error) {
	var ar *duckdb.Arrow
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return errors.New("not a duckdb connection")
		}
		var err error
		ar, err = duckdb.NewArrowFromConn(c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("arrow interface: %w", err)
	}
	return ar, nil
}

// Table names a table or view in duet's catalog, fully qualified and quoted.
func Table(schema, name string) string {
	return Catalog + "." + dataset.QuoteIdent(schema) + "." + dataset.QuoteIdent(name)
}
