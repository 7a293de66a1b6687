// Package viewsql analyses a view's SQL and rewrites it into the forms the
// layers evaluate: a partial form whose rows can be merged (run by the batch
// layer over archived Parquet and by the speed layer over each micro-batch),
// a final form that merges partial rows into the view's answer (run by the
// serving layer), and a combine form that compacts partial rows.
//
// The invariant every form is built to keep:
//
//	final(partial(A) UNION ALL partial(B)) == view(A UNION ALL B)
//
// DuckDB parses the SQL (json_serialize_sql), the rewrite edits that AST and
// DuckDB renders it back (json_deserialize_sql), so the partial form keeps the
// user's expressions exactly as the engine understands them. Rendering happens
// once, in Analyze; the per-batch methods only splice a source relation in.
package viewsql
