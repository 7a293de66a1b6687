package speedlayer

import (
	"bytes"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// Records read from an external source (a Kafka topic, a NATS JetStream
// stream) come with the source's positions after them: an opaque blob, which
// the source stays the only one to read. They are kept exactly where the
// records are, so that the positions and the records never disagree:
//
//   - in the log, in the frame of the batch (eventlog.AppendSourced), so a
//     batch and its positions are durable together or not at all;
//   - per segment, the positions after its last record, which archiving
//     records in the catalog transaction that records its files;
//   - on restart, the catalog's positions at the archive's end, moved on by
//     every sourced batch the log replays after it.
//
// SourcePositions is then exactly where the source must resume, whatever
// crashed when: nothing is read twice into the dataset, nothing skipped.

// IngestSourced is IngestBatch for records read from the dataset's source:
// positions is where the source stands after the last of them (not empty;
// opaque to the layer, text such as JSON, since the catalog stores it as
// text). Once it returns without error, SourcePositions returns positions,
// also after a crash and restart. rec may be nil or empty (every message of a
// batch was rejected): the positions then move on in memory only and become
// durable with the next stored batch or archive; until then a restart reads
// those messages again, which stores nothing new.
func (l *Layer) IngestSourced(ctx context.Context, name string, rec arrow.RecordBatch, positions []byte) (Ingested, error) {
	if len(positions) == 0 {
		return Ingested{First: -1}, fmt.Errorf("dataset %q: source positions are empty", name)
	}
	positions = bytes.Clone(positions)
	if rec != nil && rec.NumRows() > 0 {
		return l.ingest(ctx, name, rec, positions)
	}
	ds, err := l.dataset(name)
	if err != nil {
		return Ingested{First: -1}, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.broken != nil {
		return Ingested{First: -1}, fmt.Errorf("dataset %q: %w: %v", name, ErrUnavailable, ds.broken)
	}
	ds.advanceSourceLocked(positions)
	return Ingested{First: -1}, nil
}

// advanceSourceLocked records that the source stands at positions after
// the log's last record (nil: a batch without a source, nothing moves).
func (ds *datasetState) advanceSourceLocked(positions []byte) {
	if positions == nil {
		return
	}
	ds.source = positions
	ds.open().source = positions
}

// SourcePositions returns where the dataset's source stands after the last
// record the layer holds: what the last IngestSourced passed, or after a
// restart what the log's last sourced batch carried, or, when the log holds
// none (it was archived and truncated, or lost), what the catalog recorded
// with the archive. nil when the dataset never read from a source: it
// starts at the source's beginning.
func (l *Layer) SourcePositions(name string) ([]byte, error) {
	ds, err := l.dataset(name)
	if err != nil {
		return nil, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return bytes.Clone(ds.source), nil
}

// ArchivedSourcePositions returns where the source stood at the end of the
// dataset's archive (nil before the first sourced archive): a position no
// crash can take back, which a source may report to its own system (Kafka
// consumer group offsets, so Kafka's tools show the lag).
func (l *Layer) ArchivedSourcePositions(name string) ([]byte, error) {
	ds, err := l.dataset(name)
	if err != nil {
		return nil, err
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return bytes.Clone(ds.archivedSource), nil
}
