package ingest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/duet-analytics/duet/dataset"
)

// TestUTCTimestampFastPathAgreesWithTimeParse: whatever the fast path
// accepts, time.Parse (the general path) accepts with the same value, over
// random date-times with fields in and out of range, leap days, fractions
// of every length and the separators and zones the fast path takes.
func TestUTCTimestampFastPathAgreesWithTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	const n = 200_000
	for i := 0; i < n; i++ {
		year := r.IntN(10000)
		if r.IntN(4) == 0 {
			year = []int{1600, 1900, 1969, 1970, 2000, 2024, 2100, 0, 9999}[r.IntN(9)]
		}
		frac := ""
		if k := r.IntN(12); k > 0 {
			frac = "."
			for j := 0; j < k; j++ {
				frac += string(rune('0' + r.IntN(10)))
			}
		}
		s := fmt.Sprintf("%04d-%02d-%02d%c%02d:%02d:%02d%s%s", year, r.IntN(14), r.IntN(33),
			"Tt x"[r.IntN(4)], r.IntN(26), r.IntN(62), r.IntN(62), frac, []string{"", "Z", "z", "+00:00", "Zx"}[r.IntN(5)])
		got, ok := parseUTCTimestamp(s)
		want, wantOK := parseTimestampLayout(s)
		if ok {
			accepted++
			if !wantOK || got != want {
				t.Fatalf("%s: fast path %d, time.Parse %d (ok %v)", s, got, want, wantOK)
			}
		}
		if pt, pok := parseTimestamp(s); pok != wantOK || pt != want {
			t.Fatalf("%s: parseTimestamp %d %v, time.Parse %d %v", s, pt, pok, want, wantOK)
		}
	}
	if accepted < n/20 {
		t.Fatalf("the fast path accepted %d of %d; the test would not exercise it", accepted, n)
	}
	for _, s := range []string{"2001-01-01T00:01:00.123Z", "2000-02-29 23:59:59", "1969-12-31T23:59:59.9999999"} {
		if _, ok := parseUTCTimestamp(s); !ok {
			t.Errorf("%s: want the fast path", s)
		}
	}
}

// TestDateAgreesWithTimeParse: parseDate reads exactly the dates
// time.Parse reads, to the same day.
func TestDateAgreesWithTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	accepted := 0
	for i := 0; i < 100_000; i++ {
		s := fmt.Sprintf("%04d-%02d-%02d", r.IntN(10000), r.IntN(14), r.IntN(33))
		if r.IntN(50) == 0 {
			s = s[:r.IntN(len(s))] + "x" + s[r.IntN(len(s)):]
		}
		got, ok := parseDate(s)
		tm, err := time.Parse(dateLayout, s)
		if ok != (err == nil) || ok && int64(got) != tm.Unix()/86_400 {
			t.Fatalf("%s: parseDate %d %v, time.Parse %v %v", s, got, ok, tm, err)
		}
		if ok {
			accepted++
		}
	}
	if accepted < 10_000 {
		t.Fatalf("only %d dates accepted", accepted)
	}
}

// TestJSONIntAgreesWithStrconv: the digit loop for short integers reads
// what strconv reads, and leaves range errors to the general path.
func TestJSONIntAgreesWithStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 100_000; i++ {
		num := strconv.FormatInt(r.Int64N(1<<(1+r.IntN(62))), 10)
		if r.IntN(2) == 0 {
			num = "-" + num
		}
		for _, typ := range []dataset.Type{dataset.Bigint, dataset.Integer} {
			got, reason := parseJSONInt(num, typ)
			want, err := strconv.ParseInt(num, 10, 64)
			inRange := err == nil && (typ == dataset.Bigint || want >= math.MinInt32 && want <= math.MaxInt32)
			if inRange != (reason == "") || inRange && got != want {
				t.Fatalf("%s as %s: %d %q, strconv %d %v", num, typ, got, reason, want, err)
			}
		}
	}
	for _, num := range []string{"-", "1.0", "1e3", "-9223372036854775808", "9223372036854775808", "2147483648"} {
		_, reason := parseJSONInt(num, dataset.Integer)
		if reason == "" {
			t.Errorf("%s as integer: accepted", num)
		}
	}
}
