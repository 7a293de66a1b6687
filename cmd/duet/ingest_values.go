package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/duet-analytics/duet/dataset"
)

// appendText parses one text value (a CSV field) as type t onto b, whose
// Arrow type is t.ArrowType(). An empty field is NULL. Errors say what the
// value should look like.
func appendText(b array.Builder, t dataset.Type, s string) error {
	if t != dataset.Varchar {
		s = strings.TrimSpace(s)
	}
	if s == "" {
		b.AppendNull()
		return nil
	}
	switch t {
	case dataset.Varchar:
		b.(*array.StringBuilder).Append(s)
	case dataset.Boolean:
		v, err := parseBool(s)
		if err != nil {
			return err
		}
		b.(*array.BooleanBuilder).Append(v)
	case dataset.Integer:
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return numberError(s, t, err, " (use bigint for larger numbers)")
		}
		b.(*array.Int32Builder).Append(int32(v))
	case dataset.Bigint:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return numberError(s, t, err, "")
		}
		b.(*array.Int64Builder).Append(v)
	case dataset.Double:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("%q is not a double", s)
		}
		b.(*array.Float64Builder).Append(v)
	case dataset.Date:
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return fmt.Errorf("%q is not a date (want YYYY-MM-DD)", s)
		}
		b.(*array.Date32Builder).Append(arrow.Date32FromTime(d))
	case dataset.Timestamp:
		ts, err := parseTimestamp(s)
		if err != nil {
			return err
		}
		b.(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
	default:
		return fmt.Errorf("unsupported column type %q", t)
	}
	return nil
}

func numberError(s string, t dataset.Type, err error, hint string) error {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%q is out of range for %s%s", s, t, hint)
	}
	return fmt.Errorf("%q is not %s %s", s, article(string(t)), t)
}

func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "t", "yes", "y", "1":
		return true, nil
	case "false", "f", "no", "n", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (want true or false)", s)
}

// timestampLayouts are the ISO 8601 forms CSV timestamps may take, after a
// space between date and time has been turned into a T. Fractional seconds
// are accepted after the seconds of any of them.
var timestampLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseTimestamp reads an ISO 8601 date-time: 2024-05-01T12:00:00Z,
// 2024-05-01 12:00:00.123+02:00, 2024-05-01T12:00, 2024-05-01. A time without
// a zone is UTC. Digits beyond microseconds are truncated.
func parseTimestamp(s string) (time.Time, error) {
	v := s
	if len(v) > 10 && (v[10] == ' ' || v[10] == 't') {
		v = v[:10] + "T" + v[11:]
	}
	if strings.HasSuffix(v, "z") {
		v = v[:len(v)-1] + "Z"
	}
	v = strings.Replace(v, " ", "", 1) // "12:00:00 +02:00"
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp (want ISO 8601, like 2024-05-01T12:00:00Z or 2024-05-01 12:00:00.5)", s)
}
