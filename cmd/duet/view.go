package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
)

func newViewCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "view",
		Short: "Define views, inspect their freshness and build them",
	}
	cmd.AddCommand(newViewCreateCmd(a), newViewListCmd(a), newViewShowCmd(a), newViewBuildCmd(a),
		newViewHistoryCmd(a), newViewRollbackCmd(a), newViewBackfillCmd(a))
	return cmd
}

func newViewCreateCmd(a *app) *cobra.Command {
	var sqlText, sqlFile, schedule, catchup, timeout string
	var maxRetries int
	cmd := &cobra.Command{
		Use:   `create NAME --sql "SELECT ..." [--schedule "@every 5m"] [--catchup skip|once|all] [--max-retries N] [--timeout 1h]`,
		Short: "Define a view: one SQL query over one dataset",
		Long: `Define a view: one SQL query over one dataset, kept fresh by merging its batch
version with the speed layer. --schedule (cron syntax, or @every 5m, @hourly)
rebuilds the batch version periodically; --catchup says what it does about
fires missed while the server was down. A failed build is retried up to
--max-retries times with a growing wait, and each attempt is stopped after
--timeout.

  duet view create delays_by_origin --sql "SELECT origin, count(*) AS n, avg(delay) AS avg_delay FROM flights GROUP BY origin" --schedule "@every 5m"`,
		Args: argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			query, err := sqlFromFlags(sqlText, sqlFile, a.io.in)
			if err != nil {
				return err
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			req := api.ViewRequest{Name: args[0], SQL: query, Schedule: schedule, Catchup: catchup, Timeout: timeout}
			if cmd.Flags().Changed("max-retries") {
				req.MaxRetries = &maxRetries
			}
			v, err := c.CreateView(cmd.Context(), req)
			if err != nil {
				return err
			}
			how := fmt.Sprintf(`no schedule: build it with "duet view build %s"`, v.Name)
			if v.Schedule != "" {
				how = "builds " + v.Schedule
			}
			fmt.Fprintf(a.io.out, "created view %s on dataset %s (%s)\n", v.Name, v.Dataset, how)
			return nil
		},
	}
	cmd.Flags().StringVar(&sqlText, "sql", "", "the view's query")
	cmd.Flags().StringVar(&sqlFile, "sql-file", "", "read the view's query from this file (- for stdin)")
	cmd.Flags().StringVar(&schedule, "schedule", "", `when to rebuild the batch version: cron syntax or "@every 5m"`)
	cmd.Flags().StringVar(&catchup, "catchup", "", "fires missed while the server was down: skip them, run once for them, or all of them (default skip)")
	cmd.Flags().IntVar(&maxRetries, "max-retries", 3, "retries of a failed build")
	cmd.Flags().StringVar(&timeout, "timeout", "", `stop a build attempt after this long, such as "30m" (default 1h)`)
	return cmd
}

func sqlFromFlags(sqlText, sqlFile string, stdin io.Reader) (string, error) {
	switch {
	case sqlText != "" && sqlFile != "":
		return "", errors.New("give the query with --sql or --sql-file, not both")
	case sqlFile != "":
		b, err := readFileOrStdin(sqlFile, stdin)
		if err != nil {
			return "", err
		}
		sqlText = string(b)
	}
	sqlText = strings.TrimSpace(sqlText)
	if sqlText == "" {
		return "", errors.New(`no query: give it with --sql "SELECT ..." or --sql-file FILE`)
	}
	return sqlText, nil
}

func newViewListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List views with their batch version and lag",
		Args:  argsExactly(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			views, err := c.ListViews(cmd.Context())
			if err != nil {
				return err
			}
			if len(views) == 0 {
				fmt.Fprintln(a.io.out, `no views yet (define one with "duet view create")`)
				return nil
			}
			rows := make([][]string, len(views))
			for i, v := range views {
				version, covered := "-", "-"
				if v.Batch != nil {
					version = fmt.Sprint(v.Batch.Version)
					covered = formatCount(v.Batch.CoveredOffset)
				}
				schedule := v.Schedule
				if schedule == "" {
					schedule = "-"
				}
				rows[i] = []string{v.Name, v.Dataset, schedule, version, covered, formatLag(v.Speed)}
			}
			return writeColumns(a.io.out, []string{"NAME", "DATASET", "SCHEDULE", "VERSION", "COVERED", "LAG"}, rows)
		},
	}
}

// formatLag says how far a view's batch version is behind the log.
func formatLag(s *api.SpeedStatus) string {
	switch {
	case s == nil:
		return "-"
	case s.LagRecords == 0:
		return "none"
	}
	return fmt.Sprintf("%s, %s", plural(s.LagRecords, "record"), formatDuration(time.Duration(s.LagMillis)*time.Millisecond))
}

func newViewShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a view: its batch version, covered offset, speed segments and lag",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			v, err := c.GetView(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeView(a.io.out, v)
		},
	}
}

func writeView(w io.Writer, v api.View) error {
	schedule := v.Schedule
	if schedule == "" {
		schedule = "none (built on demand)"
	}
	fields := [][2]string{{"name", v.Name}, {"dataset", v.Dataset}, {"schedule", schedule}}
	if v.Catchup != "" || v.Timeout != "" {
		fields = append(fields, [2]string{"builds", fmt.Sprintf("catch-up %s, up to %d retries, %s per attempt", v.Catchup, v.MaxRetries, v.Timeout)})
	}
	if v.CreatedAt != nil {
		fields = append(fields, [2]string{"created", formatTimestamp(*v.CreatedAt)})
	}
	if b := v.Batch; b != nil {
		job := ""
		if b.JobID != "" {
			job = ", job " + b.JobID
		}
		fields = append(fields,
			[2]string{"batch version", fmt.Sprintf("%d, published %s%s", b.Version, formatTimestamp(b.PublishedAt), job)},
			[2]string{"covered offset", fmt.Sprintf("%d (the version holds every record with a smaller offset)", b.CoveredOffset)},
			[2]string{"batch size", fmt.Sprintf("%s in %s, %s", plural(b.Rows, "row"), plural(int64(b.Files), "file"), formatBytes(b.Bytes))})
	} else {
		fields = append(fields, [2]string{"batch version", fmt.Sprintf(`none yet (build one with "duet view build %s")`, v.Name)})
	}
	if s := v.Speed; s != nil {
		fields = append(fields, [2]string{"speed layer", fmt.Sprintf("offsets [%d, %d)", s.FromOffset, s.LogEndOffset)})
		if len(s.Segments) > 0 {
			segs := make([]string, len(s.Segments))
			for i, seg := range s.Segments {
				state := "open"
				if seg.Sealed {
					state = "sealed"
				}
				segs[i] = fmt.Sprintf("[%d, %d) %s, %s", seg.First, seg.End, plural(seg.End-seg.First, "record"), state)
			}
			fields = append(fields, [2]string{"speed segments", strings.Join(segs, "\n")})
		} else {
			fields = append(fields, [2]string{"speed segments", "none"})
		}
		fields = append(fields, [2]string{"lag", formatLag(s)})
	}
	fields = append(fields, [2]string{"sql", v.SQL})
	return writeFields(w, fields)
}

func newViewBuildCmd(a *app) *cobra.Command {
	var (
		wait, full bool
		poll       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "build NAME [--full] [--wait]",
		Short: "Build a view's batch version now (the days with new records, or --full); prints the job id",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			job, err := c.Build(cmd.Context(), args[0], api.BuildRequest{Full: full})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.io.out, job.ID)
			if !wait {
				return nil
			}
			job, err = c.WaitJob(cmd.Context(), job.ID, poll)
			if err != nil {
				return err
			}
			if err := writeJob(a.io.out, job); err != nil {
				return err
			}
			if job.State != api.JobSucceeded {
				return fmt.Errorf("build of view %s %s (job %s): %s", args[0], strings.ReplaceAll(job.State, "_", " "), job.ID, job.Error)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the build has succeeded or failed, and print its final state")
	cmd.Flags().BoolVar(&full, "full", false, "rebuild every partition, not only the days with new records")
	cmd.Flags().DurationVar(&poll, "poll", client.DefaultPoll, "how often --wait asks for the job's state")
	return cmd
}
