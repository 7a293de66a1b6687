package server

import (
	"context"
	"time"

	"github.com/duet-analytics/duet/scheduler"
)

// compactPeriodically queues a compaction of every dataset's raw archive on
// the compaction schedule, and deletes garbage whose grace period is over.
func (s *Server) compactPeriodically(ctx context.Context) error {
	if s.cfg.CompactionSchedule == "" {
		<-ctx.Done()
		return nil
	}
	sched, err := scheduler.ParseSchedule(s.cfg.CompactionSchedule)
	if err != nil {
		return err
	}
	for {
		t := time.NewTimer(time.Until(sched.Next(time.Now())))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		datasets, err := s.cat.ListDatasets(ctx)
		if err != nil {
			s.logger.Error("scheduled compaction", "err", err)
			continue
		}
		for _, d := range datasets {
			req := scheduler.SubmitRequest{Kind: scheduler.KindCompaction, Params: map[string]string{"dataset": d.Spec.Name}}
			if _, err := s.sched.Submit(ctx, req); err != nil {
				s.logger.Error("scheduled compaction", "dataset", d.Spec.Name, "err", err)
			}
		}
		if n, err := s.builder.Sweep(ctx); err != nil {
			s.logger.Error("delete garbage", "err", err)
		} else if n > 0 {
			s.logger.Info("garbage deleted", "files", n)
		}
	}
}
