package notebooks

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Tags that mark cells, Papermill's convention.
const (
	TagParameters         = "parameters"
	TagInjectedParameters = "injected-parameters"
)

// Param is one notebook parameter with its typed value: string, int64,
// float64, bool, or nil (Python's None).
type Param struct {
	Name  string
	Value any
}

// TypeName names the parameter's type as errors and docs say it.
func (p Param) TypeName() string {
	switch p.Value.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "None"
}

var assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*[A-Za-z_][A-Za-z0-9_.]*\s*)?=\s*(.*)$`)

// ParseParameters reads a parameters cell: one simple assignment per line,
// Python literals only (name = "text", n = 30, x = 1.5, flag = True,
// v = None; an annotation such as day: str = "..." is allowed), blank lines
// and # comments. It evaluates nothing, so a cell of other Python is refused
// with the line it cannot read.
func ParseParameters(src string) ([]Param, error) {
	if !utf8.ValidString(src) {
		return nil, errors.New("the cell is not valid UTF-8")
	}
	var params []Param
	for i, line := range strings.Split(src, "\n") {
		code, err := stripComment(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		code = strings.TrimSpace(code)
		if code == "" {
			continue
		}
		m := assignment.FindStringSubmatch(code)
		if m == nil {
			return nil, fmt.Errorf("line %d: cannot read %q: give one assignment of a literal per line, such as day = \"2026-11-01\"", i+1, code)
		}
		v, err := parseLiteral(strings.TrimSpace(m[2]))
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", i+1, m[1], err)
		}
		// A later assignment wins, as it would in Python.
		if j := slices.IndexFunc(params, func(p Param) bool { return p.Name == m[1] }); j >= 0 {
			params[j].Value = v
			continue
		}
		params = append(params, Param{Name: m[1], Value: v})
	}
	return params, nil
}

// stripComment cuts a # comment that is outside string literals.
func stripComment(line string) (string, error) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return line[:i], nil
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("unterminated string in %q", strings.TrimSpace(line))
	}
	return line, nil
}

var (
	intLiteral   = regexp.MustCompile(`^[+-]?(?:0|[1-9](?:_?[0-9])*)$`)
	floatLiteral = regexp.MustCompile(`^[+-]?(?:[0-9](?:_?[0-9])*\.(?:[0-9](?:_?[0-9])*)?|\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9]+)?$`)
)

// parseLiteral reads one Python literal.
func parseLiteral(s string) (any, error) {
	switch s {
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	}
	if s != "" && (s[0] == '"' || s[0] == '\'') {
		return parsePyString(s)
	}
	if intLiteral.MatchString(s) {
		n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is out of the 64-bit integer range", s)
		}
		return n, nil
	}
	if floatLiteral.MatchString(s) {
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s is out of the float range", s)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%q is not a literal: give a string, a number, True, False or None", s)
}

// parsePyString reads a Python string literal in single or double quotes
// with its backslash escapes.
func parsePyString(s string) (string, error) {
	q := s[0]
	if len(s) < 2 || s[len(s)-1] != q {
		return "", fmt.Errorf("%s: unterminated string", s)
	}
	body := s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == q {
			return "", fmt.Errorf("%s: more than one string (or an unescaped %c inside)", s, q)
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(body) {
			return "", fmt.Errorf("%s: unterminated string", s)
		}
		i++
		switch e := body[i]; e {
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+1+n > len(body) {
				return "", fmt.Errorf("%s: short \\%c escape", s, e)
			}
			r, err := strconv.ParseUint(body[i+1:i+1+n], 16, 32)
			if err != nil || !utf8.ValidRune(rune(r)) {
				return "", fmt.Errorf("%s: bad \\%c escape", s, e)
			}
			b.WriteRune(rune(r))
			i += n
		default:
			// Python keeps an unknown escape as written.
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

// pyLiteral writes v as Python source that parseLiteral reads back.
func pyLiteral(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s
	case string:
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range x {
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\t':
				b.WriteString(`\t`)
			case r == '\r':
				b.WriteString(`\r`)
			case r < 0x20 || r == 0x7f:
				fmt.Fprintf(&b, `\x%02x`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
		return b.String()
	}
	panic(fmt.Sprintf("notebooks: parameter of type %T", v))
}

// Override types text given on the command line (-p name=value) like the
// parameter's default: an integer default takes an integer, a number
// default a number, a boolean default true or false; a string default takes
// the text as it is; a None default infers the type as sql jobs do.
func (p Param) Override(text string) (Param, error) {
	bad := func() (Param, error) {
		return p, fmt.Errorf("-p %s=%s: %s is %s (default %s); %q is not one", p.Name, text, p.Name, p.TypeName(), pyLiteral(p.Value), text)
	}
	if !utf8.ValidString(text) {
		return p, fmt.Errorf("-p %s: the value is not valid UTF-8", p.Name)
	}
	switch p.Value.(type) {
	case string:
		return Param{p.Name, text}, nil
	case int64:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return bad()
		}
		return Param{p.Name, n}, nil
	case float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return bad()
		}
		return Param{p.Name, f}, nil
	case bool:
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "true":
			return Param{p.Name, true}, nil
		case "false":
			return Param{p.Name, false}, nil
		}
		return bad()
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return Param{p.Name, n}, nil
	}
	if f, err := strconv.ParseFloat(text, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return Param{p.Name, f}, nil
	}
	switch text {
	case "true", "True":
		return Param{p.Name, true}, nil
	case "false", "False":
		return Param{p.Name, false}, nil
	}
	return Param{p.Name, text}, nil
}

// ApplyOverrides returns defaults with the overrides applied, in the
// defaults' order, and the overridden parameters alone (what the injected
// cell holds). An override of no parameter is an error naming the known ones.
func ApplyOverrides(defaults []Param, overrides map[string]string) (all, injected []Param, err error) {
	all = slices.Clone(defaults)
	names := make([]string, len(defaults))
	for i, p := range defaults {
		names[i] = p.Name
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.Index(names, k)
		if i < 0 {
			if len(names) == 0 {
				return nil, nil, fmt.Errorf("-p %s: the notebook has no parameters (no cell tagged %q)", k, TagParameters)
			}
			return nil, nil, fmt.Errorf("-p %s: the notebook has no parameter %s (its parameters: %s)", k, k, strings.Join(names, ", "))
		}
		p, err := defaults[i].Override(overrides[k])
		if err != nil {
			return nil, nil, err
		}
		all[i] = p
	}
	for _, p := range all {
		if _, ok := overrides[p.Name]; ok {
			injected = append(injected, p)
		}
	}
	return all, injected, nil
}

// injectedSource is the injected-parameters cell's Python source, as
// Papermill writes it: the overridden values, so that the notebook re-run
// in Jupyter computes what this run did.
func injectedSource(params []Param) string {
	var b strings.Builder
	b.WriteString("# Parameters\n")
	for _, p := range params {
		fmt.Fprintf(&b, "%s = %s\n", p.Name, pyLiteral(p.Value))
	}
	return b.String()
}
