package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// arrow-go trusts the lengths inside IPC metadata: a few hundred hostile
// bytes can declare a schema with billions of fields (or a compressed buffer
// of a terabyte) and the reader allocates that much, which kills the process
// rather than panicking. So the ingest path frames the stream itself and
// checks every length arrow-go would allocate by before handing a message on.
const (
	maxIPCMetadata      = 1 << 20   // one message's flatbuffer; schemas are a few KB
	maxIPCBody          = 256 << 20 // one message's body
	maxIPCUncompressed  = 256 << 20 // one message's buffers after decompression
	maxIPCFields        = 4096      // fields in a schema, nested ones included
	maxIPCNesting       = 16
	maxIPCKeyValues     = 1024 // custom metadata entries per table
	maxIPCKeyValueTotal = 16384
)

// Message header kinds (the MessageHeader union in Message.fbs).
const (
	headerSchema          = 1
	headerDictionaryBatch = 2
	headerRecordBatch     = 3
)

// checkedMessageReader is an ipc.MessageReader over an IPC stream that
// rejects messages whose metadata would make arrow-go over-allocate.
type checkedMessageReader struct {
	r    io.Reader
	msg  *ipc.Message
	refs atomic.Int64
}

func newCheckedMessageReader(r io.Reader) *checkedMessageReader {
	m := &checkedMessageReader{r: r}
	m.refs.Add(1)
	return m
}

func (m *checkedMessageReader) Retain() { m.refs.Add(1) }

func (m *checkedMessageReader) Release() {
	if m.refs.Add(-1) == 0 && m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}

// Message reads the next message, or io.EOF at the end-of-stream marker or
// the end of the input.
func (m *checkedMessageReader) Message() (*ipc.Message, error) {
	if m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
	var word [4]byte
	if _, err := io.ReadFull(m.r, word[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read message length: %w", err)
	}
	n := binary.LittleEndian.Uint32(word[:])
	if n == 0xFFFFFFFF { // continuation marker, then the length
		if _, err := io.ReadFull(m.r, word[:]); err != nil {
			return nil, fmt.Errorf("read message length: %w", unexpectedEOF(err))
		}
		n = binary.LittleEndian.Uint32(word[:])
	}
	if n == 0 {
		return nil, io.EOF
	}
	if n > maxIPCMetadata {
		return nil, fmt.Errorf("message metadata of %d bytes exceeds the limit of %d", n, maxIPCMetadata)
	}
	meta, err := readExactly(m.r, int64(n))
	if err != nil {
		return nil, fmt.Errorf("read message metadata: %w", err)
	}
	bodyLen, err := checkMessage(fbuf(meta))
	if err != nil {
		return nil, fmt.Errorf("invalid message metadata: %w", err)
	}
	body, err := readExactly(m.r, bodyLen)
	if err != nil {
		return nil, fmt.Errorf("read message body: %w", err)
	}
	if err := checkBody(fbuf(meta), body); err != nil {
		return nil, fmt.Errorf("invalid message body: %w", err)
	}
	mb, bb := memory.NewBufferBytes(meta), memory.NewBufferBytes(body)
	m.msg = ipc.NewMessage(mb, bb)
	mb.Release()
	bb.Release()
	return m.msg, nil
}

// readExactly reads n bytes, growing the buffer as bytes arrive rather than
// trusting n up front, so a short request cannot claim a large allocation.
// The buffer doubles, reading straight into its free space: io.ReadAll grows
// large slices by a quarter at a time, allocating about five times a 500 KB
// body and copying four, which the garbage collector then pays for.
func readExactly(r io.Reader, n int64) ([]byte, error) {
	b := make([]byte, 0, min(n, 64<<10))
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			grown := make([]byte, len(b), min(2*int64(cap(b)), n))
			copy(grown, b)
			b = grown
		}
		m, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return b, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// fbuf reads a flatbuffer with every access bounds-checked.
type fbuf []byte

var errFlatbuffer = errors.New("malformed flatbuffer")

func (b fbuf) u16(pos int) (int, error) {
	if pos < 0 || pos+2 > len(b) {
		return 0, errFlatbuffer
	}
	return int(binary.LittleEndian.Uint16(b[pos:])), nil
}

func (b fbuf) u32(pos int) (int, error) {
	if pos < 0 || pos+4 > len(b) {
		return 0, errFlatbuffer
	}
	return int(binary.LittleEndian.Uint32(b[pos:])), nil
}

func (b fbuf) i64(pos int) (int64, error) {
	if pos < 0 || pos+8 > len(b) {
		return 0, errFlatbuffer
	}
	return int64(binary.LittleEndian.Uint64(b[pos:])), nil
}

// root is the position of the buffer's root table.
func (b fbuf) root() (int, error) { return b.u32(0) }

// field is the position of table's field id, or -1 when absent.
func (b fbuf) field(table, id int) (int, error) {
	soff, err := b.u32(table)
	if err != nil {
		return 0, err
	}
	vtable := table - int(int32(uint32(soff)))
	vlen, err := b.u16(vtable)
	if err != nil {
		return 0, err
	}
	slot := 4 + 2*id
	if slot+2 > vlen {
		return -1, nil
	}
	off, err := b.u16(vtable + slot)
	if err != nil || off == 0 {
		return -1, err
	}
	return table + off, nil
}

// ref follows the offset stored in table's field id (a table, vector or
// string), or returns -1 when absent.
func (b fbuf) ref(table, id int) (int, error) {
	pos, err := b.field(table, id)
	if err != nil || pos < 0 {
		return pos, err
	}
	off, err := b.u32(pos)
	if err != nil {
		return 0, err
	}
	return pos + off, nil
}

// vector returns the start and length of the vector in table's field id,
// checking that n elements of elemSize bytes fit in the buffer.
func (b fbuf) vector(table, id, elemSize int) (start, n int, err error) {
	pos, err := b.ref(table, id)
	if err != nil || pos < 0 {
		return 0, 0, err
	}
	n, err = b.u32(pos)
	if err != nil {
		return 0, 0, err
	}
	start = pos + 4
	if n > (len(b)-start)/elemSize {
		return 0, 0, fmt.Errorf("%w: vector of %d elements overruns the buffer", errFlatbuffer, n)
	}
	return start, n, nil
}

// tableAt follows the offset stored at pos to a table.
func (b fbuf) tableAt(pos int) (int, error) {
	off, err := b.u32(pos)
	if err != nil {
		return 0, err
	}
	return pos + off, nil
}

// checkMessage validates a message's metadata and returns its body length.
func checkMessage(b fbuf) (int64, error) {
	msg, err := b.root()
	if err != nil {
		return 0, err
	}
	var kvs int
	if err := b.checkKeyValues(msg, 4, &kvs); err != nil {
		return 0, err
	}
	bodyLen := int64(0)
	if pos, err := b.field(msg, 3); err != nil {
		return 0, err
	} else if pos >= 0 {
		if bodyLen, err = b.i64(pos); err != nil {
			return 0, err
		}
	}
	if bodyLen < 0 || bodyLen > maxIPCBody {
		return 0, fmt.Errorf("message body of %d bytes exceeds the limit of %d", bodyLen, int64(maxIPCBody))
	}
	kind, header, err := b.header(msg)
	if err != nil {
		return 0, err
	}
	switch kind {
	case headerSchema:
		fields, n, err := b.vector(header, 1, 4)
		if err != nil {
			return 0, err
		}
		budget := maxIPCFields
		for i := 0; i < n; i++ {
			f, err := b.tableAt(fields + 4*i)
			if err != nil {
				return 0, err
			}
			if err := b.checkField(f, 0, &budget, &kvs); err != nil {
				return 0, err
			}
		}
		if err := b.checkKeyValues(header, 2, &kvs); err != nil {
			return 0, err
		}
	case headerDictionaryBatch:
		return 0, errors.New("dictionary-encoded columns are not supported; send plain columns")
	case headerRecordBatch:
		// Nodes and buffers are read by index with bounds checks; only
		// compressed sizes need checking, against the body (checkBody).
	}
	return bodyLen, nil
}

func (b fbuf) header(msg int) (kind int, table int, err error) {
	pos, err := b.field(msg, 1)
	if err != nil || pos < 0 {
		return 0, 0, err
	}
	if pos >= len(b) {
		return 0, 0, errFlatbuffer
	}
	kind = int(b[pos])
	if table, err = b.ref(msg, 2); err != nil {
		return 0, 0, err
	}
	if table < 0 && kind != 0 {
		return 0, 0, fmt.Errorf("%w: message header missing", errFlatbuffer)
	}
	return kind, table, nil
}

func (b fbuf) checkField(f, depth int, budget, kvs *int) error {
	*budget--
	if *budget < 0 {
		return fmt.Errorf("schema has more than %d fields", maxIPCFields)
	}
	if depth > maxIPCNesting {
		return fmt.Errorf("schema nests fields deeper than %d", maxIPCNesting)
	}
	if err := b.checkKeyValues(f, 6, kvs); err != nil {
		return err
	}
	children, n, err := b.vector(f, 5, 4)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		c, err := b.tableAt(children + 4*i)
		if err != nil {
			return err
		}
		if err := b.checkField(c, depth+1, budget, kvs); err != nil {
			return err
		}
	}
	return nil
}

// checkKeyValues bounds a custom_metadata vector; total counts entries
// across the message, since tables may share one vector.
func (b fbuf) checkKeyValues(table, id int, total *int) error {
	_, n, err := b.vector(table, id, 4)
	if err != nil {
		return err
	}
	*total += n
	if n > maxIPCKeyValues || *total > maxIPCKeyValueTotal {
		return fmt.Errorf("too much custom metadata (%d entries)", *total)
	}
	return nil
}

// checkBody bounds the decompressed size of a compressed record batch:
// each compressed buffer starts with its uncompressed length.
func checkBody(b fbuf, body []byte) error {
	msg, err := b.root()
	if err != nil {
		return err
	}
	kind, header, err := b.header(msg)
	if err != nil || kind != headerRecordBatch {
		return err
	}
	compression, err := b.ref(header, 3)
	if err != nil || compression < 0 {
		return err
	}
	bufs, n, err := b.vector(header, 2, 16)
	if err != nil {
		return err
	}
	var total int64
	for i := 0; i < n; i++ {
		off, err := b.i64(bufs + 16*i)
		if err != nil {
			return err
		}
		length, err := b.i64(bufs + 16*i + 8)
		if err != nil {
			return err
		}
		if length == 0 {
			continue
		}
		if off < 0 || length < 8 || off > int64(len(body))-length {
			return fmt.Errorf("buffer %d (offset %d, length %d) lies outside the %d-byte body", i, off, length, len(body))
		}
		size := int64(binary.LittleEndian.Uint64(body[off:]))
		if size == -1 { // stored uncompressed
			continue
		}
		if size < 0 || size > maxIPCUncompressed-total {
			return fmt.Errorf("compressed buffers decompress to more than %d bytes", int64(maxIPCUncompressed))
		}
		total += size
	}
	return nil
}
