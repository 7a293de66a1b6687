package sqlgateway

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// Trino clients write Trino's functions. DuckDB lacks some of them
// (from_unixtime, format_datetime, json_extract_scalar), and has others
// under the same name with another meaning: date_diff counts the unit
// boundaries crossed rather than whole units, regexp_extract answers '' for
// no match, regexp_replace replaces only the first match, date_trunc of a
// timestamp to a day returns a date.
//
// The gateway defines each as a DuckDB macro in the hidden schema
// functionsSchema of its catalog, and qualifies a query's unqualified calls
// of them with that schema, in the text the client sent (the calls are found
// in DuckDB's parse tree, like resolveTables' table references). Only the
// text a Trino client sent is affected: installed under the built-ins'
// names, the macros would change what date_diff or regexp_replace mean to
// every other user of the engine, duet's views and speed layer included,
// and the speed layer and the batch executors would then disagree. A
// qualified call also resolves whatever the session schema is, and the
// schema holds no tables.
//
// Aggregates and functions that take a lambda are renamed to their DuckDB
// equivalents instead: a macro cannot take FILTER, DISTINCT or ORDER BY, nor
// pass a lambda on.

// functionsSchema holds the macros. Like every schema starting with "__" it
// is hidden from SHOW SCHEMAS and information_schema.
const functionsSchema = "__duet_functions"

// trinoFunction is a Trino function the gateway maps onto DuckDB: either a
// macro of overloads, or a rename of the call.
type trinoFunction struct {
	name      string
	overloads []overload
	// rename is the DuckDB function a call is renamed to, for aggregates
	// and lambdas.
	rename string
}

// overload is one "(params) AS body" of a macro. Typed parameters pick the
// overload by the arguments' types, and make DuckDB's error for arguments
// no overload takes name the function. Lambdas in bodies name their
// parameters "__e" and the like, so as to capture no column an argument
// names. "{fn}" in a body is the schema, for calls of the helper macros.
type overload struct {
	params, body string
}

// arity is the number of the overload's parameters (commas outside a
// type's parentheses, as in MAP(VARCHAR, VARCHAR), separate them).
func (o overload) arity() int {
	if o.params == "" {
		return 0
	}
	n, depth := 1, 0
	for _, c := range o.params {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		}
	}
	return n
}

// temporal is one overload per date and time type, all with body.
func temporal(body string) []overload {
	return []overload{{"x DATE", body}, {"x TIMESTAMP", body}, {"x TIMESTAMPTZ", body}}
}

// Trino's date and time units, and the intervals of one of each.
var (
	timeUnits = [][2]string{
		{"millisecond", "INTERVAL 1 MILLISECOND"}, {"second", "INTERVAL 1 SECOND"},
		{"minute", "INTERVAL 1 MINUTE"}, {"hour", "INTERVAL 1 HOUR"},
	}
	dateUnits = [][2]string{
		{"day", "INTERVAL 1 DAY"}, {"week", "INTERVAL 7 DAY"}, {"month", "INTERVAL 1 MONTH"},
		{"quarter", "INTERVAL 3 MONTH"}, {"year", "INTERVAL 1 YEAR"},
	}
)

// unitInterval is a CASE expression mapping the parameter unit to the
// interval of one unit, NULL for a NULL unit, and failing, naming fn and the
// units it takes, for any other unit.
func unitInterval(fn, what string, units ...[][2]string) string {
	var b strings.Builder
	b.WriteString("CASE WHEN unit IS NULL THEN NULL")
	var names []string
	for _, us := range units {
		for _, u := range us {
			fmt.Fprintf(&b, " WHEN lower(unit) = '%s' THEN %s", u[0], u[1])
			names = append(names, u[0])
		}
	}
	list := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	fmt.Fprintf(&b, " ELSE error('%s: ''' || unit || ''' is not a valid unit%s: use %s') END", fn, what, list)
	return b.String()
}

// dateAdd is date_add's overloads: x plus value units, of x's type.
func dateAdd() []overload {
	return []overload{
		{"unit VARCHAR, value BIGINT, x DATE", "CAST(x + value * (" + unitInterval("date_add", " for a date", dateUnits) + ") AS DATE)"},
		{"unit VARCHAR, value BIGINT, x TIMESTAMP", "x + value * (" + unitInterval("date_add", "", timeUnits, dateUnits) + ")"},
		{"unit VARCHAR, value BIGINT, x TIMESTAMPTZ", "x + value * (" + unitInterval("date_add", "", timeUnits, dateUnits) + ")"},
		{"unit VARCHAR, value BIGINT, x TIME", "x + value * (" + unitInterval("date_add", " for a time", timeUnits) + ")"},
	}
}

// variadic is a macro taking minArgs to 10 arguments, the body of each
// built by body from its argument names; first, if set, declares the first.
func variadic(first string, minArgs int, body func(args []string) string) []overload {
	const maxArgs = 10
	var out []overload
	for n := minArgs; n <= maxArgs; n++ {
		args := make([]string, n)
		for i := range args {
			args[i] = fmt.Sprintf("a%d", i+1)
		}
		params := args
		if first != "" {
			params = append([]string{first}, args[1:]...)
			args[0] = strings.Fields(first)[0]
		}
		out = append(out, overload{strings.Join(params, ", "), body(args)})
	}
	return out
}

// constant is expr, computed from the parameter param, as an argument
// DuckDB requires to be constant (a format, a separator). DuckDB binds a
// macro when it is created, its parameters unknown, and refuses an argument
// computed from one as not constant; computed in a lambda over [param] it
// passes that check, and a constant param still folds to a constant when
// the macro is called.
func constant(param, expr string) string {
	return "list_transform([" + param + "], " + param + " -> " + expr + ")[1]"
}

// mysqlSpecifiers map date_format's MySQL specifiers to strftime's. Those
// with no strftime equivalent (%D, %V, %X) are missing: the conversion
// turns them into a "%{...}" that strftime rejects with a message naming
// the function.
var mysqlSpecifiers = [][2]string{
	{"%a", "%a"}, {"%b", "%b"}, {"%c", "%-m"}, {"%d", "%d"}, {"%e", "%-d"}, {"%f", "%f"},
	{"%H", "%H"}, {"%h", "%I"}, {"%I", "%I"}, {"%i", "%M"}, {"%j", "%j"}, {"%k", "%-H"},
	{"%l", "%-I"}, {"%M", "%B"}, {"%m", "%m"}, {"%p", "%p"}, {"%r", "%I:%M:%S %p"},
	{"%S", "%S"}, {"%s", "%S"}, {"%T", "%H:%M:%S"}, {"%U", "%U"}, {"%u", "%W"},
	{"%v", "%V"}, {"%W", "%A"}, {"%w", "%w"}, {"%x", "%G"}, {"%Y", "%Y"}, {"%y", "%y"},
	{"%%", "%%"}, {"%", "%%"},
}

// mysqlFormat is the body of the helper converting a MySQL format f to
// strftime's, for the function fn. The format helpers report what they
// cannot convert in the format, not with error(): strftime takes only a
// constant format, and error() keeps DuckDB from folding one.
func mysqlFormat() string {
	var b strings.Builder
	b.WriteString(`array_to_string(list_transform(regexp_extract_all(f, '%[\s\S]?|[^%]+'), t -> CASE t`)
	for _, s := range mysqlSpecifiers {
		fmt.Fprintf(&b, " WHEN '%s' THEN '%s'", s[0], s[1])
	}
	b.WriteString(` WHEN '%D' THEN '%{' || fn || ' does not support %D}'`)
	b.WriteString(` WHEN '%V' THEN '%{' || fn || ' does not support %V}'`)
	b.WriteString(` WHEN '%X' THEN '%{' || fn || ' does not support %X}'`)
	// "%x" is x for any x not listed.
	b.WriteString(` ELSE CASE WHEN t[1] = '%' THEN t[2] ELSE t END END), '')`)
	return b.String()
}

// jodaFormat is the body of the helper converting a Joda-Time pattern f
// (format_datetime's) to a strftime format, for the function fn. Letters
// repeat to choose a width or a text form; text in single quotes is
// literal, and two single quotes are one.
func jodaFormat() string {
	return `array_to_string(list_transform(
		regexp_extract_all(f, '''(?:[^'']|'''')*''|` + letterRuns + `|''|[^A-Za-z'']+'),
		t -> CASE
			WHEN t = '''''' THEN ''''
			WHEN t = '''' THEN '%{' || fn || ': unterminated quote in the pattern}'
			WHEN t[1] = '''' THEN replace(replace(t[2:-2], '''''', ''''), '%', '%%')
			WHEN t[1] IN ('y', 'Y') THEN CASE WHEN length(t) = 2 THEN '%y' ELSE '%Y' END
			WHEN t[1] = 'x' THEN '%G'
			WHEN t[1] = 'M' THEN CASE length(t) WHEN 1 THEN '%-m' WHEN 2 THEN '%m' WHEN 3 THEN '%b' ELSE '%B' END
			WHEN t[1] = 'd' THEN CASE WHEN length(t) = 1 THEN '%-d' ELSE '%d' END
			WHEN t[1] = 'D' THEN CASE WHEN length(t) < 3 THEN '%-j' ELSE '%j' END
			WHEN t[1] = 'H' THEN CASE WHEN length(t) = 1 THEN '%-H' ELSE '%H' END
			WHEN t[1] = 'h' THEN CASE WHEN length(t) = 1 THEN '%-I' ELSE '%I' END
			WHEN t[1] = 'm' THEN CASE WHEN length(t) = 1 THEN '%-M' ELSE '%M' END
			WHEN t[1] = 's' THEN CASE WHEN length(t) = 1 THEN '%-S' ELSE '%S' END
			WHEN t = 'SSS' THEN '%g'
			WHEN t = 'SSSSSS' THEN '%f'
			WHEN t[1] = 'E' THEN CASE WHEN length(t) < 4 THEN '%a' ELSE '%A' END
			WHEN t[1] = 'e' THEN '%u'
			WHEN t[1] = 'a' THEN '%p'
			WHEN t[1] = 'z' THEN '%Z'
			WHEN t[1] = 'Z' THEN '%z'
			WHEN t[1] = 'w' THEN '%V'
			WHEN regexp_matches(t, '^[A-Za-z]') THEN '%{' || fn || ' does not support the pattern letters ' || t || '}'
			ELSE replace(t, '%', '%%')
		END), '')`
}

// letterRuns matches a run of one letter, a Joda-Time pattern's field
// (RE2 has no backreferences to say it).
var letterRuns = func() string {
	var runs []string
	for _, r := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" {
		runs = append(runs, string(r)+"+")
	}
	return strings.Join(runs, "|")
}()

// javaReplacement is the body of the helper converting a regexp_replace
// replacement in Java's syntax ($1 names a group, \$ is a dollar) to RE2's
// (\1 names a group, \\ is a backslash, which stays as it is).
const javaReplacement = `array_to_string(list_transform(
	regexp_extract_all(r, '\\[\s\S]|\$[0-9]|\$\{[^}]*\}|\$|[^\\$]+'),
	t -> CASE
		WHEN t = '\\' THEN '\\'
		WHEN t[1] = '\' THEN t[2]
		WHEN t[1] = '$' AND regexp_matches(t, '^\$[0-9]$') THEN '\' || t[2]
		WHEN t[1] = '$' AND length(t) > 1 THEN error('regexp_replace: named groups (' || t || ') are not supported in the replacement; use $1 to $9')
		WHEN t = '$' THEN error('regexp_replace: a $ in the replacement must name a group ($1) or be escaped (\$)')
		ELSE t
	END), '')`

// jsonPath rewrites the JSONPath p's bracketed keys ($["a b"]) to the
// quoted keys DuckDB reads ($."a b").
const jsonPath = `regexp_replace(p, '\["([^"]*)"\]', '."\1"', 'g')`

// trinoFunctions are the functions the gateway maps. Those DuckDB has with
// Trino's meaning (year, month, day, hour, quarter, week, length, strpos,
// concat_ws, split, regexp_extract_all, contains, filter, try_cast, try,
// if, now, current_timestamp...) are left to DuckDB.
var trinoFunctions = []trinoFunction{
	// Helpers the macros below call, created first, as a macro's body is
	// bound when it is created; "__" hides them from SHOW FUNCTIONS.
	{name: "__mysql_format", overloads: []overload{{"f, fn", mysqlFormat()}}},
	{name: "__joda_format", overloads: []overload{{"f, fn", jodaFormat()}}},
	{name: "__java_replacement", overloads: []overload{{"r", javaReplacement}}},

	{name: "approx_distinct", rename: "approx_count_distinct"},
	{name: "approx_percentile", rename: "approx_quantile"},
	{name: "every", rename: "bool_and"},
	{name: "transform", rename: "list_transform"},

	{name: "date_trunc", overloads: []overload{
		{"unit VARCHAR, x DATE", "CAST(date_trunc(unit, x) AS DATE)"},
		{"unit VARCHAR, x TIMESTAMP", "CAST(date_trunc(unit, x) AS TIMESTAMP)"},
		{"unit VARCHAR, x TIMESTAMPTZ", "date_trunc(unit, x)"},
	}},
	{name: "date_add", overloads: dateAdd()},
	{name: "date_diff", overloads: []overload{
		// DuckDB's date_sub counts whole units, as Trino's date_diff does.
		{"unit VARCHAR, a DATE, b DATE", "date_sub(unit, a, b)"},
		{"unit VARCHAR, a TIMESTAMP, b TIMESTAMP", "date_sub(unit, a, b)"},
		{"unit VARCHAR, a TIMESTAMPTZ, b TIMESTAMPTZ", "date_sub(unit, a, b)"},
		{"unit VARCHAR, a TIME, b TIME", "date_sub(unit, a, b)"},
	}},
	{name: "from_unixtime", overloads: []overload{{"x DOUBLE", "to_timestamp(x)"}}},
	{name: "to_unixtime", overloads: []overload{{"x TIMESTAMP", "epoch(x)"}, {"x TIMESTAMPTZ", "epoch(x)"}}},
	{name: "from_iso8601_timestamp", overloads: []overload{{"s VARCHAR",
		"CASE WHEN s IS NOT NULL THEN coalesce(TRY_CAST(s AS TIMESTAMPTZ), error('from_iso8601_timestamp: ''' || s || ''' is not an ISO 8601 timestamp')) END"}}},
	{name: "from_iso8601_date", overloads: []overload{{"s VARCHAR",
		"CASE WHEN s IS NOT NULL THEN coalesce(TRY_CAST(s AS DATE), error('from_iso8601_date: ''' || s || ''' is not an ISO 8601 date')) END"}}},
	{name: "to_iso8601", overloads: []overload{
		{"x DATE", "strftime(x, '%Y-%m-%d')"},
		{"x TIMESTAMP", "strftime(x, '%Y-%m-%dT%H:%M:%S.%f')"},
		{"x TIMESTAMPTZ", "strftime(timezone('UTC', x), '%Y-%m-%dT%H:%M:%S.%fZ')"},
	}},
	{name: "format_datetime", overloads: []overload{
		{"x TIMESTAMP, f", "strftime(x, " + constant("f", "{fn}.__joda_format(f, 'format_datetime')") + ")"},
		{"x TIMESTAMPTZ, f", "strftime(x, " + constant("f", "{fn}.__joda_format(f, 'format_datetime')") + ")"},
	}},
	{name: "parse_datetime", overloads: []overload{{"s VARCHAR, f",
		"CAST(strptime(s, " + constant("f", "{fn}.__joda_format(f, 'parse_datetime')") + ") AS TIMESTAMPTZ)"}}},
	{name: "date_format", overloads: []overload{
		{"x TIMESTAMP, f", "strftime(x, " + constant("f", "{fn}.__mysql_format(f, 'date_format')") + ")"},
		{"x TIMESTAMPTZ, f", "strftime(x, " + constant("f", "{fn}.__mysql_format(f, 'date_format')") + ")"},
	}},
	{name: "date_parse", overloads: []overload{{"s VARCHAR, f",
		"CAST(strptime(s, " + constant("f", "{fn}.__mysql_format(f, 'date_parse')") + ") AS TIMESTAMP)"}}},
	{name: "day_of_week", overloads: temporal("isodow(x)")},
	{name: "dow", overloads: temporal("isodow(x)")},
	{name: "day_of_month", overloads: temporal("dayofmonth(x)")},
	{name: "day_of_year", overloads: temporal("dayofyear(x)")},
	{name: "doy", overloads: temporal("dayofyear(x)")},
	{name: "week_of_year", overloads: temporal("week(x)")},
	{name: "year_of_week", overloads: temporal("isoyear(x)")},
	{name: "yow", overloads: temporal("isoyear(x)")},
	{name: "last_day_of_month", overloads: temporal("last_day(x)")},
	// DuckDB's millisecond counts the seconds' milliseconds too.
	{name: "millisecond", overloads: temporal("millisecond(x) % 1000")},

	{name: "regexp_like", overloads: []overload{{"s VARCHAR, p VARCHAR", "regexp_matches(s, p)"}}},
	{name: "regexp_extract", overloads: []overload{
		{"s VARCHAR, p VARCHAR", "CASE WHEN regexp_matches(s, p) THEN regexp_extract(s, p) END"},
		{"s VARCHAR, p VARCHAR, g", "CASE WHEN regexp_matches(s, p) THEN regexp_extract(s, p, g) END"},
	}},
	{name: "regexp_replace", overloads: []overload{
		{"s VARCHAR, p VARCHAR", "regexp_replace(s, p, '', 'g')"},
		{"s VARCHAR, p VARCHAR, r VARCHAR", "regexp_replace(s, p, {fn}.__java_replacement(r), 'g')"},
	}},
	{name: "regexp_count", overloads: []overload{{"s VARCHAR, p VARCHAR", "len(regexp_extract_all(s, p))"}}},
	{name: "regexp_split", overloads: []overload{{"s VARCHAR, p VARCHAR", "string_split_regex(s, p)"}}},
	{name: "split_part", overloads: []overload{{"s VARCHAR, d VARCHAR, i BIGINT",
		"CASE WHEN i < 1 THEN error('split_part: the index must be greater than zero, got ' || i) WHEN i <= len(string_split(s, d)) THEN split_part(s, d, i) END"}}},
	{name: "replace", overloads: []overload{{"s VARCHAR, search VARCHAR", "replace(s, search, '')"}}},
	// Trino's concat is NULL when an argument is; DuckDB's skips it.
	{name: "concat", overloads: variadic("", 2, func(a []string) string {
		return "CASE WHEN " + strings.Join(a, " IS NULL OR ") + " IS NULL THEN NULL ELSE concat(" + strings.Join(a, ", ") + ") END"
	})},
	{name: "format", overloads: variadic("fmt VARCHAR", 1, func(a []string) string { return "printf(" + strings.Join(a, ", ") + ")" })},
	{name: "codepoint", overloads: []overload{{"c VARCHAR", "unicode(c)"}}},
	{name: "levenshtein_distance", overloads: []overload{{"a VARCHAR, b VARCHAR", "levenshtein(a, b)"}}},
	{name: "hamming_distance", overloads: []overload{{"a VARCHAR, b VARCHAR", "hamming(a, b)"}}},
	{name: "json_extract_scalar", overloads: []overload{{"j VARCHAR, p VARCHAR",
		"CASE WHEN json_valid(j) THEN CASE WHEN json_type(j, " + jsonPath + ") IN ('OBJECT', 'ARRAY') THEN NULL ELSE json_extract_string(j, " + jsonPath + ") END END"}}},
	{name: "json_parse", overloads: []overload{{"s VARCHAR", "json(s)"}}},
	{name: "json_format", overloads: []overload{{"j JSON", "CAST(j AS VARCHAR)"}}},

	{name: "cardinality", overloads: []overload{
		// A map of any types matches MAP(VARCHAR, VARCHAR); the rest are lists.
		{"x MAP(VARCHAR, VARCHAR)", "CAST(cardinality(x) AS BIGINT)"},
		{"x", "len(x)"},
	}},
	{name: "element_at", overloads: []overload{{"x, k", "x[k]"}}},
	{name: "array_join", overloads: []overload{
		{"a, sep", "array_to_string(a, " + constant("sep", "sep") + ")"},
		{"a, sep, nulls", "array_to_string(list_transform(a, __e -> coalesce(CAST(__e AS VARCHAR), nulls)), " + constant("sep", "sep") + ")"},
	}},
	{name: "array_max", overloads: []overload{{"a", "CASE WHEN len(list_filter(a, __e -> __e IS NULL)) = 0 THEN list_max(a) END"}}},
	{name: "array_min", overloads: []overload{{"a", "CASE WHEN len(list_filter(a, __e -> __e IS NULL)) = 0 THEN list_min(a) END"}}},
	{name: "array_position", overloads: []overload{{"a, x",
		"CASE WHEN a IS NOT NULL AND x IS NOT NULL THEN CAST(coalesce(list_position(a, x), 0) AS BIGINT) END"}}},
	{name: "array_remove", overloads: []overload{{"a, x", "CASE WHEN x IS NOT NULL THEN list_filter(a, __e -> __e IS NULL OR __e <> x) END"}}},
	{name: "arrays_overlap", overloads: []overload{{"a, b", "list_has_any(a, b)"}}},
	{name: "sequence", overloads: []overload{
		{"a BIGINT, b BIGINT", "generate_series(a, b, CASE WHEN a <= b THEN 1 ELSE -1 END)"},
		{"a BIGINT, b BIGINT, step BIGINT", "generate_series(a, b, step)"},
		{"a DATE, b DATE", "list_transform(generate_series(CAST(a AS TIMESTAMP), CAST(b AS TIMESTAMP), CASE WHEN a <= b THEN INTERVAL 1 DAY ELSE INTERVAL (-1) DAY END), __d -> CAST(__d AS DATE))"},
		{"a DATE, b DATE, step INTERVAL", "list_transform(generate_series(CAST(a AS TIMESTAMP), CAST(b AS TIMESTAMP), step), __d -> CAST(__d AS DATE))"},
		{"a TIMESTAMP, b TIMESTAMP, step INTERVAL", "generate_series(a, b, step)"},
	}},

	{name: "truncate", overloads: []overload{{"x", "trunc(x)"}, {"x, n INTEGER", "trunc(x, n)"}}},
	{name: "is_nan", overloads: []overload{{"x DOUBLE", "isnan(x)"}}},
	{name: "is_finite", overloads: []overload{{"x DOUBLE", "isfinite(x)"}}},
	{name: "is_infinite", overloads: []overload{{"x DOUBLE", "isinf(x)"}}},
	{name: "nan", overloads: []overload{{"", "CAST('NaN' AS DOUBLE)"}}},
	{name: "infinity", overloads: []overload{{"", "CAST('Infinity' AS DOUBLE)"}}},
	{name: "e", overloads: []overload{{"", "exp(1)"}}},
	{name: "rand", overloads: []overload{{"", "random()"}, {"n BIGINT", "CAST(floor(random() * n) AS BIGINT)"}}},
	{name: "random", overloads: []overload{{"n BIGINT", "CAST(floor(random() * n) AS BIGINT)"}}},
}

// trinoFunctionIndex finds a Trino function by its lower-case name; helpers
// are not called by name from user SQL.
var trinoFunctionIndex = func() map[string]*trinoFunction {
	m := map[string]*trinoFunction{}
	for i := range trinoFunctions {
		if f := &trinoFunctions[i]; !strings.HasPrefix(f.name, "__") {
			m[f.name] = f
		}
	}
	return m
}()

// takes reports whether the function handles a call with n arguments;
// other calls are left to DuckDB's function of that name, if any.
func (f *trinoFunction) takes(n int) bool {
	if f.rename != "" {
		return true
	}
	for _, o := range f.overloads {
		if o.arity() == n {
			return true
		}
	}
	return false
}

// installFunctions creates the macros in catalog's functions schema.
func installFunctions(ctx context.Context, db *sql.DB, catalog string) error {
	schema := dataset.QuoteIdent(catalog) + "." + functionsSchema
	stmts := []string{"CREATE SCHEMA IF NOT EXISTS " + schema}
	for _, f := range trinoFunctions {
		if f.rename != "" {
			continue
		}
		parts := make([]string, len(f.overloads))
		for i, o := range f.overloads {
			parts[i] = "(" + o.params + ") AS " + strings.ReplaceAll(o.body, "{fn}", schema)
		}
		stmts = append(stmts, "CREATE OR REPLACE MACRO "+schema+"."+f.name+strings.Join(parts, ", "))
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("Trino functions: %s: %w", q[:min(len(q), 80)], err)
		}
	}
	return nil
}

// functionCalls finds the calls of Trino functions in a query's parse tree
// and returns the splices that make them call the macros, or the DuckDB
// functions they are renamed to. toks are the query's tokens, at the index
// of the token starting at each offset.
func (x *execution) functionCalls(tree any, toks []token, at map[int]int) []splice {
	qualifier := dataset.QuoteIdent(x.g.cfg.Catalog) + "." + functionsSchema + "."
	var edits []splice
	var walk func(n any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if n["class"] == "FUNCTION" || n["class"] == "WINDOW" {
				if e, ok := functionCall(n, toks, at, qualifier); ok {
					edits = append(edits, e)
				}
			}
			if e, ok := currentUser(n, toks, at, x.sess.user); ok {
				edits = append(edits, e)
			}
			for _, v := range n {
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	walk(tree)
	return edits
}

// functionCall is the splice for one function node, if it calls a Trino
// function unqualified, by a name the client wrote followed by "(" (DuckDB
// makes function nodes of operators and of special forms such as EXTRACT
// too, located elsewhere).
func functionCall(n map[string]any, toks []token, at map[int]int, qualifier string) (splice, bool) {
	name, _ := n["function_name"].(string)
	schema, _ := n["schema"].(string)
	catalog, _ := n["catalog"].(string)
	f := trinoFunctionIndex[strings.ToLower(name)]
	if f == nil || schema != "" || catalog != "" {
		return splice{}, false
	}
	children, _ := n["children"].([]any)
	num, _ := n["query_location"].(json.Number)
	loc, err := num.Int64()
	i, ok := at[int(loc)]
	if err != nil || !ok || !f.takes(len(children)) {
		return splice{}, false
	}
	t := toks[i]
	if t.kind != tokWord && t.kind != tokQuoted || !strings.EqualFold(t.text, name) || i+1 >= len(toks) || !toks[i+1].isSymbol("(") {
		return splice{}, false
	}
	if f.rename != "" {
		return splice{t.start, t.end, f.rename}, true
	}
	return splice{t.start, t.start, qualifier}, true
}

// currentUser is the splice that makes current_user the session user (the
// engine's own is "duckdb"). DuckDB parses it as a column reference, which
// the binder resolves to its function when no column has that name.
func currentUser(n map[string]any, toks []token, at map[int]int, user string) (splice, bool) {
	names, _ := n["column_names"].([]any)
	if n["class"] != "COLUMN_REF" || len(names) != 1 {
		return splice{}, false
	}
	if name, _ := names[0].(string); !strings.EqualFold(name, "current_user") {
		return splice{}, false
	}
	num, _ := n["query_location"].(json.Number)
	loc, err := num.Int64()
	i, ok := at[int(loc)]
	if err != nil || !ok || toks[i].kind != tokWord {
		return splice{}, false
	}
	return splice{toks[i].start, toks[i].end, dataset.QuoteString(user)}, true
}

// qualifiedCall matches the functions schema as DuckDB prints it in the
// name of a result column computed by a macro ("duet.__duet_functions.").
var qualifiedCall = regexp.MustCompile(`(?:(?:\w+|"(?:[^"]|"")*")\.)?"?` + functionsSchema + `"?\.`)

// columnName is a result column's name as the client wrote it, without the
// schema the gateway qualified its function calls with.
func columnName(name string) string {
	if !strings.Contains(name, functionsSchema) {
		return name
	}
	return qualifiedCall.ReplaceAllString(name, "")
}
