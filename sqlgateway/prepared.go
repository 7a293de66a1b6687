package sqlgateway

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// usingParameters reads the comma-separated parameters of EXECUTE ... USING
// up to the end of the statement, and returns each as DuckDB SQL. Clients
// send Trino literals (trino-go-client's Serial: 'text', 12, X'0a',
// DATE '...', TIMESTAMP '... +02:00', ARRAY[...], MAP(ARRAY[...], ARRAY[...])),
// which are DuckDB SQL too except for binary strings and zoned timestamps.
func usingParameters(s *tokenStream) ([]string, *queryError) {
	var params []string
	for !s.done() {
		start := s.pos
		depth := 0
	scan:
		for !s.done() {
			t := s.peek()
			if t.kind == tokSymbol {
				switch t.text {
				case "(", "[":
					depth++
				case ")", "]":
					depth--
				case ",":
					if depth == 0 {
						break scan
					}
				}
			}
			s.next()
		}
		if s.pos == start {
			return nil, s.unexpected("expected a parameter value")
		}
		params = append(params, duckLiteral(s.sql, s.toks[start:s.pos]))
		if !s.done() {
			s.next() // the comma
			if s.done() {
				return nil, s.unexpected("expected a parameter value")
			}
		}
	}
	return params, nil
}

var zonedTimestamp = regexp.MustCompile(`^(\d{4,}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) ?(Z|[+-]\d{2}:\d{2}|[A-Za-z][A-Za-z0-9_/+-]*)$`)

// duckLiteral rewrites the Trino literal tokens toks of sql as DuckDB SQL.
func duckLiteral(sql string, toks []token) string {
	var b strings.Builder
	last := toks[0].start
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		var next *token
		if i+1 < len(toks) {
			next = &toks[i+1]
		}
		switch {
		case (t.is("X") || t.is("x")) && next != nil && next.kind == tokString && next.start == t.end:
			// X'0a1b': DuckDB reads X'...' as text, not bytes.
			b.WriteString(sql[last:t.start])
			b.WriteString("from_hex(" + dataset.QuoteString(next.text) + ")")
			last = next.end
			i++
		case t.is("TIMESTAMP") && next != nil && next.kind == tokString && zonedTimestamp.MatchString(next.text):
			// TIMESTAMP '2024-01-02 03:04:05 +02:00' is a timestamp with
			// time zone in Trino and an error in DuckDB.
			m := zonedTimestamp.FindStringSubmatch(next.text)
			zone := m[2]
			if zone == "Z" {
				zone = "+00:00"
			}
			if !strings.HasPrefix(zone, "+") && !strings.HasPrefix(zone, "-") {
				zone = " " + zone
			}
			b.WriteString(sql[last:t.start])
			b.WriteString("TIMESTAMPTZ " + dataset.QuoteString(m[1]+zone))
			last = next.end
			i++
		}
	}
	b.WriteString(sql[last:toks[len(toks)-1].end])
	return b.String()
}

// bindParameters replaces the ? placeholders of sql, in order, with params.
func bindParameters(sql string, params []string) (string, *queryError) {
	toks, qe := lex(sql)
	if qe != nil {
		return "", qe
	}
	var b strings.Builder
	last, n := 0, 0
	for _, t := range toks {
		if !t.isSymbol("?") {
			continue
		}
		if n < len(params) {
			b.WriteString(sql[last:t.start])
			b.WriteString(params[n])
			last = t.end
		}
		n++
	}
	if n != len(params) {
		return "", newQueryError(errGenericUser,
			fmt.Sprintf("Incorrect number of parameters: expected %d but found %d", n, len(params)))
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}
