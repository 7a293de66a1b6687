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
	secondsPerDay  = 86_400
	maxFracDigits  = 9
	dateLayout     = "2006-01-02"
	dateTimeLayout = "2006-01-02T15:04:05"
)

// parseDate parses "2001-01-01" into days since the Unix epoch.
func parseDate(s string) (int32, bool) {
	if len(s) != len(dateLayout) {
		return 0, false
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return 0, false
	}
	return int32(t.Unix() / secondsPerDay), true
}

// parseTimestamp parses an ISO 8601 / RFC 3339 date-time into microseconds
// since the Unix epoch, UTC. Accepted: a 'T' or space between date and time,
// an optional fraction of 1 to 9 digits (kept to the microsecond), and an
// optional zone: Z, +hh:mm, +hhmm or +hh. Without a zone the time is UTC. A
// bare date means midnight UTC.
func parseTimestamp(s string) (int64, bool) {
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
	var zoneLayout string
	switch {
	case zone == "":
	case zone == "Z" || zone == "z":
		zone, zoneLayout = "Z", "Z07:00"
	case len(zone) == 6 && zone[3] == ':':
		zoneLayout = "-07:00"
	case len(zone) == 5:
		zoneLayout = "-0700"
	case len(zone) == 3:
		zoneLayout = "-07"
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
	t, err := time.Parse(dateTimeLayout+zoneLayout, norm)
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
