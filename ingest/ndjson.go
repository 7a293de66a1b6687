package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/dataset"
)

// DecodeNDJSON reads a whole request body, one JSON object per line (blank
// lines ignored), into one record batch with spec.ArrowSchema(). Keys match
// columns case-insensitively; a missing key or null is a null value, but the
// time column must be present and non-null; unknown keys are an error so that
// typos are not dropped silently. On any bad row it returns a *RowError and
// no record. The caller releases the returned record. mem nil means
// memory.DefaultAllocator.
func DecodeNDJSON(r io.Reader, spec *dataset.Spec, mem memory.Allocator, lim Limits) (arrow.RecordBatch, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	buf := bodies.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodies.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	body := buf.Bytes()
	d := newNDJSONDecoder(spec, mem)
	defer d.b.Release()
	// One allocation per column rather than a dozen doublings, for up to
	// maxReservedRows rows: a body of blank lines must not reserve millions.
	rowsHint := min(bytes.Count(body, []byte{'\n'})+1, maxReservedRows)
	for _, f := range d.b.Fields() {
		f.Reserve(rowsHint)
	}

	rows := 0
	for line := 1; len(body) > 0; line++ {
		var text []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			text, body = body[:i], body[i+1:]
		} else {
			text, body = body, nil
		}
		if isBlank(text) {
			continue
		}
		rows++
		if err := lim.check(rows); err != nil {
			return nil, err
		}
		if err := d.decodeRow(line, text); err != nil {
			return nil, err
		}
	}
	if rows == 0 {
		return nil, ErrNoRows
	}
	return d.b.NewRecordBatch(), nil
}

// bodies keeps request bodies' buffers for the next request: read whole,
// a 1 MB body grows its buffer a dozen times, copying and leaving garbage
// for the collector; with the buffers reused and the builders reserved,
// BenchmarkDecodeNDJSON allocates 82 rather than 435 KB per 1,000 rows.
// Nothing decoded refers to a body once DecodeNDJSON returns (values are
// copied into the builders), so its buffer can be reused.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const (
	// maxPooledBody: larger buffers, from rare huge requests, are left to
	// the garbage collector rather than kept.
	maxPooledBody = 16 << 20
	// maxReservedRows bounds the rows reserved in the builders up front.
	maxReservedRows = 64 << 10
)

func exactIndex(spec *dataset.Spec) map[string]int {
	m := make(map[string]int, len(spec.Columns))
	for i, c := range spec.Columns {
		m[c.Name] = i
	}
	return m
}

// isBlank reports whether a line holds only JSON whitespace.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

type ndjsonDecoder struct {
	spec    *dataset.Spec
	index   map[string]int // lower-cased names
	exact   map[string]int // names as declared, the common case
	timeIdx int
	b       *array.RecordBuilder
	seen    []bool
	// order is the column of each member of the last row, by position:
	// producers write every row's keys in the same order, and comparing a
	// key with the name expected there is cheaper than hashing it.
	order []int
}

func newNDJSONDecoder(spec *dataset.Spec, mem memory.Allocator) *ndjsonDecoder {
	return &ndjsonDecoder{
		spec:    spec,
		index:   columnIndex(spec),
		exact:   exactIndex(spec),
		timeIdx: spec.TimeIndex(),
		b:       array.NewRecordBuilder(mem, spec.ArrowSchema()),
		seen:    make([]bool, len(spec.Columns)),
	}
}

// decodeRow appends one line's object to the builders. On error the
// builders' columns may differ in length; the caller then discards them.
func (d *ndjsonDecoder) decodeRow(line int, text []byte) error {
	clear(d.seen)
	pos := 0
	notObject, err := scanObject(text, func(key string, v jsonValue) error {
		var i int
		if pos < len(d.order) && d.spec.Columns[d.order[pos]].Name == key {
			i = d.order[pos]
		} else {
			var ok bool
			if i, ok = d.exact[key]; !ok {
				i, ok = d.index[strings.ToLower(key)]
			}
			if !ok {
				// A copy: key shares the body's buffer, which is reused.
				return &RowError{Row: line, Column: strings.Clone(key), Reason: fmt.Sprintf("unknown column (the dataset has columns %s)", columnList(d.spec))}
			}
			if pos < len(d.order) {
				d.order[pos] = i
			} else {
				d.order = append(d.order, i)
			}
		}
		pos++
		col := d.spec.Columns[i]
		if d.seen[i] {
			return &RowError{Row: line, Column: col.Name, Reason: "column given more than once in the object"}
		}
		d.seen[i] = true
		if v.kind == jsonNull {
			if i == d.timeIdx {
				return &RowError{Row: line, Column: col.Name, Reason: missingTime}
			}
			d.b.Field(i).AppendNull()
			return nil
		}
		if reason := appendJSONValue(d.b.Field(i), col.Type, v); reason != "" {
			return &RowError{Row: line, Column: col.Name, Reason: reason}
		}
		return nil
	})
	switch {
	case errors.Is(err, errJSONSyntax):
		return &RowError{Row: line, Reason: "invalid JSON: " + syntaxError(text, err)}
	case errors.Is(err, errTrailing):
		return &RowError{Row: line, Reason: err.Error()}
	case err != nil:
		return err
	case notObject != nil:
		return &RowError{Row: line, Reason: "expected a JSON object, got " + describe(*notObject)}
	}
	for i, seen := range d.seen {
		if seen {
			continue
		}
		if i == d.timeIdx {
			return &RowError{Row: line, Column: d.spec.Columns[i].Name, Reason: missingTime}
		}
		d.b.Field(i).AppendNull()
	}
	return nil
}

const missingTime = "missing time column: every row needs a non-null value for it"

// syntaxError words a syntax error as encoding/json does, which names the
// offending character and its position.
func syntaxError(text []byte, scanErr error) string {
	var v any
	err := json.Unmarshal(text, &v)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && strings.Contains(se.Error(), "unexpected end of JSON input"):
		return "unexpected end of line; each object must be complete on one line"
	case errors.As(err, &se):
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	case err != nil:
		return err.Error()
	}
	return scanErr.Error()
}

// describe names a JSON value's type and shows it, for "got ..." in error
// messages.
func describe(v jsonValue) string {
	switch v.kind {
	case jsonNull:
		return "null"
	case jsonString:
		return "string " + quoteShort(v.str)
	case jsonNumber:
		return "number " + shorten(v.str)
	case jsonBool:
		return fmt.Sprintf("boolean %t", v.b)
	case jsonObject:
		return "an object"
	case jsonArray:
		return "an array"
	}
	return "a value"
}

// appendJSONValue appends non-null v to b as type t, or returns why it cannot.
func appendJSONValue(b array.Builder, t dataset.Type, v jsonValue) string {
	mismatch := func(hint string) string {
		return fmt.Sprintf("expected %s, got %s%s", t, describe(v), hint)
	}
	switch t {
	case dataset.Boolean:
		if v.kind != jsonBool {
			return mismatch(" (use JSON true or false)")
		}
		b.(*array.BooleanBuilder).Append(v.b)
	case dataset.Integer, dataset.Bigint:
		if v.kind != jsonNumber {
			return mismatch(" (use a JSON number without quotes)")
		}
		x, reason := parseJSONInt(v.str, t)
		if reason != "" {
			return reason
		}
		if t == dataset.Integer {
			b.(*array.Int32Builder).Append(int32(x))
		} else {
			b.(*array.Int64Builder).Append(x)
		}
	case dataset.Double:
		if v.kind != jsonNumber {
			return mismatch(" (use a JSON number without quotes)")
		}
		x, err := strconv.ParseFloat(v.str, 64)
		if err != nil {
			return fmt.Sprintf("number %s is out of range for double", shorten(v.str))
		}
		b.(*array.Float64Builder).Append(x)
	case dataset.Varchar:
		if v.kind != jsonString {
			return mismatch(" (quote it as a JSON string)")
		}
		b.(*array.StringBuilder).Append(v.str)
	case dataset.Date:
		if v.kind != jsonString {
			return mismatch(` (use a string like "2001-01-01")`)
		}
		days, ok := parseDate(v.str)
		if !ok {
			return mismatch(` (use a date like "2001-01-01")`)
		}
		b.(*array.Date32Builder).Append(arrow.Date32(days))
	case dataset.Timestamp:
		var us int64
		switch v.kind {
		case jsonString:
			var ok bool
			if us, ok = parseTimestamp(v.str); !ok {
				return mismatch(` (use RFC 3339 like "2001-01-01T00:01:00Z" or "2001-01-01T00:01:00.123+02:00", "2001-01-01 00:01:00" for UTC, or a number of epoch milliseconds)`)
			}
		case jsonNumber:
			var err error
			if us, err = parseEpochMillis(v.str); err != nil {
				return fmt.Sprintf("number %s as epoch milliseconds: %v", shorten(v.str), err)
			}
		default:
			return mismatch(` (use a string like "2001-01-01T00:01:00Z" or a number of epoch milliseconds)`)
		}
		b.(*array.TimestampBuilder).Append(arrow.Timestamp(us))
	default:
		return fmt.Sprintf("unsupported column type %s", t)
	}
	return ""
}

func parseJSONInt(num string, t dataset.Type) (int64, string) {
	// Most numbers are short and plain: up to 18 digits cannot overflow.
	if digits := strings.TrimPrefix(num, "-"); len(digits) > 0 && len(digits) <= 18 {
		var x int64
		for _, c := range []byte(digits) {
			if c < '0' || c > '9' {
				x = -1
				break
			}
			x = x*10 + int64(c-'0')
		}
		if x >= 0 {
			if len(digits) < len(num) {
				x = -x
			}
			if t != dataset.Integer || x >= math.MinInt32 && x <= math.MaxInt32 {
				return x, ""
			}
		}
	}
	if strings.ContainsAny(num, ".eE") {
		return 0, fmt.Sprintf("expected %s, got number %s (not a whole number; write integers without a fraction or exponent)", t, shorten(num))
	}
	x, err := strconv.ParseInt(num, 10, 64)
	if err == nil && t == dataset.Integer && (x < math.MinInt32 || x > math.MaxInt32) {
		err = strconv.ErrRange
	}
	if err != nil {
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if t == dataset.Integer {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		return 0, fmt.Sprintf("number %s is out of range for %s (%d to %d)", shorten(num), t, lo, hi)
	}
	return x, ""
}
