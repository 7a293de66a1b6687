package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/client"
)

func newJobOutputCmd(a *app) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "output ID FILE [-o PATH]",
		Short: "Copy one output file of a job's latest attempt (a notebook job's notebook.ipynb, result.parquet...)",
		Long: `Copy one output file of a job's latest attempt to stdout, or to -o PATH:
stdout, stderr, manifest.json, a sql job's result.parquet or a notebook
job's executed notebook.ipynb.

  duet job output JOB_ID notebook.ipynb -o report.ipynb`,
		Args: argsExactly("ID", "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			if path == "" || path == "-" {
				_, err := c.JobOutput(cmd.Context(), args[0], args[1], 0, a.io.out)
				return err
			}
			// Read it whole first, so that a failed read leaves no file.
			var b bytes.Buffer
			if _, err := c.JobOutput(cmd.Context(), args[0], args[1], 0, &b); err != nil {
				return err
			}
			if err := writeFileAtomically(path, b.Bytes()); err != nil {
				return err
			}
			fmt.Fprintf(a.io.err, "wrote %s (%s)\n", path, plural(int64(b.Len()), "byte"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "output", "o", "", "write the file here instead of to stdout")
	return cmd
}
