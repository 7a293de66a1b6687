package eventlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/dataset"
)

func testSpec(t testing.TB) *dataset.Spec {
	t.Helper()
	s := &dataset.Spec{
		Name:       "events",
		TimeColumn: "ts",
		Columns: []dataset.Column{
			{Name: "id", Type: "bigint"},
			{Name: "ok", Type: "boolean"},
			{Name: "n", Type: "integer"},
			{Name: "x", Type: "double"},
			{Name: "s", Type: "varchar"},
			{Name: "d", Type: "date"},
			{Name: "ts", Type: "timestamp"},
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// makeBatch builds rows whose id column equals start+i, with every column
// type and a null in each nullable column on every third row.
func makeBatch(t testing.TB, schema *arrow.Schema, start int64, rows int) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	base := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < rows; i++ {
		id := start + int64(i)
		null := id%3 == 1
		b.Field(0).(*array.Int64Builder).Append(id)
		if null {
			for c := 1; c <= 5; c++ {
				b.Field(c).AppendNull()
			}
		} else {
			b.Field(1).(*array.BooleanBuilder).Append(id%2 == 0)
			b.Field(2).(*array.Int32Builder).Append(int32(id * 7))
			b.Field(3).(*array.Float64Builder).Append(float64(id) / 4)
			b.Field(4).(*array.StringBuilder).Append(fmt.Sprintf("row-%d-é", id))
			b.Field(5).(*array.Date32Builder).Append(arrow.Date32FromTime(base.AddDate(0, 0, int(id))))
		}
		b.Field(6).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(id) * time.Microsecond * 1500).UnixMicro()))
	}
	return b.NewRecordBatch()
}

func mustOpen(t testing.TB, dir string, schema *arrow.Schema, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, schema, cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, schema *arrow.Schema, start int64, rows int) {
	t.Helper()
	rec := makeBatch(t, schema, start, rows)
	defer rec.Release()
	first, err := l.Append(rec)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if first != start {
		t.Fatalf("Append got first offset %d, want %d", first, start)
	}
}

type replayed struct {
	first int64
	rows  int64
}

// replayAll replays from, checks every row's id equals its offset and every
// row's contents equal what makeBatch builds for it, and returns the calls.
func replayAll(t testing.TB, l *Log, schema *arrow.Schema, from int64) []replayed {
	t.Helper()
	var got []replayed
	err := l.Replay(from, func(first int64, rec arrow.RecordBatch) error {
		want := makeBatch(t, schema, first, int(rec.NumRows()))
		defer want.Release()
		if !array.RecordEqual(rec, want) {
			t.Errorf("replayed batch at %d differs:\n got %v\nwant %v", first, rec, want)
		}
		got = append(got, replayed{first, rec.NumRows()})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay(%d): %v", from, err)
	}
	return got
}
