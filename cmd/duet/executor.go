package main

import (
	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/batchlayer"
)

// newExecutorCmd is the ephemeral executor: the server starts one process per
// task with a working directory holding the task, and reads its result there.
func newExecutorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "executor",
		Short:  "Run one task on an ephemeral executor (started by the server)",
		Hidden: true,
	}
	var dir string
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the task in --dir (a view build or an archive compaction)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return batchlayer.RunTask(cmd.Context(), dir)
		},
	}
	run.Flags().StringVar(&dir, "dir", "", "the task's working directory")
	_ = run.MarkFlagRequired("dir")
	cmd.AddCommand(run)
	return cmd
}
