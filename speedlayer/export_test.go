package speedlayer

import "context"

// MeasureSettled measures the engine's retained memory outside checkpoints,
// whose transient copies the budget does not bound.
func MeasureSettled(ctx context.Context, l *Layer) (int64, error) {
	l.budget.checkpointMu.Lock()
	defer l.budget.checkpointMu.Unlock()
	return MeasureRetained(ctx, l.db)
}
