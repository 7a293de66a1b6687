package ingest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestDecodeNDJSONAllTypes(t *testing.T) {
	spec := testSpec(t)
	body := `{"id": 1, "ok": true, "n": -2147483648, "x": 1.5, "s": "héllo", "d": "2001-01-01", "ts": "2001-01-01T00:01:00Z", "delay": 9223372036854775807}

{"ID": 2, "OK": false, "N": 2147483647, "X": -3, "S": "", "D": "1969-12-31", "TS": 978307260000, "Delay": -9223372036854775808}
   
{"id": null, "ok": null, "n": null, "x": null, "s": null, "d": null, "ts": "2001-01-01 00:01:00.5"}
{"ts": "2001-01-01T00:01:00.123456789+02:00"}
`
	mem := checkedMem(t)
	rec, err := DecodeNDJSON(strings.NewReader(body), spec, mem, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if !rec.Schema().Equal(spec.ArrowSchema()) {
		t.Fatalf("schema %v, want %v", rec.Schema(), spec.ArrowSchema())
	}
	if rec.NumRows() != 4 {
		t.Fatalf("rows = %d, want 4", rec.NumRows())
	}
	want := [][]any{
		{int64(1), int64(2), nil, nil},
		{true, false, nil, nil},
		{int32(-2147483648), int32(2147483647), nil, nil},
		{1.5, -3.0, nil, nil},
		{"héllo", "", nil, nil},
		{arrow.Date32(11323), arrow.Date32(-1), nil, nil},
		{
			micros(utc(2001, 1, 1, 0, 1, 0, 0)),
			micros(utc(2001, 1, 1, 0, 1, 0, 0)),
			micros(utc(2001, 1, 1, 0, 1, 0, 500_000_000)),
			micros(utc(2000, 12, 31, 22, 1, 0, 123_456_000)),
		},
		{int64(9223372036854775807), int64(-9223372036854775808), nil, nil},
	}
	for c := range want {
		if got := columnValues(rec, c); !reflect.DeepEqual(got, want[c]) {
			t.Errorf("column %s = %v, want %v", spec.Columns[c].Name, got, want[c])
		}
	}
}

func TestDecodeNDJSONTimestampForms(t *testing.T) {
	spec := testSpec(t)
	cases := []struct {
		in   string
		want time.Time
	}{
		{`"2001-01-01T00:01:00Z"`, utc(2001, 1, 1, 0, 1, 0, 0)},
		{`"2001-01-01t00:01:00z"`, utc(2001, 1, 1, 0, 1, 0, 0)},
		{`"2001-01-01T00:01:00.123+02:00"`, utc(2000, 12, 31, 22, 1, 0, 123_000_000)},
		{`"2001-01-01T00:01:00-05:30"`, utc(2001, 1, 1, 5, 31, 0, 0)},
		{`"2001-01-01T00:01:00+0200"`, utc(2000, 12, 31, 22, 1, 0, 0)},
		{`"2001-01-01T00:01:00+02"`, utc(2000, 12, 31, 22, 1, 0, 0)},
		{`"2001-01-01 00:01:00"`, utc(2001, 1, 1, 0, 1, 0, 0)},
		{`"2001-01-01T00:01:00"`, utc(2001, 1, 1, 0, 1, 0, 0)},
		{`"2001-01-01 00:01:00.1"`, utc(2001, 1, 1, 0, 1, 0, 100_000_000)},
		{`"2001-01-01T00:01:00.123456"`, utc(2001, 1, 1, 0, 1, 0, 123_456_000)},
		{`"2001-01-01T00:01:00.123456789"`, utc(2001, 1, 1, 0, 1, 0, 123_456_000)},
		{`"2001-01-01 00:01:00.999999Z"`, utc(2001, 1, 1, 0, 1, 0, 999_999_000)},
		{`"2001-01-01"`, utc(2001, 1, 1, 0, 0, 0, 0)},
		{`"1969-12-31T23:59:59.9999995Z"`, utc(1969, 12, 31, 23, 59, 59, 999_999_000)},
		{`978307260000`, utc(2001, 1, 1, 0, 1, 0, 0)},
		{`978307260000.5`, utc(2001, 1, 1, 0, 1, 0, 500_000)},
		{`-1`, utc(1969, 12, 31, 23, 59, 59, 999_000_000)},
		{`-0.0015`, utc(1969, 12, 31, 23, 59, 59, 999_998_000)},
		{`0`, utc(1970, 1, 1, 0, 0, 0, 0)},
	}
	for _, c := range cases {
		rec, err := DecodeNDJSON(strings.NewReader(`{"ts": `+c.in+`}`), spec, nil, Limits{})
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		ti := spec.TimeIndex()
		if got, want := cell(rec, ti, 0), micros(c.want); got != want {
			t.Errorf("%s = %v, want %v (%s)", c.in, got, want, c.want)
		}
		rec.Release()
	}
}

func TestDecodeNDJSONBadRows(t *testing.T) {
	spec := testSpec(t)
	const good = `{"ts": "2001-01-01T00:00:00Z", "id": 1}`
	cases := []struct {
		name       string
		line       string // becomes line 3, after a good line and a blank one
		wantColumn string
		wantReason []string
	}{
		{"string for bigint", `{"ts": 0, "delay": "abc"}`, "delay", []string{`expected bigint, got string "abc"`}},
		{"fraction for bigint", `{"ts": 0, "id": 3.5}`, "id", []string{"expected bigint, got number 3.5", "whole number"}},
		{"exponent for integer", `{"ts": 0, "n": 1e3}`, "n", []string{"expected integer, got number 1e3"}},
		{"integer overflow", `{"ts": 0, "n": 2147483648}`, "n", []string{"out of range for integer", "-2147483648 to 2147483647"}},
		{"bigint overflow", `{"ts": 0, "id": 9223372036854775808}`, "id", []string{"out of range for bigint"}},
		{"string for boolean", `{"ts": 0, "ok": "true"}`, "ok", []string{`expected boolean, got string "true"`}},
		{"number for boolean", `{"ts": 0, "ok": 1}`, "ok", []string{`expected boolean, got number 1`}},
		{"string for double", `{"ts": 0, "x": "1.5"}`, "x", []string{`expected double, got string "1.5"`}},
		{"double overflow", `{"ts": 0, "x": 1e400}`, "x", []string{"out of range for double"}},
		{"number for varchar", `{"ts": 0, "s": 12}`, "s", []string{"expected varchar, got number 12", "quote it"}},
		{"object for varchar", `{"ts": 0, "s": {"a": 1}}`, "s", []string{"expected varchar, got an object"}},
		{"array for varchar", `{"ts": 0, "s": [1]}`, "s", []string{"expected varchar, got an array"}},
		{"bad date", `{"ts": 0, "d": "2001-02-30"}`, "d", []string{`expected date, got string "2001-02-30"`}},
		{"number for date", `{"ts": 0, "d": 20010101}`, "d", []string{"expected date, got number 20010101"}},
		{"bad timestamp", `{"ts": "yesterday"}`, "ts", []string{`expected timestamp, got string "yesterday"`, "RFC 3339"}},
		{"ten fraction digits", `{"ts": "2001-01-01T00:00:00.1234567890Z"}`, "ts", []string{"expected timestamp"}},
		{"bad zone", `{"ts": "2001-01-01T00:00:00 UTC"}`, "ts", []string{"expected timestamp"}},
		{"timestamp exponent", `{"ts": 9.7e11}`, "ts", []string{"epoch milliseconds", "exponent"}},
		{"boolean for timestamp", `{"ts": true}`, "ts", []string{"expected timestamp, got boolean true"}},
		{"missing time column", `{"id": 1}`, "ts", []string{"missing time column"}},
		{"null time column", `{"id": 1, "ts": null}`, "ts", []string{"missing time column"}},
		{"unknown key", `{"ts": 0, "dealy": 5}`, "dealy", []string{"unknown column", "id, ok, n, x, s, d, ts, delay"}},
		{"duplicate key", `{"ts": 0, "id": 1, "ID": 2}`, "id", []string{"more than once"}},
		{"malformed JSON", `{"ts": 0, "id": }`, "", []string{"invalid JSON", "invalid character"}},
		{"cut short", `{"ts": 0, "id": 1`, "", []string{"invalid JSON", "end of line"}},
		{"not an object", `[1, 2]`, "", []string{"expected a JSON object, got an array"}},
		{"scalar line", `"hello"`, "", []string{`expected a JSON object, got string "hello"`}},
		{"two objects on a line", `{"ts": 0} {"ts": 1}`, "", []string{"after the JSON object"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := checkedMem(t)
			body := good + "\n\n" + c.line + "\n" + good + "\n"
			rec, err := DecodeNDJSON(strings.NewReader(body), spec, mem, Limits{})
			if rec != nil {
				rec.Release()
				t.Fatal("got a record despite a bad row")
			}
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want *RowError", err, err)
			}
			if re.Row != 3 || re.Column != c.wantColumn {
				t.Errorf("row %d column %q, want row 3 column %q (%v)", re.Row, re.Column, c.wantColumn, err)
			}
			for _, w := range c.wantReason {
				if !strings.Contains(re.Reason, w) {
					t.Errorf("reason %q does not contain %q", re.Reason, w)
				}
			}
		})
	}
}

func TestRowErrorMessage(t *testing.T) {
	spec := testSpec(t)
	body := "{\"ts\": 0}\n{\"ts\": 0}\n{\"ts\": 0, \"delay\": \"abc\"}\n"
	_, err := DecodeNDJSON(strings.NewReader(body), spec, nil, Limits{})
	want := `row 3, column "delay": expected bigint, got string "abc" (use a JSON number without quotes)`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	long := strings.Repeat("x", 500)
	_, err = DecodeNDJSON(strings.NewReader(`{"ts": 0, "id": "`+long+`"}`), spec, nil, Limits{})
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a long value is not shortened: %v", err)
	}
}

func TestDecodeNDJSONNoRowsAndLimits(t *testing.T) {
	spec := testSpec(t)
	for _, body := range []string{"", "\n", "  \n\t\r\n"} {
		if _, err := DecodeNDJSON(strings.NewReader(body), spec, nil, Limits{}); !errors.Is(err, ErrNoRows) || err.Error() != "request has no rows" {
			t.Errorf("body %q: error %v, want ErrNoRows", body, err)
		}
	}
	body := strings.Repeat(`{"ts": 0}`+"\n", 3)
	mem := checkedMem(t)
	if _, err := DecodeNDJSON(strings.NewReader(body), spec, mem, Limits{MaxRows: 2}); !errors.Is(err, ErrTooManyRows) {
		t.Errorf("3 rows with MaxRows 2: error %v, want ErrTooManyRows", err)
	}
	rec, err := DecodeNDJSON(strings.NewReader(body), spec, mem, Limits{MaxRows: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rec.NumRows() != 3 {
		t.Errorf("rows = %d, want 3", rec.NumRows())
	}
	rec.Release()
	if _, err := DecodeNDJSON(strings.NewReader(body), spec, nil, Limits{MaxRows: -1}); err == nil {
		t.Error("negative MaxRows accepted")
	}
}

func TestDecodeNDJSONCRLFAndNoTrailingNewline(t *testing.T) {
	spec := testSpec(t)
	body := "{\"ts\": 0, \"s\": \"a\"}\r\n\r\n{\"ts\": 1, \"s\": \"b\"}"
	rec, err := DecodeNDJSON(strings.NewReader(body), spec, nil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if got, want := columnValues(rec, 4), []any{"a", "b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("s = %v, want %v", got, want)
	}
	_, err = DecodeNDJSON(strings.NewReader("{\"ts\": 0}\r\n\r\n{\"ts\": 1, \"x\": true}"), spec, nil, Limits{})
	var re *RowError
	if !errors.As(err, &re) || re.Row != 3 {
		t.Fatalf("error %v, want a RowError on physical line 3", err)
	}
}

// TestDecodeNDJSONErrorOutlivesItsBody: bodies' buffers are reused, so an
// error must not share its request's bytes; decoding the next requests,
// into the same buffer, leaves it intact.
func TestDecodeNDJSONErrorOutlivesItsBody(t *testing.T) {
	spec := testSpec(t)
	_, err := DecodeNDJSON(strings.NewReader(`{"ts": 0, "colour": "red"}`), spec, nil, Limits{})
	var re *RowError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want a RowError", err)
	}
	want := err.Error()
	for range 10 {
		rec, err := DecodeNDJSON(strings.NewReader(strings.Repeat(`{"ts": 1, "s": "overwritten"}`+"\n", 100)), spec, nil, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if re.Column != "colour" || err.Error() != want {
		t.Fatalf("after more requests the error reads %q, column %q; want %q, column colour", err.Error(), re.Column, want)
	}
}
