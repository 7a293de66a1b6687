package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/executor"
	"github.com/duet-analytics/duet/notebooks"
)

// newExecutorCmd is the ephemeral executor: the server starts one process per
// task with a working directory holding the task, and reads its result there.
func newExecutorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "executor",
		Short:  "Run one task on an ephemeral executor (started by the server)",
		Hidden: true,
	}
	var (
		dir     string
		standby bool
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the task in --dir (a view build, an archive compaction, a sql or notebook job)",
		Long: "Run the task in --dir (a view build or an archive compaction). With --standby the executor\n" +
			"opens and warms its engine first, then reads its task's directory from a line of stdin:\n" +
			"the server keeps standby executors so that a build need not wait for one to start.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if standby == (dir != "") {
				return errors.New("executor run: give exactly one of --dir and --standby")
			}
			ctx := cmd.Context()
			e, err := batchlayer.OpenExecutor(ctx)
			if err != nil {
				return err
			}
			defer e.Close()
			if standby {
				if err := e.WarmUp(ctx); err != nil {
					return err
				}
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if errors.Is(err, io.EOF) && line == "" {
					return nil // the server stopped before it had a task for us
				}
				if err != nil {
					return fmt.Errorf("read task directory: %w", err)
				}
				if dir = strings.TrimSpace(line); dir == "" {
					return errors.New("read task directory: empty line")
				}
				if err := os.Chdir(dir); err != nil {
					return err
				}
			}
			// Heartbeats start with the task: a standby's wait is not work.
			reporter := executor.NewReporter()
			defer reporter.Close()
			progress := loggedProgress{Reporter: reporter, w: cmd.ErrOrStderr()}
			// A notebook job's executor runs the notebook against the
			// server's SQL gateway; its engine stays unused.
			task, isNotebook, err := notebooks.ReadTask(dir)
			if err != nil {
				return err
			}
			if isNotebook {
				return task.Run(ctx, dir, progress)
			}
			return e.Run(ctx, dir, progress)
		},
	}
	run.Flags().StringVar(&dir, "dir", "", "the task's working directory")
	run.Flags().BoolVar(&standby, "standby", false, "warm up, then read the task's directory from stdin")
	cmd.AddCommand(run)
	return cmd
}

// loggedProgress also writes each stage to the executor's stderr, which
// the job's logs keep.
type loggedProgress struct {
	*executor.Reporter
	w io.Writer
}

func (p loggedProgress) Stage(stage string) {
	fmt.Fprintf(p.w, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), stage)
	p.Reporter.Stage(stage)
}
