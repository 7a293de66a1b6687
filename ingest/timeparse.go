package ingest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const (
	microsPerDay   = 86_400_000_000
	maxFracDigits  = 9
	dateLayout     = "2006-01-02"
	dateTimeLayout = "2006-01-02T15:04:05"
)

// parseDate parses "2001-01-01" into days since the Unix epoch.
func parseDate(s string) (int32, bool) {
	if len(s) != len(dateLayout) || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	year, ok1 := digitsAt(s, 0, 4)
	month, ok2 := digitsAt(s, 5, 2)
	day, ok3 := digitsAt(s, 8, 2)
	if !(ok1 && ok2 && ok3) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return 0, false
	}
	return int32(daysFromCivil(year, month, day)), true
}

// parseTimestamp parses an ISO 8601 / RFC 3339 date-time into microseconds
// since the Unix epoch, UTC. Accepted: a 'T' or space between date and time,
// an optional fraction of 1 to 9 digits (kept to the microsecond), and an
// optional zone: Z, +hh:mm, +hhmm or +hh. Without a zone the time is UTC. A
// bare date means midnight UTC.
func parseTimestamp(s string) (int64, bool) {
	if us, ok := parseUTCTimestamp(s); ok {
		return us, true
	}
	return parseTimestampLayout(s)
}

// parseTimestampLayout is parseTimestamp by time.Parse, for every form.
func parseTimestampLayout(s string) (int64, bool) {
	if len(s) == len(dateLayout) {
		d, ok := parseDate(s)
		return int64(d) * microsPerDay, ok
	}
	if len(s) < len(dateTimeLayout) {
		return 0, false
	}
	switch s[10] {
	case 'T', 't', ' ':
	default:
		return 0, false
	}
	rest := s[len(dateTimeLayout):]
	fracLen := 0
	if strings.HasPrefix(rest, ".") {
		for fracLen+1 < len(rest) && rest[fracLen+1] >= '0' && rest[fracLen+1] <= '9' {
			fracLen++
		}
		if fracLen == 0 || fracLen > maxFracDigits {
			return 0, false
		}
		fracLen++ // the dot
	}
	zone := rest[fracLen:]
	layout := dateTimeLayout
	switch {
	case zone == "":
	case zone == "Z" || zone == "z":
		zone, layout = "Z", dateTimeLayout+"Z07:00"
	case len(zone) == 6 && zone[3] == ':':
		layout = dateTimeLayout + "-07:00"
	case len(zone) == 5:
		layout = dateTimeLayout + "-0700"
	case len(zone) == 3:
		layout = dateTimeLayout + "-07"
	default:
		return 0, false
	}
	if zone != "" && zone != "Z" && zone[0] != '+' && zone[0] != '-' {
		return 0, false
	}
	// time.Parse accepts the fraction after the seconds without the layout
	// naming it; normalise the separator and zone letter for the layout.
	norm := s
	if s[10] != 'T' || zone == "Z" && s[len(s)-1] != 'Z' {
		norm = s[:10] + "T" + s[11:len(dateTimeLayout)+fracLen] + zone
	}
	t, err := time.Parse(layout, norm)
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// parseEpochMillis reads a JSON number of milliseconds since the Unix epoch
// into microseconds. A decimal fraction is kept to the microsecond; exponents
// are refused, since they make it easy to lose precision silently.
func parseEpochMillis(num string) (int64, error) {
	if strings.ContainsAny(num, "eE") {
		return 0, fmt.Errorf("write epoch milliseconds as a plain number without an exponent")
	}
	intPart, frac, _ := strings.Cut(num, ".")
	ms, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || ms > math.MaxInt64/1000 || ms < math.MinInt64/1000+1 {
		return 0, fmt.Errorf("out of range for epoch milliseconds")
	}
	us := ms * 1000
	neg := strings.HasPrefix(intPart, "-")
	var sub int64 // microseconds from the first three fraction digits
	for i := 0; i < 3; i++ {
		sub *= 10
		if i < len(frac) {
			sub += int64(frac[i] - '0')
		}
	}
	rounded := strings.TrimRight(frac[min(3, len(frac)):], "0") != ""
	if neg {
		us -= sub
		if rounded {
			us-- // floor, as for every other sub-microsecond value
		}
	} else {
		us += sub
	}
	return us, nil
}

// parseUTCTimestamp is parseTimestamp's fast path for what producers send
// most, a UTC date-time: "2001-02-03T04:05:06", a space for the T, an
// optional fraction of 1 to 9 digits and an optional Z. It accepts exactly
// what time.Parse accepts there (every field in range, the day within its
// month); anything else, offsets included, takes the general path.
func parseUTCTimestamp(s string) (int64, bool) {
	if len(s) < len(dateTimeLayout) || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	switch s[10] {
	case 'T', 't', ' ':
	default:
		return 0, false
	}
	days, ok := parseDate(s[:len(dateLayout)])
	hour, ok1 := digitsAt(s, 11, 2)
	minute, ok2 := digitsAt(s, 14, 2)
	sec, ok3 := digitsAt(s, 17, 2)
	if !(ok && ok1 && ok2 && ok3) || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := s[len(dateTimeLayout):]
	var micros, scale int64 = 0, 100_000
	if len(rest) > 0 && rest[0] == '.' {
		n := 0
		for n+1 < len(rest) && rest[n+1] >= '0' && rest[n+1] <= '9' {
			if n < 6 {
				micros += int64(rest[n+1]-'0') * scale
				scale /= 10
			}
			n++
		}
		if n == 0 || n > maxFracDigits {
			return 0, false
		}
		rest = rest[n+1:]
	}
	if rest != "" && rest != "Z" && rest != "z" {
		return 0, false
	}
	return int64(days)*microsPerDay + int64(hour*3600+minute*60+sec)*1_000_000 + micros, true
}

// digitsAt reads n decimal digits of s from i.
func digitsAt(s string, i, n int) (int, bool) {
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the days from 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
