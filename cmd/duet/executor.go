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
	build := &cobra.Command{
		Use:   "build",
		Short: "Build a view version from the task in --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return batchlayer.RunBuildTask(cmd.Context(), dir)
		},
	}
	build.Flags().StringVar(&dir, "dir", "", "the task's working directory")
	_ = build.MarkFlagRequired("dir")
	cmd.AddCommand(build)
	return cmd
}
