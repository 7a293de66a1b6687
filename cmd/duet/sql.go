package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/trinodb/trino-go-client/trino" // registers the "trino" driver

	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/internal/resulttext"
)

func newSQLCmd(a *app) *cobra.Command {
	var (
		file   string
		user   string
		format string
	)
	cmd := &cobra.Command{
		Use:   `sql ["SELECT ..."] [-f FILE]`,
		Short: "Run a SQL query against the server's views and print the result",
		Long: `Run one SQL query through the server's SQL gateway (the Trino protocol, catalog
duet, schema views; raw datasets are in schema raw) and print the result. The
query comes from the argument, from -f FILE, or from stdin.

  duet sql "SELECT origin, n FROM delays_by_origin ORDER BY n DESC LIMIT 10"
  duet sql --format csv -f report.sql > report.csv`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf(`the query came as %d arguments; quote it as one: duet sql "SELECT ..."`, len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			query, err := queryText(args, file, a.io.in)
			if err != nil {
				return err
			}
			sink, err := newResultSink(format, a.io.out)
			if err != nil {
				return err
			}
			if user == "" {
				user = defaultUser(a.getenv)
			}
			c, err := a.client(client.Config{})
			if err != nil {
				return err
			}
			return streamQuery(cmd.Context(), c, user, query, sink)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the query from this file (- for stdin)")
	cmd.Flags().StringVar(&user, "user", "", "user the query runs as (default $DUET_USER, else the token's user with $DUET_TOKEN, else $USER, else duet)")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, csv or json (one object per line)")
	return cmd
}

// defaultUser is the session user when --user is not given. With a token it
// is left to the server, which takes the token's user.
func defaultUser(getenv func(string) string) string {
	if u := getenv("DUET_USER"); u != "" {
		return u
	}
	if getenv("DUET_TOKEN") != "" {
		return ""
	}
	if u := getenv("USER"); u != "" {
		return u
	}
	return "duet"
}

func queryText(args []string, file string, stdin io.Reader) (string, error) {
	var q string
	switch {
	case len(args) == 1 && file != "":
		return "", errors.New("give the query as an argument or with -f, not both")
	case len(args) == 1:
		q = args[0]
	default:
		if file == "" {
			file = "-"
		}
		b, err := readFileOrStdin(file, stdin)
		if err != nil {
			return "", err
		}
		q = string(b)
	}
	// Trino takes one statement without its terminator.
	q = strings.TrimSuffix(strings.TrimSpace(q), ";")
	if strings.TrimSpace(q) == "" {
		return "", errors.New(`no query: give it as an argument (duet sql "SELECT 1"), with -f FILE, or on stdin`)
	}
	return q, nil
}

// runQuery runs query and returns its whole result.
func runQuery(ctx context.Context, c *client.Client, user, query string) ([]resultColumn, [][]any, error) {
	var all collectSink
	err := streamQuery(ctx, c, user, query, &all)
	return all.cols, all.rows, err
}

type collectSink struct {
	cols []resultColumn
	rows [][]any
}

func (s *collectSink) begin(cols []resultColumn) error { s.cols = cols; return nil }
func (s *collectSink) row(vals []any) error            { s.rows = append(s.rows, vals); return nil }
func (s *collectSink) end() error                      { return nil }

// streamQuery runs query through trino-go-client and hands the result to
// sink row by row.
func streamQuery(ctx context.Context, c *client.Client, user, query string, sink resultSink) error {
	// The driver retries refused connections for minutes; say at once when
	// nothing listens.
	if err := c.CheckReachable(ctx); err != nil {
		return err
	}
	db, err := sql.Open("trino", c.TrinoDSN(user))
	if err != nil {
		return fmt.Errorf("open SQL connection: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return queryError(err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return fmt.Errorf("read result columns: %w", err)
	}
	cols := resulttext.Columns(types)
	if err := sink.begin(cols); err != nil {
		return err
	}
	n := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read row %d: %w", n+1, err)
		}
		n++
		if err := sink.row(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return queryError(err)
	}
	return sink.end()
}

// queryError keeps the engine's own message, which says what to change.
func queryError(err error) error {
	var te *trino.ErrTrino
	if errors.As(err, &te) && te.Message != "" {
		return fmt.Errorf("query failed: %s", te.Message)
	}
	return fmt.Errorf("query failed: %w", err)
}
