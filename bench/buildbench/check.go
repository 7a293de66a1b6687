package main

import (
	"context"
	"fmt"

	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/engine"
)

// checkSQL compares the merged view with DuckDB's direct answer group by
// group; averages may differ in the last bits (different summation order).
const checkSQL = `WITH merged AS (SELECT * FROM %s), direct AS (SELECT * FROM read_parquet(%s))
SELECT (SELECT count(*) FROM merged), (SELECT sum(flights) FROM merged)::BIGINT,
	(SELECT count(*) FROM direct), (SELECT sum(flights) FROM direct)::BIGINT,
	(SELECT count(*) FROM merged FULL JOIN direct USING (hour, origin)
	 WHERE merged.flights IS DISTINCT FROM direct.flights
		OR merged.total_delay IS DISTINCT FROM direct.total_delay
		OR merged.min_delay IS DISTINCT FROM direct.min_delay
		OR merged.max_delay IS DISTINCT FROM direct.max_delay
		OR (merged.avg_delay IS NULL) <> (direct.avg_delay IS NULL)
		OR abs(merged.avg_delay - direct.avg_delay) > 1e-9 * greatest(1, abs(direct.avg_delay)))`

// check asserts that the merged view (batch version plus speed partials)
// equals the view computed directly over the archive, and counts every row.
func (b *bench) check(ctx context.Context, when, directOut string, rows int64) error {
	q := fmt.Sprintf(checkSQL, engine.Table(engine.ViewsSchema, flights.View), dataset.QuoteString(directOut))
	var c Check
	var directGroups, directFlights int64
	if err := b.node.db.QueryRowContext(ctx, q).Scan(&c.Groups, &c.Flights, &directGroups, &directFlights, &c.Mismatches); err != nil {
		return fmt.Errorf("check %s: %w", when, err)
	}
	c.When = when
	b.logger.Info("check", "when", when, "groups", c.Groups, "flights", c.Flights, "direct_groups", directGroups,
		"direct_flights", directFlights, "mismatched_groups", c.Mismatches)
	switch {
	case c.Groups != directGroups || c.Flights != directFlights || c.Mismatches != 0:
		return fmt.Errorf("check %s: the merged view has %d groups and %d flights, DuckDB directly %d and %d, %d groups differ",
			when, c.Groups, c.Flights, directGroups, directFlights, c.Mismatches)
	case c.Flights != rows:
		return fmt.Errorf("check %s: the view counts %d flights, the archive holds %d rows", when, c.Flights, rows)
	}
	b.res.Checks = append(b.res.Checks, c)
	return nil
}
