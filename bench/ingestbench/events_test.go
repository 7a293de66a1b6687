package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/duet-analytics/duet/ingest"
)

// The benchmark's two payload formats must carry the same events, or the
// NDJSON and Arrow IPC figures would measure different work.
func TestPayloadsDecodeToTheSameRecord(t *testing.T) {
	evs := newGenerator(1, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)).batch(500)
	spec := eventsSpec()
	fromArrow, err := ingest.DecodeArrowIPC(bytes.NewReader(mustEncode(t, formatArrow, evs)), &spec, nil, ingest.Limits{})
	if err != nil {
		t.Fatalf("decode Arrow IPC payload: %v", err)
	}
	defer fromArrow.Release()
	fromJSON, err := ingest.DecodeNDJSON(bytes.NewReader(mustEncode(t, formatNDJSON, evs)), &spec, nil, ingest.Limits{})
	if err != nil {
		t.Fatalf("decode NDJSON payload: %v", err)
	}
	defer fromJSON.Release()
	if fromArrow.NumRows() != int64(len(evs)) || fromArrow.NumCols() != 10 {
		t.Fatalf("Arrow payload decoded to %d rows x %d columns, want %d x 10", fromArrow.NumRows(), fromArrow.NumCols(), len(evs))
	}
	// NDJSON carries milliseconds; the generator's times have microseconds.
	for i, col := range fromArrow.Columns() {
		if fromArrow.ColumnName(i) == spec.TimeColumn {
			continue
		}
		if !array.Equal(col, fromJSON.Column(i)) {
			t.Errorf("column %s differs between the Arrow IPC and NDJSON payloads", fromArrow.ColumnName(i))
		}
	}
}

func mustEncode(t *testing.T, format string, evs []event) []byte {
	t.Helper()
	b, err := encode(format, evs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
