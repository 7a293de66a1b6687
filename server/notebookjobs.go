package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/notebooks"
)

// notebookOutputFile is the executed notebook of a notebook job's latest
// attempt, kept beside its logs and served by GET /v1/jobs/{id}/output/.
const notebookOutputFile = "notebook.ipynb"

// notebookJobs runs notebook jobs. Each attempt's executor runs the
// notebook against this server's SQL gateway, so a scheduled notebook means
// what it means in `duet notebook run` and in Jupyter: merged views as of
// each statement, Trino's functions, and the submitter's read rules. The
// executor reaches the gateway through a Unix socket in its task directory
// that this server serves for the attempt alone, as the job's user: the
// socket (mode 0700 directory) is the credential, so no password or token
// of the user is needed, with or without authentication.
type notebookJobs struct {
	launcher interface {
		Launch(ctx context.Context, dir string) error
	}
	bucket interface {
		Upload(ctx context.Context, name string, r io.Reader) error
	}
	// gateway is the SQL gateway's handler, set once the gateway exists.
	gateway http.Handler
	logger  *slog.Logger
}

// run runs one attempt and keeps its stdout, stderr and executed notebook
// under the job's log prefix; the executed notebook is kept also when a
// cell failed, which fails the attempt.
func (n *notebookJobs) run(ctx context.Context, j catalog.Job) error {
	// Not under the data dir: a socket's path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "duet-notebook-")
	if err != nil {
		return fmt.Errorf("notebook job directory: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, notebooks.InputFile), []byte(j.SQL), 0o600); err != nil {
		return fmt.Errorf("notebook job directory: %w", err)
	}
	user := j.User
	if user == "" {
		user = "duet"
	}
	ln, err := net.Listen("unix", filepath.Join(dir, notebooks.SocketFile))
	if err != nil {
		return fmt.Errorf("gateway socket for the executor: %w", err)
	}
	srv := &http.Server{Handler: asTrinoUser(user, n.gateway), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	task, err := json.Marshal(map[string]any{"notebook": notebooks.Task{Params: j.Params, User: user}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, batchlayer.TaskFile), task, 0o600); err != nil {
		return fmt.Errorf("notebook job directory: %w", err)
	}
	runErr := n.launcher.Launch(ctx, dir)
	keepCtx, cancel := batchlayer.KeepOutputContext(ctx)
	defer cancel()
	var keepErr error
	for name, object := range map[string]string{"stdout": "stdout", "stderr": "stderr", notebooks.OutputFile: notebookOutputFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = n.bucket.Upload(keepCtx, j.LogPrefix+object, bytes.NewReader(b))
		}
		if err != nil {
			n.logger.Warn("keep notebook job output", "job", j.ID, "file", object, "err", err)
			keepErr = errors.Join(keepErr, fmt.Errorf("keep %s: %w", object, err))
		}
	}
	if runErr != nil {
		return runErr
	}
	return keepErr
}

// asTrinoUser makes every request the user's Trino session, whatever the
// client sent.
func asTrinoUser(user string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header = r.Header.Clone()
		r.Header.Set("X-Trino-User", user)
		next.ServeHTTP(w, r)
	})
}

// checkNotebook reads a submitted notebook and its parameter overrides, so
// that a bad one is refused at submission, and returns what the job keeps:
// the notebook's JSON.
func checkNotebook(doc json.RawMessage, params map[string]string) (string, error) {
	if len(doc) == 0 {
		return "", errors.New(`a notebook job needs its notebook: give "notebook", an nbformat 4 document`)
	}
	nb, err := notebooks.Read(bytes.NewReader(doc))
	if err != nil {
		return "", fmt.Errorf("notebook: %w", err)
	}
	if _, _, err := nb.ApplyParameters(params); err != nil {
		return "", fmt.Errorf("notebook: %w", err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, doc); err != nil {
		return "", fmt.Errorf("notebook: %w", err)
	}
	return b.String(), nil
}
