// Package resulttext writes the values of query results as text, as the
// Trino CLI does: what `duet sql` tables and CSV and the tables of executed
// notebooks show.
package resulttext

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Column is one column of a query result.
type Column struct {
	Name string
	// Type is the type name the Trino protocol reports, upper case: BIGINT,
	// TIMESTAMP(3), DECIMAL(10,2)...
	Type string
	// Precision is the fractional digits TIME and TIMESTAMP values are
	// written with; -1 writes as many as the value has.
	Precision int
}

// Columns describes a result's columns from what the driver reports.
func Columns(types []*sql.ColumnType) []Column {
	cols := make([]Column, len(types))
	for i, t := range types {
		cols[i] = Column{Name: t.Name(), Type: strings.ToUpper(t.DatabaseTypeName()), Precision: -1}
		if p, _, ok := t.DecimalSize(); ok {
			cols[i].Precision = int(p)
		}
	}
	return cols
}

// BaseType is the type name without its parameters: TIMESTAMP for
// TIMESTAMP(3), TIMESTAMP WITH TIME ZONE for TIMESTAMP(3) WITH TIME ZONE.
func (c Column) BaseType() string {
	t := strings.ToUpper(c.Type)
	if open := strings.IndexByte(t, '('); open >= 0 {
		if end := strings.IndexByte(t[open:], ')'); end >= 0 {
			t = t[:open] + t[open+end+1:]
		}
	}
	return strings.TrimSpace(t)
}

// Numeric reports whether the column's values are right-aligned in tables.
func (c Column) Numeric() bool {
	switch c.BaseType() {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "REAL", "DOUBLE", "DECIMAL", "NUMBER":
		return true
	}
	return false
}

// Temporal reports whether the column holds dates, times or timestamps.
func (c Column) Temporal() bool {
	t := c.BaseType()
	return t == "DATE" || strings.HasPrefix(t, "TIME")
}

// Value writes one value of column c; ok is false for NULL. Arrays, maps
// and rows are written as JSON.
func Value(v any, c Column) (s string, ok bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case []byte:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case float64:
		bits := 64
		if c.BaseType() == "REAL" {
			bits = 32
		}
		return Float(x, bits), true
	case float32:
		return Float(float64(x), 32), true
	case time.Time:
		return Time(x, c), true
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b), true
	}
	return fmt.Sprint(v), true
}

// Float writes plain decimals for everyday magnitudes and exponents beyond
// them, as the Trino CLI (Java's Double.toString) does.
func Float(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if a := math.Abs(f); a == 0 || (a >= 1e-4 && a < 1e16) {
		return strconv.FormatFloat(f, 'f', -1, bits)
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// Time writes the value's wall clock (trino-go-client reads a timestamp
// without zone as that wall clock) with c's fractional digits.
func Time(t time.Time, c Column) string {
	frac := ".999999999"
	if p := c.Precision; p == 0 {
		frac = ""
	} else if p > 0 && p <= 9 {
		frac = "." + strings.Repeat("0", p)
	}
	switch typ := c.BaseType(); {
	case typ == "DATE":
		return t.Format(time.DateOnly)
	case strings.HasPrefix(typ, "TIME WITH"):
		return t.Format("15:04:05" + frac + " -07:00")
	case strings.HasPrefix(typ, "TIMESTAMP WITH"):
		return t.Format(time.DateOnly + " 15:04:05" + frac + " MST")
	case typ == "TIME":
		return t.Format("15:04:05" + frac)
	}
	return t.Format(time.DateOnly + " 15:04:05" + frac)
}
