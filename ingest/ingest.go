// Package ingest decodes producers' payloads (NDJSON or an Arrow IPC stream)
// into one Arrow record batch typed by the dataset's schema, ready to append
// to the dataset's log. Decoding is atomic: a request with any bad row is
// rejected whole, with an error naming the row and column and saying what to
// change, so producers can fix and resend without duplicates.
//
// Every error the decoders return describes a problem with the request
// (errors reading the body are wrapped, so a caller can still recognise
// e.g. *http.MaxBytesError).
package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/duet-analytics/duet/dataset"
)

// Errors callers may test for with errors.Is.
var (
	// ErrNoRows is returned for a request without a single row.
	ErrNoRows = errors.New("request has no rows")
	// ErrTooManyRows is returned when a request exceeds Limits.MaxRows.
	ErrTooManyRows = errors.New("request has too many rows")
)

// Limits bounds one request.
type Limits struct {
	// MaxRows is the most rows one request may carry; 0 means unlimited.
	MaxRows int
}

// Validate checks the limits, naming the bad field.
func (l Limits) Validate() error {
	if l.MaxRows < 0 {
		return fmt.Errorf("max_rows: must be 0 (unlimited) or positive, not %d", l.MaxRows)
	}
	return nil
}

func (l Limits) check(rows int) error {
	if l.MaxRows > 0 && rows > l.MaxRows {
		return fmt.Errorf("%w: more than %d; split it into smaller requests", ErrTooManyRows, l.MaxRows)
	}
	return nil
}

// RowError says which row of a request is bad and why. Row is 1-based: for
// NDJSON the physical line number in the body, for Arrow the row across all
// batches of the stream. Column is empty when the whole row is bad.
type RowError struct {
	Row    int
	Column string
	Reason string
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Reason)
	}
	return fmt.Sprintf("row %d, column %q: %s", e.Row, e.Column, e.Reason)
}

// columnIndex maps lower-cased column names to their positions, since keys
// and Arrow field names match columns case-insensitively as SQL does.
func columnIndex(spec *dataset.Spec) map[string]int {
	m := make(map[string]int, len(spec.Columns))
	for i, c := range spec.Columns {
		m[strings.ToLower(c.Name)] = i
	}
	return m
}

func columnList(spec *dataset.Spec) string {
	names := make([]string, len(spec.Columns))
	for i, c := range spec.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// quoteShort quotes s for an error message, shortened so that one huge value
// does not make a huge error.
func quoteShort(s string) string {
	short := shorten(s)
	if len(short) == len(s) {
		return strconv.Quote(s)
	}
	return strconv.Quote(short[:len(short)-3]) + "..."
}

// shorten cuts s to its first 40 characters, marking the cut with "...".
func shorten(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + "..."
		}
		n++
	}
	return s
}
