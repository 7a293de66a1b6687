package speedlayer

// A merged view is its final GROUP BY over the batch version's partials
// UNION ALL the speed layer's: every query pays for combining them again,
// about half of a dashboard query's engine time (BENCHMARKS.md). Between
// bursts of records nothing changes, so once a dataset has taken no records
// for Config.MaterializeAfter, each of its views is materialized: its final
// rows are computed once into a table and the user-visible view reads that
// table. The micro-batch that next changes the view's partials switches it
// back to the live definition and drops the table, in the transaction that
// adds the partials, so a query sees either the answer before that batch or
// after it, exactly as without materialization. Handoffs (Publish) redefine
// the view live too; the next quiet tick materializes it again.

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/viewsql"
)

func (v *viewState) finalTable() string {
	return engine.Table(engine.InternalSchema, "final__"+v.name)
}

// userView is the engine view queries read.
func (v *viewState) userView() string {
	return engine.Table(engine.ViewsSchema, v.name)
}

// liveSQL is the view's merged answer computed at query time.
func (v *viewState) liveSQL() string {
	return v.plan.FinalSQL(partialsRelation(v.name))
}

// materializeIdle materializes the views of ds when it has taken no records
// for MaterializeAfter.
func (l *Layer) materializeIdle(ctx context.Context, ds *datasetState, now time.Time) {
	if l.cfg.MaterializeAfter <= 0 {
		return
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.broken != nil || now.Sub(ds.changed) < l.cfg.MaterializeAfter {
		return
	}
	for _, v := range ds.views {
		if v.materialized || v.skipMaterialize || !v.materializable() {
			continue
		}
		if err := l.materialize(ctx, v); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Tried again once the view changes, not every tick: queries
			// get the same answers from the live view meanwhile.
			v.skipMaterialize = true
			l.logger.Warn("materialize view; queries compute it until it changes", "view", v.name, "err", err)
		}
	}
}

// materializable: aggregate views whose batch partials the engine holds
// (small enough for ViewCacheRows) or that have none. A projection view's
// final rows are its partial rows: there is no GROUP BY to save.
func (v *viewState) materializable() bool {
	return v.plan.Kind == viewsql.Aggregate && (v.version == nil || v.batchTable != "")
}

// materialize computes v's final rows into its table and points the view at
// it, in one transaction. Called with ds.mu held. It does nothing when the
// rows would take more than what is left of half the memory budget: the
// table is engine memory the budget counts, and records arriving must not
// be refused for a copy of answers.
func (l *Layer) materialize(ctx context.Context, v *viewState) error {
	tx, err := v.ds.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if b := l.budget; b.limit > 0 {
		var rows int64
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+partialsRelation(v.name)).Scan(&rows); err != nil {
			return fmt.Errorf("count partial rows: %w", err)
		}
		if b.retained()+rows*partialRowBytes(v.plan) > b.limit/2 {
			return nil
		}
	}
	if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE TABLE "+v.finalTable()+" AS "+v.liveSQL()); err != nil {
		return fmt.Errorf("compute final rows: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE VIEW "+v.userView()+" AS SELECT * FROM "+v.finalTable()); err != nil {
		return fmt.Errorf("point the view at its final rows: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	v.materialized = true
	l.metrics.materialized.Inc()
	return nil
}

// goLive switches a materialized view back to its live definition and drops
// its final rows, in tx, which changes its partials. The caller clears
// v.materialized once tx commits.
func (v *viewState) goLive(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE VIEW "+v.userView()+" AS "+v.liveSQL()); err != nil {
		return fmt.Errorf("view %q: define live view: %w", v.name, err)
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+v.finalTable()); err != nil {
		return fmt.Errorf("view %q: drop final rows: %w", v.name, err)
	}
	return nil
}
