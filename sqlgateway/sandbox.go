package sqlgateway

import (
	"context"
	"fmt"
	"strings"
)

// The engine's own lockdown (no settings, no extensions, files only under
// duet's data directories) cannot tell duet's views reading their Parquet
// files from a user doing the same, nor keep a user out of duet's internal
// tables. So the gateway also checks what a SELECT reads, anywhere in it
// (CTEs, subqueries, joins), in DuckDB's own parse tree: relations in the
// catalog's visible schemas, and only table functions that generate rows.

// rowFunctions are the table functions user SQL may call: they compute rows
// and read nothing.
var rowFunctions = map[string]bool{"range": true, "generate_series": true, "unnest": true}

// catalogSchemas are the schemas of DuckDB's system catalog that BI tools
// read for metadata.
var catalogSchemas = map[string]bool{"information_schema": true, "pg_catalog": true}

// Authorizer decides which relations a user may read. Names are as the
// query spells them (SQL compares them without regard to case).
type Authorizer interface {
	CanRead(user, schema, table string) bool
	// IsAdmin reports whether user sees every user's queries in
	// system.queries; others see their own.
	IsAdmin(user string) bool
}

// QueriesUserVariable is the engine variable (SET VARIABLE) that, set on a
// connection, limits system.queries to that user's queries there. The
// gateway sets it for users who are no admins; user SQL cannot set it.
const QueriesUserVariable = "duet_queries_user"

// sessionUserVariable names the session user on a connection when
// authorization rules apply, for the information_schema views.
const sessionUserVariable = "duet_user"

// defaultSchema is where DuckDB resolves an unqualified name when the
// session has no schema.
const defaultSchema = "main"

// sandbox is what checkSandbox checks a parse tree against.
type sandbox struct {
	catalog string
	// auth, when set, is asked about every relation for user; schema is
	// the session schema, where unqualified names resolve.
	auth         Authorizer
	user, schema string
}

// sandbox is the query's: the gateway's catalog and the session's user and
// schema.
func (x *execution) sandbox() sandbox {
	schema := x.sess.schema
	if schema == "" {
		schema = defaultSchema
	}
	return sandbox{catalog: x.g.cfg.Catalog, auth: x.g.cfg.Authorizer, user: x.sess.user, schema: schema}
}

// routable decides, under authorization rules, whether a statement may go
// to a Trino cluster, where duet's rules do not apply: only a single SELECT
// duet can parse, every relation it reads checked as if it ran here and in
// duet's catalog. Anything else runs here, under the same rules.
func (g *Gateway) routable(ctx context.Context, sess *session, text string) (bool, *queryError) {
	// DuckDB parses SHOW and DESCRIBE as SELECTs: the gateway's own parser
	// tells them apart.
	if st, qe := parseStatement(text); qe != nil || st.kind != stmtQuery {
		return false, nil
	}
	parsed, tree, err := parseSQL(ctx, g.db, text)
	if err != nil {
		g.logger.Warn("check a statement for routing", "err", err)
		return false, nil
	}
	if parsed.Error || len(parsed.Statements) != 1 {
		return false, nil
	}
	schema := sess.schema
	if schema == "" {
		schema = defaultSchema
	}
	if qe := checkSandbox(tree, sandbox{catalog: g.cfg.Catalog, auth: g.cfg.Authorizer, user: sess.user, schema: schema}); qe != nil {
		return false, qe
	}
	return true, nil
}

// checkSandbox reports the first thing in the parse tree that user SQL may
// not read, as PERMISSION_DENIED.
func checkSandbox(tree any, sb sandbox) *queryError {
	return sb.check(tree, nil)
}

// check walks the tree; ctes are the (lower-case) names of the common
// table expressions in scope, which an unqualified name means rather than
// a table.
func (sb sandbox) check(tree any, ctes map[string]bool) *queryError {
	switch n := tree.(type) {
	case []any:
		for _, c := range n {
			if qe := sb.check(c, ctes); qe != nil {
				return qe
			}
		}
	case map[string]any:
		skip := map[string]bool{"cte_map": true}
		// Each CTE sees those before it, not itself (a name in its body is
		// a table: DuckDB binds it so); the query sees them all.
		if m, ok := n["cte_map"].(map[string]any); ok {
			entries, _ := m["map"].([]any)
			for _, e := range entries {
				entry, _ := e.(map[string]any)
				if qe := sb.check(entry["value"], ctes); qe != nil {
					return qe
				}
				name, _ := entry["key"].(string)
				ctes = withName(ctes, name)
			}
		}
		switch n["type"] {
		case "RECURSIVE_CTE_NODE":
			// Only the recursive term reads the CTE itself; the anchor
			// reading the name gets the table.
			name, _ := n["cte_name"].(string)
			if qe := sb.check(n["left"], ctes); qe != nil {
				return qe
			}
			if qe := sb.check(n["right"], withName(ctes, name)); qe != nil {
				return qe
			}
			skip["left"], skip["right"] = true, true
		case "BASE_TABLE":
			if qe := sb.checkRelation(n, ctes); qe != nil {
				return qe
			}
		case "SHOW_REF":
			// SHOW TABLES and the like inside a query list the engine's
			// catalog, internal tables too; DESCRIBE or SUMMARIZE of a
			// query (no table_name) reads only what its query reads.
			if name, _ := n["table_name"].(string); name != "" {
				return newQueryError(errPermission, "Access Denied: SHOW inside a query lists the engine's own catalog: use SHOW TABLES, SHOW SCHEMAS or information_schema")
			}
		case "TABLE_FUNCTION":
			if fn, ok := n["function"].(map[string]any); ok {
				name, _ := fn["function_name"].(string)
				if !rowFunctions[strings.ToLower(name)] {
					return newQueryError(errPermission, fmt.Sprintf(
						"Access Denied: table function %s is not available: queries read duet's views, raw and system schemas, not files or engine internals", name))
				}
			}
		}
		for k, c := range n {
			if skip[k] {
				continue
			}
			if qe := sb.check(c, ctes); qe != nil {
				return qe
			}
		}
	}
	return nil
}

// canRead reports whether the session user may read schema.table, for the
// metadata statements; the metadata schemas are readable by everyone.
func (x *execution) canRead(schema, table string) bool {
	auth := x.g.cfg.Authorizer
	return auth == nil || schema == infoSchema || catalogSchemas[strings.ToLower(schema)] || auth.CanRead(x.sess.user, schema, table)
}

// withName is names and name, leaving names as it was.
func withName(names map[string]bool, name string) map[string]bool {
	out := make(map[string]bool, len(names)+1)
	for k := range names {
		out[k] = true
	}
	out[strings.ToLower(name)] = true
	return out
}

func (sb sandbox) checkRelation(n map[string]any, ctes map[string]bool) *queryError {
	catalog := sb.catalog
	cat, _ := n["catalog_name"].(string)
	schema, _ := n["schema_name"].(string)
	table, _ := n["table_name"].(string)
	name := strings.Join(nonEmpty(cat, schema, table), ".")
	// DuckDB reads a file for a table name that looks like a path.
	if strings.ContainsAny(table, "./\\*?") {
		return newQueryError(errPermission, fmt.Sprintf("Access Denied: %q is not a table: queries cannot read files", table))
	}
	if cat == "" && schema == "" && ctes[strings.ToLower(table)] {
		return nil
	}
	// An unqualified name the session schema lacks falls through to the
	// engine's own catalog views, which list duet's internal tables.
	if cat == "" && schema == "" && engineViewName(table) {
		return newQueryError(errPermission, fmt.Sprintf("Access Denied: cannot read %s: it is the engine's own catalog; query information_schema", table))
	}
	switch {
	case cat == "" || strings.EqualFold(cat, catalog):
		if hiddenSchema(schema) {
			return newQueryError(errPermission, fmt.Sprintf("Access Denied: cannot read %s: schema %s is internal to duet", name, schema))
		}
		if schema == "" {
			schema = sb.schema
		}
		if sb.auth != nil && !catalogSchemas[strings.ToLower(schema)] && !sb.auth.CanRead(sb.user, schema, table) {
			return newQueryError(errPermission, fmt.Sprintf("Access Denied: Cannot select from table %s.%s", strings.ToLower(schema), strings.ToLower(table)))
		}
	case strings.EqualFold(cat, "system") && catalogSchemas[strings.ToLower(schema)]:
	default:
		return newQueryError(errPermission, fmt.Sprintf("Access Denied: cannot read %s: catalog %s is not available; use catalog %s", name, cat, catalog))
	}
	return nil
}

// engineViewName reports whether name is one of the engine's catalog views
// (duckdb_tables, sqlite_master, pragma_database_list, ...).
func engineViewName(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "duckdb_") || strings.HasPrefix(n, "sqlite_") || strings.HasPrefix(n, "pragma_")
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}
