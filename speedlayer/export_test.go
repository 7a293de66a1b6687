package speedlayer

import (
	"context"
	"time"
)

// MeasureSettled measures the engine's retained memory outside checkpoints,
// whose transient copies the budget does not bound.
func MeasureSettled(ctx context.Context, l *Layer) (int64, error) {
	l.budget.checkpointMu.Lock()
	defer l.budget.checkpointMu.Unlock()
	return MeasureRetained(ctx, l.db)
}

// MaterializeIdle runs the background loop's materialization of every
// dataset as if the clock read now.
func MaterializeIdle(ctx context.Context, l *Layer, now time.Time) {
	for _, ds := range l.allDatasets() {
		l.materializeIdle(ctx, ds, now)
	}
}
