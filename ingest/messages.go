package ingest

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/dataset"
)

// JSONMessages decodes a stream's messages, one JSON object each, into one
// record batch with the dataset's schema, by the same rules as an NDJSON
// row (see DecodeNDJSON). Unlike a request, a batch of messages is not
// atomic: a stream cannot be fixed and sent again, so a bad message is
// refused on its own and the batch goes on without it.
//
// A refused message may have left values in some columns; the rows so far
// are then cut off into a chunk of their own (the partial row padded with
// nulls and sliced away), so refusing costs a copy at Finish, not a
// re-decode, and a batch with no refusals is built in one piece.
type JSONMessages struct {
	d      *ndjsonDecoder
	mem    memory.Allocator
	rows   int   // rows in the builders
	total  int64 // rows in chunks and builders
	chunks []arrow.RecordBatch
}

// NewJSONMessages starts an empty batch. mem nil means
// memory.DefaultAllocator. Release it when done.
func NewJSONMessages(spec *dataset.Spec, mem memory.Allocator) *JSONMessages {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &JSONMessages{d: newNDJSONDecoder(spec, mem), mem: mem}
}

// Add decodes msg as the batch's next row. A message that is not one JSON
// object the dataset's columns accept is refused with a *RowError (Row 1:
// the message is the request) and leaves the batch as it was.
func (m *JSONMessages) Add(msg []byte) error {
	if len(bytes.TrimSpace(msg)) == 0 {
		return &RowError{Row: 1, Reason: "empty message; each message must be one JSON object"}
	}
	err := m.d.decodeRow(1, msg)
	if err == nil {
		m.rows++
		m.total++
		return nil
	}
	m.cut()
	return err
}

// cut ends the current chunk after m.rows rows, discarding a partial row.
func (m *JSONMessages) cut() {
	b := m.d.b
	partial := false
	for i := range b.Schema().NumFields() {
		if b.Field(i).Len() > m.rows {
			partial = true
		}
	}
	if !partial {
		return
	}
	for i := range b.Schema().NumFields() {
		if f := b.Field(i); f.Len() == m.rows {
			f.AppendNull()
		}
	}
	rec := b.NewRecordBatch() // resets the builders
	defer rec.Release()
	if m.rows > 0 {
		m.chunks = append(m.chunks, rec.NewSlice(0, int64(m.rows)))
	}
	m.rows = 0
}

// Rows is how many messages the batch holds.
func (m *JSONMessages) Rows() int64 { return m.total }

// Finish returns the batch's rows as one record batch (nil when it has none)
// and starts a new, empty batch. The caller releases the record.
func (m *JSONMessages) Finish() (arrow.RecordBatch, error) {
	last := m.d.b.NewRecordBatch()
	chunks := m.chunks
	m.chunks, m.rows, m.total = nil, 0, 0
	if len(chunks) == 0 {
		if last.NumRows() == 0 {
			last.Release()
			return nil, nil
		}
		return last, nil
	}
	defer func() {
		for _, c := range chunks {
			c.Release()
		}
	}()
	if last.NumRows() > 0 {
		chunks = append(chunks, last)
	} else {
		last.Release()
	}
	if len(chunks) == 1 {
		chunks[0].Retain()
		return chunks[0], nil
	}
	schema := chunks[0].Schema()
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	var rows int64
	for _, c := range chunks {
		rows += c.NumRows()
	}
	for i := range cols {
		parts := make([]arrow.Array, len(chunks))
		for j, c := range chunks {
			parts[j] = c.Column(i)
		}
		col, err := array.Concatenate(parts, m.mem)
		if err != nil {
			return nil, fmt.Errorf("join decoded messages: %w", err)
		}
		cols[i] = col
	}
	return array.NewRecordBatch(schema, cols, rows), nil
}

// Release frees the batch's memory.
func (m *JSONMessages) Release() {
	for _, c := range m.chunks {
		c.Release()
	}
	m.chunks = nil
	m.d.b.Release()
}
