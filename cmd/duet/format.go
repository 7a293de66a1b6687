package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duet-analytics/duet/internal/resulttext"
)

// resultColumn is one column of a query result, as output formats need it.
type resultColumn = resulttext.Column

// writeTable renders a result as an aligned table: a header, a separator,
// numbers right-aligned, NULL spelled out, and a row-count footer.
func writeTable(w io.Writer, cols []resultColumn, rows [][]any) error {
	names := make([]string, len(cols))
	numeric := make([]bool, len(cols))
	for i, c := range cols {
		names[i], numeric[i] = c.Name, c.Numeric()
	}
	cells := make([][]string, len(rows))
	for r, row := range rows {
		cells[r] = make([]string, len(cols))
		for i := range cols {
			s, ok := resulttext.Value(row[i], cols[i])
			if !ok {
				s = "NULL"
			}
			cells[r][i] = s
		}
	}
	return renderTable(w, names, numeric, cells)
}

// renderTable aligns cells under names: headers centred, numeric columns
// right-aligned, others left-aligned; control characters are escaped so a
// value stays on its line.
func renderTable(w io.Writer, names []string, numeric []bool, cells [][]string) error {
	widths := make([]int, len(names))
	for i, n := range names {
		widths[i] = displayWidth(n)
	}
	for _, row := range cells {
		for i := range row {
			row[i] = escapeControl(row[i])
			widths[i] = max(widths[i], displayWidth(row[i]))
		}
	}
	var b strings.Builder
	line := func(values []string, header bool) {
		var l strings.Builder
		l.WriteByte(' ')
		for i, v := range values {
			if i > 0 {
				l.WriteString(" | ")
			}
			n := widths[i] - displayWidth(v)
			switch {
			case header: // centred, as psql and the Trino CLI do
				l.WriteString(strings.Repeat(" ", n/2) + v + strings.Repeat(" ", n-n/2))
			case numeric[i]:
				l.WriteString(strings.Repeat(" ", n) + v)
			default:
				l.WriteString(v + strings.Repeat(" ", n))
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(names, true)
	seps := make([]string, len(names))
	for i := range names {
		seps[i] = strings.Repeat("-", widths[i]+2)
	}
	b.WriteString(strings.Join(seps, "+") + "\n")
	for _, row := range cells {
		line(row, false)
	}
	b.WriteString(rowCount(len(cells)) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func rowCount(n int) string {
	if n == 1 {
		return "(1 row)"
	}
	return fmt.Sprintf("(%d rows)", n)
}

// escapeControl keeps one value on one table line.
func escapeControl(s string) string {
	if !strings.ContainsAny(s, "\n\r\t") {
		return s
	}
	return strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
}

func displayWidth(s string) int { return utf8.RuneCountInString(s) }

// resultSink takes a query result as it arrives, so CSV and JSON output
// stream; a table needs every row before it can align them.
type resultSink interface {
	begin(cols []resultColumn) error
	row(vals []any) error
	end() error
}

func newResultSink(format string, w io.Writer) (resultSink, error) {
	switch format {
	case "table":
		return &tableSink{w: w}, nil
	case "csv":
		return &csvSink{cw: csv.NewWriter(w)}, nil
	case "json":
		return &jsonSink{w: bufio.NewWriter(w)}, nil
	}
	return nil, fmt.Errorf("--format %q: use table, csv or json", format)
}

// writeResult sends a whole result to a sink.
func writeResult(s resultSink, cols []resultColumn, rows [][]any) error {
	if err := s.begin(cols); err != nil {
		return err
	}
	for _, r := range rows {
		if err := s.row(r); err != nil {
			return err
		}
	}
	return s.end()
}

type tableSink struct {
	w io.Writer
	collectSink
}

func (t *tableSink) end() error { return writeTable(t.w, t.cols, t.rows) }

// csvSink writes CSV with a header row; NULL is an empty field.
type csvSink struct {
	cw   *csv.Writer
	cols []resultColumn
	rec  []string
}

func (c *csvSink) begin(cols []resultColumn) error {
	c.cols, c.rec = cols, make([]string, len(cols))
	for i, col := range cols {
		c.rec[i] = col.Name
	}
	return c.cw.Write(c.rec)
}

func (c *csvSink) row(vals []any) error {
	for i := range c.cols {
		c.rec[i], _ = resulttext.Value(vals[i], c.cols[i])
	}
	return c.cw.Write(c.rec)
}

func (c *csvSink) end() error {
	c.cw.Flush()
	return c.cw.Error()
}

// jsonSink writes one JSON object per row, keys in column order; numbers
// stay numbers (non-finite ones become strings), NULL is null.
type jsonSink struct {
	w    *bufio.Writer
	cols []resultColumn
	keys [][]byte
	buf  []byte
}

func (j *jsonSink) begin(cols []resultColumn) error {
	j.cols, j.keys = cols, make([][]byte, len(cols))
	for i, c := range cols {
		k, err := json.Marshal(c.Name)
		if err != nil {
			return err
		}
		j.keys[i] = k
	}
	return nil
}

func (j *jsonSink) row(vals []any) error {
	b := append(j.buf[:0], '{')
	for i := range j.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, j.keys[i]...)
		b = append(b, ':')
		v, err := jsonValue(vals[i], j.cols[i])
		if err != nil {
			return fmt.Errorf("column %q: %w", j.cols[i].Name, err)
		}
		b = append(b, v...)
	}
	b = append(b, '}', '\n')
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

func (j *jsonSink) end() error { return j.w.Flush() }

func jsonValue(v any, col resultColumn) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return []byte("null"), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return json.Marshal(resulttext.Float(x, 64))
		}
		return json.Marshal(x)
	case time.Time:
		return json.Marshal(resulttext.Time(x, col))
	case string:
		// Trino sends DECIMAL values as strings; keep them exact but numeric.
		if col.Type == "DECIMAL" && json.Valid([]byte(x)) {
			return []byte(x), nil
		}
		return json.Marshal(x)
	case []byte:
		return json.Marshal(string(x))
	}
	return json.Marshal(v)
}

// writeColumns renders a listing as plain columns separated by two spaces,
// for the list commands.
func writeColumns(w io.Writer, header []string, rows [][]string) error {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = displayWidth(h)
	}
	for _, r := range rows {
		for i, v := range r {
			widths[i] = max(widths[i], displayWidth(v))
		}
	}
	write := func(vals []string) error {
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(v)
			if i < len(vals)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(v)))
			}
		}
		_, err := io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
		return err
	}
	if err := write(header); err != nil {
		return err
	}
	for _, r := range rows {
		if err := write(r); err != nil {
			return err
		}
	}
	return nil
}

// writeFields renders label: value pairs with the values aligned, for the
// show commands. A value with several lines is indented under its label.
func writeFields(w io.Writer, fields [][2]string) error {
	width := 0
	for _, f := range fields {
		width = max(width, displayWidth(f[0]))
	}
	var b strings.Builder
	for _, f := range fields {
		lines := strings.Split(f[1], "\n")
		b.WriteString(f[0] + ":" + strings.Repeat(" ", width-displayWidth(f[0])+2) + lines[0] + "\n")
		for _, l := range lines[1:] {
			b.WriteString(strings.Repeat(" ", width+3) + l + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural writes a count and its noun: 1 file, 2 files.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return formatCount(n) + " " + noun + "s"
}

// formatCount writes an integer with thousands separators: 1,234,567.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatBytes writes a size in decimal units: 999 B, 1.2 MB.
func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// formatDuration rounds a duration for people: 1.2s, 3m20s, 2h5m.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// formatTimestamp shows an API time in UTC, to the second.
func formatTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
