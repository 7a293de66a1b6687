package notebooks

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// sqlMagic starts a SQL cell, JupySQL's cell magic.
const sqlMagic = "%%sql"

// sqlBody returns the SQL of a %%sql cell (the lines after the magic's
// line, whose JupySQL options, such as a connection, do not apply here) and
// whether the cell is one.
func sqlBody(c *Cell) (string, bool) {
	if c.Type != CellCode {
		return "", false
	}
	src := strings.TrimLeft(c.Source, " \t\r\n")
	first, rest, _ := strings.Cut(src, "\n")
	first = strings.TrimSpace(first)
	if first != sqlMagic && !strings.HasPrefix(first, sqlMagic+" ") && !strings.HasPrefix(first, sqlMagic+"\t") {
		return "", false
	}
	return rest, true
}

// statement is one SQL statement of a cell with its parameters as values,
// in the order of its ? placeholders.
type statement struct {
	SQL  string
	Args []any
	// Params names the parameter of each argument.
	Params []string
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

// compileSQL splits a cell's SQL into statements at the semicolons outside
// literals and comments, and turns each parameter reference, :name or
// {{name}} (outside string literals, quoted identifiers and comments), into
// a ? placeholder whose argument is the parameter's typed value: a value is
// bound by the driver, never pasted into the SQL text, so a quote in it
// cannot change the statement. A reference to no parameter, {{name}} inside a
// string literal (which JupySQL would paste), and a bare ? are errors.
func compileSQL(body string, params []Param) ([]statement, error) {
	values := make(map[string]any, len(params))
	names := make([]string, len(params))
	for i, p := range params {
		values[p.Name], names[i] = p.Value, p.Name
	}
	unknown := func(name string) error {
		if len(names) == 0 {
			return fmt.Errorf("%s is not a parameter: the notebook has none (no cell tagged %q)", name, TagParameters)
		}
		return fmt.Errorf("%s is not a parameter of this notebook (its parameters: %s)", name, strings.Join(names, ", "))
	}
	var (
		stmts   []statement
		cur     statement
		b       strings.Builder
		hasCode bool
	)
	flush := func() {
		if hasCode {
			cur.SQL = strings.TrimSpace(b.String())
			stmts = append(stmts, cur)
		}
		cur, hasCode = statement{}, false
		b.Reset()
	}
	bind := func(name string) {
		b.WriteByte('?')
		cur.Args = append(cur.Args, values[name])
		cur.Params = append(cur.Params, name)
		hasCode = true
	}
	s := body
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			end := closingQuote(s, i)
			if end < 0 {
				return nil, fmt.Errorf("unterminated %c literal starting %q", c, snippet(s[i:]))
			}
			lit := s[i:end]
			if c == '\'' {
				for _, m := range moustache.FindAllStringSubmatch(lit, -1) {
					if _, ok := values[m[1]]; ok {
						return nil, fmt.Errorf("{{%s}} inside the string literal %s: parameters are bound as values, not pasted into text; write {{%s}} or :%s outside the quotes (a string parameter is a string)", m[1], snippet(lit), m[1], m[1])
					}
				}
			}
			b.WriteString(lit)
			hasCode = true
			i = end
		case strings.HasPrefix(s[i:], "--"):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			b.WriteString(s[i : i+end])
			i += end
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated /* comment")
			}
			b.WriteString(s[i : i+2+end+2])
			i += 2 + end + 2
		case c == ';':
			flush()
			i++
		case c == '?':
			return nil, errors.New("a ? placeholder: refer to parameters by name, as :name or {{name}}")
		case c == ':' && i+1 < len(s) && s[i+1] == ':':
			// A DuckDB cast, x::int.
			b.WriteString("::")
			i += 2
		case c == ':' && (i == 0 || s[i-1] != ':') && identifier.MatchString(s[i+1:]):
			name := identifier.FindString(s[i+1:])
			if _, ok := values[name]; !ok {
				return nil, unknown(":" + name)
			}
			bind(name)
			i += 1 + len(name)
		case strings.HasPrefix(s[i:], "{{"):
			m := moustache.FindStringSubmatch(s[i:])
			if m == nil || !strings.HasPrefix(s[i:], m[0]) {
				return nil, fmt.Errorf("cannot read %q: write a parameter as {{name}}", snippet(s[i:]))
			}
			if _, ok := values[m[1]]; !ok {
				return nil, unknown("{{" + m[1] + "}}")
			}
			bind(m[1])
			i += len(m[0])
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				hasCode = true
			}
			b.WriteByte(c)
			i++
		}
	}
	flush()
	if len(stmts) == 0 {
		return nil, errors.New("the cell has no SQL statement")
	}
	return stmts, nil
}

var moustache = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// closingQuote returns the index just past the literal or quoted identifier
// opening at s[i] (a doubled quote inside is an escaped one), or -1.
func closingQuote(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] != q {
			continue
		}
		if j+1 < len(s) && s[j+1] == q {
			j++
			continue
		}
		return j + 1
	}
	return -1
}

func snippet(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}
