package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/dataset"
)

// timeLiteral is how dashboards send "now": to the millisecond, so no two
// requests carry the same literal and no result cache could answer one.
const timeLiteral = "2006-01-02 15:04:05.000"

// shape is one dashboard query. Its SQL reads the view's relation, given
// as `delays` to duet and as the view's SQL over the raw Parquet files to
// DuckDB, so both compute the same answer by definition.
type shape struct {
	Name        string
	Description string
	sql         func(relation string, p params) string
}

// params are one request's literals.
type params struct {
	origin string
	now    time.Time
}

func ts(t time.Time) string { return "TIMESTAMP '" + t.UTC().Format(timeLiteral) + "'" }

// shapes are the dashboard's queries, sent in rotation. Sums are cast to
// BIGINT: DuckDB sums BIGINTs as HUGEINT.
var shapes = []shape{
	{
		Name:        "origin-hourly-7d",
		Description: "hourly flights and delays of one origin over the last 7 days",
		sql: func(rel string, p params) string {
			return fmt.Sprintf("SELECT hour, CAST(flights AS BIGINT) AS flights, CAST(total_delay AS BIGINT) AS total_delay, "+
				"CAST(min_delay AS BIGINT) AS min_delay, CAST(max_delay AS BIGINT) AS max_delay, avg_delay FROM %s "+
				"WHERE origin = %s AND hour > %s AND hour <= %s ORDER BY hour",
				rel, dataset.QuoteString(p.origin), ts(p.now.Add(-7*24*time.Hour)), ts(p.now))
		},
	},
	{
		Name:        "top-origins-24h",
		Description: "the 10 origins with the most flights over the last 24 hours",
		sql: func(rel string, p params) string {
			return fmt.Sprintf("SELECT origin, CAST(sum(flights) AS BIGINT) AS flights, CAST(sum(total_delay) AS BIGINT) AS total_delay, "+
				"CAST(max(max_delay) AS BIGINT) AS max_delay FROM %s WHERE hour > %s AND hour <= %s "+
				"GROUP BY origin ORDER BY flights DESC, origin LIMIT 10",
				rel, ts(p.now.Add(-24*time.Hour)), ts(p.now))
		},
	},
	{
		Name:        "daily-totals",
		Description: "flights and delays per day over the whole range",
		sql: func(rel string, p params) string {
			return fmt.Sprintf("SELECT date_trunc('day', hour) AS day, CAST(sum(flights) AS BIGINT) AS flights, "+
				"CAST(sum(total_delay) AS BIGINT) AS total_delay, CAST(min(min_delay) AS BIGINT) AS min_delay, "+
				"CAST(max(max_delay) AS BIGINT) AS max_delay FROM %s WHERE hour <= %s GROUP BY 1 ORDER BY 1",
				rel, ts(p.now))
		},
	},
}

// duetRelation is the merged view through the SQL gateway (schema views).
const duetRelation = flights.View

// rawRelation is the view computed from the raw Parquet files: what a user
// without duet runs.
func rawRelation(files []string) string {
	return "(" + fmt.Sprintf(flights.ViewSelect, dataset.ReadParquet(files)) + ") AS " + flights.View
}

// paramGen draws a request's literals: a random origin, and "now" within
// the hour after the last hour of data, so every window ends at the
// freshest events (those in the speed layer).
type paramGen struct {
	origins  []string
	lastHour time.Time
}

func (g paramGen) draw(r *rand.Rand) params {
	return params{
		origin: g.origins[r.IntN(len(g.origins))],
		now:    g.lastHour.Add(time.Duration(1+r.Int64N(int64(time.Hour/time.Millisecond))) * time.Millisecond),
	}
}

// exampleSQL is a shape's SQL as the report shows it.
func exampleSQL(s shape, g paramGen) string {
	sql := s.sql(duetRelation, params{origin: g.origins[0], now: g.lastHour.Add(30 * time.Minute)})
	return strings.Join(strings.Fields(sql), " ")
}
