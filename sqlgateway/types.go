package sqlgateway

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// trinoType is a Trino type as the protocol describes it: a raw type name and
// its arguments. The encoders in encode.go render DuckDB values of the
// DuckDB type it was mapped from.
type trinoType struct {
	raw string // rawType: "bigint", "decimal", "timestamp with time zone", "row"...
	// longs are the LONG arguments: varchar length, decimal precision and
	// scale, time and timestamp precision.
	longs []int64
	// elems are the TYPE arguments (array element; map key and value) or,
	// for a row, the field types.
	elems []trinoType
	// fields are the row field names, parallel to elems ("" for anonymous).
	fields []string

	// duck is the DuckDB type the values come from; it picks the encoder.
	duck duckKind
}

// unboundedVarchar is the length Trino reports for varchar without a length.
const unboundedVarchar = 2147483647

// duckKind is the DuckDB physical family of a column, which decides how the
// Go value duckdb-go returns is encoded.
type duckKind int

const (
	duckNull duckKind = iota
	duckBool
	duckInt // every signed and unsigned integer type up to 32 bits, and BIGINT
	duckUBigint
	duckHugeint
	duckHugeintBigint
	duckFloat
	duckDouble
	duckDecimal
	duckVarchar
	duckBlob
	duckDate
	duckTime
	duckTimeTZ
	duckTimestamp
	duckTimestampTZ
	duckInterval
	duckList
	duckStruct
	duckMap
	duckUUID
	duckJSON
	duckUnion
)

func scalar(raw string, kind duckKind, longs ...int64) trinoType {
	return trinoType{raw: raw, longs: longs, duck: kind}
}

// String is the Trino display name, the "type" field of a column.
func (t trinoType) String() string {
	switch t.raw {
	case "varchar":
		if len(t.longs) == 1 && t.longs[0] != unboundedVarchar {
			return fmt.Sprintf("varchar(%d)", t.longs[0])
		}
		return "varchar"
	case "decimal":
		return fmt.Sprintf("decimal(%d,%d)", t.longs[0], t.longs[1])
	case "time", "timestamp":
		return fmt.Sprintf("%s(%d)", t.raw, t.longs[0])
	case "time with time zone", "timestamp with time zone":
		base := strings.TrimSuffix(t.raw, " with time zone")
		return fmt.Sprintf("%s(%d) with time zone", base, t.longs[0])
	case "array":
		return "array(" + t.elems[0].String() + ")"
	case "map":
		return "map(" + t.elems[0].String() + ", " + t.elems[1].String() + ")"
	case "row":
		var b strings.Builder
		b.WriteString("row(")
		for i, e := range t.elems {
			if i > 0 {
				b.WriteString(", ")
			}
			if t.fields[i] != "" {
				b.WriteString(displayFieldName(t.fields[i]))
				b.WriteByte(' ')
			}
			b.WriteString(e.String())
		}
		b.WriteByte(')')
		return b.String()
	default:
		return t.raw
	}
}

var plainFieldName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func displayFieldName(name string) string {
	if plainFieldName.MatchString(name) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// typeSignature is the protocol's typeSignature object.
type typeSignature struct {
	RawType   string         `json:"rawType"`
	Arguments []typeArgument `json:"arguments"`
}

type typeArgument struct {
	Kind  string `json:"kind"` // LONG, TYPE or NAMED_TYPE
	Value any    `json:"value"`
}

type namedTypeSignature struct {
	FieldName     *rowFieldName `json:"fieldName,omitempty"`
	TypeSignature typeSignature `json:"typeSignature"`
}

type rowFieldName struct {
	Name string `json:"name"`
}

func (t trinoType) signature() typeSignature {
	sig := typeSignature{RawType: t.raw, Arguments: []typeArgument{}}
	for _, l := range t.longs {
		sig.Arguments = append(sig.Arguments, typeArgument{Kind: "LONG", Value: l})
	}
	if t.raw != "array" && t.raw != "map" && t.raw != "row" {
		return sig // a union's members are not part of its varchar type
	}
	for i, e := range t.elems {
		if t.raw == "row" {
			named := namedTypeSignature{TypeSignature: e.signature()}
			if t.fields[i] != "" {
				named.FieldName = &rowFieldName{Name: t.fields[i]}
			}
			sig.Arguments = append(sig.Arguments, typeArgument{Kind: "NAMED_TYPE", Value: named})
			continue
		}
		sig.Arguments = append(sig.Arguments, typeArgument{Kind: "TYPE", Value: e.signature()})
	}
	return sig
}

// Trino types of results gateway statements produce themselves.
var (
	typeVarchar = scalar("varchar", duckVarchar, unboundedVarchar)
	typeUnknown = scalar("unknown", duckNull)
)

// trinoTypeOf maps a DuckDB type name, as duckdb-go's
// ColumnType.DatabaseTypeName or duckdb_columns().data_type spell it, to the
// Trino type a client receives.
func trinoTypeOf(duckType string) (trinoType, error) {
	p := &typeParser{s: duckType}
	t, err := p.parseType()
	if err != nil {
		return trinoType{}, fmt.Errorf("DuckDB type %q: %w", duckType, err)
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return trinoType{}, fmt.Errorf("DuckDB type %q: unexpected %q", duckType, p.s[p.pos:])
	}
	return t, nil
}

// typeParser reads DuckDB type names: INTEGER, DECIMAL(10,2), VARCHAR[],
// INTEGER[3], STRUCT("a" INTEGER, b VARCHAR), MAP(VARCHAR, INTEGER),
// UNION(...), TIMESTAMP WITH TIME ZONE.
type typeParser struct {
	s   string
	pos int
}

func (p *typeParser) skipSpace() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *typeParser) peek() byte {
	p.skipSpace()
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *typeParser) expect(c byte) error {
	if p.peek() != c {
		return fmt.Errorf("expected %q at offset %d", c, p.pos)
	}
	p.pos++
	return nil
}

func (p *typeParser) word() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

// name reads a struct field name: quoted with doubled quotes, or bare.
func (p *typeParser) name() (string, error) {
	if p.peek() != '"' {
		w := p.word()
		if w == "" {
			return "", fmt.Errorf("expected a field name at offset %d", p.pos)
		}
		return w, nil
	}
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		if c != '"' {
			b.WriteByte(c)
			continue
		}
		if p.pos < len(p.s) && p.s[p.pos] == '"' {
			b.WriteByte('"')
			p.pos++
			continue
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unterminated field name")
}

func (p *typeParser) number() (int64, error) {
	w := p.word()
	n, err := strconv.ParseInt(w, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("expected a number at offset %d", p.pos)
	}
	return n, nil
}

func (p *typeParser) parseType() (trinoType, error) {
	t, err := p.parseBase()
	if err != nil {
		return t, err
	}
	// Postfix list and fixed-size array markers: INTEGER[], INTEGER[3][].
	for p.peek() == '[' {
		p.pos++
		if p.peek() != ']' {
			if _, err := p.number(); err != nil {
				return t, err
			}
		}
		if err := p.expect(']'); err != nil {
			return t, err
		}
		t = trinoType{raw: "array", elems: []trinoType{t}, duck: duckList}
	}
	return t, nil
}

func (p *typeParser) parseBase() (trinoType, error) {
	w := strings.ToUpper(p.word())
	switch w {
	case "":
		return trinoType{}, fmt.Errorf("expected a type name at offset %d", p.pos)
	case "DECIMAL", "NUMERIC":
		if p.peek() != '(' {
			return scalar("decimal", duckDecimal, 18, 3), nil
		}
		p.pos++
		width, err := p.number()
		if err != nil {
			return trinoType{}, err
		}
		var scale int64
		if p.peek() == ',' {
			p.pos++
			if scale, err = p.number(); err != nil {
				return trinoType{}, err
			}
		}
		if err := p.expect(')'); err != nil {
			return trinoType{}, err
		}
		return scalar("decimal", duckDecimal, width, scale), nil
	case "STRUCT", "UNION":
		t := trinoType{raw: "row", duck: duckStruct}
		if err := p.expect('('); err != nil {
			return t, err
		}
		for {
			name, err := p.name()
			if err != nil {
				return t, err
			}
			ft, err := p.parseType()
			if err != nil {
				return t, err
			}
			t.fields = append(t.fields, name)
			t.elems = append(t.elems, ft)
			if p.peek() == ',' {
				p.pos++
				continue
			}
			if err := p.expect(')'); err != nil {
				return t, err
			}
			break
		}
		if w == "UNION" {
			// Trino has no union type: a union's value is one of its
			// members, sent as its text.
			return trinoType{raw: "varchar", longs: []int64{unboundedVarchar}, elems: t.elems, fields: t.fields, duck: duckUnion}, nil
		}
		return t, nil
	case "MAP":
		if err := p.expect('('); err != nil {
			return trinoType{}, err
		}
		k, err := p.parseType()
		if err != nil {
			return trinoType{}, err
		}
		if err := p.expect(','); err != nil {
			return trinoType{}, err
		}
		v, err := p.parseType()
		if err != nil {
			return trinoType{}, err
		}
		if err := p.expect(')'); err != nil {
			return trinoType{}, err
		}
		return trinoType{raw: "map", elems: []trinoType{k, v}, duck: duckMap}, nil
	case "TIMESTAMP", "TIME":
		// duckdb_columns() spells the zoned types "TIMESTAMP WITH TIME ZONE".
		save := p.pos
		if strings.EqualFold(p.word(), "WITH") && strings.EqualFold(p.word(), "TIME") && strings.EqualFold(p.word(), "ZONE") {
			w += "TZ"
		} else {
			p.pos = save
		}
	case "ENUM", "VARCHAR", "CHAR", "BPCHAR", "TEXT", "STRING":
		// ENUM('a','b') can appear in duckdb_columns(); its values are text.
		if p.peek() == '(' {
			if err := p.skipParens(); err != nil {
				return trinoType{}, err
			}
		}
	}
	t, ok := scalarTypes[w]
	if !ok {
		return trinoType{}, fmt.Errorf("unsupported type %s", w)
	}
	return t, nil
}

// skipParens skips a balanced parenthesised argument list, honouring
// single-quoted strings.
func (p *typeParser) skipParens() error {
	depth := 0
	inString := false
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch {
		case inString:
			if c == '\'' {
				inString = false
			}
		case c == '\'':
			inString = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return nil
			}
		}
	}
	return fmt.Errorf("unbalanced parentheses")
}

// scalarTypes maps DuckDB scalar type names, with their aliases, to Trino
// types. Unsigned integers widen to the next signed type; UBIGINT and
// UHUGEINT become decimals so that no value is truncated. HUGEINT is bigint:
// it is what DuckDB's sum over integers returns, where Trino returns bigint,
// and a value beyond bigint fails the query as an overflow does in Trino.
var scalarTypes = map[string]trinoType{
	"BOOLEAN":      scalar("boolean", duckBool),
	"BOOL":         scalar("boolean", duckBool),
	"TINYINT":      scalar("tinyint", duckInt),
	"INT1":         scalar("tinyint", duckInt),
	"SMALLINT":     scalar("smallint", duckInt),
	"INT2":         scalar("smallint", duckInt),
	"INTEGER":      scalar("integer", duckInt),
	"INT4":         scalar("integer", duckInt),
	"INT":          scalar("integer", duckInt),
	"BIGINT":       scalar("bigint", duckInt),
	"INT8":         scalar("bigint", duckInt),
	"UTINYINT":     scalar("smallint", duckInt),
	"USMALLINT":    scalar("integer", duckInt),
	"UINTEGER":     scalar("bigint", duckInt),
	"UBIGINT":      scalar("decimal", duckUBigint, 20, 0),
	"HUGEINT":      scalar("bigint", duckHugeintBigint),
	"UHUGEINT":     scalar("decimal", duckHugeint, 38, 0),
	"FLOAT":        scalar("real", duckFloat),
	"REAL":         scalar("real", duckFloat),
	"FLOAT4":       scalar("real", duckFloat),
	"DOUBLE":       scalar("double", duckDouble),
	"FLOAT8":       scalar("double", duckDouble),
	"VARCHAR":      typeVarchar,
	"CHAR":         typeVarchar,
	"BPCHAR":       typeVarchar,
	"TEXT":         typeVarchar,
	"STRING":       typeVarchar,
	"ENUM":         typeVarchar,
	"BLOB":         scalar("varbinary", duckBlob),
	"BYTEA":        scalar("varbinary", duckBlob),
	"DATE":         scalar("date", duckDate),
	"TIME":         scalar("time", duckTime, 6),
	"TIMETZ":       scalar("time with time zone", duckTimeTZ, 6),
	"TIMESTAMP":    scalar("timestamp", duckTimestamp, 6),
	"DATETIME":     scalar("timestamp", duckTimestamp, 6),
	"TIMESTAMP_US": scalar("timestamp", duckTimestamp, 6),
	"TIMESTAMP_MS": scalar("timestamp", duckTimestamp, 3),
	"TIMESTAMP_S":  scalar("timestamp", duckTimestamp, 0),
	"TIMESTAMP_NS": scalar("timestamp", duckTimestamp, 9),
	"TIMESTAMPTZ":  scalar("timestamp with time zone", duckTimestampTZ, 6),
	"INTERVAL":     scalar("interval day to second", duckInterval),
	"UUID":         scalar("uuid", duckUUID),
	"JSON":         scalar("json", duckJSON),
	"SQLNULL":      typeUnknown,
	"NULL":         typeUnknown,
}
