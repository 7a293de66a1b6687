package viewsql

import "strings"

// dayAlignedUnits are date_trunc units whose truncation never leaves the
// day: the key's day is the day of the time column itself.
var dayAlignedUnits = map[string]bool{
	"microsecond": true, "microseconds": true, "millisecond": true, "milliseconds": true,
	"second": true, "seconds": true, "minute": true, "minutes": true,
	"hour": true, "hours": true, "day": true, "days": true,
}

// dayAligned reports whether expr's value always falls on the same day as
// the dataset's time column: the column itself, date_trunc of it to a day or
// finer, or its cast to DATE. Such a key partitions a view by day, and an
// event of day D can only change the view's partition D.
func dayAligned(expr node, timeColumn string) bool {
	isTime := func(n node) bool {
		names := list(n, "column_names")
		if str(n, "class") != "COLUMN_REF" || len(names) == 0 {
			return false
		}
		last, _ := names[len(names)-1].(string)
		return strings.EqualFold(last, timeColumn)
	}
	switch str(expr, "class") {
	case "COLUMN_REF":
		return isTime(expr)
	case "CAST":
		child := obj(expr, "child")
		return strings.EqualFold(str(obj(expr, "cast_type"), "id"), "DATE") && child != nil && isTime(child)
	case "FUNCTION":
		name := strings.ToLower(str(expr, "function_name"))
		args := list(expr, "children")
		if (name != "date_trunc" && name != "datetrunc") || len(args) != 2 {
			return false
		}
		unit, _ := args[0].(node)
		col, _ := args[1].(node)
		if unit == nil || col == nil || str(unit, "class") != "CONSTANT" {
			return false
		}
		v, _ := obj(unit, "value")["value"].(string)
		return dayAlignedUnits[strings.ToLower(v)] && isTime(col)
	}
	return false
}

// timeKey picks the first partial column that is a day-aligned key and has a
// timestamp or date type, or "" when the view has none.
func timeKey(names []string, exprs []node, partial []Column, timeColumn string) string {
	for i, e := range exprs {
		if e == nil || !dayAligned(e, timeColumn) {
			continue
		}
		for _, c := range partial {
			if c.Name == names[i] && (strings.HasPrefix(c.Type, "TIMESTAMP") || c.Type == "DATE") {
				return c.Name
			}
		}
	}
	return ""
}

// projectionTimeKey finds the time column among a projection's outputs: a
// bare reference to it, or SELECT *.
func projectionTimeKey(items []any, cols []Column, timeColumn string) string {
	for _, it := range items {
		n, _ := it.(node)
		if n == nil {
			continue
		}
		if str(n, "class") == "STAR" {
			return timeKey([]string{timeColumn}, []node{{"class": "COLUMN_REF", "column_names": []any{timeColumn}}}, cols, timeColumn)
		}
		name := str(n, "alias")
		if name == "" && str(n, "class") == "COLUMN_REF" {
			names := list(n, "column_names")
			name, _ = names[len(names)-1].(string)
		}
		if k := timeKey([]string{name}, []node{n}, cols, timeColumn); k != "" {
			return k
		}
	}
	return ""
}
