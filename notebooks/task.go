package notebooks

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/trinodb/trino-go-client/trino"
)

// Files of a notebook job's executor directory.
const (
	// InputFile is the notebook to run, OutputFile the executed notebook
	// (written also when a cell fails), SocketFile the server's SQL gateway
	// for this job alone.
	InputFile  = "input.ipynb"
	OutputFile = "output.ipynb"
	SocketFile = "gateway.sock"
)

// Task is a notebook job's work for an executor, the "notebook" member of
// its task.json.
type Task struct {
	// Params override the parameters cell's defaults (-p name=value).
	Params map[string]string `json:"params,omitempty"`
	// User is who the queries run as.
	User string `json:"user"`
	// MaxRows bounds each result table (0: the default).
	MaxRows int `json:"max_rows,omitempty"`
}

// ReadTask reads the notebook task of an executor directory; ok is false
// when the directory holds another kind of task.
func ReadTask(dir string) (task Task, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "task.json"))
	if err != nil {
		return Task{}, false, err
	}
	var doc struct {
		Notebook *Task `json:"notebook"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return Task{}, false, fmt.Errorf("read task: %w", err)
	}
	if doc.Notebook == nil {
		return Task{}, false, nil
	}
	return *doc.Notebook, true, nil
}

// TaskProgress hears what a running notebook task does, for heartbeats.
type TaskProgress interface {
	Stage(stage string)
	Rows(n int64)
}

var registerSocketClient sync.Once

// socketClient names the trino-go-client HTTP client that reaches the
// gateway through the socket of the current working directory's task.
const socketClient = "duet-executor-socket"

// Run executes the task in dir: it reads InputFile, sends each statement to
// the server's SQL gateway through SocketFile (the server serves it for
// this job only, as the job's user), and writes OutputFile. A failed cell
// or check writes the notebook and returns the error.
func (t Task) Run(ctx context.Context, dir string, progress TaskProgress) error {
	progress.Stage("read notebook")
	src, err := os.ReadFile(filepath.Join(dir, InputFile))
	if err != nil {
		return err
	}
	nb, err := Read(bytes.NewReader(src))
	if err != nil {
		return fmt.Errorf("%s: %w", InputFile, err)
	}
	socket, err := filepath.Abs(filepath.Join(dir, SocketFile))
	if err != nil {
		return err
	}
	registerSocketClient.Do(func() {
		err = trino.RegisterCustomClient(socketClient, &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		}})
	})
	if err != nil {
		return fmt.Errorf("SQL client: %w", err)
	}
	dsn := url.URL{Scheme: "http", User: url.User(t.User), Host: "duet-gateway",
		RawQuery: url.Values{"catalog": {"duet"}, "schema": {"views"}, "custom_client": {socketClient}}.Encode()}
	db, err := sql.Open("trino", dsn.String())
	if err != nil {
		return fmt.Errorf("SQL client: %w", err)
	}
	defer db.Close()
	cells := 0
	for _, c := range nb.Cells {
		if c.Type == CellCode {
			cells++
		}
	}
	done := 0
	runner, err := NewRunner(db, Config{MaxRows: t.MaxRows, Progress: func(r CellReport) {
		done++
		progress.Stage(fmt.Sprintf("cell %d (%s), code cell %d of %d", r.Cell, r.Kind, done, cells))
		progress.Rows(int64(r.Rows))
	}})
	if err != nil {
		return err
	}
	progress.Stage("run")
	out, runErr := runner.Run(ctx, nb, t.Params)
	if out == nil {
		return runErr
	}
	var b bytes.Buffer
	if err := out.Write(&b); err != nil {
		return errors.Join(runErr, err)
	}
	if err := os.WriteFile(filepath.Join(dir, OutputFile), b.Bytes(), 0o644); err != nil {
		return errors.Join(runErr, fmt.Errorf("write %s: %w", OutputFile, err))
	}
	return runErr
}
