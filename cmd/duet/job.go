package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
)

func newJobCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Inspect and stop jobs (view builds, backfills, compactions)",
	}
	cmd.AddCommand(newJobListCmd(a), newJobShowCmd(a), newJobLogsCmd(a), newJobKillCmd(a))
	return cmd
}

func newJobListCmd(a *app) *cobra.Command {
	var f client.JobFilter
	cmd := &cobra.Command{
		Use:   "list [--view V] [--state S] [--kind K] [--limit N]",
		Short: "List jobs, newest first",
		Args:  argsExactly(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Limit < 1 {
				return fmt.Errorf("--limit %d: give a positive number", f.Limit)
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			jobs, err := c.ListJobs(cmd.Context(), f)
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
	cmd.Flags().StringVar(&f.Kind, "kind", "", "only jobs of this kind: view-build, backfill or compaction")
	cmd.Flags().IntVar(&f.Limit, "limit", 20, "show at most this many jobs")
	return cmd
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
	return &cobra.Command{
		Use:   "logs ID",
		Short: "Print the executor output of a job's latest attempt (stderr, then stdout)",
		Args:  argsExactly("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			return c.JobLogs(cmd.Context(), args[0], a.io.out)
		},
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
	fields = append(fields, [2]string{"state", j.State})
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
	return writeFields(w, fields)
}
