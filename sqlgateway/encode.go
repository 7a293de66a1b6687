package sqlgateway

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
)

// encoder appends the JSON form Trino uses for one value (JsonEncodingUtils)
// to b. v is what duckdb-go returns for the column's DuckDB type.
type encoder func(b []byte, v any) ([]byte, error)

// zone is the session time zone timestamps with time zone are rendered in.
type zone struct {
	name string // as the client named it: "UTC", "Europe/Berlin", "+02:00"
	loc  *time.Location
}

var utcZone = zone{name: "UTC", loc: time.UTC}

func newEncoder(t trinoType, z zone) encoder {
	enc := newValueEncoder(t, z)
	return func(b []byte, v any) ([]byte, error) {
		if v == nil {
			return append(b, "null"...), nil
		}
		return enc(b, v)
	}
}

func newValueEncoder(t trinoType, z zone) encoder {
	switch t.duck {
	case duckNull:
		return func(b []byte, _ any) ([]byte, error) { return append(b, "null"...), nil }
	case duckBool:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(bool)
			if !ok {
				return b, unexpected(t, v)
			}
			return strconv.AppendBool(b, x), nil
		}
	case duckInt:
		return func(b []byte, v any) ([]byte, error) { return appendInteger(b, t, v) }
	case duckUBigint:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(uint64)
			if !ok {
				return b, unexpected(t, v)
			}
			b = append(b, '"')
			b = strconv.AppendUint(b, x, 10)
			return append(b, '"'), nil
		}
	case duckHugeint:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(*big.Int)
			if !ok || x == nil {
				return b, unexpected(t, v)
			}
			b = append(b, '"')
			b = x.Append(b, 10)
			return append(b, '"'), nil
		}
	case duckHugeintBigint:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(*big.Int)
			if !ok || x == nil {
				return b, unexpected(t, v)
			}
			if !x.IsInt64() {
				return b, fmt.Errorf("value %s is out of range for bigint; cast it to DECIMAL(38,0) or DOUBLE", x)
			}
			return strconv.AppendInt(b, x.Int64(), 10), nil
		}
	case duckFloat:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(float32)
			if !ok {
				return b, unexpected(t, v)
			}
			return appendFloat(b, float64(x), 32), nil
		}
	case duckDouble:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(float64)
			if !ok {
				return b, unexpected(t, v)
			}
			return appendFloat(b, x, 64), nil
		}
	case duckDecimal:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(duckdb.Decimal)
			if !ok || x.Value == nil {
				return b, unexpected(t, v)
			}
			b = append(b, '"')
			b = appendDecimal(b, x.Value, int(x.Scale))
			return append(b, '"'), nil
		}
	case duckVarchar:
		return func(b []byte, v any) ([]byte, error) {
			switch x := v.(type) {
			case string:
				return appendString(b, x), nil
			case []byte:
				return appendString(b, string(x)), nil
			default:
				// A JSON value nested in a list or struct arrives decoded,
				// as its type is reported as VARCHAR there.
				text, err := json.Marshal(x)
				if err != nil {
					return b, unexpected(t, v)
				}
				return appendString(b, string(text)), nil
			}
		}
	case duckBlob:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.([]byte)
			if !ok {
				return b, unexpected(t, v)
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, x)
			return append(b, '"'), nil
		}
	case duckDate:
		return timeEncoder(t, func(b []byte, x time.Time) []byte { return x.AppendFormat(b, "2006-01-02") })
	case duckTime:
		layout := "15:04:05" + fraction(t.longs[0])
		return timeEncoder(t, func(b []byte, x time.Time) []byte { return x.AppendFormat(b, layout) })
	case duckTimeTZ:
		layout := "15:04:05" + fraction(t.longs[0]) + "-07:00"
		return timeEncoder(t, func(b []byte, x time.Time) []byte { return x.AppendFormat(b, layout) })
	case duckTimestamp:
		layout := "2006-01-02 15:04:05" + fraction(t.longs[0])
		return timeEncoder(t, func(b []byte, x time.Time) []byte { return x.AppendFormat(b, layout) })
	case duckTimestampTZ:
		layout := "2006-01-02 15:04:05" + fraction(t.longs[0])
		return timeEncoder(t, func(b []byte, x time.Time) []byte {
			b = x.In(z.loc).AppendFormat(b, layout)
			b = append(b, ' ')
			return append(b, z.name...)
		})
	case duckInterval:
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(duckdb.Interval)
			if !ok {
				return b, unexpected(t, v)
			}
			return appendString(b, formatInterval(x)), nil
		}
	case duckUUID:
		return func(b []byte, v any) ([]byte, error) {
			var raw []byte
			switch x := v.(type) {
			case []byte:
				raw = x
			case duckdb.UUID:
				raw = x[:]
			case string:
				return appendString(b, x), nil
			}
			if len(raw) != 16 {
				return b, unexpected(t, v)
			}
			return appendString(b, formatUUID(raw)), nil
		}
	case duckJSON:
		return func(b []byte, v any) ([]byte, error) {
			if s, ok := v.(string); ok {
				// duckdb-go decodes JSON; a JSON string value comes back as
				// a Go string whose JSON text is the quoted string.
				text, _ := json.Marshal(s)
				return appendString(b, string(text)), nil
			}
			text, err := json.Marshal(v)
			if err != nil {
				return b, unexpected(t, v)
			}
			return appendString(b, string(text)), nil
		}
	case duckList:
		elem := newEncoder(t.elems[0], z)
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.([]any)
			if !ok {
				return b, unexpected(t, v)
			}
			b = append(b, '[')
			for i, e := range x {
				if i > 0 {
					b = append(b, ',')
				}
				var err error
				if b, err = elem(b, e); err != nil {
					return b, err
				}
			}
			return append(b, ']'), nil
		}
	case duckStruct:
		fields := make([]encoder, len(t.elems))
		for i, e := range t.elems {
			fields[i] = newEncoder(e, z)
		}
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(map[string]any)
			if !ok {
				return b, unexpected(t, v)
			}
			// duckdb-go returns a struct as a map; the type gives the order.
			b = append(b, '[')
			for i, name := range t.fields {
				if i > 0 {
					b = append(b, ',')
				}
				var err error
				if b, err = fields[i](b, x[name]); err != nil {
					return b, err
				}
			}
			return append(b, ']'), nil
		}
	case duckMap:
		key, val := newEncoder(t.elems[0], z), newEncoder(t.elems[1], z)
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(duckdb.Map)
			if !ok {
				return b, unexpected(t, v)
			}
			return appendMap(b, x, key, val)
		}
	case duckUnion:
		members := make(map[string]encoder, len(t.elems))
		for i, e := range t.elems {
			members[t.fields[i]] = newEncoder(e, z)
		}
		return func(b []byte, v any) ([]byte, error) {
			x, ok := v.(duckdb.Union)
			if !ok {
				return b, unexpected(t, v)
			}
			enc, ok := members[x.Tag]
			if !ok || x.Value == nil {
				return append(b, "null"...), nil
			}
			member, err := enc(nil, x.Value)
			if err != nil {
				return b, err
			}
			return appendString(b, textOf(member)), nil
		}
	}
	return func(b []byte, v any) ([]byte, error) { return b, unexpected(t, v) }
}

func unexpected(t trinoType, v any) error {
	return fmt.Errorf("cannot encode %T as Trino %s", v, t)
}

func appendInteger(b []byte, t trinoType, v any) ([]byte, error) {
	switch x := v.(type) {
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	}
	return b, unexpected(t, v)
}

// appendFloat writes NaN and the infinities as the strings Jackson writes.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendDecimal renders unscaled*10^-scale the way Java's BigDecimal.toPlainString does.
func appendDecimal(b []byte, unscaled *big.Int, scale int) []byte {
	digits := unscaled.String()
	neg := false
	if digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	if neg {
		b = append(b, '-')
	}
	if scale <= 0 {
		return append(b, digits...)
	}
	if len(digits) <= scale {
		b = append(b, "0."...)
		for range scale - len(digits) {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	b = append(b, digits[:len(digits)-scale]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-scale:]...)
}

func fraction(precision int64) string {
	if precision <= 0 {
		return ""
	}
	return "." + string(bytes.Repeat([]byte{'0'}, int(precision)))
}

func timeEncoder(t trinoType, format func([]byte, time.Time) []byte) encoder {
	return func(b []byte, v any) ([]byte, error) {
		x, ok := v.(time.Time)
		if !ok {
			return b, unexpected(t, v)
		}
		b = append(b, '"')
		b = format(b, x)
		return append(b, '"'), nil
	}
}

// formatInterval renders an interval as Trino's interval day to second
// ("2 03:04:05.000"). Trino has no type holding months and days together,
// so a month counts as 30 days.
func formatInterval(iv duckdb.Interval) string {
	const day = int64(24 * time.Hour / time.Microsecond)
	micros := int64(iv.Months)*30*day + int64(iv.Days)*day + iv.Micros
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	millis := micros / 1000
	return fmt.Sprintf("%s%d %02d:%02d:%02d.%03d", sign,
		millis/86_400_000, millis/3_600_000%24, millis/60_000%60, millis/1000%60, millis%1000)
}

func formatUUID(raw []byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], raw[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], raw[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], raw[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], raw[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], raw[10:])
	return string(buf[:])
}

// appendMap writes a map as a JSON object: Trino's keys are the text of the
// key value. Entries are sorted by key, because duckdb-go's map has no order.
func appendMap(b []byte, m duckdb.Map, key, val encoder) ([]byte, error) {
	type entry struct{ k, v []byte }
	entries := make([]entry, 0, len(m))
	for k, v := range m {
		kj, err := key(nil, k)
		if err != nil {
			return b, err
		}
		vj, err := val(nil, v)
		if err != nil {
			return b, err
		}
		entries = append(entries, entry{appendString(nil, textOf(kj)), vj})
	}
	slices.SortFunc(entries, func(a, c entry) int { return bytes.Compare(a.k, c.k) })
	b = append(b, '{')
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.k...)
		b = append(b, ':')
		b = append(b, e.v...)
	}
	return append(b, '}'), nil
}

// textOf is the text of an encoded JSON value: a string's content, or the
// JSON text of anything else.
func textOf(encoded []byte) string {
	if len(encoded) > 0 && encoded[0] == '"' {
		var s string
		if err := json.Unmarshal(encoded, &s); err == nil {
			return s
		}
	}
	return string(encoded)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
