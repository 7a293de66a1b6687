package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
)

func newViewHistoryCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List a view's versions: when, what they cover, what was rebuilt, size and duration",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			versions, err := c.ListVersions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			header := []string{"VERSION", "PUBLISHED", "KIND", "COVERS", "REBUILT", "PARTITIONS", "ROWS", "BYTES", "BUILD", "JOB"}
			rows := make([][]string, 0, len(versions))
			for _, v := range versions {
				version := strconv.FormatInt(v.Version, 10)
				if v.Current {
					version += " *"
				}
				kind := v.Kind
				if v.Base > 0 {
					kind += fmt.Sprintf(" on v%d", v.Base)
				}
				rows = append(rows, []string{
					version, formatTimestamp(v.PublishedAt), kind, fmt.Sprintf("[0, %d)", v.CoveredOffset),
					rebuiltText(v.Rebuilt), strconv.Itoa(v.Partitions), formatCount(v.Rows), formatBytes(v.Bytes),
					formatDuration(time.Duration(v.BuildMs) * time.Millisecond), v.JobID,
				})
			}
			if err := writeColumns(a.io.out, header, rows); err != nil {
				return err
			}
			if len(versions) == 0 {
				fmt.Fprintf(a.io.out, "(no versions yet: build it with \"duet view build %s\")\n", args[0])
			}
			return nil
		},
	}
}

// rebuiltText names up to three rebuilt days, then counts the rest.
func rebuiltText(days []string) string {
	switch {
	case len(days) == 0:
		return "-"
	case len(days) == 1 && days[0] == "":
		return "all"
	case len(days) <= 3:
		return strings.Join(days, ",")
	}
	return fmt.Sprintf("%s,%s … (%d days)", days[0], days[1], len(days))
}

func newViewRollbackCmd(a *app) *cobra.Command {
	var to int64
	cmd := &cobra.Command{
		Use:   "rollback NAME --to VERSION",
		Short: "Make an older version current again; merged answers stay exact",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to <= 0 {
				return fmt.Errorf("--to VERSION is required (see \"duet view history %s\")", args[0])
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			v, err := c.Rollback(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.io.out, "view %s now serves version %d (covers offsets [0, %d)); the speed layer holds the rest\n",
				v.Name, v.Batch.Version, v.Batch.CoveredOffset)
			return nil
		},
	}
	cmd.Flags().Int64Var(&to, "to", 0, "the version to make current")
	return cmd
}

func newViewBackfillCmd(a *app) *cobra.Command {
	var (
		from, to string
		wait     bool
		poll     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "backfill NAME --from YYYY-MM-DD --to YYYY-MM-DD [--wait]",
		Short: "Rebuild a view's days in a range from the master dataset; prints the job id",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return fmt.Errorf("--from and --to are required")
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			job, err := c.Backfill(cmd.Context(), args[0], from, to)
			if err != nil {
				return err
			}
			return reportJob(cmd, a, c, job, wait, poll, "backfill of view "+args[0])
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first day to rebuild (YYYY-MM-DD)")
	cmd.Flags().StringVar(&to, "to", "", "last day to rebuild (YYYY-MM-DD), inclusive")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the job has finished, and print its final state")
	cmd.Flags().DurationVar(&poll, "poll", client.DefaultPoll, "how often --wait asks for the job's state")
	return cmd
}

func newDatasetCompactCmd(a *app) *cobra.Command {
	var (
		wait bool
		poll time.Duration
	)
	cmd := &cobra.Command{
		Use:   "compact NAME [--wait]",
		Short: "Merge the dataset's small archive files; prints the job id",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			job, err := c.Compact(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return reportJob(cmd, a, c, job, wait, poll, "compaction of dataset "+args[0])
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the job has finished, and print its final state")
	cmd.Flags().DurationVar(&poll, "poll", client.DefaultPoll, "how often --wait asks for the job's state")
	return cmd
}

// reportJob prints a submitted job's id and, with wait, its final state; a
// job that did not succeed is an error.
func reportJob(cmd *cobra.Command, a *app, c *client.Client, job api.Job, wait bool, poll time.Duration, what string) error {
	fmt.Fprintln(a.io.out, job.ID)
	if !wait {
		return nil
	}
	job, err := c.WaitJob(cmd.Context(), job.ID, poll)
	if err != nil {
		return err
	}
	if err := writeJob(a.io.out, job); err != nil {
		return err
	}
	if job.State != api.JobSucceeded {
		return fmt.Errorf("%s %s (job %s): %s", what, job.State, job.ID, job.Error)
	}
	return nil
}
