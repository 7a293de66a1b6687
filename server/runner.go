package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/scheduler"
)

// jobRunner runs the scheduler's jobs on the batch layer. (An adapter until
// batchlayer provides a scheduler.Runner of its own.)
type jobRunner struct {
	b   *batchlayer.Builder
	cat interface {
		GetDataset(ctx context.Context, name string) (catalog.Dataset, error)
	}
	// after is called when a view build or backfill published a version.
	after func(ctx context.Context, view string)
}

// Run executes one attempt of j. A build with nothing new to build succeeds
// with the current version.
func (r jobRunner) Run(ctx context.Context, j catalog.Job) (int64, error) {
	req := batchlayer.Request{JobID: j.ID, View: j.View, LogPrefix: j.LogPrefix}
	switch j.Kind {
	case scheduler.KindViewBuild:
		if f := j.Params["full"]; f != "" {
			full, err := strconv.ParseBool(f)
			if err != nil {
				return 0, fmt.Errorf("parameter full=%q: %w", f, err)
			}
			req.Full = full
		}
	case scheduler.KindBackfill:
		req.From, req.To = j.Params["from"], j.Params["to"]
	case scheduler.KindCompaction:
		ds := j.Params["dataset"]
		d, err := r.cat.GetDataset(ctx, ds)
		if err != nil {
			return 0, err
		}
		_, err = r.b.Compact(ctx, j.ID, ds, &d.Spec, j.LogPrefix)
		return 0, err
	default:
		return 0, fmt.Errorf("no runner for jobs of kind %q", j.Kind)
	}
	v, err := r.b.Build(ctx, req)
	if errors.Is(err, batchlayer.ErrUpToDate) {
		return v.Version, nil
	}
	if err == nil && r.after != nil {
		r.after(ctx, j.View)
	}
	return v.Version, err
}
