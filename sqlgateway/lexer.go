package sqlgateway

import (
	"fmt"
	"strings"
)

// tokenKind classifies the tokens of the small lexer the gateway uses to
// recognise the statements it answers itself (SHOW, USE, SET SESSION,
// EXECUTE...). Everything else is parsed by DuckDB.
type tokenKind int

const (
	tokWord   tokenKind = iota // unquoted identifier or keyword
	tokQuoted                  // "quoted identifier"
	tokString                  // 'string literal'
	tokNumber
	tokSymbol // any other single character, including ? and ;
)

type token struct {
	kind       tokenKind
	text       string // identifier or literal value, unquoted and unescaped
	start, end int    // byte offsets in the statement text
}

// is reports whether t is the keyword kw (case-insensitive).
func (t token) is(kw string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

func (t token) isSymbol(s string) bool { return t.kind == tokSymbol && t.text == s }

// lex splits SQL into tokens, skipping whitespace and comments.
func lex(sql string) ([]token, *queryError) {
	var toks []token
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			if nl := strings.IndexByte(sql[i:], '\n'); nl >= 0 {
				i += nl + 1
			} else {
				i = len(sql)
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return nil, syntaxErrorAt(sql, i, "unterminated comment")
			}
			i += 2 + end + 2
		case c == '\'' || c == '"':
			text, next, ok := readQuoted(sql, i, c)
			if !ok {
				what := "string literal"
				if c == '"' {
					what = "quoted identifier"
				}
				return nil, syntaxErrorAt(sql, i, "unterminated "+what)
			}
			kind := tokString
			if c == '"' {
				kind = tokQuoted
			}
			toks = append(toks, token{kind: kind, text: text, start: i, end: next})
			i = next
		case isIdentStart(c):
			j := i + 1
			for j < len(sql) && isIdentPart(sql[j]) {
				j++
			}
			toks = append(toks, token{kind: tokWord, text: sql[i:j], start: i, end: j})
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			j := i
			for j < len(sql) && (sql[j] >= '0' && sql[j] <= '9' || sql[j] == '.') {
				j++
			}
			if j < len(sql) && (sql[j] == 'e' || sql[j] == 'E') {
				k := j + 1
				if k < len(sql) && (sql[k] == '+' || sql[k] == '-') {
					k++
				}
				if k < len(sql) && sql[k] >= '0' && sql[k] <= '9' {
					for k < len(sql) && sql[k] >= '0' && sql[k] <= '9' {
						k++
					}
					j = k
				}
			}
			toks = append(toks, token{kind: tokNumber, text: sql[i:j], start: i, end: j})
			i = j
		default:
			toks = append(toks, token{kind: tokSymbol, text: sql[i : i+1], start: i, end: i + 1})
			i++
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '$' }

// readQuoted reads a quoted token starting at sql[i] == q, where a doubled
// quote stands for one.
func readQuoted(sql string, i int, q byte) (text string, next int, ok bool) {
	var b strings.Builder
	j := i + 1
	for j < len(sql) {
		if sql[j] != q {
			b.WriteByte(sql[j])
			j++
			continue
		}
		if j+1 < len(sql) && sql[j+1] == q {
			b.WriteByte(q)
			j += 2
			continue
		}
		return b.String(), j + 1, true
	}
	return "", 0, false
}

// tokenStream is a cursor over a statement's tokens.
type tokenStream struct {
	sql  string
	toks []token
	pos  int
}

func (s *tokenStream) done() bool { return s.pos >= len(s.toks) }

func (s *tokenStream) peek() token {
	if s.done() {
		return token{kind: tokSymbol, start: len(s.sql), end: len(s.sql)}
	}
	return s.toks[s.pos]
}

func (s *tokenStream) next() token {
	t := s.peek()
	if !s.done() {
		s.pos++
	}
	return t
}

// accept consumes the next token if it is one of the keywords, in order.
func (s *tokenStream) accept(kws ...string) bool {
	for i, kw := range kws {
		if s.pos+i >= len(s.toks) || !s.toks[s.pos+i].is(kw) {
			return false
		}
	}
	s.pos += len(kws)
	return true
}

func (s *tokenStream) expect(kw string) *queryError {
	if !s.accept(kw) {
		return s.unexpected("expected " + strings.ToUpper(kw))
	}
	return nil
}

func (s *tokenStream) expectEnd() *queryError {
	if !s.done() {
		return s.unexpected("expected end of statement")
	}
	return nil
}

func (s *tokenStream) unexpected(what string) *queryError {
	t := s.peek()
	if s.done() {
		return syntaxErrorAt(s.sql, t.start, what+" at end of input")
	}
	return syntaxErrorAt(s.sql, t.start, fmt.Sprintf("%s, found %q", what, s.sql[t.start:t.end]))
}

// identifier reads one identifier, quoted or not.
func (s *tokenStream) identifier() (string, *queryError) {
	t := s.peek()
	if t.kind != tokWord && t.kind != tokQuoted {
		return "", s.unexpected("expected an identifier")
	}
	s.pos++
	return t.text, nil
}

// qualifiedName reads a dotted name: a, a.b, a.b.c.
func (s *tokenStream) qualifiedName() ([]string, *queryError) {
	var parts []string
	for {
		id, err := s.identifier()
		if err != nil {
			return nil, err
		}
		parts = append(parts, id)
		if !s.peek().isSymbol(".") {
			return parts, nil
		}
		s.pos++
	}
}

// stringLiteral reads a string literal's value.
func (s *tokenStream) stringLiteral() (string, *queryError) {
	t := s.peek()
	if t.kind != tokString {
		return "", s.unexpected("expected a string literal")
	}
	s.pos++
	return t.text, nil
}

// rest is the statement text from the current token on.
func (s *tokenStream) rest() string {
	if s.done() {
		return ""
	}
	return s.sql[s.toks[s.pos].start:s.toks[len(s.toks)-1].end]
}
