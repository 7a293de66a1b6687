package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
)

func newJobCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Inspect jobs (view builds and other work the server runs)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status ID",
		Short: "Show a job's state, timings, error and the version it published",
		Args:  argsExactly("ID"),
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
	})
	return cmd
}

func writeJob(w io.Writer, j api.Job) error {
	fields := [][2]string{{"job", j.ID}, {"kind", j.Kind}}
	if j.View != "" {
		fields = append(fields, [2]string{"view", j.View})
	}
	fields = append(fields, [2]string{"state", j.State}, [2]string{"created", formatTimestamp(j.CreatedAt)})
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
	if v := j.Version; v != nil {
		fields = append(fields, [2]string{"published", fmt.Sprintf("version %d covering offsets below %d (%s in %s, %s)",
			v.Version, v.CoveredOffset, plural(v.Rows, "row"), plural(int64(v.Files), "file"), formatBytes(v.Bytes))})
	}
	return writeFields(w, fields)
}
