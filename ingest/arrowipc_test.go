package ingest

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// stream encodes batches built by fill (one call per batch) as an Arrow IPC
// stream with the given schema.
func stream(t *testing.T, schema *arrow.Schema, fills ...func(b *array.RecordBuilder)) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for _, fill := range fills {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		fill(b)
		rec := b.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		b.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeIPC(t *testing.T, data []byte) (arrow.RecordBatch, error) {
	t.Helper()
	return DecodeArrowIPC(bytes.NewReader(data), testSpec(t), checkedMem(t), Limits{})
}

func TestDecodeArrowIPCReorderedAndConverted(t *testing.T) {
	// Fields in another order and case, with other widths, units and zones.
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "TS", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "Europe/Paris"}},
		{Name: "s", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "Delay", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "x", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "id", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date64, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	t0 := utc(2001, 1, 1, 0, 1, 0, 0)
	data := stream(t, schema, func(b *array.RecordBuilder) {
		b.Field(0).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{arrow.Timestamp(t0.UnixMilli()), arrow.Timestamp(-1)}, nil)
		b.Field(1).(*array.LargeStringBuilder).AppendValues([]string{"a", ""}, []bool{true, false})
		b.Field(2).(*array.Int8Builder).AppendValues([]int8{-128, 127}, nil)
		b.Field(3).(*array.Int64Builder).AppendValues([]int64{2147483647, -2147483648}, nil)
		b.Field(4).(*array.Float32Builder).AppendValues([]float32{1.5, 0}, []bool{true, false})
		b.Field(5).(*array.Uint16Builder).AppendValues([]uint16{65535, 0}, nil)
		b.Field(6).(*array.Date64Builder).AppendValues([]arrow.Date64{arrow.Date64(11323 * 86_400_000), arrow.Date64(-86_400_000)}, nil)
		b.Field(7).(*array.BooleanBuilder).AppendValues([]bool{true, false}, nil)
	})
	rec, err := decodeIPC(t, data)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if !rec.Schema().Equal(testSpec(t).ArrowSchema()) {
		t.Fatalf("schema %v", rec.Schema())
	}
	want := [][]any{
		{int64(65535), int64(0)},
		{true, false},
		{int32(2147483647), int32(-2147483648)},
		{1.5, nil},
		{"a", nil},
		{arrow.Date32(11323), arrow.Date32(-1)},
		{micros(t0), arrow.Timestamp(-1000)},
		{int64(-128), int64(127)},
	}
	for c := range want {
		if got := columnValues(rec, c); !reflect.DeepEqual(got, want[c]) {
			t.Errorf("column %d = %v, want %v", c, got, want[c])
		}
	}
}

func TestDecodeArrowIPCTimestampUnits(t *testing.T) {
	t0 := utc(2001, 1, 1, 0, 1, 0, 123_456_789)
	cases := []struct {
		unit arrow.TimeUnit
		zone string
		v    int64
		want arrow.Timestamp
	}{
		{arrow.Second, "", t0.Unix(), arrow.Timestamp(t0.Unix() * 1_000_000)},
		{arrow.Millisecond, "America/New_York", t0.UnixMilli(), arrow.Timestamp(t0.UnixMilli() * 1000)},
		{arrow.Microsecond, "+02:00", t0.UnixMicro(), micros(t0)},
		{arrow.Nanosecond, "UTC", t0.UnixNano(), micros(t0)},
		{arrow.Nanosecond, "", -1, arrow.Timestamp(-1)}, // floor, not toward zero
	}
	for _, c := range cases {
		schema := arrow.NewSchema([]arrow.Field{{Name: "ts", Type: &arrow.TimestampType{Unit: c.unit, TimeZone: c.zone}}}, nil)
		data := stream(t, schema, func(b *array.RecordBuilder) {
			b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(c.v))
		})
		rec, err := decodeIPC(t, data)
		if err != nil {
			t.Fatalf("%s %s: %v", c.unit, c.zone, err)
		}
		if got := cell(rec, 6, 0); got != c.want {
			t.Errorf("%s %q %d: got %v, want %v", c.unit, c.zone, c.v, got, c.want)
		}
		// Columns absent from the stream are nulls.
		if rec.Column(0).NullN() != 1 || rec.Column(4).NullN() != 1 {
			t.Errorf("missing columns are not null")
		}
		rec.Release()
	}
}

func TestDecodeArrowIPCMultipleBatchesAndOutOfRange(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "n", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	batch := func(ns []uint64, strs []string) func(b *array.RecordBuilder) {
		return func(b *array.RecordBuilder) {
			for i := range ns {
				b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(i))
			}
			b.Field(1).(*array.Uint64Builder).AppendValues(ns, nil)
			b.Field(2).(*array.StringBuilder).AppendValues(strs, nil)
		}
	}
	data := stream(t, schema, batch([]uint64{1, 2}, []string{"a", "b"}), batch([]uint64{3}, []string{"c"}), batch([]uint64{4, 5, 6}, []string{"d", "e", "f"}))
	rec, err := decodeIPC(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := columnValues(rec, 2), []any{int32(1), int32(2), int32(3), int32(4), int32(5), int32(6)}; !reflect.DeepEqual(got, want) {
		t.Errorf("n = %v, want %v", got, want)
	}
	if got, want := columnValues(rec, 4), []any{"a", "b", "c", "d", "e", "f"}; !reflect.DeepEqual(got, want) {
		t.Errorf("s = %v, want %v", got, want)
	}
	rec.Release()

	// Row 5 overall (second row of the third batch) does not fit an integer.
	data = stream(t, schema, batch([]uint64{1, 2}, []string{"a", "b"}), batch([]uint64{3}, []string{"c"}), batch([]uint64{4, 1 << 31, 6}, []string{"d", "e", "f"}))
	_, err = decodeIPC(t, data)
	var re *RowError
	if !errors.As(err, &re) || re.Row != 5 || re.Column != "n" || !strings.Contains(re.Reason, "2147483648 is out of range for integer") {
		t.Fatalf("error %v, want RowError at row 5 column n", err)
	}

	if _, err := DecodeArrowIPC(bytes.NewReader(data), testSpec(t), checkedMem(t), Limits{MaxRows: 5}); !errors.Is(err, ErrTooManyRows) {
		t.Fatalf("MaxRows 5 with 6 rows: %v, want ErrTooManyRows", err)
	}
}

func TestDecodeArrowIPCUint64ToBigint(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "id", Type: arrow.PrimitiveTypes.Uint64},
	}, nil)
	data := stream(t, schema, func(b *array.RecordBuilder) {
		b.Field(0).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{0, 0}, nil)
		b.Field(1).(*array.Uint64Builder).AppendValues([]uint64{1 << 63, 1}, nil)
	})
	_, err := decodeIPC(t, data)
	var re *RowError
	if !errors.As(err, &re) || re.Row != 1 || !strings.Contains(re.Reason, "9223372036854775808 is out of range for bigint") {
		t.Fatalf("error %v, want RowError at row 1 naming the value", err)
	}
}

func TestDecodeArrowIPCRejects(t *testing.T) {
	ts := arrow.Field{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true}
	fillTS := func(b *array.RecordBuilder) { b.Field(0).(*array.TimestampBuilder).Append(0) }
	cases := []struct {
		name   string
		fields []arrow.Field
		fill   func(b *array.RecordBuilder)
		want   []string
	}{
		{"extra columns", []arrow.Field{ts, {Name: "bogus", Type: arrow.PrimitiveTypes.Int64}, {Name: "more", Type: arrow.PrimitiveTypes.Int64}},
			func(b *array.RecordBuilder) { fillTS(b); b.Field(1).AppendNull(); b.Field(2).AppendNull() },
			[]string{`unknown columns "bogus", "more"`}},
		{"string into bigint", []arrow.Field{ts, {Name: "id", Type: arrow.BinaryTypes.String}},
			func(b *array.RecordBuilder) { fillTS(b); b.Field(1).AppendNull() },
			[]string{`column "id"`, "cannot load Arrow type utf8 into a bigint column"}},
		{"double into integer", []arrow.Field{ts, {Name: "n", Type: arrow.PrimitiveTypes.Float64}},
			func(b *array.RecordBuilder) { fillTS(b); b.Field(1).AppendNull() },
			[]string{`column "n"`, "float64"}},
		{"missing time column", []arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}},
			func(b *array.RecordBuilder) { b.Field(0).AppendNull() },
			[]string{`column "ts"`, "missing time column"}},
		{"duplicate column", []arrow.Field{ts, {Name: "TS", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}},
			func(b *array.RecordBuilder) { fillTS(b); b.Field(1).AppendNull() },
			[]string{"twice"}},
		{"null time", []arrow.Field{ts},
			func(b *array.RecordBuilder) { fillTS(b); b.Field(0).AppendNull() },
			[]string{`row 2, column "ts": missing time column`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, err := decodeIPC(t, stream(t, arrow.NewSchema(c.fields, nil), c.fill))
			if rec != nil {
				rec.Release()
				t.Fatal("got a record")
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeArrowIPCEmptyAndGarbage(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}}, nil)
	if _, err := decodeIPC(t, nil); !errors.Is(err, ErrNoRows) {
		t.Errorf("empty body: %v, want ErrNoRows", err)
	}
	if _, err := decodeIPC(t, stream(t, schema)); !errors.Is(err, ErrNoRows) {
		t.Errorf("stream without batches: %v, want ErrNoRows", err)
	}
	if _, err := decodeIPC(t, []byte("{\"ts\": 0}\n")); err == nil || errors.Is(err, ErrNoRows) {
		t.Errorf("JSON sent as Arrow: %v, want a read error", err)
	}
	full := stream(t, schema, func(b *array.RecordBuilder) { b.Field(0).(*array.TimestampBuilder).Append(1) })
	if _, err := decodeIPC(t, full[:len(full)-20]); err == nil {
		t.Error("truncated stream accepted")
	}
}

func TestDecodeArrowIPCNullTypedColumn(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "s", Type: arrow.Null, Nullable: true},
	}, nil)
	rec, err := decodeIPC(t, stream(t, schema, func(b *array.RecordBuilder) {
		b.Field(0).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1, 2}, nil)
		b.Field(1).AppendNulls(2)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if rec.Column(4).NullN() != 2 {
		t.Fatalf("s has %d nulls, want 2", rec.Column(4).NullN())
	}
}
