package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestWriteTable(t *testing.T) {
	cols := []resultColumn{
		{Name: "origin", Type: "VARCHAR"},
		{Name: "n", Type: "BIGINT"},
		{Name: "avg_delay", Type: "DOUBLE"},
		{Name: "first_seen", Type: "TIMESTAMP", Precision: 3},
	}
	ts := time.Date(2024, 5, 1, 12, 30, 0, 250e6, time.UTC)
	rows := [][]any{
		{"SFO", int64(1234567), 2.5, ts},
		{"Zürich", int64(7), nil, ts},
		{nil, int64(-3), 1e20, nil},
	}
	var b strings.Builder
	if err := writeTable(&b, cols, rows); err != nil {
		t.Fatal(err)
	}
	want := "" +
		" origin |    n    | avg_delay |       first_seen\n" +
		"--------+---------+-----------+-------------------------\n" +
		" SFO    | 1234567 |       2.5 | 2024-05-01 12:30:00.250\n" +
		" Zürich |       7 |      NULL | 2024-05-01 12:30:00.250\n" +
		" NULL   |      -3 |     1e+20 | NULL\n" +
		"(3 rows)\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteTableEmptyAndSingular(t *testing.T) {
	cols := []resultColumn{{Name: "x", Type: "INTEGER"}}
	var b strings.Builder
	_ = writeTable(&b, cols, nil)
	if b.String() != " x\n---\n(0 rows)\n" {
		t.Errorf("empty table = %q", b.String())
	}
	b.Reset()
	_ = writeTable(&b, cols, [][]any{{int64(1)}})
	if !strings.HasSuffix(b.String(), "(1 row)\n") {
		t.Errorf("one-row table = %q", b.String())
	}
	b.Reset()
	_ = writeTable(&b, []resultColumn{{Name: "s", Type: "VARCHAR"}}, [][]any{{"a\nb"}})
	if !strings.Contains(b.String(), ` a\nb`) {
		t.Errorf("newline in a value must not break the row: %q", b.String())
	}
}

func TestWriteCSVAndJSON(t *testing.T) {
	cols := []resultColumn{{Name: "name", Type: "VARCHAR"}, {Name: "n", Type: "BIGINT"}, {Name: "d", Type: "DECIMAL"}, {Name: "x", Type: "DOUBLE"}}
	rows := [][]any{{"a,b", int64(1), "1.50", math.Inf(1)}, {nil, nil, nil, 2.5}}
	var b strings.Builder
	csvOut, _ := newResultSink("csv", &b)
	if err := writeResult(csvOut, cols, rows); err != nil {
		t.Fatal(err)
	}
	if want := "name,n,d,x\n\"a,b\",1,1.50,Infinity\n,,,2.5\n"; b.String() != want {
		t.Errorf("csv = %q, want %q", b.String(), want)
	}
	b.Reset()
	jsonOut, _ := newResultSink("json", &b)
	if err := writeResult(jsonOut, cols, rows); err != nil {
		t.Fatal(err)
	}
	if want := "{\"name\":\"a,b\",\"n\":1,\"d\":1.50,\"x\":\"Infinity\"}\n{\"name\":null,\"n\":null,\"d\":null,\"x\":2.5}\n"; b.String() != want {
		t.Errorf("json = %q, want %q", b.String(), want)
	}
}

func TestResultWriterRejectsUnknownFormat(t *testing.T) {
	if _, err := newResultSink("xml", nil); err == nil || err.Error() != `--format "xml": use table, csv or json` {
		t.Errorf("err = %v", err)
	}
}

func TestQueryText(t *testing.T) {
	q, err := queryText(nil, "", strings.NewReader("  SELECT 1;\n"))
	if err != nil || q != "SELECT 1" {
		t.Errorf("from stdin: %q, %v", q, err)
	}
	if _, err := queryText(nil, "", strings.NewReader(" ; ")); err == nil {
		t.Error("an empty query was accepted")
	}
	if _, err := queryText([]string{"SELECT 1"}, "f.sql", nil); err == nil {
		t.Error("both an argument and -f were accepted")
	}
}

func TestWriteColumnsAndFields(t *testing.T) {
	var b strings.Builder
	_ = writeColumns(&b, []string{"NAME", "N"}, [][]string{{"long_name", "1"}, {"x", ""}})
	if want := "NAME       N\nlong_name  1\nx\n"; b.String() != want {
		t.Errorf("columns = %q, want %q", b.String(), want)
	}
	b.Reset()
	_ = writeFields(&b, [][2]string{{"a", "1"}, {"longer", "x\ny"}})
	if want := "a:       1\nlonger:  x\n         y\n"; b.String() != want {
		t.Errorf("fields = %q, want %q", b.String(), want)
	}
}

func TestHumanFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{999: "999 B", 1000: "1.0 kB", 1234567: "1.2 MB", 5e9: "5.0 GB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		250 * time.Millisecond: "250ms", 1234 * time.Millisecond: "1.2s",
		200 * time.Second: "3m20s", 2*time.Hour + 5*time.Minute + 10*time.Second: "2h5m",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestPlural(t *testing.T) {
	if got := plural(1, "file") + "; " + plural(0, "file") + "; " + plural(2500, "row"); got != "1 file; 0 files; 2,500 rows" {
		t.Errorf("plural = %q", got)
	}
}

func TestOneLine(t *testing.T) {
	in := "unknown command \"vew\" for \"duet\"\n\nDid you mean this?\n\tview\n"
	if got := oneLine(in); got != `unknown command "vew" for "duet" (did you mean "view"?)` {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine("a\n  b\n"); got != "a b" {
		t.Errorf("oneLine = %q", got)
	}
}
