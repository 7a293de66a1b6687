package batchlayer

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "github.com/trinodb/trino-go-client/trino" // the "trino" driver

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/viewsql"
)

// TrinoSource is a Trino cluster that runs a build's partial query: the
// executor sends it the query through trino-go-client and writes the rows
// it answers as the build's Parquet files. The cluster must hold each
// dataset's archived records as Catalog.Schema.<dataset> (for example a Hive
// or Iceberg table over duet's archive in the object store); the build
// checks that it holds as many as duet archived.
type TrinoSource struct {
	URL      string `json:"url"`
	User     string `json:"user"`
	Password string `json:"password,omitempty"`
	Catalog  string `json:"catalog"`
	Schema   string `json:"schema"`
	// RetryTimeout bounds how long trino-go-client retries a request the
	// network failed (its default, 2m, rides out a coordinator restart).
	RetryTimeout dataset.Duration `json:"request_retry_timeout,omitempty"`
}

// dsn is trino-go-client's data source name for the source.
func (s *TrinoSource) dsn() (string, error) {
	u, err := url.Parse(s.URL)
	if err != nil {
		return "", fmt.Errorf("trino url %q: %w", s.URL, err)
	}
	if s.Password != "" {
		u.User = url.UserPassword(s.User, s.Password)
	} else {
		u.User = url.User(s.User)
	}
	q := u.Query()
	q.Set("catalog", s.Catalog)
	q.Set("schema", s.Schema)
	q.Set("source", "duet-executor")
	if s.RetryTimeout > 0 {
		q.Set("request_retry_timeout", time.Duration(s.RetryTimeout).String())
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// relation names a dataset's table on the cluster.
func (s *TrinoSource) relation(ds string) string {
	return dataset.QuoteIdent(s.Catalog) + "." + dataset.QuoteIdent(s.Schema) + "." + dataset.QuoteIdent(ds)
}

// trinoBuildable refuses views whose partials only duet's engine computes.
func trinoBuildable(plan *viewsql.Plan) error {
	for _, c := range plan.Partial {
		t := strings.ToUpper(c.Type)
		if strings.ContainsAny(t, "[(") && !strings.HasPrefix(t, "DECIMAL") || strings.Contains(t, "STRUCT") || strings.Contains(t, "BLOB") || strings.Contains(t, "MAP") {
			return fmt.Errorf("its partial column %s (%s) is a sketch only duet's engine computes: build it on a local cluster", c.Name, c.Type)
		}
	}
	return nil
}

// TrinoTask is what a task needs to run its query on a Trino cluster: a
// build's partial query (Task.SQL), or a sql job's script (Task.Script).
type TrinoTask struct {
	Source TrinoSource `json:"source"`
	// Table is a build's dataset relation there, which must hold ExpectRows
	// records: the archived ones the build covers.
	Table      string `json:"table,omitempty"`
	ExpectRows int64  `json:"expect_rows,omitempty"`
	// Columns are a build's partial form's, typed as a local build writes
	// them; a script's result is typed from Trino's column types.
	Columns []viewsql.Column `json:"columns,omitempty"`
}

// trinoResult is the executor's table of the rows the cluster answered.
const trinoResult = "trino_result"

// fromTrino runs the task's query on its Trino cluster and loads the answer
// into trinoResult, cast to the partial form's types; it returns the query
// that reads it back.
func (e *Executor) fromTrino(ctx context.Context, task Task, progress Progress) (string, error) {
	t := task.Trino
	dsn, err := t.Source.dsn()
	if err != nil {
		return "", err
	}
	db, err := sql.Open("trino", dsn)
	if err != nil {
		return "", fmt.Errorf("trino %s: %w", t.Source.URL, err)
	}
	defer db.Close()
	if t.Table != "" {
		progress.Stage("checking the cluster's table " + t.Table)
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+t.Table).Scan(&n); err != nil {
			return "", fmt.Errorf("trino %s: count %s: %w", t.Source.URL, t.Table, err)
		}
		if n != t.ExpectRows {
			return "", fmt.Errorf("trino %s: %s holds %d records, duet archived %d: the cluster's table is not in step with duet's archive", t.Source.URL, t.Table, n, t.ExpectRows)
		}
	}
	query, args := task.SQL, []any(nil)
	if task.Script != "" {
		if query, args, err = runOnTrino(ctx, db, task, progress); err != nil {
			return "", err
		}
	}
	progress.Stage("running the query on trino " + t.Source.URL)
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return "", fmt.Errorf("trino %s: %w", t.Source.URL, err)
	}
	defer rows.Close()
	columns := t.Columns
	if columns == nil {
		if columns, err = trinoColumns(rows); err != nil {
			return "", err
		}
	}
	cols := make([]string, len(columns))
	marks := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = dataset.QuoteIdent(c.Name) + " " + c.Type
		marks[i] = "?"
	}
	if _, err := e.conn.ExecContext(ctx, "CREATE TEMP TABLE "+trinoResult+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return "", fmt.Errorf("create the result table: %w", err)
	}
	insert, err := e.conn.PrepareContext(ctx, "INSERT INTO "+trinoResult+" VALUES ("+strings.Join(marks, ", ")+")")
	if err != nil {
		return "", err
	}
	defer insert.Close()
	vals := make([]any, len(columns))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var loaded int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", fmt.Errorf("trino %s: read row %d: %w", t.Source.URL, loaded+1, err)
		}
		if _, err := insert.ExecContext(ctx, vals...); err != nil {
			return "", fmt.Errorf("load row %d of trino's answer: %w", loaded+1, err)
		}
		if loaded++; loaded%10_000 == 0 {
			progress.Rows(loaded)
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("trino %s: %w", t.Source.URL, err)
	}
	progress.Rows(loaded)
	return "SELECT * FROM " + trinoResult, nil
}

// runOnTrino runs every statement of the task's script but the last on the
// cluster, and returns the last with its parameters bound by position.
func runOnTrino(ctx context.Context, db *sql.DB, task Task, progress Progress) (string, []any, error) {
	stmts := splitScript(task.Script)
	if len(stmts) == 0 {
		return "", nil, fmt.Errorf("the script has no statement")
	}
	for i, st := range stmts {
		q, args, err := positional(st.sql, task.Params)
		if err != nil {
			return "", nil, fmt.Errorf("statement %d of %d (line %d): %w", i+1, len(stmts), st.line, err)
		}
		if i == len(stmts)-1 {
			return q, args, nil
		}
		progress.Stage(fmt.Sprintf("statement %d of %d on trino", i+1, len(stmts)))
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return "", nil, fmt.Errorf("statement %d of %d (line %d) on trino %s: %w", i+1, len(stmts), st.line, task.Trino.Source.URL, err)
		}
	}
	panic("unreachable: the loop returns at the last statement")
}

// trinoColumns types a script's result as Trino reports its columns; types
// DuckDB has no like of (Trino's row, map, ipaddress, ...) are kept as text.
func trinoColumns(rows *sql.Rows) ([]viewsql.Column, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("trino result columns: %w", err)
	}
	out := make([]viewsql.Column, len(types))
	for i, ct := range types {
		t := strings.ToUpper(ct.DatabaseTypeName())
		switch base, _, _ := strings.Cut(t, "("); base {
		case "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "DATE", "UUID":
		case "DECIMAL":
			// DECIMAL(p,s) as Trino has it.
		case "VARCHAR", "CHAR", "JSON":
			t = "VARCHAR"
		case "VARBINARY":
			t = "BLOB"
		case "TIMESTAMP":
			t = "TIMESTAMP"
			if strings.Contains(t, "WITH TIME ZONE") {
				t = "TIMESTAMPTZ"
			}
		default:
			t = "VARCHAR"
		}
		out[i] = viewsql.Column{Name: ct.Name(), Type: t}
	}
	return out, nil
}
