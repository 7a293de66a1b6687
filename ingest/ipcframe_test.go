package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type ipcMessage struct{ meta, body int } // byte positions in the stream

// messages locates each message's metadata and body in an IPC stream
// written with continuation markers.
func messages(t *testing.T, data []byte) []ipcMessage {
	t.Helper()
	var out []ipcMessage
	pos := 0
	for pos+8 <= len(data) {
		n := int(binary.LittleEndian.Uint32(data[pos+4:]))
		if n == 0 {
			break
		}
		meta := pos + 8
		bodyLen, err := checkMessage(fbuf(data[meta : meta+n]))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ipcMessage{meta, meta + n})
		pos = meta + n + int(bodyLen)
	}
	return out
}

func tsStream(t *testing.T, opts ...ipc.Option) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := 0; i < 100; i++ {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(i))
		b.Field(1).(*array.StringBuilder).Append(strings.Repeat("abc", 10))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeArrowIPCCompressed(t *testing.T) {
	for name, opt := range map[string]ipc.Option{"zstd": ipc.WithZstd(), "lz4": ipc.WithLZ4()} {
		rec, err := decodeIPC(t, tsStream(t, opt))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rec.NumRows() != 100 || cell(rec, 4, 99) != strings.Repeat("abc", 10) || cell(rec, 6, 99) != arrow.Timestamp(99) {
			t.Errorf("%s: wrong contents: %v", name, rec)
		}
		rec.Release()
	}
}

// A few bytes must not make the reader allocate without bound: arrow-go
// sizes slices by lengths in the metadata.
func TestDecodeArrowIPCHostileLengths(t *testing.T) {
	t.Run("schema fields", func(t *testing.T) {
		data := tsStream(t)
		m := messages(t, data)[0]
		meta := fbuf(data[m.meta:m.body])
		root, _ := meta.root()
		_, header, err := meta.header(root)
		if err != nil {
			t.Fatal(err)
		}
		vec, err := meta.ref(header, 1)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(data[m.meta+vec:], 1<<31-1)
		_, err = decodeIPC(t, data)
		if err == nil || !strings.Contains(err.Error(), "overruns") {
			t.Fatalf("error %v, want a vector overrun", err)
		}
	})
	t.Run("decompressed size", func(t *testing.T) {
		data := tsStream(t, ipc.WithZstd())
		m := messages(t, data)[1]
		meta := fbuf(data[m.meta:m.body])
		root, _ := meta.root()
		_, header, _ := meta.header(root)
		bufs, n, err := meta.vector(header, 2, 16)
		if err != nil || n == 0 {
			t.Fatalf("buffers: %d, %v", n, err)
		}
		for i := 0; i < n; i++ {
			off, _ := meta.i64(bufs + 16*i)
			length, _ := meta.i64(bufs + 16*i + 8)
			if length >= 8 {
				binary.LittleEndian.PutUint64(data[m.body+int(off):], 1<<40)
			}
		}
		_, err = decodeIPC(t, data)
		if err == nil || !strings.Contains(err.Error(), "decompress to more than") {
			t.Fatalf("error %v, want the decompression limit", err)
		}
	})
	t.Run("body length", func(t *testing.T) {
		data := tsStream(t)
		m := messages(t, data)[1]
		meta := fbuf(data[m.meta:m.body])
		root, _ := meta.root()
		pos, err := meta.field(root, 3)
		if err != nil || pos < 0 {
			t.Fatal(pos, err)
		}
		binary.LittleEndian.PutUint64(data[m.meta+pos:], 1<<40)
		_, err = decodeIPC(t, data)
		if err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
			t.Fatalf("error %v, want the body limit", err)
		}
	})
	t.Run("body shorter than declared", func(t *testing.T) {
		data := tsStream(t)
		m := messages(t, data)[1]
		_, err := decodeIPC(t, data[:m.body+10])
		if err == nil {
			t.Fatal("no error")
		}
	})
}

func TestDecodeArrowIPCRejectsDictionaries(t *testing.T) {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "s", Type: dt, Nullable: true},
	}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	b.Field(0).(*array.TimestampBuilder).Append(1)
	if err := b.Field(1).(*array.BinaryDictionaryBuilder).AppendString("x"); err != nil {
		t.Fatal(err)
	}
	rec := b.NewRecordBatch()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	b.Release()
	w.Close()
	_, err := decodeIPC(t, buf.Bytes())
	if err == nil || !strings.Contains(err.Error(), `column "s"`) {
		t.Fatalf("error %v, want one naming column s", err)
	}
}

func TestCheckedMessageReaderLegacyFraming(t *testing.T) {
	// Streams from before Arrow 0.15 have no continuation marker.
	data := tsStream(t)
	var legacy []byte
	pos := 0
	for pos+8 <= len(data) {
		n := int(binary.LittleEndian.Uint32(data[pos+4:]))
		if n == 0 {
			legacy = binary.LittleEndian.AppendUint32(legacy, 0)
			break
		}
		bodyLen, err := checkMessage(fbuf(data[pos+8 : pos+8+n]))
		if err != nil {
			t.Fatal(err)
		}
		legacy = append(legacy, data[pos+4:pos+8+n+int(bodyLen)]...)
		pos += 8 + n + int(bodyLen)
	}
	rec, err := decodeIPC(t, legacy)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if got := columnValues(rec, 6)[:3]; !reflect.DeepEqual(got, []any{arrow.Timestamp(0), arrow.Timestamp(1), arrow.Timestamp(2)}) {
		t.Fatalf("ts = %v", got)
	}
}

// TestReadExactly: n bytes arrive whole through short reads, a short input
// is io.ErrUnexpectedEOF, and a length the input does not back costs no
// allocation of that size.
func TestReadExactly(t *testing.T) {
	data := make([]byte, 1<<20+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, len(data)} {
		got, err := readExactly(iotest.HalfReader(bytes.NewReader(data)), int64(n))
		if err != nil || !bytes.Equal(got, data[:n]) {
			t.Fatalf("n=%d: %d bytes, err %v; want the first %d bytes", n, len(got), err, n)
		}
	}
	if _, err := readExactly(bytes.NewReader(data), int64(len(data)+1)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("input one byte short: err %v, want io.ErrUnexpectedEOF", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readExactly(strings.NewReader("ten bytes!"), 1<<30)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("1 GiB claimed, 10 bytes sent: err %v, want io.ErrUnexpectedEOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("1 GiB claimed, 10 bytes sent: allocated %d bytes", grew)
	}
}
