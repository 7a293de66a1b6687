package speedlayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/durable"
	"github.com/duet-analytics/duet/internal/eventlog"
)

// Replicas share the catalog and the bucket but each keeps its event logs on
// its own disk, and only the leader writes. A leader that dies leaves the
// records it accepted but had not archived in its log; the next leader,
// without them, assigns the same offsets to other records. So each leader
// claims every dataset's log in the catalog, with the offset the archive
// ended at when it took over. A replica whose log was written under an older
// claim than the newest knows its records from the next claim's offset on
// were never archived: it moves that log aside and, once running, ingests
// those records again as new ones, frame by frame, each frame's log entry
// naming how far the restaging got, so a crash part-way neither loses nor
// repeats one. Datasets with an external source drop such a log instead:
// the source sends its records again from the archived positions.

// epochFile holds the epoch of the claim a dataset's log was written under;
// it sits beside the log's directory, not in it.
func (l *Layer) epochFile(name string) string {
	return filepath.Join(l.cfg.LogDir, name+".epoch")
}

// staleDirPrefix starts the directory a superseded log is moved to; the
// offset its unarchived records start at follows.
func staleDirPrefix(name string) string { return name + ".stale-from-" }

// restage is a superseded log whose records from offset from on are to be
// ingested again.
type restage struct {
	dir  string
	from int64
}

// restageMark is the position a restaged frame's log entry carries.
type restageMark struct {
	Restage string `json:"restage"`
	Next    int64  `json:"next"`
}

// claimLog runs before the dataset's log opens when the layer runs under a
// leadership epoch. It moves a superseded log aside, claims the log for this
// epoch and returns the superseded logs still to restage.
func (l *Layer) claimLog(ctx context.Context, spec dataset.Spec, archived int64) ([]restage, error) {
	dir := filepath.Join(l.cfg.LogDir, spec.Name)
	local, err := readEpoch(l.epochFile(spec.Name))
	if err != nil {
		return nil, err
	}
	claims, err := l.cat.LogClaims(ctx, spec.Name, local)
	if err != nil {
		return nil, err
	}
	if n := len(claims); n > 0 && claims[n-1].Epoch != local {
		// Another leader claimed the log after this one wrote it: the
		// first such claim says where this log stopped being archived.
		var from int64 = -1
		for _, c := range claims {
			if c.Epoch > local {
				from = c.From
				break
			}
		}
		if _, err := os.Stat(dir); err == nil {
			stale := filepath.Join(l.cfg.LogDir, staleDirPrefix(spec.Name)+strconv.FormatInt(from, 10))
			if err := os.Rename(dir, stale); err != nil {
				return nil, fmt.Errorf("move aside the log superseded at offset %d: %w", from, err)
			}
			l.logger.Warn("this replica's event log was superseded by another leader's; its unarchived records will be ingested again",
				"dataset", spec.Name, "log_epoch", local, "superseded_at", from, "moved_to", stale)
		}
	}
	err = l.cat.ClaimLog(ctx, catalog.LogClaim{Dataset: spec.Name, Epoch: l.cfg.Epoch, From: archived})
	if err != nil && !errors.Is(err, catalog.ErrExists) {
		return nil, err
	}
	if err := writeEpoch(l.epochFile(spec.Name), l.cfg.Epoch); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(l.cfg.LogDir)
	if err != nil {
		return nil, fmt.Errorf("list log directory: %w", err)
	}
	var out []restage
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), staleDirPrefix(spec.Name))
		if !ok || !e.IsDir() {
			continue
		}
		from, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			continue
		}
		if spec.Source != nil {
			if err := os.RemoveAll(filepath.Join(l.cfg.LogDir, e.Name())); err != nil {
				return nil, fmt.Errorf("remove superseded log: %w", err)
			}
			continue
		}
		out = append(out, restage{dir: filepath.Join(l.cfg.LogDir, e.Name()), from: from})
	}
	return out, nil
}

// restagePending ingests the records of the dataset's superseded logs again,
// resuming after the last frame a previous attempt stored. A full memory
// budget ends the attempt; the next tick retries.
func (l *Layer) restagePending(ctx context.Context, ds *datasetState) error {
	ds.mu.Lock()
	pending := ds.restage
	mark := ds.source
	ds.mu.Unlock()
	for len(pending) > 0 {
		r := pending[0]
		from := r.from
		var m restageMark
		if json.Unmarshal(mark, &m) == nil && m.Restage == filepath.Base(r.dir) {
			from = max(from, m.Next)
		}
		old, err := eventlog.Open(r.dir, ds.spec.ArrowSchema(), eventlog.Config{}, l.logger.With("dataset", ds.spec.Name, "superseded_log", r.dir))
		if err != nil {
			return fmt.Errorf("open superseded log %s: %w", r.dir, err)
		}
		n := 0
		err = old.Replay(from, func(first int64, rec arrow.RecordBatch) error {
			pos, _ := json.Marshal(restageMark{Restage: filepath.Base(r.dir), Next: first + rec.NumRows()})
			if _, err := l.ingest(ctx, ds.spec.Name, rec, pos); err != nil {
				return err
			}
			n += int(rec.NumRows())
			return nil
		})
		old.Close()
		if n > 0 {
			l.logger.Info("restaged records of a superseded log", "dataset", ds.spec.Name, "records", n, "log", r.dir)
		}
		if err != nil {
			return fmt.Errorf("restage %s: %w", r.dir, err)
		}
		if err := os.RemoveAll(r.dir); err != nil {
			return fmt.Errorf("remove restaged log %s: %w", r.dir, err)
		}
		pending = pending[1:]
		ds.mu.Lock()
		ds.restage = pending
		ds.mu.Unlock()
	}
	return nil
}

func readEpoch(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read log epoch: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("log epoch file %s: %w", path, err)
	}
	return n, nil
}

// writeEpoch replaces the file atomically and durably: a torn write would
// make the log look superseded.
func writeEpoch(path string, epoch int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write log epoch: %w", err)
	}
	if err := durable.WriteFile(path, []byte(strconv.FormatInt(epoch, 10)+"\n")); err != nil {
		return fmt.Errorf("write log epoch: %w", err)
	}
	return nil
}
