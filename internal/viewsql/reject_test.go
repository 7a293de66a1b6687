package viewsql

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestRejections checks that each construct a view cannot maintain comes
// back as *Error whose message names it.
func TestRejections(t *testing.T) {
	ctx := context.Background()
	conn := openConn(t)
	spec := flightsSpec(t)
	cases := []struct{ sql, want string }{
		// Aggregates that cannot be merged.
		{`SELECT origin, count(DISTINCT dest) AS n FROM flights GROUP BY origin`, "aggregate count(DISTINCT ...) cannot be merged incrementally"},
		{`SELECT origin, sum(DISTINCT delay) AS n FROM flights GROUP BY origin`, "sum(DISTINCT ...)"},
		{`SELECT origin, median(delay) AS m FROM flights GROUP BY origin`, "aggregate median() cannot be merged incrementally"},
		{`SELECT quantile_cont(delay, 0.9) AS p90 FROM flights`, "quantile_cont()"},
		{`SELECT origin, string_agg(dest, ',') AS d FROM flights GROUP BY origin`, "string_agg()"},
		{`SELECT origin, list(dest) AS d FROM flights GROUP BY origin`, "aggregate list()"},
		{`SELECT origin, stddev(delay) AS s FROM flights GROUP BY origin`, "stddev()"},
		{`SELECT origin, count(DISTINCT dest) AS n FROM flights GROUP BY origin`, "use approx_distinct(...)"},
		{`SELECT origin, mode(dest) AS d FROM flights GROUP BY origin`, "a view supports count, count_if, sum, min, max, avg and approx_distinct"},
		{`SELECT origin, approx_distinct(dest ORDER BY dest) AS d FROM flights GROUP BY origin`, "ORDER BY inside aggregate approx_count_distinct()"},
		{`SELECT origin, approx_distinct(count(*)) AS d FROM flights GROUP BY origin`, "aggregate function calls cannot be nested"},
		{`SELECT origin, approx_distinct(dest) + 1 AS d FROM flights GROUP BY origin`, "aggregates must be top-level select items"},
		{`SELECT origin, min(delay, 3) AS m FROM flights GROUP BY origin`, "min() with 2 arguments"},
		{`SELECT sum(delay) / count(*) AS r FROM flights`, "select item 1 ((sum(delay) / count(*))) puts an aggregate inside an expression; aggregates must be top-level select items"},
		{`SELECT origin, coalesce(sum(delay), 0) AS s FROM flights GROUP BY origin`, "aggregates must be top-level select items"},
		// Shape of the select list.
		{`SELECT upper(origin), count(*) AS n FROM flights GROUP BY origin`, "select item 1 (upper(origin)) must be a GROUP BY key or an aggregate"},
		{`SELECT origin, dest, count(*) AS n FROM flights GROUP BY origin`, "select item 2 (dest) must be a GROUP BY key or an aggregate"},
		{`SELECT origin, count(*) FROM flights GROUP BY origin`, "give select item 2 (count(*)) a name with AS"},
		{`SELECT upper(origin), count(*) AS n FROM flights GROUP BY 1`, "give select item 1 (upper(origin)) a name with AS"},
		{`SELECT origin, count(*) AS origin FROM flights GROUP BY 1`, `output column name "origin" is used twice`},
		{`SELECT origin, origin FROM flights`, `output column name "origin" is used twice`},
		{`SELECT avg(delay) AS a, count(*) AS a__count FROM flights`, `"a__count" clashes`},
		{`SELECT count(*) AS __n FROM flights`, "names starting with two underscores are reserved"},
		{`SELECT *, count(*) AS n FROM flights GROUP BY ALL`, "* and COLUMNS(...) cannot be used with GROUP BY"},
		{`SELECT origin, count(*) AS n FROM flights GROUP BY 3`, "GROUP BY 3 is out of range"},
		{`SELECT origin, count(*) AS n FROM flights GROUP BY 2`, "GROUP BY 2 refers to an aggregate"},
		// Tables.
		{`SELECT origin FROM flight`, `unknown table "flight"; the view must read dataset "flights"`},
		{`SELECT origin FROM other.flights`, `unknown table "other.flights"`},
		{`SELECT 1 AS x`, `the view has no FROM; it must read dataset "flights"`},
		{`SELECT a.origin FROM flights a JOIN flights b ON a.origin = b.dest`, "joins are not supported in a view"},
		{`SELECT origin FROM flights, flights AS f2`, "joins are not supported in a view"},
		{`SELECT origin FROM (SELECT * FROM flights)`, "subqueries in FROM are not supported"},
		{`SELECT * FROM read_parquet('/etc/passwd')`, "table functions are not supported"},
		{`SELECT * FROM flights AS f(a, b)`, "column aliases on the dataset"},
		{`SELECT * FROM flights TABLESAMPLE 10%`, "TABLESAMPLE is not supported"},
		// Clauses.
		{`SELECT origin FROM flights ORDER BY origin`, "ORDER BY is not supported in a view"},
		{`SELECT origin FROM flights LIMIT 10`, "LIMIT and OFFSET are not supported in a view"},
		{`SELECT DISTINCT ON (origin) origin, delay FROM flights`, "DISTINCT ON is not supported in a view"},
		{`SELECT DISTINCT origin, count(*) AS n FROM flights GROUP BY origin`, "SELECT DISTINCT with GROUP BY or aggregates is not supported"},
		{`SELECT origin, row_number() OVER (ORDER BY date) AS r FROM flights`, "window function row_number() is not supported in a view"},
		{`SELECT origin, sum(delay) OVER () AS s FROM flights`, "window function sum() is not supported"},
		{`SELECT origin FROM flights QUALIFY row_number() OVER (PARTITION BY origin) = 1`, "QUALIFY is not supported in a view"},
		{`SELECT origin, count(*) AS n FROM flights GROUP BY origin HAVING count(*) > 1`, "HAVING is not supported in a view"},
		{`SELECT origin, count(*) AS n FROM flights GROUP BY ROLLUP (origin)`, "GROUPING SETS, ROLLUP and CUBE are not supported"},
		{`SELECT origin, count(*) AS n FROM flights GROUP BY GROUPING SETS ((origin), ())`, "GROUPING SETS, ROLLUP and CUBE are not supported"},
		{`SELECT origin FROM flights UNION ALL SELECT dest FROM flights`, "UNION, INTERSECT and EXCEPT are not supported"},
		{`WITH f AS (SELECT * FROM flights) SELECT * FROM f`, "WITH (common table expressions) is not supported"},
		{`SELECT origin FROM flights WHERE origin IN (SELECT dest FROM flights)`, "subqueries are not supported in a view"},
		{`SELECT origin FROM flights USING SAMPLE 10`, "is not supported in a view"},
		// Statements.
		{`SELECT origin FROM flights; SELECT dest FROM flights`, "found 2 statements"},
		{`INSERT INTO flights VALUES (1)`, "a view must be a single SELECT statement"},
		{`SELECT origin AS __duet_source__ FROM flights`, "__duet_source__ is reserved"},
		// Answers that change between evaluations.
		{`SELECT * FROM flights WHERE date > now() - INTERVAL 1 DAY`, "function now() is not supported in a view"},
		{`SELECT origin, random() AS r FROM flights`, "function random()"},
		{`SELECT * FROM flights WHERE delay > $1`, "parameters ($1, ?, $name) are not supported in a view"},
		{"SELECT origin\xff FROM flights", "not valid UTF-8"},
		// DuckDB's own reasons.
		{`SELEC origin FROM flights`, `syntax error at or near "SELEC"`},
		{`SELECT nope FROM flights`, `Referenced column "nope" not found`},
		{`SELECT origin, count(*) AS n FROM flights GROUP BY nope`, `Referenced column "nope" not found`},
		{`SELECT nosuchfn(origin) AS x FROM flights`, "nosuchfn"},
		{`SELECT origin, avg(origin) AS a FROM flights GROUP BY origin`, "avg"},
		{`SELECT origin, avg(date) AS a FROM flights GROUP BY origin`, "avg() over TIMESTAMP values (select item 2) cannot be merged incrementally"},
		{`SELECT avg(date - TIMESTAMP '2024-01-01') AS a FROM flights`, "avg() over INTERVAL values"},
	}
	for _, c := range cases {
		_, err := Analyze(ctx, conn, c.sql, spec)
		var ve *Error
		if !errors.As(err, &ve) {
			t.Errorf("%s\n  got %T %v, want *Error", c.sql, err, err)
			continue
		}
		if !strings.Contains(ve.Msg, c.want) {
			t.Errorf("%s\n  got  %q\n  want it to contain %q", c.sql, ve.Msg, c.want)
		}
		if !strings.HasPrefix(ve.Msg, "view SQL: ") || strings.Contains(ve.Msg, "\n") || strings.Contains(ve.Msg, sourcePlaceholder) && !strings.Contains(c.sql, sourcePlaceholder) {
			t.Errorf("%s\n  message %q is not one line starting with \"view SQL: \" (or leaks the placeholder)", c.sql, ve.Msg)
		}
	}
}

// TestEngineFailureIsNotUserError: a failing engine is the operator's
// problem, not the view author's, so it must not come back as *Error.
func TestEngineFailureIsNotUserError(t *testing.T) {
	conn := openConn(t)
	spec := flightsSpec(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Analyze(ctx, conn, `SELECT origin FROM flights`, spec)
	var ve *Error
	if err == nil || errors.As(err, &ve) {
		t.Fatalf("canceled context: got %T %v, want a plain error", err, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v does not wrap context.Canceled", err)
	}
}
