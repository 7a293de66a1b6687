package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/bench/internal/benchenv"
	"github.com/duet-analytics/duet/bench/internal/benchserver"
	"github.com/duet-analytics/duet/bench/internal/flights"
	"github.com/duet-analytics/duet/internal/catalog"
)

// pool holds the generated archive files every size links to. Each size is
// a prefix of one event stream, and a file's content is a function of its
// offsets alone, so a segment generated for one size serves every size
// that archives it.
type pool struct {
	gen    *flights.Generator
	seg    int64
	files  map[[2]int64][]catalog.ArchiveFile
	logger *slog.Logger
	// rows and spent are what generating took so far.
	rows  int64
	spent time.Duration
}

// segmentRanges cuts offsets [from, to) at multiples of seg, as the archiver
// cuts its log into segments.
func segmentRanges(from, to, seg int64) [][2]int64 {
	var out [][2]int64
	for first := from; first < to; {
		end := min((first/seg+1)*seg, to)
		out = append(out, [2]int64{first, end})
		first = end
	}
	return out
}

// get returns the archive files of offsets [from, to), generating the
// segments not generated yet.
func (p *pool) get(ctx context.Context, from, to int64) ([]catalog.ArchiveFile, error) {
	var out []catalog.ArchiveFile
	for _, r := range segmentRanges(from, to, p.seg) {
		fs, ok := p.files[r]
		if !ok {
			start := time.Now()
			var err error
			if fs, err = p.gen.Segment(ctx, r[0], r[1]); err != nil {
				return nil, fmt.Errorf("generate offsets %d-%d: %w", r[0], r[1], err)
			}
			p.files[r] = fs
			p.rows += r[1] - r[0]
			p.spent += time.Since(start)
			p.logger.Info("generated segment", "first", r[0], "end", r[1], "files", len(fs),
				"generated_rows", p.rows, "generating_seconds", fmt.Sprintf("%.1f", p.spent.Seconds()))
		}
		out = append(out, fs...)
	}
	return out, nil
}

// linkArchive puts the archive files into a data directory's object store,
// as hard links to the pool's (copies where links fail), and records them.
func (p *pool) linkArchive(ctx context.Context, dir flights.Paths, files []catalog.ArchiveFile) error {
	for i, src := range p.gen.LocalPaths(files) {
		dst := filepath.Join(dir.Objects(), filepath.FromSlash(files[i].Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Link(src, dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				return fmt.Errorf("put %s into %s: %w", files[i].Path, dir.Dir, err)
			}
		}
	}
	return flights.Archive(ctx, dir, files)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

const arrowContentType = "application/vnd.apache.arrow.stream"

// ingest sends the event stream's offsets [first, end) to the server as
// Arrow IPC requests of batch events, from a few concurrent producers,
// and returns how long it took until every one was acknowledged.
func ingest(ctx context.Context, gen *flights.Generator, srv *benchserver.Proc, first, end int64, batch int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	bodies := make(chan []byte, 4)
	var (
		accepted atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range bodies {
				res, err := srv.Client.Ingest(ctx, flights.Dataset, arrowContentType, body)
				if err != nil {
					fail(fmt.Errorf("ingest: %w", err))
					return
				}
				accepted.Add(res.Accepted)
			}
		}()
	}
	spec := flights.Spec()
	b := array.NewRecordBuilder(memory.DefaultAllocator, spec.ArrowSchema())
	defer b.Release()
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		n = 0
		body, err := benchenv.ArrowIPC(rec)
		if err != nil {
			return err
		}
		select {
		case bodies <- body:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := gen.Scan(ctx, first, end, func(r flights.Record) error {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.Date.UnixMicro()))
		if r.Delay.Valid {
			b.Field(1).(*array.Int64Builder).Append(r.Delay.Int64)
		} else {
			b.Field(1).AppendNull()
		}
		b.Field(2).(*array.StringBuilder).Append(r.Origin)
		if n++; n == batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	close(bodies)
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if err != nil {
		return 0, err
	}
	if got := accepted.Load(); got != end-first {
		return 0, fmt.Errorf("ingest: the server accepted %d of %d events", got, end-first)
	}
	return time.Since(start), nil
}
