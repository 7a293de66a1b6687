package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
)

func newJobCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Submit, inspect and stop jobs (SQL scripts, notebooks, view builds, backfills, compactions)",
	}
	cmd.AddCommand(newJobSubmitCmd(a), newJobListCmd(a), newJobShowCmd(a), newJobLogsCmd(a), newJobOutputCmd(a), newJobKillCmd(a))
	return cmd
}

func newJobListCmd(a *app) *cobra.Command {
	var (
		f     client.JobFilter
		since string
	)
	cmd := &cobra.Command{
		Use:   "list [--view V] [--state S] [--kind K] [--user U] [--schedule S] [--since 2h] [--limit N]",
		Short: "List jobs, newest first",
		Args:  argsExactly(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Limit < 1 {
				return fmt.Errorf("--limit %d: give a positive number", f.Limit)
			}
			if since != "" {
				var err error
				if f.Since, err = parseSince(since, time.Now()); err != nil {
					return err
				}
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			jobs, err := listJobs(cmd.Context(), c, f)
			if err != nil {
				return err
			}
			if len(jobs) == 0 {
				fmt.Fprintln(a.io.out, "no jobs")
				return nil
			}
			return writeJobList(a.io.out, jobs)
		},
	}
	cmd.Flags().StringVar(&f.View, "view", "", "only this view's jobs")
	cmd.Flags().StringVar(&f.State, "state", "", "only jobs in this state: queued, running, succeeded, failed, killed or timed_out")
	cmd.Flags().StringVar(&f.Kind, "kind", "", "only jobs of this kind: sql, notebook, view-build, backfill or compaction")
	cmd.Flags().StringVar(&f.User, "user", "", "only jobs this user submitted")
	cmd.Flags().StringVar(&f.Schedule, "schedule", "", "only jobs this schedule submitted")
	cmd.Flags().StringVar(&since, "since", "", "only jobs created since this time (RFC 3339, such as 2024-05-01T12:00:00Z) or this long ago (such as 2h or 7d)")
	cmd.Flags().IntVar(&f.Limit, "limit", 20, "show at most this many jobs")
	return cmd
}

// listJobs gathers up to f.Limit jobs, following the server's links to
// further pages while a page holds fewer.
func listJobs(ctx context.Context, c *client.Client, f client.JobFilter) ([]api.Job, error) {
	page, err := c.ListJobsPage(ctx, f)
	if err != nil {
		return nil, err
	}
	jobs := page.Jobs
	for page.Next != "" && len(page.Jobs) > 0 && len(jobs) < f.Limit {
		if page, err = c.NextJobsPage(ctx, page.Next); err != nil {
			return nil, err
		}
		jobs = append(jobs, page.Jobs...)
	}
	return jobs[:min(len(jobs), f.Limit)], nil
}

// parseSince reads --since: an RFC 3339 time, or a duration (which may be
// in days, 7d) back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	}
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--since %q: give a time such as 2024-05-01T12:00:00Z, or how long ago such as 2h or 7d", s)
	}
	return now.Add(-d), nil
}

func writeJobList(w io.Writer, jobs []api.Job) error {
	rows := make([][]string, len(jobs))
	for i, j := range jobs {
		view, duration := j.View, "-"
		if view == "" {
			view = "-"
		}
		if j.FinishedAt != nil && j.StartedAt != nil {
			duration = formatDuration(time.Duration(j.DurationMs) * time.Millisecond)
		}
		rows[i] = []string{j.ID, j.Kind, view, j.State, formatAttempt(j), formatTimestamp(j.CreatedAt), duration}
	}
	return writeColumns(w, []string{"ID", "KIND", "VIEW", "STATE", "ATTEMPT", "CREATED", "DURATION"}, rows)
}

// formatAttempt writes attempts started out of the most allowed: 2/4.
func formatAttempt(j api.Job) string {
	if j.MaxAttempts == 0 {
		return fmt.Sprint(j.Attempt)
	}
	return fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts)
}

func newJobShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Aliases: []string{"status"},
		Short:   "Show a job: state, attempts, timings, error, logs and the version it published",
		Args:    argsExactly("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			job, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJob(a.io.out, job)
		},
	}
}

func newJobLogsCmd(a *app) *cobra.Command {
	var (
		follow, stdout bool
		poll           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "logs ID [-f] [--stdout]",
		Short: "Print the executor output of a job's latest attempt (stderr, then stdout; -f follows stderr, or --stdout)",
		Args:  argsExactly("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if poll <= 0 {
				return fmt.Errorf("--poll %s: give a positive duration", poll)
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			if !follow && !stdout {
				return c.JobLogs(cmd.Context(), args[0], a.io.out)
			}
			name := "stderr"
			if stdout {
				name = "stdout"
			}
			if !follow {
				_, err := c.JobOutput(cmd.Context(), args[0], name, 0, a.io.out)
				return err
			}
			return followJobOutput(cmd.Context(), c, args[0], name, poll, a.io)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing the output as it grows, until the job is finished")
	cmd.Flags().BoolVar(&stdout, "stdout", false, "print the job's stdout only, not its stderr")
	cmd.Flags().DurationVar(&poll, "poll", client.DefaultPoll, "how often -f asks for new output")
	return cmd
}

// followJobOutput prints one output file of a job as it grows, until the job
// is finished. The job is read before its output, so the read after the job
// is seen finished gets the last bytes. A new attempt starts its file anew,
// and so does the copy.
func followJobOutput(ctx context.Context, c *client.Client, id, name string, poll time.Duration, streams ioStreams) error {
	var offset int64
	attempt := 0
	for {
		job, err := c.GetJob(ctx, id)
		if err != nil {
			return err
		}
		if attempt != 0 && job.Attempt != attempt && offset > 0 {
			fmt.Fprintf(streams.err, "duet: job %s started attempt %d; its %s follows\n", id, job.Attempt, name)
			offset = 0
		}
		attempt = job.Attempt
		n, err := c.JobOutput(ctx, id, name, offset, streams.out)
		offset += n
		finished := api.JobFinished(job.State)
		// Until the job has started its executor, it has no output yet.
		if err != nil && (finished || !client.IsStatus(err, http.StatusNotFound)) {
			return err
		}
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following job %s, still %s", id, job.State)
		case <-time.After(poll):
		}
	}
}

func newJobKillCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "kill ID",
		Short: "Kill a queued job, or stop a running one and its executor",
		Args:  argsExactly("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			job, err := c.KillJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if job.State == api.JobKilled {
				fmt.Fprintf(a.io.out, "killed job %s\n", job.ID)
				return nil
			}
			fmt.Fprintf(a.io.out, "stopping job %s (%s); \"duet job show %s\" tells when it is killed\n", job.ID, job.State, job.ID)
			return nil
		},
	}
}

func writeJob(w io.Writer, j api.Job) error {
	fields := [][2]string{{"job", j.ID}, {"kind", j.Kind}}
	if j.User != "" {
		fields = append(fields, [2]string{"user", j.User})
	}
	if j.View != "" {
		fields = append(fields, [2]string{"view", j.View})
	}
	if len(j.Params) > 0 {
		var ps []string
		for _, k := range slices.Sorted(maps.Keys(j.Params)) {
			ps = append(ps, k+"="+j.Params[k])
		}
		fields = append(fields, [2]string{"params", strings.Join(ps, " ")})
	}
	if j.Output != "" {
		fields = append(fields, [2]string{"output", j.Output})
	}
	if len(j.ClusterCriteria) > 0 {
		fields = append(fields, [2]string{"clusters", formatClusterCriteria(j.ClusterCriteria)})
	}
	fields = append(fields, [2]string{"state", j.State})
	if p := j.Progress; p != nil && !api.JobFinished(j.State) {
		fields = append(fields, [2]string{"progress", formatProgress(*p)})
	}
	if e := j.Executor; e != nil {
		where := "cluster " + e.Cluster
		if e.PID != 0 {
			where += fmt.Sprintf(" (pid %d)", e.PID)
		}
		fields = append(fields, [2]string{"executor", where})
	}
	if j.MaxAttempts > 0 {
		fields = append(fields, [2]string{"attempt", fmt.Sprintf("%d of at most %d", j.Attempt, j.MaxAttempts)})
	}
	if j.NextAttemptAt != nil {
		fields = append(fields, [2]string{"next attempt", formatTimestamp(*j.NextAttemptAt)})
	}
	if j.Timeout != "" {
		fields = append(fields, [2]string{"timeout", j.Timeout + " per attempt"})
	}
	fields = append(fields, [2]string{"created", formatTimestamp(j.CreatedAt)})
	if j.StartedAt != nil {
		fields = append(fields, [2]string{"started", formatTimestamp(*j.StartedAt)})
	}
	if j.FinishedAt != nil {
		fields = append(fields, [2]string{"finished", formatTimestamp(*j.FinishedAt)})
	}
	if j.DurationMs > 0 || j.FinishedAt != nil {
		fields = append(fields, [2]string{"duration", formatDuration(time.Duration(j.DurationMs) * time.Millisecond)})
	}
	if j.Error != "" {
		fields = append(fields, [2]string{"error", j.Error})
	}
	if j.LogPrefix != "" {
		fields = append(fields, [2]string{"logs", fmt.Sprintf("%s (duet job logs %s)", j.LogPrefix, j.ID)})
	}
	if v := j.Version; v != nil {
		fields = append(fields, [2]string{"published", fmt.Sprintf("version %d covering offsets below %d (%s in %s, %s)",
			v.Version, v.CoveredOffset, plural(v.Rows, "row"), plural(int64(v.Files), "file"), formatBytes(v.Bytes))})
	}
	if j.SQL != "" {
		fields = append(fields, [2]string{"sql", j.SQL})
	}
	return writeFields(w, fields)
}

// formatProgress writes a heartbeat: statement 2 of 3, 1,234 rows in 12.3s
// (heartbeat 2024-05-01 12:00:05 UTC).
func formatProgress(p api.JobProgress) string {
	out := fmt.Sprintf("%s in %s (heartbeat %s)", plural(p.Rows, "row"), formatDuration(time.Duration(p.ElapsedMs)*time.Millisecond), formatTimestamp(p.HeartbeatAt))
	if p.Stage != "" {
		out = p.Stage + ", " + out
	}
	return out
}

// formatClusterCriteria writes tag sets in order of preference: gpu,eu then default.
func formatClusterCriteria(criteria [][]string) string {
	sets := make([]string, len(criteria))
	for i, tags := range criteria {
		sets[i] = strings.Join(tags, ",")
	}
	return strings.Join(sets, " then ")
}
