package main

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"2024-05-01T10:00:00Z", "2024-05-01T10:00:00z", "2024-05-01 10:00:00", "2024-05-01T10:00",
		"2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00+0200", "2024-05-01T12:00:00+02",
		"2024-05-01 12:00:00 +02:00", "2024-05-01T05:00:00.000-05:00", "2024-05-01t10:00:00Z",
	} {
		got, err := parseTimestamp(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, _ := parseTimestamp("2024-05-01T10:00:00.1234567Z"); got.Nanosecond() != 123456700 {
		t.Errorf("fraction lost: %v", got)
	}
	if got, _ := parseTimestamp("2024-05-01"); !got.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date only: %v", got)
	}
	for _, s := range []string{"05/01/2024", "2024-05-01T25:00:00", "1714557600", "yesterday"} {
		if _, err := parseTimestamp(s); err == nil {
			t.Errorf("parseTimestamp(%q) accepted it", s)
		}
	}
}

func TestAppendTextErrors(t *testing.T) {
	cases := []struct {
		typ  dataset.Type
		in   string
		want string
	}{
		{dataset.Integer, "3000000000", `"3000000000" is out of range for integer (use bigint for larger numbers)`},
		{dataset.Integer, "1.5", `"1.5" is not an integer`},
		{dataset.Bigint, "x", `"x" is not a bigint`},
		{dataset.Double, "1,5", `"1,5" is not a double`},
		{dataset.Boolean, "maybe", `"maybe" is not a boolean (want true or false)`},
		{dataset.Date, "2024-13-01", `"2024-13-01" is not a date (want YYYY-MM-DD)`},
	}
	for _, c := range cases {
		b := array.NewBuilder(memory.DefaultAllocator, c.typ.ArrowType())
		err := appendText(b, c.typ, c.in)
		if err == nil || err.Error() != c.want {
			t.Errorf("appendText(%s, %q) = %v, want %s", c.typ, c.in, err, c.want)
		}
		b.Release()
	}
	// Empty is NULL, for strings too; surrounding spaces are not part of a number.
	b := array.NewBuilder(memory.DefaultAllocator, dataset.Varchar.ArrowType())
	defer b.Release()
	if err := appendText(b, dataset.Varchar, ""); err != nil || b.NullN() != 1 {
		t.Errorf("empty varchar: err %v, nulls %d", err, b.NullN())
	}
	ib := array.NewInt32Builder(memory.DefaultAllocator)
	defer ib.Release()
	if err := appendText(ib, dataset.Integer, " 42 "); err != nil {
		t.Errorf("spaced integer: %v", err)
	}
}

func TestResolveFormat(t *testing.T) {
	cases := map[[2]string]string{
		{"", "a.ndjson"}: formatNDJSON, {"", "a.JSONL"}: formatNDJSON, {"", "a.csv"}: formatCSV,
		{"", "a.parquet"}: formatParquet, {"", "-"}: formatNDJSON, {"csv", "-"}: formatCSV, {"parquet", "x.bin"}: formatParquet,
	}
	for in, want := range cases {
		if got, err := resolveFormat(in[0], in[1]); err != nil || got != want {
			t.Errorf("resolveFormat(%q, %q) = %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
	if _, err := resolveFormat("", "data.txt"); err == nil || !strings.Contains(err.Error(), "pass --format") {
		t.Errorf("unknown extension: %v", err)
	}
	if _, err := resolveFormat("xml", "a.csv"); err == nil {
		t.Error("--format xml accepted")
	}
}

func TestServerRowPrefix(t *testing.T) {
	for in, want := range map[string]string{
		`row 3, column "delay": "x" is not a double`: `"x" is not a double`,
		`row 12: missing time column "ts"`:           `missing time column "ts"`,
		`line 4, column "a\"b": bad`:                 `bad`,
		`invalid JSON`:                               `invalid JSON`,
	} {
		if got := serverRowPrefix.ReplaceAllString(in, ""); got != want {
			t.Errorf("strip(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var out strings.Builder
	p := newProgress(&out, true, "f.csv")
	now := p.start
	p.now = func() time.Time { return now }
	p.totalBytes = 1000
	p.read(250)
	now = now.Add(2 * time.Second)
	p.sent(5000, 2_500_000)
	want := "\r\033[Kf.csv [#####...............]  25%  5,000 rows  2,500 rows/s  2.5 MB sent"
	if out.String() != want {
		t.Errorf("drawn %q\nwant  %q", out.String(), want)
	}
	out.Reset()
	p.retrying(client.RetryEvent{Status: 429, Wait: time.Second})
	if !strings.HasSuffix(out.String(), "server busy (429), retrying in 1.0s") {
		t.Errorf("retry note: %q", out.String())
	}
	out.Reset()
	p.finish()
	p.finish()
	if out.String() != "\r\033[K" {
		t.Errorf("finish wrote %q, want one line clear", out.String())
	}

	// Off a terminal nothing is drawn at all.
	var quiet strings.Builder
	q := newProgress(&quiet, false, "f.csv")
	q.sent(10, 10)
	q.finish()
	if quiet.Len() != 0 {
		t.Errorf("drew %q off a terminal", quiet.String())
	}
}
