package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/notebooks"
)

// jobSubmitOptions are the flags of "duet job submit".
type jobSubmitOptions struct {
	kind, view, sqlText, sqlFile, output, id, timeout string
	notebook                                          string
	params, clusters                                  []string
	maxAttempts                                       int
	wait                                              bool
	poll                                              time.Duration
}

func newJobSubmitCmd(a *app) *cobra.Command {
	var o jobSubmitOptions
	cmd := &cobra.Command{
		Use:   "submit (--sql-file F | --sql TEXT | --notebook NB.ipynb | --kind K) [--output O] [-p key=value]... [--id ID] [--timeout 30m] [--max-attempts N] [--cluster tag,tag]... [--wait]",
		Short: "Queue a job (a SQL script, a notebook, a view build, backfill or compaction); prints its id and state",
		Long: `Queue a job and print its id and state. A sql job runs a script on an
executor: statements separated by ';', the last one a query whose rows go to
--output (an object-store path ending in .parquet, or jobs.<name>, a table in
schema jobs; default jobs/<id>/result.parquet). -p name=value binds the
script's $name parameters as values, never pasted into the SQL. --kind
view-build, backfill or compaction queue those jobs with --view and -p.

A notebook job (--notebook) runs a Jupyter notebook as "duet notebook run"
does, on an executor; -p overrides its parameters, and the executed notebook
is the job's output file notebook.ipynb.

Each --cluster is one set of tags, in order of preference: the first set that
some healthy cluster has all of places the job, on the least loaded such
cluster (default: any cluster tagged "default"). --id names the job, so that submitting the same request again answers
with the first job. --wait follows the job until it is finished and exits
non-zero unless it succeeded.

  duet job submit --sql-file daily.sql -p day=2024-05-01 --output jobs.daily --wait
  duet job submit --kind backfill --view by_origin -p from=2024-04-01 -p to=2024-04-30
  duet job submit --notebook daily_report.ipynb -p day=2026-11-02 --wait`,
		Args: argsExactly(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := o.request(a.io.in)
			if err != nil {
				return err
			}
			if o.poll <= 0 {
				return fmt.Errorf("--poll %s: give a positive duration", o.poll)
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			job, err := c.SubmitJob(cmd.Context(), req)
			if err != nil {
				return err
			}
			if !o.wait {
				fmt.Fprintln(a.io.out, jobStatusLine(job))
				return nil
			}
			return waitForJob(cmd.Context(), a, c, job, o.poll)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.kind, "kind", "", "sql, notebook, view-build, backfill or compaction (default sql with --sql or --sql-file, notebook with --notebook)")
	fl.StringVar(&o.notebook, "notebook", "", "a notebook job's notebook (nbformat 4 .ipynb; - for stdin)")
	fl.StringVar(&o.sqlText, "sql", "", "a sql job's script")
	fl.StringVar(&o.sqlFile, "sql-file", "", "read a sql job's script from this file (- for stdin)")
	fl.StringVar(&o.output, "output", "", "where a sql job's result goes: a path ending in .parquet, or jobs.<name> (default jobs/<id>/result.parquet)")
	fl.StringVar(&o.view, "view", "", "the view of a view-build or backfill job")
	fl.StringArrayVarP(&o.params, "param", "p", nil, "a parameter as key=value; repeat for more")
	fl.StringVar(&o.id, "id", "", "name the job yourself, so that a repeated submission answers with the first job")
	fl.StringVar(&o.timeout, "timeout", "", `stop an attempt after this long, such as "30m" (default: the server's)`)
	fl.IntVar(&o.maxAttempts, "max-attempts", 0, "attempts at most (default: 1 for a sql job, the server's for others)")
	fl.StringArrayVar(&o.clusters, "cluster", nil, "comma-separated tags a cluster must have; repeat for fallbacks, in order")
	fl.BoolVar(&o.wait, "wait", false, "follow the job until it is finished; exit non-zero unless it succeeded")
	fl.DurationVar(&o.poll, "poll", client.DefaultPoll, "how often --wait asks for the job's state")
	return cmd
}

// request checks the flags and builds the POST /v1/jobs body.
func (o *jobSubmitOptions) request(stdin io.Reader) (api.JobRequest, error) {
	req := api.JobRequest{ID: o.id, Kind: o.kind, View: o.view, Output: o.output, Timeout: o.timeout, MaxAttempts: o.maxAttempts}
	hasSQL := o.sqlText != "" || o.sqlFile != ""
	switch {
	case o.notebook != "" && (hasSQL || o.output != ""):
		return req, errors.New("--notebook runs a notebook: --sql, --sql-file and --output are for sql jobs")
	case o.notebook != "" && req.Kind != "" && req.Kind != api.JobKindNotebook:
		return req, fmt.Errorf("--notebook is for --kind notebook, not %s", req.Kind)
	case o.notebook != "":
		req.Kind = api.JobKindNotebook
	case req.Kind == api.JobKindNotebook:
		return req, errors.New("--kind notebook: give the notebook with --notebook NB.ipynb")
	case req.Kind == "" && !hasSQL:
		return req, errors.New("--kind: give sql (with --sql or --sql-file), notebook (with --notebook), view-build, backfill or compaction")
	case req.Kind == "":
		req.Kind = api.JobKindSQL
	case req.Kind != api.JobKindSQL && (hasSQL || o.output != ""):
		return req, fmt.Errorf("--sql, --sql-file and --output are for --kind sql, not %s", req.Kind)
	}
	if req.Kind == api.JobKindSQL {
		sql, err := sqlFromFlags(o.sqlText, o.sqlFile, stdin)
		if err != nil {
			return req, err
		}
		req.SQL = sql
	}
	if o.timeout != "" {
		if d, err := time.ParseDuration(o.timeout); err != nil || d <= 0 {
			return req, fmt.Errorf("--timeout %q: give a positive duration such as 30m", o.timeout)
		}
	}
	if o.maxAttempts < 0 {
		return req, fmt.Errorf("--max-attempts %d: give a positive number", o.maxAttempts)
	}
	var err error
	if req.Params, err = parseJobParams(o.params); err != nil {
		return req, err
	}
	if req.Kind == api.JobKindNotebook {
		if req.Notebook, err = notebookForJob(o.notebook, req.Params, stdin); err != nil {
			return req, err
		}
	}
	req.ClusterCriteria, err = parseClusterCriteria(o.clusters)
	return req, err
}

// notebookForJob reads a notebook job's notebook and checks its parameters
// here, so that a bad one is refused before it is sent; outputs of an
// earlier run are left out of the request.
func notebookForJob(path string, params map[string]string, stdin io.Reader) ([]byte, error) {
	src, err := readFileOrStdin(path, stdin)
	if err != nil {
		return nil, err
	}
	nb, err := notebooks.Read(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, _, err := nb.ApplyParameters(params); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range nb.Cells {
		c.Outputs, c.ExecutionCount = nil, nil
	}
	var b bytes.Buffer
	if err := nb.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// parseJobParams reads the -p flags; nil when there are none.
func parseJobParams(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	params := make(map[string]string, len(flags))
	for _, p := range flags {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-p %q: give key=value", p)
		}
		if _, dup := params[k]; dup {
			return nil, fmt.Errorf("-p %s: given twice", k)
		}
		params[k] = v
	}
	return params, nil
}

// parseClusterCriteria reads the --cluster flags, each one criterion.
func parseClusterCriteria(flags []string) ([][]string, error) {
	var criteria [][]string
	for _, f := range flags {
		tags := strings.Split(f, ",")
		for i, t := range tags {
			if tags[i] = strings.TrimSpace(t); tags[i] == "" {
				return nil, fmt.Errorf("--cluster %q: give tags separated by commas, such as gpu,eu", f)
			}
		}
		criteria = append(criteria, tags)
	}
	return criteria, nil
}

// waitForJob polls a job until it is finished, showing its progress, then
// prints its final state. A job that did not succeed is an error, so the
// exit status tells.
func waitForJob(ctx context.Context, a *app, c *client.Client, job api.Job, poll time.Duration) error {
	watch := &jobWatch{out: a.io.out, term: a.io.err, live: a.io.errTerminal}
	defer watch.clear()
	t := time.NewTicker(poll)
	defer t.Stop()
	for !api.JobFinished(job.State) {
		watch.show(job)
		select {
		case <-ctx.Done():
			return stoppedWaiting(job)
		case <-t.C:
		}
		next, err := c.GetJob(ctx, job.ID)
		if ctx.Err() != nil {
			return stoppedWaiting(job)
		}
		if err != nil {
			return fmt.Errorf("wait for job %s: %w", job.ID, err)
		}
		job = next
	}
	watch.clear()
	return reportFinishedJob(a.io.out, job)
}

func stoppedWaiting(j api.Job) error {
	return fmt.Errorf(`stopped waiting for job %s, still %s ("duet job kill %s" stops it)`, j.ID, j.State, j.ID)
}

// reportFinishedJob prints a finished job's state line, and where a
// succeeded sql job put its result; a job that did not succeed is an error.
func reportFinishedJob(w io.Writer, j api.Job) error {
	fmt.Fprintln(w, jobStatusLine(j))
	if j.Kind == api.JobKindNotebook && (j.State == api.JobSucceeded || j.State == api.JobFailed) {
		fmt.Fprintf(w, "executed notebook: duet job output %s %s\n", j.ID, "notebook.ipynb")
	}
	if j.State == api.JobSucceeded {
		if j.Kind == api.JobKindSQL && j.Output != "" {
			fmt.Fprintf(w, "output: %s\n", j.Output)
		}
		return nil
	}
	msg := fmt.Sprintf("job %s %s", j.ID, strings.ReplaceAll(j.State, "_", " "))
	if j.Error != "" {
		msg += ": " + j.Error
	}
	return errors.New(msg)
}

// jobStatusLine is one line about a job: id and state, then a running job's
// stage, rows and elapsed time, or a finished job's duration.
func jobStatusLine(j api.Job) string {
	parts := []string{j.ID + " " + j.State}
	switch p := j.Progress; {
	case api.JobFinished(j.State):
		if j.StartedAt != nil {
			parts = append(parts, formatDuration(time.Duration(j.DurationMs)*time.Millisecond))
		}
	case p != nil:
		if p.Stage != "" {
			parts = append(parts, p.Stage)
		}
		parts = append(parts, plural(p.Rows, "row"), formatDuration(time.Duration(p.ElapsedMs)*time.Millisecond))
	}
	return strings.Join(parts, "  ")
}

// jobWatch shows a job's progress while --wait polls it: on a terminal one
// line redrawn in place, elsewhere a line each time the state or the stage
// changes, so that logs stay short.
type jobWatch struct {
	out, term io.Writer
	live      bool
	drawn     bool
	last      string // state and stage of the last plain line
}

func (w *jobWatch) show(j api.Job) {
	line := jobStatusLine(j)
	if w.live {
		fmt.Fprintf(w.term, "\r\033[K%s", line)
		w.drawn = true
		return
	}
	key := j.State + "\n"
	if j.Progress != nil {
		key += j.Progress.Stage
	}
	if key != w.last {
		fmt.Fprintln(w.out, line)
		w.last = key
	}
}

// clear erases the live line, so what follows starts clean. It may be called
// more than once.
func (w *jobWatch) clear() {
	if w.drawn {
		fmt.Fprint(w.term, "\r\033[K")
		w.drawn = false
	}
}
