package eventlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
)

// Replay calls fn, in offset order, for every stored batch holding offsets >=
// from. A batch straddling from is sliced so fn sees exactly the offsets >=
// from; first is the offset of rec's row 0. fn must not retain rec after it
// returns (Retain it to keep it); an error from fn stops the replay and is
// returned.
//
// Replay sees the log as it was when called: batches appended meanwhile are
// not replayed. It holds no lock while reading or calling fn, so fn may
// Append. Asking for offsets already truncated is ErrTruncated, and starting
// beyond EndOffset is ErrOutOfRange.
func (l *Log) Replay(from int64, fn func(first int64, rec arrow.RecordBatch) error) error {
	return l.ReplaySourced(from, func(first int64, rec arrow.RecordBatch, _ []byte) error { return fn(first, rec) })
}

// ReplaySourced is Replay that also passes each batch's source positions
// (see AppendSourced): where the source stood after the batch's last row,
// also when the batch is sliced at from; nil for a batch appended without.
// fn must not retain source after it returns.
func (l *Log) ReplaySourced(from int64, fn func(first int64, rec arrow.RecordBatch, source []byte) error) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	segs := append([]segment(nil), l.segs...)
	l.mu.Unlock()

	start, end := segs[0].first, segs[len(segs)-1].end
	switch {
	case from < start:
		return fmt.Errorf("replay event log from %d: %w (the log starts at %d)", from, ErrTruncated, start)
	case from > end:
		return fmt.Errorf("replay event log from %d: %w (it ends at %d)", from, ErrOutOfRange, end)
	}
	for _, s := range segs {
		if s.end <= from {
			continue
		}
		if err := l.replaySegment(s, from, fn); err != nil {
			return err
		}
	}
	return nil
}

// replaySegment replays the first s.size bytes of s, which were whole,
// validated frames when s was snapshotted.
func (l *Log) replaySegment(s segment, from int64, fn func(int64, arrow.RecordBatch, []byte) error) error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replay event log segment %d: %w (deleted during the replay)", s.first, ErrTruncated)
	}
	if err != nil {
		return fmt.Errorf("replay event log segment %d: %w", s.first, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var buf []byte
	var h frameHeader
	pos, off := int64(0), s.first
	for off < s.end {
		h, buf, err = readFrame(r, s.size-pos, off, buf)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("replay event log segment %s: %w: ends at offset %d, expected %d", filepath.Base(s.path), ErrCorrupt, off, s.end)
		}
		if err != nil {
			return fmt.Errorf("replay event log segment %s at byte %d (offset %d): %w", filepath.Base(s.path), pos, off, err)
		}
		next := off + int64(h.rows)
		if next > from {
			if err := l.deliver(buf, h, from, fn); err != nil {
				return err
			}
		}
		pos += frameHeaderLen + int64(h.length)
		off = next
	}
	return nil
}

func (l *Log) deliver(payload []byte, h frameHeader, from int64, fn func(int64, arrow.RecordBatch, []byte) error) error {
	rec, err := decodePayload(payload[h.ipcAt:], l.schema, l.mem, h.rows)
	if err != nil {
		return fmt.Errorf("replay event log at offset %d: %w", h.first, err)
	}
	defer rec.Release()
	first := h.first
	if from > first {
		sliced := rec.NewSlice(from-first, rec.NumRows())
		defer sliced.Release()
		rec, first = sliced, from
	}
	return fn(first, rec, h.source(payload))
}
