package viewsql

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// node is one object of DuckDB's serialized AST. The AST is handled
// generically, not through Go structs, so every field DuckDB emits survives
// the round trip to json_deserialize_sql, including ones this package does
// not know about.
type node = map[string]any

// decodeAST parses JSON keeping numbers as json.Number: query_location is
// 2^64-1 for synthetic nodes, which float64 would corrupt.
func decodeAST(s string) (node, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var n node
	if err := dec.Decode(&n); err != nil {
		return nil, err
	}
	return n, nil
}

func encodeAST(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = deepCopy(x)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = deepCopy(x)
		}
		return c
	}
	return v
}

func copyNode(n node) node { return deepCopy(n).(node) }

func str(n node, key string) string {
	s, _ := n[key].(string)
	return s
}

func list(n node, key string) []any {
	l, _ := n[key].([]any)
	return l
}

func obj(n node, key string) node {
	o, _ := n[key].(map[string]any)
	return o
}

// isExpr tells expression nodes (which carry a "class") from other objects
// such as table refs, constant values and type descriptions.
func isExpr(n node) bool {
	_, ok := n["class"].(string)
	return ok
}

// walkExprs calls fn on every expression at or below v, outermost first.
// fn returns false to skip what lies below a node.
func walkExprs(v any, fn func(node) bool) {
	switch t := v.(type) {
	case map[string]any:
		if isExpr(t) && !fn(t) {
			return
		}
		for _, x := range t {
			walkExprs(x, fn)
		}
	case []any:
		for _, x := range t {
			walkExprs(x, fn)
		}
	}
}

// sameExpr compares two expressions the way SQL does: ignoring aliases,
// source positions and the case of identifiers.
func sameExpr(a, b node) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			switch k {
			case "alias", "query_location":
				continue
			case "column_names":
				if names, ok := x.([]any); ok {
					lower := make([]any, len(names))
					for i, n := range names {
						s, _ := n.(string)
						lower[i] = strings.ToLower(s)
					}
					c[k] = lower
					continue
				}
			case "function_name":
				if s, ok := x.(string); ok {
					c[k] = strings.ToLower(s)
					continue
				}
			}
			c[k] = normalize(x)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = normalize(x)
		}
		return c
	}
	return v
}

func funcName(n node) string {
	if str(n, "class") != "FUNCTION" {
		return ""
	}
	return strings.ToLower(str(n, "function_name"))
}

// columnRefName is the column a plain reference names (the last part of
// f.origin), or "" if n is not a column reference.
func columnRefName(n node) string {
	if str(n, "class") != "COLUMN_REF" {
		return ""
	}
	names := list(n, "column_names")
	if len(names) == 0 {
		return ""
	}
	s, _ := names[len(names)-1].(string)
	return s
}

// positional returns k for a GROUP BY k that refers to the k-th select item.
func positional(n node) (int, bool) {
	if str(n, "class") != "CONSTANT" {
		return 0, false
	}
	val := obj(n, "value")
	typ := obj(val, "type")
	switch str(typ, "id") {
	case "INTEGER", "BIGINT", "HUGEINT", "SMALLINT", "TINYINT":
	default:
		return 0, false
	}
	num, ok := val["value"].(json.Number)
	if !ok {
		return 0, false
	}
	k, err := num.Int64()
	if err != nil {
		return 0, false
	}
	return int(k), true
}
