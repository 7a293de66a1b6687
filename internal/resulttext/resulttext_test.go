package resulttext

import (
	"math"
	"testing"
	"time"
)

func TestValue(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 30, 5, 123456000, time.UTC)
	whole := time.Date(2024, 5, 1, 12, 30, 5, 0, time.UTC)
	tenth := 0.1
	cases := []struct {
		v    any
		col  Column
		want string
	}{
		{ts, Column{Type: "TIMESTAMP", Precision: 6}, "2024-05-01 12:30:05.123456"},
		{ts, Column{Type: "TIMESTAMP(3)", Precision: 3}, "2024-05-01 12:30:05.123"},
		{ts, Column{Type: "TIMESTAMP", Precision: 0}, "2024-05-01 12:30:05"},
		{ts, Column{Type: "TIMESTAMP", Precision: -1}, "2024-05-01 12:30:05.123456"},
		{whole, Column{Type: "TIMESTAMP", Precision: -1}, "2024-05-01 12:30:05"},
		{ts, Column{Type: "DATE"}, "2024-05-01"},
		{ts, Column{Type: "TIME(3)", Precision: 3}, "12:30:05.123"},
		{ts, Column{Type: "TIMESTAMP(3) WITH TIME ZONE", Precision: 3}, "2024-05-01 12:30:05.123 UTC"},
		{tenth + 0.2, Column{Type: "DOUBLE"}, "0.30000000000000004"},
		{float64(float32(0.1)), Column{Type: "REAL"}, "0.1"},
		{1e-7, Column{Type: "DOUBLE"}, "1e-07"},
		{1e16, Column{Type: "DOUBLE"}, "1e+16"},
		{123456.5, Column{Type: "DOUBLE"}, "123456.5"},
		{math.Inf(-1), Column{Type: "DOUBLE"}, "-Infinity"},
		{math.NaN(), Column{Type: "DOUBLE"}, "NaN"},
		{true, Column{Type: "BOOLEAN"}, "true"},
		{int64(-7), Column{Type: "BIGINT"}, "-7"},
		{"12.50", Column{Type: "DECIMAL(10,2)"}, "12.50"},
		{[]any{int64(1), "a"}, Column{Type: "ARRAY(VARCHAR)"}, `[1,"a"]`},
	}
	for _, c := range cases {
		if got, ok := Value(c.v, c.col); !ok || got != c.want {
			t.Errorf("Value(%v, %s) = %q, want %q", c.v, c.col.Type, got, c.want)
		}
	}
	if _, ok := Value(nil, Column{}); ok {
		t.Error("nil is not NULL")
	}
}

func TestColumnKinds(t *testing.T) {
	for typ, want := range map[string][2]bool{
		"BIGINT": {true, false}, "DECIMAL(10,2)": {true, false}, "VARCHAR": {false, false},
		"TIMESTAMP(3)": {false, true}, "TIMESTAMP(6) WITH TIME ZONE": {false, true}, "DATE": {false, true}, "TIME": {false, true},
	} {
		c := Column{Type: typ}
		if c.Numeric() != want[0] || c.Temporal() != want[1] {
			t.Errorf("%s: numeric %v temporal %v, want %v", typ, c.Numeric(), c.Temporal(), want)
		}
	}
	if got := (Column{Type: "TIMESTAMP(3) WITH TIME ZONE"}).BaseType(); got != "TIMESTAMP WITH TIME ZONE" {
		t.Errorf("base type %q", got)
	}
}
