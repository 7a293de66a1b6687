package sqlgateway

import (
	"strings"
)

// stmtKind is what the gateway does with a statement.
type stmtKind int

const (
	stmtQuery            stmtKind = iota // any other text: run on DuckDB if it is a single SELECT
	stmtShowCatalogs                     // SHOW CATALOGS [LIKE p]
	stmtShowSchemas                      // SHOW SCHEMAS [FROM c] [LIKE p]
	stmtShowTables                       // SHOW TABLES [FROM [c.]s] [LIKE p]
	stmtShowColumns                      // SHOW COLUMNS FROM t, DESCRIBE t
	stmtShowFunctions                    // SHOW FUNCTIONS [LIKE p]
	stmtShowSession                      // SHOW SESSION
	stmtShowCreateView                   // SHOW CREATE VIEW v
	stmtShowCreateTable                  // SHOW CREATE TABLE t
	stmtUse                              // USE [c.]s
	stmtSetSession                       // SET SESSION k = v
	stmtResetSession                     // RESET SESSION k
	stmtSetTimeZone                      // SET TIME ZONE LOCAL | 'zone'
	stmtStartTransaction                 // START TRANSACTION ...
	stmtCommit                           // COMMIT [WORK]
	stmtRollback                         // ROLLBACK [WORK]
	stmtPrepare                          // PREPARE name FROM statement
	stmtDeallocate                       // DEALLOCATE PREPARE name
	stmtExecute                          // EXECUTE name [USING ...], EXECUTE IMMEDIATE 'sql' [USING ...]
	stmtVersion                          // SELECT version() [[AS] alias]
	stmtDenied                           // a statement that would change state
)

// statement is a parsed statement the gateway answers itself, or the text
// of a query for DuckDB.
type statement struct {
	kind stmtKind
	sql  string // the statement text, without trailing semicolons

	name   []string // qualified name: schema, table or session property
	like   *string  // LIKE pattern
	escape *string  // LIKE escape character
	value  string   // SET SESSION value, SET TIME ZONE zone ("" for LOCAL), PREPARE body, EXECUTE IMMEDIATE text
	params []string // EXECUTE ... USING parameters, as DuckDB literals
	alias  string   // column name of SELECT version()
}

// parseStatement classifies sql. Statements the gateway does not implement
// come back as stmtQuery, to be checked and parsed by DuckDB.
func parseStatement(sql string) (*statement, *queryError) {
	sql = trimStatement(sql)
	toks, lexErr := lex(sql)
	if lexErr != nil {
		// Let DuckDB report what it makes of text the lexer rejects.
		return &statement{kind: stmtQuery, sql: sql}, nil
	}
	s := &tokenStream{sql: sql, toks: toks}
	st := &statement{kind: stmtQuery, sql: sql}
	var qe *queryError
	switch first := s.peek(); {
	case first.is("SHOW"):
		qe = parseShow(s, st)
	case first.is("DESCRIBE") || first.is("DESC"):
		s.next()
		if s.peek().is("INPUT") || s.peek().is("OUTPUT") || s.peek().is("SELECT") || s.peek().is("FROM") ||
			s.peek().is("WITH") || s.peek().isSymbol("(") {
			return st, nil // DuckDB's DESCRIBE <query>
		}
		st.kind = stmtShowColumns
		if st.name, qe = s.qualifiedName(); qe == nil {
			qe = s.expectEnd()
		}
	case first.is("USE"):
		s.next()
		st.kind = stmtUse
		if st.name, qe = s.qualifiedName(); qe == nil {
			qe = s.expectEnd()
		}
	case first.is("SET"):
		qe = parseSet(s, st)
	case first.is("RESET"):
		s.next()
		st.kind = stmtDenied
		if s.accept("SESSION") {
			st.kind = stmtResetSession
			if st.name, qe = s.qualifiedName(); qe == nil {
				qe = s.expectEnd()
			}
		}
	case first.is("START"):
		s.next()
		if s.accept("TRANSACTION") {
			st.kind = stmtStartTransaction
		} else {
			st.kind = stmtDenied
		}
	case first.is("COMMIT") || first.is("ROLLBACK"):
		s.next()
		st.kind = stmtCommit
		if first.is("ROLLBACK") {
			st.kind = stmtRollback
		}
		s.accept("WORK")
		qe = s.expectEnd()
	case first.is("PREPARE"):
		s.next()
		st.kind = stmtPrepare
		var id string
		if id, qe = s.identifier(); qe == nil {
			st.name = []string{id}
			if qe := s.expect("FROM"); qe != nil {
				return nil, qe
			}
			st.value = s.rest()
			if st.value == "" {
				return nil, s.unexpected("expected a statement")
			}
		}
	case first.is("DEALLOCATE"):
		s.next()
		st.kind = stmtDeallocate
		if err := s.expect("PREPARE"); err != nil {
			return nil, err
		}
		var id string
		if id, qe = s.identifier(); qe == nil {
			st.name = []string{id}
			qe = s.expectEnd()
		}
	case first.is("EXECUTE"):
		qe = parseExecute(s, st)
	case first.is("SELECT"):
		if alias, ok := parseVersion(s); ok {
			st.kind = stmtVersion
			st.alias = alias
		}
	}
	if qe != nil {
		return nil, qe
	}
	return st, nil
}

// trimStatement drops trailing space and semicolons. Leading space stays,
// so that error positions refer to the text the client sent.
func trimStatement(sql string) string {
	return strings.TrimRight(sql, " \t\r\n\f;")
}

// parseLike reads an optional LIKE 'pattern' [ESCAPE 'c'] and the end.
func parseLike(s *tokenStream, st *statement) *queryError {
	if s.accept("LIKE") {
		p, err := s.stringLiteral()
		if err != nil {
			return err
		}
		st.like = &p
		if s.accept("ESCAPE") {
			e, err := s.stringLiteral()
			if err != nil {
				return err
			}
			st.escape = &e
		}
	}
	return s.expectEnd()
}

func parseShow(s *tokenStream, st *statement) *queryError {
	s.next()
	switch {
	case s.accept("CATALOGS"):
		st.kind = stmtShowCatalogs
		return parseLike(s, st)
	case s.accept("SCHEMAS"):
		st.kind = stmtShowSchemas
		if s.accept("FROM") || s.accept("IN") {
			var qe *queryError
			if st.name, qe = s.qualifiedName(); qe != nil {
				return qe
			}
		}
		return parseLike(s, st)
	case s.accept("TABLES"):
		st.kind = stmtShowTables
		if s.accept("FROM") || s.accept("IN") {
			var qe *queryError
			if st.name, qe = s.qualifiedName(); qe != nil {
				return qe
			}
		}
		return parseLike(s, st)
	case s.accept("COLUMNS"):
		st.kind = stmtShowColumns
		if !s.accept("FROM") && !s.accept("IN") {
			return s.unexpected("expected FROM")
		}
		var qe *queryError
		if st.name, qe = s.qualifiedName(); qe != nil {
			return qe
		}
		return parseLike(s, st)
	case s.accept("FUNCTIONS"):
		st.kind = stmtShowFunctions
		return parseLike(s, st)
	case s.accept("SESSION"):
		st.kind = stmtShowSession
		return parseLike(s, st)
	case s.accept("CREATE"):
		switch {
		case s.accept("VIEW"):
			st.kind = stmtShowCreateView
		case s.accept("TABLE"):
			st.kind = stmtShowCreateTable
		default:
			return s.unexpected("expected VIEW or TABLE")
		}
		var qe *queryError
		if st.name, qe = s.qualifiedName(); qe != nil {
			return qe
		}
		return s.expectEnd()
	}
	// Other SHOW forms (DuckDB's SHOW t, SHOW ALL TABLES) are DuckDB's.
	return nil
}

func parseSet(s *tokenStream, st *statement) *queryError {
	s.next()
	switch {
	case s.accept("SESSION"):
		if s.peek().is("AUTHORIZATION") {
			st.kind = stmtDenied
			return nil
		}
		st.kind = stmtSetSession
		var qe *queryError
		if st.name, qe = s.qualifiedName(); qe != nil {
			return qe
		}
		if !s.peek().isSymbol("=") {
			return s.unexpected("expected =")
		}
		s.next()
		v := s.next()
		switch v.kind {
		case tokString, tokNumber:
			st.value = v.text
		case tokWord:
			st.value = strings.ToLower(v.text) // true, false
		default:
			return syntaxErrorAt(s.sql, v.start, "expected a literal session property value")
		}
		return s.expectEnd()
	case s.accept("TIME", "ZONE"):
		st.kind = stmtSetTimeZone
		if s.accept("LOCAL") {
			return s.expectEnd()
		}
		if s.accept("INTERVAL") {
			return newQueryError(errNotSupported, "SET TIME ZONE INTERVAL is not supported: name the zone, such as SET TIME ZONE '+02:00'")
		}
		v, err := s.stringLiteral()
		if err != nil {
			return err
		}
		st.value = v
		return s.expectEnd()
	}
	// SET ROLE, SET PATH and DuckDB's SET of engine options.
	st.kind = stmtDenied
	return nil
}

func parseExecute(s *tokenStream, st *statement) *queryError {
	s.next()
	st.kind = stmtExecute
	if s.peek().is("IMMEDIATE") && s.pos+1 < len(s.toks) && s.toks[s.pos+1].kind == tokString {
		s.next()
		st.value = s.next().text
	} else {
		id, qe := s.identifier()
		if qe != nil {
			return qe
		}
		st.name = []string{id}
	}
	if s.done() {
		return nil
	}
	if err := s.expect("USING"); err != nil {
		return err
	}
	params, qe := usingParameters(s)
	if qe != nil {
		return qe
	}
	st.params = params
	return nil
}

// parseVersion recognises SELECT version() [[AS] alias], which answers
// duet's version rather than DuckDB's.
func parseVersion(s *tokenStream) (alias string, ok bool) {
	t := s.toks
	if len(t) < 4 || !t[0].is("SELECT") || !t[1].is("version") || !t[2].isSymbol("(") || !t[3].isSymbol(")") {
		return "", false
	}
	rest := t[4:]
	if len(rest) > 0 && rest[0].is("AS") {
		rest = rest[1:]
	}
	switch {
	case len(rest) == 0:
		return "_col0", true
	case len(rest) == 1 && (rest[0].kind == tokWord || rest[0].kind == tokQuoted):
		return rest[0].text, true
	}
	return "", false
}
