// Package benchenv describes where a benchmark runs and logs its progress,
// the same way for every benchmark of duet.
package benchenv

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/server"
)

// Machine is where the figures were measured.
type Machine struct {
	CPUs          int    `json:"cpus"`
	CPUModel      string `json:"cpu_model"`
	MemoryBytes   int64  `json:"memory_bytes"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
	GoVersion     string `json:"go_version"`
	GOMAXPROCS    int    `json:"gomaxprocs"`
	DuckDBVersion string `json:"duckdb_version"`
	DuckDBThreads int    `json:"duckdb_threads"`
	// ServerEngineThreads is the thread count of the server's engine:
	// server.DefaultEngineThreads, one fewer than DuckDB's default.
	ServerEngineThreads int `json:"server_engine_threads"`
}

// DescribeMachine reads the machine from the Go runtime, /proc and a
// DuckDB opened with its defaults.
func DescribeMachine(ctx context.Context) (Machine, error) {
	m := Machine{
		CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), ServerEngineThreads: server.DefaultEngineThreads(),
		CPUModel: procField("/proc/cpuinfo", "model name"),
	}
	// MemTotal is in kB.
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64); err == nil {
		m.MemoryBytes = kb << 10
	}
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return m, err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	err = db.QueryRowContext(ctx, "SELECT version(), current_setting('threads')").Scan(&m.DuckDBVersion, &m.DuckDBThreads)
	return m, err
}

// procField is the value of the first "key: value" line with key in a
// /proc file, "unknown" when there is none.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// DuetBinary resolves the -duet flag to an absolute path, as executors run
// in their own working directories, and checks it is an executable file.
func DuetBinary(path string) (string, error) {
	duet, err := filepath.Abs(path)
	if err != nil {
		return path, fmt.Errorf("-duet %s: %w", path, err)
	}
	if st, err := os.Stat(duet); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return path, fmt.Errorf("-duet %s: not an executable duet binary; build it with `make build`", path)
	}
	return duet, nil
}

// ProgressLogger prints one key=value line per step, without timestamps:
// the lines carry their own figures.
func ProgressLogger(w *os.File) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// DataDir creates a benchmark's data directory, a new one named after the
// benchmark inside workDir (the system's temporary directory when empty),
// and returns how to remove it afterwards unless keep is set.
func DataDir(workDir, name string, keep bool, logger *slog.Logger) (string, func(), error) {
	if workDir != "" {
		if err := os.MkdirAll(workDir, 0o755); err != nil {
			return "", nil, fmt.Errorf("-workdir: %w", err)
		}
	}
	dir, err := os.MkdirTemp(workDir, "duet-"+name+"-*")
	if err != nil {
		return "", nil, fmt.Errorf("create data directory: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", nil, err
	}
	logger.Info("data directory", "dir", dir, "keep", keep)
	return dir, func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}, nil
}
