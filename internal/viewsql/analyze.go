package viewsql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/duet-analytics/duet/dataset"
)

// Analyze parses sqlText with DuckDB, checks that it is a view duet can
// maintain incrementally over dataset spec, and builds its plan. It binds
// every form over spec.EmptyRelation(), so a plan's SQL is known to run and
// its column types are the engine's. Errors the user must fix are *Error.
func Analyze(ctx context.Context, q Querier, sqlText string, spec *dataset.Spec) (*Plan, error) {
	return analyze(ctx, q, sqlText, spec, sourceInfo{})
}

// sourceInfo says what a view reads besides its spec's name and columns.
type sourceInfo struct {
	// overView is set when the view reads another view (views.<name>).
	overView bool
	// columns, when set, are the source's columns with their engine types,
	// for sources whose columns are not all dataset types.
	columns []Column
	// sketchCols are the source's approx_distinct sketch columns, lower case.
	sketchCols map[string]bool
}

func analyze(ctx context.Context, q Querier, sqlText string, spec *dataset.Spec, src sourceInfo) (*Plan, error) {
	if spec == nil {
		return nil, fmt.Errorf("analyze view: nil dataset spec")
	}
	if !utf8.ValidString(sqlText) || strings.ContainsRune(sqlText, 0) {
		return nil, userErrorf("the SQL is not valid UTF-8 text")
	}
	if strings.Contains(strings.ToLower(sqlText), sourcePlaceholder) {
		return nil, userErrorf("the name %s is reserved; rename it", sourcePlaceholder)
	}
	doc, err := serialize(ctx, q, sqlText)
	if err != nil {
		return nil, err
	}
	var stmt node
	if stmts := list(doc, "statements"); len(stmts) > 0 {
		stmt, _ = stmts[0].(node)
	}
	fc, err := loadFunctions(ctx, q, stmt)
	if err != nil {
		return nil, err
	}
	sel, qualifier, err := checkStatement(doc, spec, fc, src.overView)
	if err != nil {
		return nil, err
	}
	// The view with its FROM pointing at the placeholder, still aliased to
	// the name its expressions may qualify columns with.
	view := copyNode(sel)
	from := obj(view, "from_table")
	from["table_name"], from["schema_name"], from["catalog_name"], from["alias"] = sourcePlaceholder, "", "", qualifier

	a := &analysis{ctx: ctx, q: q, doc: doc, spec: spec, fc: fc, view: view, sketchCols: src.sketchCols,
		plan: &Plan{Dataset: spec.Name}}
	if src.columns != nil {
		a.empty = emptyRelation(src.columns)
	} else {
		a.empty = spec.EmptyRelation()
	}
	aggregate := isAggregateView(sel, fc)
	if aggregate && isDistinct(sel) {
		return nil, userErrorf("SELECT DISTINCT with GROUP BY or aggregates is not supported in a view; drop DISTINCT or apply it in the query over the view")
	}
	if aggregate {
		err = a.aggregate()
	} else {
		err = a.projection(isDistinct(sel))
	}
	if err != nil {
		return nil, err
	}
	if err := a.verify(); err != nil {
		return nil, err
	}
	return a.plan, nil
}

// analysis carries one Analyze call's state.
type analysis struct {
	ctx  context.Context
	q    Querier
	doc  node
	spec *dataset.Spec
	fc   *functionCatalog
	view node
	plan *Plan
	// empty is the source relation of no rows every form is bound over.
	empty      string
	sketchCols map[string]bool
}

// split renders a select node as SQL and splits it at its source
// relation, for binding it over another source.
func (a *analysis) split(node map[string]any) (head, tail string, err error) {
	rendered, err := deserialize(a.ctx, a.q, a.doc, node)
	if err != nil {
		return "", "", err
	}
	return splitAtSource(rendered[0])
}

func (a *analysis) projection(distinct bool) error {
	head, tail, err := a.split(a.view)
	if err != nil {
		return err
	}
	cols, err := describe(a.ctx, a.q, head+a.empty+tail)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range cols {
		l := strings.ToLower(c.Name)
		if seen[l] {
			return userErrorf("output column name %q is used twice; rename one with AS", c.Name)
		}
		seen[l] = true
	}
	p := a.plan
	p.Kind, p.Partial = Projection, cols
	p.TimeKey = projectionTimeKey(list(a.view, "select_list"), cols, a.spec.TimeColumn)
	// Selecting the bound columns by name pins the partial form's columns
	// (SELECT * would follow whatever columns the source happens to have).
	p.partialHead, p.partialTail = wrap(quotedNames(cols), head, tail, viewAlias)
	p.finalHead = "SELECT " + quotedNames(cols) + " FROM "
	p.combineHead = "SELECT * FROM "
	if distinct {
		// DISTINCT merges like a GROUP BY over every column.
		p.Kind = Aggregate
		for _, c := range cols {
			p.Keys = append(p.Keys, c.Name)
		}
		p.finalHead = "SELECT DISTINCT " + quotedNames(cols) + " FROM "
		p.combineHead = p.finalHead
	}
	return nil
}

func (a *analysis) aggregate() error {
	empty := a.empty
	viewHead, viewTail, err := a.split(a.view)
	if err != nil {
		return err
	}
	viewCols, bindErr := describe(a.ctx, a.q, viewHead+empty+viewTail)
	ap, err := analyzeAggregate(a.view, a.spec, a.fc, a.exprText, a.sketchCols)
	if bindErr != nil {
		// DuckDB's reason comes first (an unknown column makes the grouping
		// analysis meaningless), except for its grouping complaints, which
		// suggest fixes such as ANY_VALUE that a view cannot use.
		var ve *Error
		if err != nil && errors.As(bindErr, &ve) && strings.Contains(ve.Msg, "GROUP BY") {
			return err
		}
		return bindErr
	}
	if err != nil {
		return err
	}
	for i, o := range ap.out {
		// avg of a number is a DOUBLE; avg of times and intervals has no
		// sum to merge through.
		if o.role == roleAvgSum && i < len(viewCols) && viewCols[i].Type != "DOUBLE" {
			return userErrorf("avg() over %s values (select item %d) cannot be merged incrementally; average a number instead, such as epoch(...)", viewCols[i].Type, i+1)
		}
	}
	if err := a.buildSketches(ap); err != nil {
		return err
	}
	inner := copyNode(a.view)
	sel := make([]any, len(ap.parts))
	for i, pc := range ap.parts {
		sel[i] = pc.expr
	}
	groups := make([]any, len(ap.groupBy))
	set := make([]any, len(ap.groupBy))
	for i, g := range ap.groupBy {
		groups[i], set[i] = g, i
	}
	inner["select_list"], inner["group_expressions"], inner["aggregate_handling"] = sel, groups, "STANDARD_HANDLING"
	inner["group_sets"] = []any{}
	if len(groups) > 0 {
		inner["group_sets"] = []any{set}
	}
	innerHead, innerTail, err := a.split(inner)
	if err != nil {
		return err
	}
	innerCols, err := describe(a.ctx, a.q, innerHead+empty+innerTail)
	if err != nil {
		var ve *Error
		if errors.As(err, &ve) {
			return userErrorf("the view cannot be rewritten into a mergeable form: %s", strings.TrimPrefix(ve.Msg, "view SQL: "))
		}
		return fmt.Errorf("bind partial form: %w", err)
	}
	if len(innerCols) != len(ap.parts) {
		return fmt.Errorf("partial form has %d columns, want %d", len(innerCols), len(ap.parts))
	}
	for i := range ap.parts {
		ap.parts[i].cast = partialCast(ap.parts[i].role, innerCols[i].Type)
	}
	p := a.plan
	p.Kind, p.Keys = Aggregate, ap.keys()
	p.partialHead, p.partialTail = wrap(ap.partialItems(), innerHead, innerTail, partialAlias)
	p.Partial, err = describe(a.ctx, a.q, p.PartialSQL(empty))
	if err != nil {
		return fmt.Errorf("bind partial form: %w", err)
	}
	for i := range ap.parts {
		ap.parts[i].typ = p.Partial[i].Type
	}
	p.finalHead, p.finalTail = ap.finalSQL()
	p.combineHead, p.combineTail = ap.combineSQL()
	var keyNames []string
	var keyExprs []node
	for _, pc := range ap.parts {
		if pc.role == roleKey || pc.role == roleHiddenKey {
			keyNames, keyExprs = append(keyNames, pc.name), append(keyExprs, pc.expr)
		}
	}
	p.TimeKey = timeKey(keyNames, keyExprs, p.Partial, a.spec.TimeColumn)
	p.roles = map[string]role{}
	for _, pc := range ap.parts {
		p.roles[strings.ToLower(pc.name)] = pc.role
	}
	return nil
}

// partialCast picks the type a partial column is cast to. Counts and integer
// sums come out of DuckDB as HUGEINT, which Parquet stores as DOUBLE and
// Arrow as DECIMAL(38,0); BIGINT reads back the same from both.
func partialCast(r role, engineType string) string {
	switch r {
	case roleCount, roleAvgCount:
		if engineType != "BIGINT" {
			return "BIGINT"
		}
	case roleSum:
		switch engineType {
		case "HUGEINT", "UHUGEINT", "DECIMAL(38,0)":
			return "BIGINT"
		}
	case roleAvgSum:
		if engineType != "DOUBLE" {
			return "DOUBLE"
		}
	}
	return ""
}

// verify binds every form over the partial form of no rows: Columns become
// the final form's types, and the partial and combine forms must give
// exactly the partial columns.
func (a *analysis) verify() error {
	p := a.plan
	partials := "(" + p.PartialSQL(a.empty) + ")"
	got, err := describe(a.ctx, a.q, partials)
	if err != nil {
		return fmt.Errorf("bind partial form: %w", err)
	}
	if !sameColumns(got, p.Partial) {
		return fmt.Errorf("partial form gives columns %v, want %v", got, p.Partial)
	}
	cols, err := describe(a.ctx, a.q, p.FinalSQL(partials))
	if err != nil {
		return fmt.Errorf("bind final form: %w", err)
	}
	p.Columns = cols
	combined, err := describe(a.ctx, a.q, p.CombineSQL(partials))
	if err != nil {
		return fmt.Errorf("bind combine form: %w", err)
	}
	if !sameColumns(combined, p.Partial) {
		return fmt.Errorf("combine form gives columns %v, want the partial columns %v", combined, p.Partial)
	}
	return nil
}

func sameColumns(a, b []Column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// exprText renders one expression for an error message; rendering is
// best-effort, the message stands without it.
func (a *analysis) exprText(e node) string {
	sel := copyNode(a.view)
	item := copyNode(e)
	item["alias"] = ""
	sel["select_list"] = []any{item}
	sel["from_table"] = node{"type": "EMPTY", "alias": "", "sample": nil, "query_location": obj(a.view, "from_table")["query_location"]}
	sel["where_clause"], sel["group_expressions"], sel["group_sets"] = nil, []any{}, []any{}
	sel["aggregate_handling"], sel["modifiers"] = "STANDARD_HANDLING", []any{}
	out, err := deserialize(a.ctx, a.q, a.doc, sel)
	if err != nil {
		return "..."
	}
	text := strings.TrimSpace(strings.TrimPrefix(out[0], "SELECT "))
	// DuckDB renders count(*) by its internal name.
	return strings.ReplaceAll(text, "count_star()", "count(*)")
}
