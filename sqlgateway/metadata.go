package sqlgateway

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/duet-analytics/duet/dataset"
)

// hiddenSchema reports whether a schema is internal to duet: it is never
// listed and cannot be made the session schema.
func hiddenSchema(name string) bool { return strings.HasPrefix(name, "__") }

// systemSchema is duet's metadata schema. DuckDB has a catalog of that name
// too and rejects the two-part system.<table> as ambiguous, where Trino
// reads it as a table of the session catalog's schema system.
const systemSchema = "system"

// infoSchema holds duet's views of information_schema's tables: DuckDB's
// list every catalog's objects, duet's internal ones included, and a schema
// of that name cannot be created in duet's catalog to shadow them.
const infoSchema = "__duet_information_schema"

// infoTables are the information_schema tables BI tools read on connect.
var infoTables = map[string]string{
	"schemata": "catalog_name", "tables": "table_catalog", "columns": "table_catalog", "views": "table_catalog",
}

// installInfoSchema creates duet's information_schema views: DuckDB's own,
// restricted to the catalog's visible schemas.
func installInfoSchema(ctx context.Context, db *sql.DB, catalog string, authz Authorizer) error {
	schemaCol := map[string]string{"schemata": "schema_name", "tables": "table_schema", "columns": "table_schema", "views": "table_schema"}
	stmts := []string{"CREATE SCHEMA IF NOT EXISTS " + dataset.QuoteIdent(catalog) + "." + infoSchema}
	for table, catCol := range infoTables {
		sel := "*"
		if table == "columns" {
			sel = "* REPLACE (" + trinoTypeFunction + "(data_type) AS data_type)"
		}
		q := fmt.Sprintf(`CREATE OR REPLACE VIEW %s.%s.%s AS SELECT %s FROM system.information_schema.%s WHERE %s = %s AND NOT starts_with(%s, '__')`,
			dataset.QuoteIdent(catalog), infoSchema, table, sel, table, catCol, dataset.QuoteString(catalog), schemaCol[table])
		if table != "schemata" {
			// Under authorization rules, only what the session user may read.
			q += fmt.Sprintf(` AND (getvariable('%[1]s') IS NULL OR %[2]s(getvariable('%[1]s'), table_schema, table_name))`, sessionUserVariable, canReadFunction)
		}
		if table == "schemata" {
			q += fmt.Sprintf(` UNION ALL SELECT * REPLACE (%s AS catalog_name) FROM system.information_schema.schemata WHERE catalog_name = 'system' AND schema_name = 'information_schema'`,
				dataset.QuoteString(catalog))
		}
		stmts = append(stmts, q)
	}
	varchar, err := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	if err != nil {
		return err
	}
	boolean, err := duckdb.NewTypeInfo(duckdb.TYPE_BOOLEAN)
	if err != nil {
		return err
	}
	if err := registerScalar(ctx, db, trinoTypeFunction, []duckdb.TypeInfo{varchar}, varchar, func(v []driver.Value) (any, error) {
		s, _ := v[0].(string)
		return trinoTypeName(s), nil
	}); err != nil {
		return err
	}
	if err := registerScalar(ctx, db, canReadFunction, []duckdb.TypeInfo{varchar, varchar, varchar}, boolean, func(v []driver.Value) (any, error) {
		if authz == nil {
			return true, nil
		}
		user, _ := v[0].(string)
		schema, _ := v[1].(string)
		table, _ := v[2].(string)
		return authz.CanRead(user, schema, table), nil
	}); err != nil {
		return err
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("information_schema views: %w", err)
		}
	}
	return nil
}

// splice replaces text[start:end] of a statement with with.
type splice struct {
	start, end int
	with       string
}

// trinoTypeFunction names a DuckDB type as Trino does (trinoTypeName), for
// information_schema.columns; canReadFunction asks the Authorizer whether
// a user may read a relation, for information_schema under authorization.
const (
	trinoTypeFunction = "__duet_trino_type"
	canReadFunction   = "__duet_can_read"
)

// registerScalar registers a scalar function implemented by fn, once per
// engine (DuckDB refuses a second registration of the name).
func registerScalar(ctx context.Context, db *sql.DB, name string, in []duckdb.TypeInfo, out duckdb.TypeInfo, fn func([]driver.Value) (any, error)) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_functions() WHERE function_name = ?", name).Scan(&n); err != nil || n > 0 {
		return err
	}
	f := &scalarUDF{config: duckdb.ScalarFuncConfig{InputTypeInfos: in, ResultTypeInfo: out}, fn: fn}
	if err := duckdb.RegisterScalarUDF(conn, name, f); err != nil {
		return fmt.Errorf("register %s: %w", name, err)
	}
	return nil
}

type scalarUDF struct {
	config duckdb.ScalarFuncConfig
	fn     func([]driver.Value) (any, error)
}

func (f *scalarUDF) Config() duckdb.ScalarFuncConfig { return f.config }

func (f *scalarUDF) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: f.fn}
}

// rewrites are the splices that resolve a query's table references the way
// Trino would, where DuckDB would not: system.<table> is the session
// catalog's schema system (DuckDB finds its own catalog of that name
// ambiguous), and information_schema.<table> (or <catalog>.information_schema)
// lists only the catalog's visible objects. The references are found in
// DuckDB's parse tree (not column references such as alias.column) and the
// text the client sent is spliced, so the rest reaches DuckDB as written.
// Calls of Trino's functions are spliced the same way (functionCalls).
// at maps each token's start offset to its index (tokenStarts).
func (x *execution) rewrites(toks []token, at map[int]int, tree any) []splice {
	var edits []splice
	catalog := dataset.QuoteIdent(x.g.cfg.Catalog)
	var walk func(n any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			if n["type"] == "BASE_TABLE" {
				cat, _ := n["catalog_name"].(string)
				schema, _ := n["schema_name"].(string)
				table, _ := n["table_name"].(string)
				num, _ := n["query_location"].(json.Number)
				loc, err := num.Int64()
				i, ok := at[int(loc)]
				switch {
				case err != nil || !ok:
				case cat == "" && strings.EqualFold(schema, systemSchema):
					edits = append(edits, splice{toks[i].start, toks[i].start, catalog + "."})
				case strings.EqualFold(schema, "information_schema") && infoTables[strings.ToLower(table)] != "":
					switch {
					case cat == "":
						edits = append(edits, splice{toks[i].start, toks[i].end, catalog + "." + infoSchema})
					case (strings.EqualFold(cat, x.g.cfg.Catalog) || strings.EqualFold(cat, "system")) && i+2 < len(toks):
						edits = append(edits, splice{toks[i].start, toks[i+2].end, catalog + "." + infoSchema})
					}
				}
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
	return append(edits, x.functionCalls(tree, toks, at)...)
}

// tokenStarts maps each token's start offset to its index, to find the
// token at a parse tree node's query_location.
func tokenStarts(toks []token) map[int]int {
	at := make(map[int]int, len(toks))
	for i, t := range toks {
		at[t.start] = i
	}
	return at
}

// applySplices makes the edits in text, the first of several at one place.
// It sorts edits.
func applySplices(text string, edits []splice) string {
	slices.SortStableFunc(edits, func(a, b splice) int { return b.start - a.start })
	for i, e := range edits {
		if i > 0 && e.start == edits[i-1].start {
			continue
		}
		text = text[:e.start] + e.with + text[e.end:]
	}
	return text
}

func (x *execution) checkCatalog(name string) error {
	if name == "" || strings.EqualFold(name, x.g.cfg.Catalog) {
		return nil
	}
	return newQueryError(errCatalogMissing, fmt.Sprintf("Catalog '%s' does not exist: this server has the single catalog '%s'", name, x.g.cfg.Catalog))
}

// rawConnection is the query's connection without the session schema
// applied, for statements that name their schema.
func (x *execution) rawConnection() (*sql.Conn, error) {
	if x.conn != nil {
		return x.conn, nil
	}
	conn, err := x.g.db.Conn(x.ctx)
	if err != nil {
		return nil, fmt.Errorf("get a DuckDB connection: %w", err)
	}
	x.conn = conn
	return conn, nil
}

// resolveSchema finds a visible schema of the catalog by name, ignoring
// case as DuckDB does, and returns its spelling in the catalog.
//
// Every statement of a session with a schema resolves it, so a found name is
// remembered for schemaTTL: the lookup is a statement of its own, 8% of a
// dashboard query's CPU (BENCHMARKS.md). The engine's schemas are created at
// start; the TTL bounds how long one dropped later would still resolve.
func (x *execution) resolveSchema(name string) (string, error) {
	if found, ok := x.g.schemas.get(name, time.Now()); ok {
		return found, nil
	}
	conn, err := x.rawConnection()
	if err != nil {
		return "", err
	}
	var found string
	err = conn.QueryRowContext(x.ctx,
		"SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? AND lower(schema_name) = lower(?) ORDER BY schema_name = ? DESC LIMIT 1",
		x.g.cfg.Catalog, name, name).Scan(&found)
	if err == sql.ErrNoRows || err == nil && hiddenSchema(found) {
		return "", newQueryError(errSchemaMissing, fmt.Sprintf("Schema '%s' does not exist", name))
	}
	if err != nil {
		return "", fmt.Errorf("look up schema %q: %w", name, err)
	}
	x.g.schemas.put(name, found, time.Now())
	return found, nil
}

const schemaTTL = 30 * time.Second

// schemaCache maps schema names as sessions spell them to the catalog's
// spelling.
type schemaCache struct {
	mu sync.Mutex
	m  map[string]resolvedSchema
}

type resolvedSchema struct {
	name string
	at   time.Time
}

func (c *schemaCache) get(name string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[name]
	if !ok || now.Sub(r.at) >= schemaTTL {
		return "", false
	}
	return r.name, true
}

func (c *schemaCache) put(name, found string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= 1024 {
		c.m = map[string]resolvedSchema{}
	}
	c.m[name] = resolvedSchema{found, now}
}

// schemaOf resolves the schema part of a [catalog.]schema name, or the
// session schema when name is empty.
func (x *execution) schemaOf(name []string, statement string) (string, error) {
	switch len(name) {
	case 0:
		if x.sess.schema == "" {
			return "", newQueryError(errGenericUser, fmt.Sprintf(
				"Schema must be specified when session schema is not set: use %s FROM <schema>, or set the session schema", statement))
		}
		if err := x.checkCatalog(x.sess.catalog); err != nil {
			return "", err
		}
		return x.resolveSchema(x.sess.schema)
	case 1:
		if err := x.checkCatalog(x.sess.catalog); err != nil {
			return "", err
		}
		return x.resolveSchema(name[0])
	case 2:
		if err := x.checkCatalog(name[0]); err != nil {
			return "", err
		}
		return x.resolveSchema(name[1])
	}
	return "", newQueryError(errSyntax, fmt.Sprintf("Too many dots in schema name: %s", strings.Join(name, ".")))
}

// queryStrings runs a metadata query whose columns are all text.
func (x *execution) queryStrings(query string, args ...any) ([][]any, error) {
	conn, err := x.rawConnection()
	if err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(x.ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func (x *execution) showCatalogs(st *statement) (*outcome, error) {
	rows, err := filterLike([][]any{{x.g.cfg.Catalog}}, 0, st)
	if err != nil {
		return nil, err
	}
	return resultOf([]string{"Catalog"}, rows), nil
}

func (x *execution) showSchemas(st *statement) (*outcome, error) {
	switch len(st.name) {
	case 0:
	case 1:
		if err := x.checkCatalog(st.name[0]); err != nil {
			return nil, err
		}
	default:
		return nil, newQueryError(errSyntax, fmt.Sprintf("Too many dots in catalog name: %s", strings.Join(st.name, ".")))
	}
	all, err := x.queryStrings("SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? ORDER BY schema_name", x.g.cfg.Catalog)
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	visible := slices.DeleteFunc(all, func(r []any) bool { return hiddenSchema(r[0].(string)) })
	// Every Trino catalog has one; duet's answers from its own views.
	visible = append(visible, []any{"information_schema"})
	slices.SortFunc(visible, func(a, b []any) int { return strings.Compare(a[0].(string), b[0].(string)) })
	rows, err := filterLike(visible, 0, st)
	if err != nil {
		return nil, err
	}
	return resultOf([]string{"Schema"}, rows), nil
}

func (x *execution) showTables(st *statement) (*outcome, error) {
	var (
		schema string
		err    error
	)
	if n := len(st.name); n > 0 && n <= 2 && strings.EqualFold(st.name[n-1], "information_schema") {
		if n == 2 {
			if err := x.checkCatalog(st.name[0]); err != nil {
				return nil, err
			}
		}
		schema = infoSchema
	} else if schema, err = x.schemaOf(st.name, "SHOW TABLES"); err != nil {
		return nil, err
	}
	all, err := x.queryStrings(`SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?
		UNION SELECT view_name FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND NOT internal
		ORDER BY 1`, x.g.cfg.Catalog, schema, x.g.cfg.Catalog, schema)
	if err != nil {
		return nil, fmt.Errorf("list tables of schema %s: %w", schema, err)
	}
	all = slices.DeleteFunc(all, func(r []any) bool { return !x.canRead(schema, r[0].(string)) })
	rows, err := filterLike(all, 0, st)
	if err != nil {
		return nil, err
	}
	return resultOf([]string{"Table"}, rows), nil
}

// resolveTable resolves [[catalog.]schema.]table to its schema and name.
func (x *execution) resolveTable(name []string) (schema, table string, err error) {
	if len(name) > 3 {
		return "", "", newQueryError(errSyntax, fmt.Sprintf("Too many dots in table name: %s", strings.Join(name, ".")))
	}
	if schema, err = x.schemaOf(name[:len(name)-1], "DESCRIBE"); err != nil {
		if qe, ok := err.(*queryError); ok && qe.code == errGenericUser {
			qe.message = "Schema must be specified when session schema is not set: qualify the table as <schema>.<table>"
		}
		return "", "", err
	}
	want := name[len(name)-1]
	found, err := x.queryStrings(`SELECT name FROM (
			SELECT table_name AS name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?
			UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND NOT internal)
		WHERE lower(name) = lower(?) ORDER BY name = ? DESC LIMIT 1`,
		x.g.cfg.Catalog, schema, x.g.cfg.Catalog, schema, want, want)
	if err != nil {
		return "", "", fmt.Errorf("look up table %s.%s: %w", schema, want, err)
	}
	if len(found) == 0 {
		return "", "", newQueryError(errTableMissing, fmt.Sprintf("Table '%s.%s.%s' does not exist", x.g.cfg.Catalog, schema, want))
	}
	return schema, found[0][0].(string), nil
}

func (x *execution) showColumns(st *statement) (*outcome, error) {
	schema, table, err := x.resolveTable(st.name)
	if err != nil {
		return nil, err
	}
	if !x.canRead(schema, table) {
		return nil, newQueryError(errPermission, fmt.Sprintf("Access Denied: Cannot show columns of table %s.%s", strings.ToLower(schema), strings.ToLower(table)))
	}
	// The types a query over the table returns are the types clients see,
	// so take them from a query rather than from the catalog.
	conn, err := x.rawConnection()
	if err != nil {
		return nil, err
	}
	probe, err := conn.QueryContext(x.ctx, "SELECT * FROM "+x.qualified(schema, table)+" LIMIT 0")
	if err != nil {
		return nil, err
	}
	cts, err := probe.ColumnTypes()
	_ = probe.Close()
	if err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", schema, table, err)
	}
	comments, err := x.queryStrings(`SELECT column_name, comment FROM duckdb_columns()
		WHERE database_name = ? AND schema_name = ? AND table_name = ?`, x.g.cfg.Catalog, schema, table)
	if err != nil {
		return nil, fmt.Errorf("read column comments of %s.%s: %w", schema, table, err)
	}
	comment := map[string]any{}
	for _, c := range comments {
		comment[c[0].(string)] = c[1]
	}
	rows := make([][]any, 0, len(cts))
	for _, ct := range cts {
		rows = append(rows, []any{ct.Name(), trinoTypeName(ct.DatabaseTypeName()), "", comment[ct.Name()]})
	}
	if rows, err = filterLike(rows, 0, st); err != nil {
		return nil, err
	}
	return resultOf([]string{"Column", "Type", "Extra", "Comment"}, rows), nil
}

// showCreate answers SHOW CREATE VIEW for duet's views, with the SQL they
// were created with (the engine's own definition merges batch files and
// speed tables), and SHOW CREATE TABLE for the datasets of raw and the
// tables of system, from the columns a query over them returns.
func (x *execution) showCreate(st *statement) (*outcome, error) {
	schema, table, err := x.resolveTable(st.name)
	if err != nil {
		return nil, err
	}
	if !x.canRead(schema, table) {
		return nil, newQueryError(errPermission, fmt.Sprintf("Access Denied: Cannot show create table for %s.%s", strings.ToLower(schema), strings.ToLower(table)))
	}
	name := x.g.cfg.Catalog + "." + schema + "." + table
	isView := schema == "views"
	if st.kind == stmtShowCreateView {
		if !isView {
			return nil, newQueryError(errNotSupported, fmt.Sprintf("Relation '%s' is a table, not a view", name))
		}
		rows, err := x.queryStrings("SELECT sql FROM "+x.qualified(systemSchema, "views")+" WHERE view = ?", table)
		if err != nil {
			return nil, fmt.Errorf("read the SQL of view %s: %w", name, err)
		}
		if len(rows) != 1 {
			return nil, newQueryError(errTableMissing, fmt.Sprintf("View '%s' does not exist", name))
		}
		return resultOf([]string{"Create View"}, [][]any{{"CREATE VIEW " + name + " AS\n" + rows[0][0].(string)}}), nil
	}
	if isView {
		return nil, newQueryError(errNotSupported, fmt.Sprintf("Relation '%s' is a view, not a table", name))
	}
	columns, err := x.showColumns(&statement{name: st.name})
	if err != nil {
		return nil, err
	}
	var defs []string
	for columns.rows.Next() {
		var col, typ, extra, comment any
		if err := columns.rows.Scan(&col, &typ, &extra, &comment); err != nil {
			return nil, err
		}
		defs = append(defs, fmt.Sprintf("   %s %s", col, typ))
	}
	return resultOf([]string{"Create Table"}, [][]any{{"CREATE TABLE " + name + " (\n" + strings.Join(defs, ",\n") + "\n)"}}), nil
}

// trinoTypeName is the Trino name of a DuckDB type, or the DuckDB name in
// lower case when Trino has no equivalent.
func trinoTypeName(duckType string) string {
	t, err := trinoTypeOf(duckType)
	if err != nil {
		return strings.ToLower(duckType)
	}
	return t.String()
}

func (x *execution) showFunctions(st *statement) (*outcome, error) {
	all, err := x.queryStrings(`SELECT function_name, return_type, array_to_string(parameter_types, chr(31)),
			CASE function_type WHEN 'macro' THEN 'scalar' WHEN 'table_macro' THEN 'table' ELSE function_type END,
			CAST(coalesce(stability, 'CONSISTENT') <> 'VOLATILE' AS VARCHAR), coalesce(description, '')
		FROM duckdb_functions()
		WHERE function_type IN ('scalar', 'aggregate', 'macro', 'table', 'table_macro')
		  AND NOT starts_with(function_name, '__')
		ORDER BY function_name, 3`)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	for _, r := range all {
		if r[1] != nil {
			r[1] = trinoTypeName(r[1].(string))
		} else {
			r[1] = ""
		}
		var args []string
		if r[2] != nil && r[2] != "" {
			for _, a := range strings.Split(r[2].(string), "\x1f") {
				args = append(args, trinoTypeName(a))
			}
		}
		r[2] = strings.Join(args, ", ")
	}
	rows, err := filterLike(all, 0, st)
	if err != nil {
		return nil, err
	}
	return resultOf([]string{"Function", "Return Type", "Argument Types", "Function Type", "Deterministic", "Description"}, rows), nil
}

func (x *execution) showSession(st *statement) (*outcome, error) {
	names := make([]string, 0, len(x.sess.properties))
	for n := range x.sess.properties {
		names = append(names, n)
	}
	slices.Sort(names)
	rows := make([][]any, 0, len(names))
	for _, n := range names {
		rows = append(rows, []any{n, x.sess.properties[n], "", "varchar", ""})
	}
	rows, err := filterLike(rows, 0, st)
	if err != nil {
		return nil, err
	}
	return resultOf([]string{"Name", "Value", "Default", "Type", "Description"}, rows), nil
}

// use validates the target schema; the client keeps it in its session.
func (x *execution) use(st *statement) (*outcome, error) {
	if len(st.name) > 2 {
		return nil, newQueryError(errSyntax, fmt.Sprintf("Too many dots in schema name: %s", strings.Join(st.name, ".")))
	}
	if len(st.name) == 2 {
		if err := x.checkCatalog(st.name[0]); err != nil {
			return nil, err
		}
	}
	schema, err := x.resolveSchema(st.name[len(st.name)-1])
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(headerSetCatalog, x.g.cfg.Catalog)
	h.Set(headerSetSchema, schema)
	return &outcome{updateType: "USE", headers: h}, nil
}

// sessionStatement answers SET SESSION, RESET SESSION and SET TIME ZONE
// with the headers that make the client change its session.
func sessionStatement(st *statement) (*outcome, error) {
	h := http.Header{}
	switch st.kind {
	case stmtSetSession:
		name := strings.Join(st.name, ".")
		switch name {
		case sessionTimeZoneProperty:
			if _, err := resolveZone(st.value); err != nil {
				return nil, newQueryError(errGenericUser, err.Error())
			}
		case sessionMaxRunTimeProperty:
			if _, err := parseTrinoDuration(st.value); err != nil {
				return nil, newQueryError(errGenericUser, fmt.Sprintf("session property %s: %v", name, err))
			}
		}
		h.Set(headerSetSession, urlEncode(name)+"="+urlEncode(st.value))
		return &outcome{updateType: "SET SESSION", headers: h}, nil
	case stmtResetSession:
		h.Set(headerClearSession, strings.Join(st.name, "."))
		return &outcome{updateType: "RESET SESSION", headers: h}, nil
	default: // stmtSetTimeZone
		if st.value == "" {
			h.Set(headerClearSession, sessionTimeZoneProperty)
		} else {
			if _, err := resolveZone(st.value); err != nil {
				return nil, newQueryError(errGenericUser, err.Error())
			}
			h.Set(headerSetSession, sessionTimeZoneProperty+"="+urlEncode(st.value))
		}
		return &outcome{updateType: "SET TIME ZONE", headers: h}, nil
	}
}

func urlEncode(s string) string { return url.QueryEscape(s) }

// filterLike keeps the rows whose column col matches the statement's LIKE
// pattern, with SQL LIKE semantics (% any run, _ one character).
func filterLike(rows [][]any, col int, st *statement) ([][]any, error) {
	if st.like == nil {
		return rows, nil
	}
	re, err := likePattern(*st.like, st.escape)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(rows, func(r []any) bool {
		s, _ := r[col].(string)
		return !re.MatchString(s)
	}), nil
}

func likePattern(pattern string, escape *string) (*regexp.Regexp, error) {
	var esc rune = -1
	if escape != nil {
		r := []rune(*escape)
		if len(r) != 1 {
			return nil, newQueryError(errGenericUser, "Escape string must be a single character")
		}
		esc = r[0]
	}
	var b strings.Builder
	b.WriteString(`(?s)^`)
	runes := []rune(pattern)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case r == esc:
			if i+1 >= len(runes) || runes[i+1] != '%' && runes[i+1] != '_' && runes[i+1] != esc {
				return nil, newQueryError(errGenericUser, "Escape character must be followed by '%', '_' or the escape character")
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(runes[i])))
		case r == '%':
			b.WriteString(`.*`)
		case r == '_':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.Compile(b.String())
}
