package notebooks

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duet-analytics/duet/internal/resulttext"
)

// column is one result column.
type column = resulttext.Column

// result is a statement's answer as a cell shows it: the first rows, and
// how many there were in all.
type result struct {
	Columns []column
	Rows    [][]any
	Total   int
}

// plainTable renders a result as aligned text: a header, a rule, numbers
// right-aligned, NULL spelled out, and a footer with the row count.
func plainTable(r result, maxRows int) string {
	cols := r.Columns
	cells := make([][]string, len(r.Rows))
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = utf8.RuneCountInString(c.Name)
	}
	for ri, row := range r.Rows {
		cells[ri] = make([]string, len(cols))
		for i := range cols {
			s, ok := resulttext.Value(row[i], cols[i])
			if !ok {
				s = "NULL"
			}
			s = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
			cells[ri][i] = s
			widths[i] = max(widths[i], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	line := func(vals []string, right func(int) bool) {
		for i, v := range vals {
			if i > 0 {
				b.WriteString(" | ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(v))
			if right(i) {
				b.WriteString(pad + v)
			} else if i == len(vals)-1 {
				b.WriteString(v)
			} else {
				b.WriteString(v + pad)
			}
		}
		b.WriteString("\n")
	}
	names := make([]string, len(cols))
	rule := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
		rule[i] = strings.Repeat("-", widths[i])
	}
	line(names, func(int) bool { return false })
	b.WriteString(strings.Join(rule, "-+-") + "\n")
	for _, row := range cells {
		line(row, func(i int) bool { return cols[i].Numeric() })
	}
	b.WriteString(rowCountNote(r, maxRows))
	return b.String()
}

// rowCountNote says how many rows there are and whether all are shown.
func rowCountNote(r result, maxRows int) string {
	if len(r.Rows) < r.Total {
		return fmt.Sprintf("(showing the first %d of %d rows; at most %d are shown)", len(r.Rows), r.Total, maxRows)
	}
	if r.Total == 1 {
		return "(1 row)"
	}
	return fmt.Sprintf("(%d rows)", r.Total)
}

// htmlTable renders a result as an HTML table, every name and value escaped.
func htmlTable(r result, maxRows int) string {
	var b strings.Builder
	b.WriteString("<table>\n<thead>\n<tr>")
	for _, c := range r.Columns {
		b.WriteString("<th>" + html.EscapeString(c.Name) + "</th>")
	}
	b.WriteString("</tr>\n</thead>\n<tbody>\n")
	for _, row := range r.Rows {
		b.WriteString("<tr>")
		for i, c := range r.Columns {
			s, ok := resulttext.Value(row[i], c)
			style := ""
			if c.Numeric() {
				style = ` style="text-align: right"`
			}
			if !ok {
				b.WriteString("<td" + style + "><em>NULL</em></td>")
				continue
			}
			b.WriteString("<td" + style + ">" + html.EscapeString(s) + "</td>")
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n<p>" + html.EscapeString(rowCountNote(r, maxRows)) + "</p>\n")
	return b.String()
}

// Chart is a cell's request for a chart, cell metadata
// {"duet": {"chart": {"mark": "line", "x": "hour", "y": "flights", "color": "origin"}}}.
// JupySQL ignores it; a run adds a Vega-Lite v5 spec of the result.
type Chart struct {
	Mark  string `json:"mark"`
	X     string `json:"x"`
	Y     string `json:"y"`
	Color string `json:"color,omitempty"`
	Title string `json:"title,omitempty"`
}

// vegaLiteMarks are the marks a chart may ask for (Vega-Lite v5's).
var vegaLiteMarks = []string{"arc", "area", "bar", "circle", "line", "point", "rect", "rule", "square", "text", "tick", "trail"}

// MIMEVegaLite is the MIME type JupyterLab renders Vega-Lite v5 specs of.
const MIMEVegaLite = "application/vnd.vegalite.v5+json"

// cellChart reads a cell's chart request, nil when it has none.
func cellChart(c *Cell) (*Chart, error) {
	raw, ok := c.Metadata["duet"]
	if !ok {
		return nil, nil
	}
	var meta struct {
		Chart json.RawMessage `json:"chart"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("cell metadata duet: %w", err)
	}
	if len(meta.Chart) == 0 || string(meta.Chart) == "null" {
		return nil, nil
	}
	var ch Chart
	dec := json.NewDecoder(strings.NewReader(string(meta.Chart)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ch); err != nil {
		return nil, fmt.Errorf("cell metadata duet.chart: %w (it takes mark, x, y, color and title)", err)
	}
	if !slices.Contains(vegaLiteMarks, ch.Mark) {
		return nil, fmt.Errorf("cell metadata duet.chart: mark %q: give one of %s", ch.Mark, strings.Join(vegaLiteMarks, ", "))
	}
	if ch.X == "" || ch.Y == "" {
		return nil, fmt.Errorf("cell metadata duet.chart: give the columns of x and y")
	}
	return &ch, nil
}

// vegaLiteSpec makes a Vega-Lite v5 spec of the chart with the rows inline.
// Each channel's type follows its column's: dates and timestamps temporal,
// numbers quantitative, anything else nominal.
func vegaLiteSpec(ch *Chart, cols []column, rows [][]any) (map[string]any, error) {
	idx := map[string]int{}
	names := make([]string, len(cols))
	for i, c := range cols {
		idx[c.Name], names[i] = i, c.Name
	}
	encoding := map[string]any{}
	for _, ch := range []struct{ channel, field string }{{"x", ch.X}, {"y", ch.Y}, {"color", ch.Color}} {
		if ch.field == "" {
			continue
		}
		i, ok := idx[ch.field]
		if !ok {
			return nil, fmt.Errorf("chart %s: the result has no column %q (its columns: %s)", ch.channel, ch.field, strings.Join(names, ", "))
		}
		typ := "nominal"
		switch {
		case cols[i].Temporal():
			typ = "temporal"
		case cols[i].Numeric():
			typ = "quantitative"
		}
		encoding[ch.channel] = map[string]any{"field": vegaField(ch.field), "type": typ, "title": ch.field}
	}
	values := make([]map[string]any, len(rows))
	for r, row := range rows {
		v := make(map[string]any, len(cols))
		for i, c := range cols {
			v[c.Name] = vegaValue(row[i], c)
		}
		values[r] = v
	}
	spec := map[string]any{
		"$schema":  "https://vega.github.io/schema/vega-lite/v5.json",
		"data":     map[string]any{"values": values},
		"mark":     map[string]any{"type": ch.Mark, "tooltip": true},
		"encoding": encoding,
		"width":    600,
	}
	if ch.Title != "" {
		spec["title"] = ch.Title
	}
	return spec, nil
}

// vegaField escapes the characters Vega-Lite reads as nested field access.
func vegaField(name string) string {
	return strings.NewReplacer(`\`, `\\`, ".", `\.`, "[", `\[`, "]", `\]`).Replace(name)
}

// vegaValue is a value as JSON data for Vega-Lite: temporal values as ISO
// 8601 text without a zone (Vega reads it as that wall clock), numbers as
// numbers (NaN and infinities, which JSON lacks, as null).
func vegaValue(v any, c column) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case time.Time:
		if c.BaseType() == "DATE" {
			return x.Format(time.DateOnly)
		}
		return x.Format("2006-01-02T15:04:05.999999999")
	case []byte:
		return string(x)
	}
	return v
}
