package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FuzzDecodeNDJSON checks that decoding never panics, that an accepted body
// has one row per non-blank line, and, differentially, that every accepted
// line is valid JSON whose values encoding/json decodes to the same cells.
func FuzzDecodeNDJSON(f *testing.F) {
	spec := testSpec(f)
	f.Add([]byte(`{"id": 1, "ok": true, "n": 2, "x": 1.5, "s": "a", "d": "2001-01-01", "ts": "2001-01-01T00:01:00Z", "delay": 3}`))
	f.Add([]byte("{\"ts\": 0}\n\n{\"TS\": \"2001-01-01 00:00:00.123\", \"s\": null}\r\n"))
	f.Add([]byte("{\"ts\": 978307260000.5}\n  \n"))
	f.Add([]byte(`{"ts": "2001-01-01T00:01:00+02:00", "n": 2147483648}`))
	f.Add([]byte("\n\n"))
	f.Add([]byte(`{"ts": 0, "s": {"a": [1, 2]}}`))
	f.Add([]byte(`{"\u0074s": 0, "s": "tab\tquote\" \ud83d\ude00 \u00e9 \/"}`))
	f.Add([]byte("{\"ts\": 0, \"s\": \"bad utf8 \xff\xfe\"}"))
	f.Add([]byte(`{"ts": -0.0, "x": -1.5e-3, "id": -0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		rec, err := DecodeNDJSON(bytes.NewReader(body), spec, mem, Limits{})
		lines := strings.Split(string(body), "\n")
		var nonBlank []string
		for _, l := range lines {
			if strings.Trim(l, " \t\r") != "" {
				nonBlank = append(nonBlank, l)
			}
		}
		if err != nil {
			if rec != nil {
				t.Fatal("record returned with an error")
			}
			var re *RowError
			if errors.As(err, &re) && (re.Row < 1 || re.Row > len(lines) || strings.Trim(lines[re.Row-1], " \t\r") == "") {
				t.Fatalf("error names row %d, which is not a non-blank line: %v", re.Row, err)
			}
			return
		}
		defer rec.Release()
		if rec.NumRows() != int64(len(nonBlank)) {
			t.Fatalf("%d rows from %d non-blank lines", rec.NumRows(), len(nonBlank))
		}
		if err := array.ValidateRecordFull(rec); err != nil {
			t.Fatalf("invalid record: %v", err)
		}
		if n := rec.Column(spec.TimeIndex()).NullN(); n != 0 {
			t.Fatalf("time column has %d nulls", n)
		}
		for r, l := range nonBlank {
			if !json.Valid([]byte(l)) {
				t.Fatalf("accepted invalid JSON line %q", l)
			}
			dec := json.NewDecoder(strings.NewReader(l))
			dec.UseNumber()
			var obj map[string]any
			if err := dec.Decode(&obj); err != nil {
				t.Fatalf("accepted line %q that encoding/json rejects: %v", l, err)
			}
			for c, col := range spec.Columns {
				var v any
				for k, kv := range obj {
					if strings.EqualFold(k, col.Name) {
						v = kv
					}
				}
				got := cell(rec, c, r)
				if v == nil {
					if got != nil {
						t.Fatalf("line %q column %s: got %v, want null", l, col.Name, got)
					}
					continue
				}
				var want any
				switch col.Type {
				case "varchar":
					want = v.(string)
				case "boolean":
					want = v.(bool)
				case "bigint":
					want, _ = strconv.ParseInt(string(v.(json.Number)), 10, 64)
				case "integer":
					n, _ := strconv.ParseInt(string(v.(json.Number)), 10, 32)
					want = int32(n)
				case "double":
					want, _ = strconv.ParseFloat(string(v.(json.Number)), 64)
				default:
					want = got // dates and timestamps are covered by unit tests
				}
				if got != want {
					t.Fatalf("line %q column %s: got %#v, want %#v", l, col.Name, got, want)
				}
			}
		}
	})
}

func FuzzDecodeArrowIPC(f *testing.F) {
	spec := testSpec(f)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	b.Field(0).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1, 2}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"a", "bc"}, []bool{true, false})
	b.Field(2).(*array.Int64Builder).AppendValues([]int64{1, 1 << 40}, nil)
	rec := b.NewRecordBatch()
	if err := w.Write(rec); err != nil {
		f.Fatal(err)
	}
	rec.Release()
	b.Release()
	w.Close()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := DecodeArrowIPC(bytes.NewReader(data), spec, nil, Limits{})
		if err != nil {
			return
		}
		defer rec.Release()
		if rec.NumRows() == 0 {
			t.Fatal("empty record without an error")
		}
		if err := array.ValidateRecordFull(rec); err != nil {
			t.Fatalf("invalid record: %v", err)
		}
	})
}
