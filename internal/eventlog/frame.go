package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A frame is one appended record batch:
//
//	magic   uint32  frameMagic
//	length  uint32  payload bytes
//	crc     uint32  CRC-32C over rows, first and the payload
//	rows    uint32  rows in the batch (> 0)
//	first   int64   offset of the batch's row 0
//	payload         the batch as an Arrow IPC stream (schema, one batch, EOS)
//
// All integers are little endian. The CRC covers the header's rows and first
// fields as well as the payload, so a damaged header cannot shift offsets
// silently.
//
// A sourced frame (magic sourcedMagic) carries, with its batch, the positions
// in an external source (Kafka offsets, a JetStream sequence) that follow its
// last row, so the batch and where it was read up to are durable together.
// Its payload is
//
//	srclen  uint32  length of the source positions (> 0)
//	source          the positions, opaque to the log
//	ipc             the batch as an Arrow IPC stream
//
// and the header is the same. Both kinds may follow each other in one
// segment; logs written before sourced frames existed hold only the first.
const (
	frameMagic     uint32 = 0x314C5744 // "DWL1" little endian; the digit is the format version
	sourcedMagic   uint32 = 0x324C5744 // "DWL2": a frame with source positions
	frameHeaderLen        = 24
	// maxPayload bounds one frame; it keeps a damaged length field from asking
	// for an absurd allocation and fits the uint32 length.
	maxPayload = math.MaxUint32
	// maxSource bounds a frame's source positions: a few bytes per source
	// partition, so a megabyte is far more than any source needs.
	maxSource = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type frameHeader struct {
	length uint32
	crc    uint32
	rows   uint32
	first  int64
	// ipcAt is where the IPC stream starts in the payload: 0 for a plain
	// frame, after the source positions for a sourced one.
	ipcAt int
}

// source is the sourced frame's positions inside its payload, nil for a
// plain frame.
func (h frameHeader) source(payload []byte) []byte {
	if h.ipcAt == 0 {
		return nil
	}
	return payload[4:h.ipcAt]
}

func frameCRC(hdr []byte, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[12:frameHeaderLen])
	return crc32.Update(c, castagnoli, payload)
}

// encodeFrame appends rec as a frame to buf: a sourced frame when source is
// not empty.
func encodeFrame(buf *bytes.Buffer, schema *arrow.Schema, mem memory.Allocator, rec arrow.RecordBatch, first int64, source []byte) error {
	start := buf.Len()
	buf.Write(make([]byte, frameHeaderLen))
	magic := frameMagic
	if len(source) > 0 {
		if int64(len(source)) > maxSource {
			return fmt.Errorf("source positions of %d bytes, more than the %d a frame holds", len(source), maxSource)
		}
		magic = sourcedMagic
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(source)))
		buf.Write(n[:])
		buf.Write(source)
	}
	w := ipc.NewWriter(buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err := w.Write(rec); err != nil {
		_ = w.Close()
		return fmt.Errorf("encode record batch: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encode record batch: %w", err)
	}
	b := buf.Bytes()[start:]
	payload := b[frameHeaderLen:]
	if int64(len(payload)) > maxPayload {
		return fmt.Errorf("record batch encodes to %d bytes, more than the %d a frame holds; append smaller batches", len(payload), int64(maxPayload))
	}
	binary.LittleEndian.PutUint32(b[0:], magic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[12:], uint32(rec.NumRows()))
	binary.LittleEndian.PutUint64(b[16:], uint64(first))
	binary.LittleEndian.PutUint32(b[8:], frameCRC(b, payload))
	return nil
}

// errBadFrame marks bytes that are not a whole, valid frame: a torn write at
// the tail, or corruption.
var errBadFrame = errors.New("bad frame")

// readFrame reads the frame at the reader's position. remaining is the number
// of bytes left in the segment from that position; a frame claiming more is
// torn. wantFirst is the offset the frame must start at. buf is reused for the
// payload when large enough. It returns io.EOF when remaining is 0.
func readFrame(r io.Reader, remaining int64, wantFirst int64, buf []byte) (frameHeader, []byte, error) {
	var h frameHeader
	if remaining == 0 {
		return h, buf, io.EOF
	}
	if remaining < frameHeaderLen {
		return h, buf, fmt.Errorf("%w: %d bytes left, shorter than a frame header", errBadFrame, remaining)
	}
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return h, buf, fmt.Errorf("read frame header: %w", err)
	}
	m := binary.LittleEndian.Uint32(hdr[0:])
	if m != frameMagic && m != sourcedMagic {
		return h, buf, fmt.Errorf("%w: magic %#08x, want %#08x or %#08x", errBadFrame, m, frameMagic, sourcedMagic)
	}
	h.length = binary.LittleEndian.Uint32(hdr[4:])
	h.crc = binary.LittleEndian.Uint32(hdr[8:])
	h.rows = binary.LittleEndian.Uint32(hdr[12:])
	h.first = int64(binary.LittleEndian.Uint64(hdr[16:]))
	if int64(h.length) > remaining-frameHeaderLen {
		return h, buf, fmt.Errorf("%w: payload of %d bytes but only %d left", errBadFrame, h.length, remaining-frameHeaderLen)
	}
	if cap(buf) < int(h.length) {
		buf = make([]byte, h.length)
	}
	buf = buf[:h.length]
	if _, err := io.ReadFull(r, buf); err != nil {
		return h, buf, fmt.Errorf("read frame payload: %w", err)
	}
	if c := frameCRC(hdr[:], buf); c != h.crc {
		return h, buf, fmt.Errorf("%w: checksum %#08x, want %#08x", errBadFrame, c, h.crc)
	}
	if h.rows == 0 {
		return h, buf, fmt.Errorf("%w: frame holds 0 rows", errBadFrame)
	}
	if m == sourcedMagic {
		if len(buf) < 4 {
			return h, buf, fmt.Errorf("%w: sourced frame of %d bytes has no source length", errBadFrame, len(buf))
		}
		n := int64(binary.LittleEndian.Uint32(buf))
		if n == 0 || n > maxSource || 4+n > int64(len(buf)) {
			return h, buf, fmt.Errorf("%w: source positions of %d bytes in a payload of %d", errBadFrame, n, len(buf))
		}
		h.ipcAt = 4 + int(n)
	}
	if h.first != wantFirst {
		return h, buf, fmt.Errorf("%w: frame starts at offset %d, want %d", errBadFrame, h.first, wantFirst)
	}
	return h, buf, nil
}

// decodePayload decodes a frame's payload into its record batch. The caller
// releases the batch.
func decodePayload(payload []byte, schema *arrow.Schema, mem memory.Allocator, rows uint32) (arrow.RecordBatch, error) {
	rd, err := ipc.NewReader(bytes.NewReader(payload), ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("decode record batch: %w", err)
	}
	defer rd.Release()
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("decode record batch: %w", err)
		}
		return nil, fmt.Errorf("decode record batch: frame holds no batch")
	}
	rec := rd.RecordBatch()
	if rec.NumRows() != int64(rows) {
		return nil, fmt.Errorf("decode record batch: %d rows, frame header says %d", rec.NumRows(), rows)
	}
	rec.Retain()
	return rec, nil
}
