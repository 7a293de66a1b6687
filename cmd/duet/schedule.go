package main

import (
	"errors"
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

func newScheduleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Run SQL scripts and notebooks as jobs on a cron schedule",
	}
	cmd.AddCommand(newScheduleCreateCmd(a), newScheduleListCmd(a), newScheduleShowCmd(a), newScheduleDeleteCmd(a))
	return cmd
}

func newScheduleCreateCmd(a *app) *cobra.Command {
	var (
		o             jobSubmitOptions
		cron, catchup string
	)
	cmd := &cobra.Command{
		Use:   `create NAME --cron "0 6 * * *" (--notebook NB.ipynb | --sql-file F.sql | --sql TEXT) [-p key=value]... [--catchup skip|once|all] [--output O] [--timeout 30m] [--max-attempts N] [--cluster tag,tag]...`,
		Short: "Submit a notebook or SQL job at each fire of a cron schedule, as you",
		Long: `Create a schedule: at each fire of --cron the server submits a job made
from the flags, as "duet job submit" would, as the user creating the
schedule. Its jobs are named NAME-<fire time>, such as
nightly-20260314T060000Z, so a fire is never submitted twice.

--cron takes 5 cron fields, or 6 with leading seconds ("*/30 * * * * *"),
@hourly or "@every 5m", in UTC unless prefixed with CRON_TZ=Zone. --catchup
says what to do about fires missed while the server was down: skip them
(the default), run once for them, or all of them.

  duet schedule create nightly --cron "0 6 * * *" --notebook daily_report.ipynb -p min_delay=30
  duet schedule create hourly-sql --cron @hourly --sql-file rollup.sql --output jobs.rollup --catchup all`,
		Args: argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cron == "" {
				return errors.New(`--cron: give when to run, such as "0 6 * * *" or @hourly`)
			}
			if o.notebook == "" && o.sqlText == "" && o.sqlFile == "" {
				return errors.New("give the job: --notebook NB.ipynb, --sql-file F.sql or --sql TEXT")
			}
			job, err := o.request(a.io.in)
			if err != nil {
				return err
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			s, err := c.CreateSchedule(cmd.Context(), api.ScheduleRequest{Name: args[0], Cron: cron, Catchup: catchup, Job: job})
			if err != nil {
				return err
			}
			next := "no further fire"
			if s.NextFire != nil {
				next = "next fire " + formatTimestamp(*s.NextFire)
			}
			fmt.Fprintf(a.io.out, "created schedule %s: %s job %s (%s)\n", s.Name, s.Job.Kind, s.Cron, next)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cron, "cron", "", `when to submit the job: cron fields (6 with seconds), @hourly or "@every 5m"`)
	fl.StringVar(&catchup, "catchup", "", "fires missed while the server was down: skip them, run once for them, or all of them (default skip)")
	fl.StringVar(&o.notebook, "notebook", "", "the job's notebook (nbformat 4 .ipynb; - for stdin)")
	fl.StringVar(&o.sqlText, "sql", "", "the job's SQL script")
	fl.StringVar(&o.sqlFile, "sql-file", "", "read the job's SQL script from this file (- for stdin)")
	fl.StringVar(&o.output, "output", "", "where a sql job's result goes: a path ending in .parquet, or jobs.<name> (default jobs/<id>/result.parquet)")
	fl.StringArrayVarP(&o.params, "param", "p", nil, "a parameter as key=value; repeat for more")
	fl.StringVar(&o.timeout, "timeout", "", `stop an attempt after this long, such as "30m" (default: the server's)`)
	fl.IntVar(&o.maxAttempts, "max-attempts", 0, "attempts at most of each job (default 1)")
	fl.StringArrayVar(&o.clusters, "cluster", nil, "comma-separated tags a cluster must have; repeat for fallbacks, in order")
	return cmd
}

func newScheduleListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List schedules with their last and next fire",
		Args:  argsExactly(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			all, err := c.ListSchedules(cmd.Context())
			if err != nil {
				return err
			}
			if len(all) == 0 {
				fmt.Fprintln(a.io.out, `no schedules (create one with "duet schedule create")`)
				return nil
			}
			rows := make([][]string, len(all))
			for i, s := range all {
				user := s.User
				if user == "" {
					user = "-"
				}
				rows[i] = []string{s.Name, s.Job.Kind, s.Cron, s.Catchup, user, optionalTimestamp(s.LastFire), optionalTimestamp(s.NextFire)}
			}
			return writeColumns(a.io.out, []string{"NAME", "KIND", "CRON", "CATCHUP", "USER", "LAST FIRE", "NEXT FIRE"}, rows)
		},
	}
}

func newScheduleShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a schedule: its job, last and next fire and latest jobs",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			s, err := c.GetSchedule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeSchedule(a.io.out, s)
		},
	}
}

func newScheduleDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop and remove a schedule; the jobs it submitted go on",
		Args:  argsExactly("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			if err := c.DeleteSchedule(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.io.out, "deleted schedule %s\n", args[0])
			return nil
		},
	}
}

func writeSchedule(w io.Writer, s api.Schedule) error {
	fields := [][2]string{{"schedule", s.Name}, {"cron", s.Cron}, {"catch-up", s.Catchup}}
	if s.User != "" {
		fields = append(fields, [2]string{"user", s.User})
	}
	j := s.Job
	fields = append(fields, [2]string{"kind", j.Kind})
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
	if j.Timeout != "" {
		fields = append(fields, [2]string{"timeout", j.Timeout + " per attempt"})
	}
	if j.MaxAttempts > 0 {
		fields = append(fields, [2]string{"attempts", fmt.Sprintf("at most %d per job", j.MaxAttempts)})
	}
	fields = append(fields,
		[2]string{"created", formatTimestamp(s.CreatedAt)},
		[2]string{"last fire", optionalTimestamp(s.LastFire)},
		[2]string{"next fire", optionalTimestamp(s.NextFire)})
	if s.LastError != "" {
		fields = append(fields, [2]string{"last error", s.LastError})
	}
	if len(s.RecentJobs) > 0 {
		lines := make([]string, len(s.RecentJobs))
		for i, rj := range s.RecentJobs {
			lines[i] = rj.ID + "  " + rj.State
		}
		fields = append(fields, [2]string{"latest jobs", strings.Join(lines, "\n")})
	}
	if j.SQL != "" {
		fields = append(fields, [2]string{"sql", j.SQL})
	}
	return writeFields(w, fields)
}

// optionalTimestamp is formatTimestamp, or "-" for none.
func optionalTimestamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTimestamp(*t)
}
