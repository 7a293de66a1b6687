// Command duet is duet's one binary: the server (serve, demo, executor) and
// the client commands data engineers and analysts use against it (dataset,
// ingest, view, job, sql, notebook).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/client"
)

const defaultServer = "http://127.0.0.1:8080"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], ioStreams{
		in:          os.Stdin,
		out:         os.Stdout,
		err:         os.Stderr,
		errTerminal: isatty.IsTerminal(os.Stderr.Fd()) || isatty.IsCygwinTerminal(os.Stderr.Fd()),
	}, os.Getenv)
	stop()
	os.Exit(code)
}

// ioStreams are where a command reads and writes; tests pass buffers.
type ioStreams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
	// errTerminal says err is a terminal, so progress may be drawn there.
	errTerminal bool
}

// app is the state the client commands share: flags of the root command and
// the clients to close when the command ends.
type app struct {
	io      ioStreams
	getenv  func(string) string
	server  string
	clients []*client.Client
}

// run executes one command line and returns the process exit code. Errors
// are printed as one line, `duet: <message>`.
func run(ctx context.Context, args []string, streams ioStreams, getenv func(string) string) int {
	a := &app{io: streams, getenv: getenv}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	for _, c := range a.clients {
		c.CloseIdleConnections()
	}
	if err != nil {
		fmt.Fprintf(streams.err, "duet: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "duet",
		Short: "duet: batch views and a speed layer, merged exactly, queried over the Trino protocol",
		Long: `duet runs an analytics server (duet serve) and talks to it: define datasets,
ingest records, define views over them, watch their builds and query them with SQL.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(a.io.in)
	root.SetOut(a.io.out)
	root.SetErr(a.io.err)
	server := a.getenv("DUET_SERVER")
	if server == "" {
		server = defaultServer
	}
	root.PersistentFlags().StringVar(&a.server, "server", server, "URL of the duet server; $DUET_SERVER sets the default")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see \"%s --help\")", err, cmd.CommandPath())
	})
	root.AddCommand(
		newServeCmd(),
		newDemoCmd(),
		newExecutorCmd(),
		newDatasetCmd(a),
		newIngestCmd(a),
		newViewCmd(a),
		newJobCmd(a),
		newScheduleCmd(a),
		newSQLCmd(a),
		newNotebookCmd(a),
	)
	return root
}

// client returns a client of --server, closed when the command ends. It
// authenticates with $DUET_TOKEN, or $DUET_USER and $DUET_PASSWORD: from the
// environment, as secrets in flags would show in the process list.
func (a *app) client(cfg client.Config) (*client.Client, error) {
	cfg.Credentials = client.Credentials{User: a.getenv("DUET_USER"), Password: a.getenv("DUET_PASSWORD"), Token: a.getenv("DUET_TOKEN")}
	c, err := client.NewWithConfig(a.server, nil, cfg)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	a.clients = append(a.clients, c)
	return c, nil
}

var didYouMean = regexp.MustCompile(`\s*Did you mean this\?\s+(\S+)\s*`)

// oneLine folds a multi-line message (cobra's suggestions, say) into one line.
func oneLine(msg string) string {
	if m := didYouMean.FindStringSubmatchIndex(msg); m != nil {
		msg = msg[:m[0]] + fmt.Sprintf(" (did you mean %q?)", msg[m[2]:m[3]]) + msg[m[1]:]
	}
	var parts []string
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " ")
}

// argsExactly is cobra.ExactArgs with a message naming what is missing.
func argsExactly(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		usage := cmd.CommandPath() + " " + strings.Join(names, " ")
		if len(args) < len(names) {
			return fmt.Errorf("missing %s (usage: %s)", names[len(args)], usage)
		}
		return fmt.Errorf("unexpected argument %q (usage: %s)", args[len(names)], usage)
	}
}
