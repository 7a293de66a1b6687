package ingest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/dataset"
)

// DecodeArrowIPC reads an Arrow IPC stream into one record batch with
// spec.ArrowSchema(), concatenating all its batches. Fields match columns by
// name, case-insensitively; extra fields are an error; missing nullable
// columns become nulls. Types convert when no value changes meaning: any
// integer to integer/bigint when the value fits (else a *RowError), any
// integer or float32 to double, string/large_string/string_view to varchar,
// date32/date64 to date, and a timestamp of any unit and zone to
// microseconds UTC. The caller releases the returned record. mem nil means
// memory.DefaultAllocator.
func DecodeArrowIPC(r io.Reader, spec *dataset.Spec, mem memory.Allocator, lim Limits) (rec arrow.RecordBatch, err error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	cr := &countingReader{r: r}
	rd, err := ipc.NewReaderFromMessageReader(newCheckedMessageReader(cr), ipc.WithAllocator(mem))
	if err != nil {
		if cr.n == 0 && cr.err == io.EOF {
			return nil, ErrNoRows
		}
		return nil, cr.wrap(err)
	}
	defer rd.Release()
	plan, err := planColumns(rd.Schema(), spec)
	if err != nil {
		return nil, err
	}

	b := array.NewRecordBuilder(mem, spec.ArrowSchema())
	defer b.Release()
	// Malformed buffers can make arrow-go panic deep in a decoder; a bad
	// request must not take the server down.
	defer func() {
		if p := recover(); p != nil {
			if rec != nil {
				rec.Release()
			}
			rec, err = nil, fmt.Errorf("read Arrow IPC stream: malformed data: %v", p)
		}
	}()
	// A stream of one batch whose columns have the dataset's types, as the
	// duet client sends, is used as it is: no value is copied.
	var only arrow.RecordBatch
	defer func() {
		if only != nil {
			only.Release()
		}
	}()
	rows := 0
	for rd.Next() {
		batch := rd.RecordBatch()
		if err := validateBatch(batch); err != nil {
			return nil, err
		}
		n := int(batch.NumRows())
		if err := lim.check(rows + n); err != nil {
			return nil, err
		}
		if rows == 0 && plan.asIs(batch, spec) {
			batch.Retain()
			only = batch
			rows = n
			continue
		}
		if only != nil {
			// A second batch: the first is converted after all.
			if err := plan.append(b, only, spec, 0); err != nil {
				return nil, err
			}
			only.Release()
			only = nil
		}
		if err := plan.append(b, batch, spec, rows); err != nil {
			return nil, err
		}
		rows += n
	}
	if err := rd.Err(); err != nil {
		return nil, cr.wrap(err)
	}
	if rows == 0 {
		return nil, ErrNoRows
	}
	if only != nil {
		return plan.project(only, spec, mem), nil
	}
	return b.NewRecordBatch(), nil
}

// asIs reports whether batch needs no conversion: every field it has is of
// its column's type, and the time column has no nulls to reject.
func (p columnPlan) asIs(batch arrow.RecordBatch, spec *dataset.Spec) bool {
	for i, src := range p.src {
		if src < 0 {
			continue
		}
		col := batch.Column(src)
		if !arrow.TypeEqual(col.DataType(), spec.Columns[i].Type.ArrowType()) || (i == p.timeIdx && col.NullN() > 0) {
			return false
		}
	}
	return true
}

// project gives batch's columns in the dataset's order, nulls for those it
// lacks, sharing its buffers.
func (p columnPlan) project(batch arrow.RecordBatch, spec *dataset.Spec, mem memory.Allocator) arrow.RecordBatch {
	n := batch.NumRows()
	cols := make([]arrow.Array, len(p.src))
	for i, src := range p.src {
		if src >= 0 {
			cols[i] = batch.Column(src)
			continue
		}
		cols[i] = array.MakeArrayOfNull(mem, spec.Columns[i].Type.ArrowType(), int(n))
		defer cols[i].Release()
	}
	return array.NewRecordBatch(spec.ArrowSchema(), cols, n)
}

// append converts batch's columns into b; rowBase is the number of rows
// before it, for row numbers in errors.
func (p columnPlan) append(b *array.RecordBuilder, batch arrow.RecordBatch, spec *dataset.Spec, rowBase int) error {
	n := int(batch.NumRows())
	for i, src := range p.src {
		if src < 0 {
			b.Field(i).AppendNulls(n)
			continue
		}
		if err := appendArrowColumn(b.Field(i), spec.Columns[i], i == p.timeIdx, batch.Column(src), rowBase); err != nil {
			return err
		}
	}
	return nil
}

// validateBatch checks a decoded batch's buffers before any value is read,
// so malformed input is an error rather than garbage or a panic. Null-typed
// columns are skipped: arrow-go's IPC reader gives them no buffers, which its
// own validator then rejects.
func validateBatch(batch arrow.RecordBatch) error {
	for i, col := range batch.Columns() {
		if int64(col.Len()) != batch.NumRows() {
			return fmt.Errorf("read Arrow IPC stream: malformed batch: column %q has %d rows, the batch %d", batch.ColumnName(i), col.Len(), batch.NumRows())
		}
		if col.DataType().ID() == arrow.NULL {
			continue
		}
		if err := array.ValidateFull(col); err != nil {
			return fmt.Errorf("read Arrow IPC stream: malformed batch: column %q: %w", batch.ColumnName(i), err)
		}
	}
	return nil
}

// countingReader tells an empty body apart from a malformed one.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// wrap prefers the body's own read error (say, *http.MaxBytesError) to the
// IPC reader's rewording of it.
func (c *countingReader) wrap(err error) error {
	if c.err != nil && !errors.Is(c.err, io.EOF) {
		return fmt.Errorf("read request body: %w", c.err)
	}
	return fmt.Errorf("read Arrow IPC stream: %w", err)
}

// columnPlan gives, for each dataset column, the stream field it comes from
// (-1: absent, filled with nulls).
type columnPlan struct {
	src     []int
	timeIdx int
}

// planColumns matches the stream's fields to the dataset's columns and
// checks that every field's type converts.
func planColumns(schema *arrow.Schema, spec *dataset.Spec) (plan columnPlan, err error) {
	if schema == nil {
		return plan, errors.New("read Arrow IPC stream: no schema")
	}
	index := columnIndex(spec)
	plan = columnPlan{src: make([]int, len(spec.Columns)), timeIdx: spec.TimeIndex()}
	for i := range plan.src {
		plan.src[i] = -1
	}
	var extra []string
	for f, field := range schema.Fields() {
		i, ok := index[strings.ToLower(field.Name)]
		if !ok {
			extra = append(extra, fmt.Sprintf("%q", field.Name))
			continue
		}
		col := spec.Columns[i]
		if plan.src[i] >= 0 {
			return plan, fmt.Errorf("column %q: the stream has it twice (as %q and %q)", col.Name, schema.Field(plan.src[i]).Name, field.Name)
		}
		if !convertible(field.Type, col.Type) {
			return plan, fmt.Errorf("column %q: cannot load Arrow type %s into a %s column; send %s", col.Name, field.Type, col.Type, acceptedTypes(col.Type))
		}
		plan.src[i] = f
	}
	if len(extra) > 0 {
		return plan, fmt.Errorf("unknown columns %s (the dataset has columns %s)", strings.Join(extra, ", "), columnList(spec))
	}
	// A null-typed time column holds no values to validate a row count
	// against, besides being all nulls; reject it before reading batches.
	if t := plan.src[plan.timeIdx]; t < 0 || schema.Field(t).Type.ID() == arrow.NULL {
		return plan, fmt.Errorf("column %q: missing time column; every row needs a non-null value for it", spec.Columns[plan.timeIdx].Name)
	}
	return plan, nil
}

func isInteger(id arrow.Type) bool {
	switch id {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func convertible(from arrow.DataType, to dataset.Type) bool {
	id := from.ID()
	if id == arrow.NULL {
		return true
	}
	switch to {
	case dataset.Boolean:
		return id == arrow.BOOL
	case dataset.Integer, dataset.Bigint:
		return isInteger(id)
	case dataset.Double:
		return id == arrow.FLOAT64 || id == arrow.FLOAT32 || isInteger(id)
	case dataset.Varchar:
		return id == arrow.STRING || id == arrow.LARGE_STRING || id == arrow.STRING_VIEW
	case dataset.Date:
		return id == arrow.DATE32 || id == arrow.DATE64
	case dataset.Timestamp:
		return id == arrow.TIMESTAMP
	}
	return false
}

func acceptedTypes(t dataset.Type) string {
	switch t {
	case dataset.Boolean:
		return "bool"
	case dataset.Integer:
		return "int32 (or another integer type whose values fit)"
	case dataset.Bigint:
		return "int64 (or another integer type whose values fit)"
	case dataset.Double:
		return "float64, float32 or an integer type"
	case dataset.Varchar:
		return "utf8, large_utf8 or utf8_view"
	case dataset.Date:
		return "date32 or date64"
	case dataset.Timestamp:
		return "a timestamp of any unit"
	}
	return string(t)
}

// appendArrowColumn appends src, converted, to b. rowBase is the number of
// rows of earlier batches, for 1-based row numbers in errors.
func appendArrowColumn(b array.Builder, col dataset.Column, isTime bool, src arrow.Array, rowBase int) error {
	n := src.Len()
	if isTime && src.NullN() > 0 {
		for i := 0; i < n; i++ {
			if src.IsNull(i) {
				return &RowError{Row: rowBase + i + 1, Column: col.Name, Reason: "missing time column: every row needs a non-null value for it"}
			}
		}
	}
	if src.DataType().ID() == arrow.NULL {
		b.AppendNulls(n)
		return nil
	}
	rowErr := func(i int, format string, args ...any) error {
		return &RowError{Row: rowBase + i + 1, Column: col.Name, Reason: fmt.Sprintf(format, args...)}
	}
	switch col.Type {
	case dataset.Boolean:
		s, bb := src.(*array.Boolean), b.(*array.BooleanBuilder)
		for i := 0; i < n; i++ {
			if s.IsNull(i) {
				bb.AppendNull()
			} else {
				bb.Append(s.Value(i))
			}
		}
	case dataset.Integer, dataset.Bigint:
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if col.Type == dataset.Integer {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		at := intAccessor(src)
		for i := 0; i < n; i++ {
			if src.IsNull(i) {
				b.AppendNull()
				continue
			}
			v, ok := at(i)
			if !ok || v < lo || v > hi {
				return rowErr(i, "value %s is out of range for %s (%d to %d)", valueString(src, i), col.Type, lo, hi)
			}
			if col.Type == dataset.Integer {
				b.(*array.Int32Builder).Append(int32(v))
			} else {
				b.(*array.Int64Builder).Append(v)
			}
		}
	case dataset.Double:
		at := floatAccessor(src)
		bb := b.(*array.Float64Builder)
		for i := 0; i < n; i++ {
			if src.IsNull(i) {
				bb.AppendNull()
			} else {
				bb.Append(at(i))
			}
		}
	case dataset.Varchar:
		at := stringAccessor(src)
		bb := b.(*array.StringBuilder)
		for i := 0; i < n; i++ {
			if src.IsNull(i) {
				bb.AppendNull()
			} else {
				bb.Append(at(i))
			}
		}
	case dataset.Date:
		bb := b.(*array.Date32Builder)
		for i := 0; i < n; i++ {
			if src.IsNull(i) {
				bb.AppendNull()
				continue
			}
			switch s := src.(type) {
			case *array.Date32:
				bb.Append(s.Value(i))
			case *array.Date64:
				days := floorDiv(int64(s.Value(i)), 86_400_000)
				if days < math.MinInt32 || days > math.MaxInt32 {
					return rowErr(i, "date64 value %d is out of range for date", s.Value(i))
				}
				bb.Append(arrow.Date32(days))
			}
		}
	case dataset.Timestamp:
		s := src.(*array.Timestamp)
		unit := s.DataType().(*arrow.TimestampType).Unit
		bb := b.(*array.TimestampBuilder)
		for i := 0; i < n; i++ {
			if s.IsNull(i) {
				bb.AppendNull()
				continue
			}
			us, ok := toMicros(int64(s.Value(i)), unit)
			if !ok {
				return rowErr(i, "timestamp value %d (%s) is out of range for microseconds", s.Value(i), unit)
			}
			bb.Append(arrow.Timestamp(us))
		}
	default:
		return fmt.Errorf("column %q: unsupported column type %s", col.Name, col.Type)
	}
	return nil
}

// intAccessor reads any integer array as int64; ok is false for a uint64
// beyond int64's range.
func intAccessor(a arrow.Array) func(int) (int64, bool) {
	switch a := a.(type) {
	case *array.Int8:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }
	case *array.Int16:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }
	case *array.Int32:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }
	case *array.Int64:
		return func(i int) (int64, bool) { return a.Value(i), true }
	case *array.Uint8:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }
	case *array.Uint16:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }
	case *array.Uint32:
		return func(i int) (int64, bool) { return int64(a.Value(i)), true }
	case *array.Uint64:
		return func(i int) (int64, bool) { v := a.Value(i); return int64(v), v <= math.MaxInt64 }
	}
	panic(fmt.Sprintf("ingest: %s is not an integer array", a.DataType()))
}

func floatAccessor(a arrow.Array) func(int) float64 {
	switch a := a.(type) {
	case *array.Float64:
		return a.Value
	case *array.Float32:
		return func(i int) float64 { return float64(a.Value(i)) }
	case *array.Uint64:
		return func(i int) float64 { return float64(a.Value(i)) }
	}
	at := intAccessor(a)
	return func(i int) float64 { v, _ := at(i); return float64(v) }
}

func stringAccessor(a arrow.Array) func(int) string {
	switch a := a.(type) {
	case *array.String:
		return a.Value
	case *array.LargeString:
		return a.Value
	case *array.StringView:
		return a.Value
	}
	panic(fmt.Sprintf("ingest: %s is not a string array", a.DataType()))
}

func valueString(a arrow.Array, i int) string {
	if u, ok := a.(*array.Uint64); ok {
		return fmt.Sprint(u.Value(i))
	}
	v, _ := intAccessor(a)(i)
	return fmt.Sprint(v)
}

func toMicros(v int64, unit arrow.TimeUnit) (int64, bool) {
	switch unit {
	case arrow.Second:
		if v > math.MaxInt64/1_000_000 || v < math.MinInt64/1_000_000 {
			return 0, false
		}
		return v * 1_000_000, true
	case arrow.Millisecond:
		if v > math.MaxInt64/1_000 || v < math.MinInt64/1_000 {
			return 0, false
		}
		return v * 1_000, true
	case arrow.Microsecond:
		return v, true
	case arrow.Nanosecond:
		return floorDiv(v, 1_000), true
	}
	return 0, false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
