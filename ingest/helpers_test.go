package ingest

import (
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
		Name:       "flights",
		TimeColumn: "ts",
		Columns: []dataset.Column{
			{Name: "id", Type: "bigint"},
			{Name: "ok", Type: "boolean"},
			{Name: "n", Type: "integer"},
			{Name: "x", Type: "double"},
			{Name: "s", Type: "varchar"},
			{Name: "d", Type: "date"},
			{Name: "ts", Type: "timestamp"},
			{Name: "delay", Type: "bigint"},
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkedMem returns an allocator that fails the test if anything allocated
// through it is still held when the test ends.
func checkedMem(t *testing.T) memory.Allocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func micros(t time.Time) arrow.Timestamp { return arrow.Timestamp(t.UnixMicro()) }

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

// cell returns column c of row i as a Go value (nil for null) for comparisons.
func cell(rec arrow.RecordBatch, c, i int) any {
	col := rec.Column(c)
	if col.IsNull(i) {
		return nil
	}
	switch a := col.(type) {
	case *array.Boolean:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Date32:
		return a.Value(i)
	case *array.Timestamp:
		return a.Value(i)
	}
	return col.ValueStr(i)
}

func columnValues(rec arrow.RecordBatch, c int) []any {
	out := make([]any, rec.NumRows())
	for i := range out {
		out[i] = cell(rec, c, i)
	}
	return out
}
