package viewsql

import (
	"context"
	"database/sql"
	"fmt"
)

// Querier runs the engine calls Analyze needs; *sql.DB and *sql.Conn satisfy it.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Kind says how a view's rows merge.
type Kind int

const (
	// Aggregate views merge partial rows per key (GROUP BY, aggregates or DISTINCT).
	Aggregate Kind = iota + 1
	// Projection views are plain filters/projections: partial rows are final rows.
	Projection
)

func (k Kind) String() string {
	switch k {
	case Aggregate:
		return "aggregate"
	case Projection:
		return "projection"
	}
	return "unknown"
}

// Column is one output column; Type is DuckDB's type name for it as the
// engine reports it (BIGINT, TIMESTAMP, DOUBLE, VARCHAR, DECIMAL(38,2), ...).
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Plan is an analysed view: its columns and the SQL of its partial, final and
// combine forms.
type Plan struct {
	// Dataset is the dataset the view reads, as spelled in its Spec.
	Dataset string
	Kind    Kind
	// Columns are the view's output columns, in order: what users see.
	Columns []Column
	// Partial are the columns of the partial form, in order.
	Partial []Column
	// Keys name the key columns within Partial; rows with equal keys merge.
	// Empty for global aggregates and projections.
	Keys []string
	// TimeKey names a key column of Partial whose value always falls on the
	// day of the dataset's time column (the time column itself, date_trunc of
	// it to a day or finer, its cast to DATE). Views with one are partitioned
	// by day of it, and rebuilt incrementally; "" when there is none.
	TimeKey string

	// Each form is head + relation + tail, so the per-batch calls are
	// string concatenation only.
	partialHead, partialTail string
	// upstream is the view this one reads (nil when it reads a dataset):
	// its partial form is composed under this one's.
	upstream *Plan
	// roles say how each partial column merges (aggregate views only).
	roles                    map[string]role
	finalHead, finalTail     string
	combineHead, combineTail string
}

// PartialSQL is a SELECT producing Partial's columns from source, a relation
// expression without an alias: `read_parquet([...])`, `"memory"."main"."mb_17"`
// or a parenthesised subquery such as spec.EmptyRelation(). The view's table
// name (or its alias) stays usable as a qualifier.
func (p *Plan) PartialSQL(source string) string {
	if p.upstream != nil {
		source = "(" + p.upstream.PartialSQL(source) + ")"
	}
	return p.partialHead + source + p.partialTail
}

// FinalSQL is a SELECT producing Columns from partials, a relation expression
// (without an alias) whose rows have Partial's columns.
func (p *Plan) FinalSQL(partials string) string {
	return p.finalHead + partials + p.finalTail
}

// CombineSQL is a SELECT producing Partial's columns from partials, with one
// row per key: it compacts many partial rows of one segment. For projection
// views it returns the rows unchanged.
func (p *Plan) CombineSQL(partials string) string {
	return p.combineHead + partials + p.combineTail
}

// PartialColumns lists Partial's columns, quoted, for a SELECT of the
// partial rows.
func (p *Plan) PartialColumns() string { return quotedNames(p.Partial) }

// Error reports view SQL the user must change. Msg is one sentence naming the
// problem and, where there is one, the way out.
type Error struct {
	Msg string
}

func (e *Error) Error() string { return e.Msg }

func userErrorf(format string, args ...any) *Error {
	return &Error{Msg: "view SQL: " + fmt.Sprintf(format, args...)}
}
