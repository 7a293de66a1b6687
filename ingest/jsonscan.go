package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// The NDJSON path reads one flat object per line. encoding/json's Decoder
// spends most of its time building throw-away errors and interface values
// for that shape, so lines are scanned here by hand; anything unusual
// (escapes, invalid UTF-8) falls back to encoding/json for the exact
// semantics, and its message is used for syntax errors.

type jsonKind uint8

const (
	jsonString jsonKind = iota
	jsonNumber
	jsonBool
	jsonNull
	jsonObject
	jsonArray
)

// jsonValue is one scanned value: str holds a string's decoded text or a
// number's literal.
type jsonValue struct {
	kind jsonKind
	str  string
	b    bool
}

// maxJSONDepth bounds nesting inside a value; nested values are always an
// error for a dataset column, so this only keeps recursion shallow.
const maxJSONDepth = 512

var errJSONSyntax = errors.New("invalid JSON")

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// scanObject calls fn for each member of the single JSON object in line.
// notObject is set, with the value found, when the line holds a valid JSON
// value that is not an object. Syntax errors are errJSONSyntax; fn's errors
// are returned as they are.
func scanObject(line []byte, fn func(key string, v jsonValue) error) (notObject *jsonValue, err error) {
	s := &jsonScanner{b: line}
	s.ws()
	if s.i >= len(s.b) {
		return nil, errJSONSyntax
	}
	if s.b[s.i] != '{' {
		v, err := s.value(0)
		if err != nil {
			return nil, err
		}
		if s.ws(); s.i != len(s.b) {
			return nil, errJSONSyntax
		}
		return &v, nil
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil, s.end()
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, errJSONSyntax
		}
		key, err := s.string()
		if err != nil {
			return nil, err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, errJSONSyntax
		}
		s.i++
		s.ws()
		v, err := s.value(0)
		if err != nil {
			return nil, err
		}
		// A bad value is reported before a syntax error later on the line,
		// like encoding/json would not; either way the row is rejected.
		if err := fn(key, v); err != nil {
			return nil, err
		}
		s.ws()
		if s.i >= len(s.b) {
			return nil, errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return nil, s.end()
		default:
			return nil, errJSONSyntax
		}
	}
}

// errTrailing means a complete object was followed by more than whitespace.
var errTrailing = errors.New("unexpected data after the JSON object; put one object on each line")

func (s *jsonScanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return errTrailing
	}
	return nil
}

func (s *jsonScanner) value(depth int) (jsonValue, error) {
	if s.i >= len(s.b) {
		return jsonValue{}, errJSONSyntax
	}
	switch c := s.b[s.i]; {
	case c == '"':
		str, err := s.string()
		return jsonValue{kind: jsonString, str: str}, err
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		if err := s.number(); err != nil {
			return jsonValue{}, err
		}
		return jsonValue{kind: jsonNumber, str: unsafe.String(&s.b[start], s.i-start)}, nil // see string
	case c == 't':
		return jsonValue{kind: jsonBool, b: true}, s.literal("true")
	case c == 'f':
		return jsonValue{kind: jsonBool}, s.literal("false")
	case c == 'n':
		return jsonValue{kind: jsonNull}, s.literal("null")
	case c == '{' || c == '[':
		if err := s.skipNested(depth); err != nil {
			return jsonValue{}, err
		}
		if c == '[' {
			return jsonValue{kind: jsonArray}, nil
		}
		return jsonValue{kind: jsonObject}, nil
	}
	return jsonValue{}, errJSONSyntax
}

func (s *jsonScanner) literal(word string) error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return errJSONSyntax
	}
	s.i += len(word)
	return nil
}

// number checks the JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func (s *jsonScanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return errJSONSyntax
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if !s.digits() {
		return errJSONSyntax
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return errJSONSyntax
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return errJSONSyntax
		}
	}
	return nil
}

func (s *jsonScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// plainASCII marks the bytes a string can hold as they are, needing no
// check beyond finding them: not a quote, backslash, control character or
// a byte of a multi-byte UTF-8 sequence.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// string scans a string starting at its opening quote and returns its text.
func (s *jsonScanner) string() (string, error) {
	start := s.i
	// The common case, ASCII without escapes, in one tight loop.
	i := start + 1
	for i < len(s.b) && plainASCII[s.b[i]] {
		i++
	}
	if i < len(s.b) && s.b[i] == '"' {
		s.i = i + 1
		// Shares the line's bytes, as below.
		return unsafe.String(unsafe.SliceData(s.b[start+1:]), i-start-1), nil
	}
	plain, err := s.skipString()
	if err != nil {
		return "", err
	}
	raw := s.b[start:s.i]
	if plain && utf8.Valid(raw) {
		if len(raw) == 2 {
			return "", nil
		}
		// The line is never modified, so the string may share its bytes:
		// keys are only looked up, and values are copied into Arrow
		// builders or parsed, so no copy per value is needed.
		return unsafe.String(&raw[1], len(raw)-2), nil
	}
	// Escapes or invalid UTF-8: let encoding/json decode them exactly.
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return "", errJSONSyntax
	}
	return str, nil
}

// skipString moves past a string starting at its opening quote, checking
// its syntax; plain reports that it holds no escapes.
func (s *jsonScanner) skipString() (plain bool, err error) {
	s.i++
	plain = true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return plain, nil
		case c == '\\':
			plain = false
			if s.i+1 >= len(s.b) {
				return false, errJSONSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return false, errJSONSyntax
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return false, errJSONSyntax
					}
				}
				s.i += 6
			default:
				return false, errJSONSyntax
			}
		case c < 0x20:
			return false, errJSONSyntax
		default:
			s.i++
		}
	}
	return false, errJSONSyntax
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// skipValue moves past any value, checking its syntax, without decoding it.
func (s *jsonScanner) skipValue(depth int) error {
	if s.i >= len(s.b) {
		return errJSONSyntax
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.skipString()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '{' || c == '[':
		return s.skipNested(depth)
	}
	return errJSONSyntax
}

// skipNested moves past an object or array, checking its syntax.
func (s *jsonScanner) skipNested(depth int) error {
	if depth >= maxJSONDepth {
		return fmt.Errorf("%w: nested more than %d deep", errJSONSyntax, maxJSONDepth)
	}
	open := s.b[s.i]
	close := byte('}')
	if open == '[' {
		close = ']'
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == close {
		s.i++
		return nil
	}
	for {
		if open == '{' {
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				return errJSONSyntax
			}
			if _, err := s.skipString(); err != nil {
				return err
			}
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				return errJSONSyntax
			}
			s.i++
			s.ws()
		}
		if err := s.skipValue(depth + 1); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case close:
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}
