package viewsql

import (
	"fmt"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// Aliases of the derived tables the forms wrap; the double underscore keeps
// them apart from dataset and column names, which may not start with one.
const (
	viewAlias     = "__duet_view"
	partialAlias  = "__duet_partial"
	mergedAlias   = "__duet_merged"
	combinedAlias = "__duet_combined"
)

// splitAtSource cuts rendered SQL at the source placeholder.
func splitAtSource(rendered string) (head, tail string, err error) {
	token := sourcePlaceholder
	if quoted := dataset.QuoteIdent(sourcePlaceholder); strings.Contains(rendered, quoted) {
		token = quoted
	}
	if n := strings.Count(rendered, token); n != 1 {
		return "", "", fmt.Errorf("rendered view SQL holds the source placeholder %d times, want once: %s", n, rendered)
	}
	head, tail, _ = strings.Cut(rendered, token)
	return head, tail, nil
}

func quotedNames(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = dataset.QuoteIdent(c.Name)
	}
	return strings.Join(names, ", ")
}

// wrap puts rendered SQL (cut at its source) inside SELECT <items> FROM (...).
func wrap(items, head, tail, alias string) (string, string) {
	return "SELECT " + items + " FROM (" + head, tail + ") AS " + dataset.QuoteIdent(alias)
}

// partialItems are the outer SELECT of an aggregate's partial form: the
// casts that make a partial column's type the same whatever the input.
func (p *aggPlan) partialItems() string {
	items := make([]string, len(p.parts))
	for i, pc := range p.parts {
		q := dataset.QuoteIdent(pc.name)
		if pc.role == roleSketch {
			items[i] = compactSketch(q) + " AS " + q
		} else if pc.cast == "" {
			items[i] = q
		} else {
			items[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", q, pc.cast, q)
		}
	}
	return strings.Join(items, ", ")
}

func (p *aggPlan) part(name string) partCol {
	for _, pc := range p.parts {
		if pc.name == name {
			return pc
		}
	}
	panic("viewsql: no partial column " + name)
}

// groupByClause groups by every key, hidden ones included, so partial rows
// merge exactly as the original GROUP BY would have grouped the input rows.
func (p *aggPlan) groupByClause() string {
	keys := p.keys()
	if len(keys) == 0 {
		return ""
	}
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = dataset.QuoteIdent(k)
	}
	return " GROUP BY " + strings.Join(q, ", ")
}

// mergeExpr merges one partial column across rows into a value of the same
// type; counts coalesce to 0 so merging no rows equals a partial of no rows.
func mergeExpr(pc partCol) string {
	q := dataset.QuoteIdent(pc.name)
	switch pc.role {
	case roleCount, roleAvgCount:
		return fmt.Sprintf("CAST(coalesce(sum(%s), 0) AS BIGINT)", q)
	case roleSum, roleAvgSum:
		return fmt.Sprintf("CAST(sum(%s) AS %s)", q, pc.typ)
	case roleMin:
		return fmt.Sprintf("min(%s)", q)
	case roleMax:
		return fmt.Sprintf("max(%s)", q)
	case roleSketch:
		// Entries of every row's sketch, ascending; the level above
		// compacts them (compactSketch needs them as a column).
		return fmt.Sprintf("list_sort(flatten(list(%s)))", q)
	}
	return q
}

// hasSketch tells plans with approx_distinct columns, whose merge takes two
// levels: one aggregate gathers each key's sketch entries, and the level
// above keeps each register's highest rank.
func (p *aggPlan) hasSketch() bool {
	for _, pc := range p.parts {
		if pc.role == roleSketch {
			return true
		}
	}
	return false
}

// finalSQL merges partial rows into the view's columns.
func (p *aggPlan) finalSQL() (head, tail string) {
	if p.hasSketch() {
		return p.finalOverCombined()
	}
	items := make([]string, len(p.out))
	for i, o := range p.out {
		q := dataset.QuoteIdent(o.name)
		switch o.role {
		case roleKey:
			items[i] = q
		case roleAvgSum:
			s, c := dataset.QuoteIdent(o.parts[0]), dataset.QuoteIdent(o.parts[1])
			items[i] = fmt.Sprintf("CAST(sum(%s) / nullif(sum(%s), 0) AS DOUBLE) AS %s", s, c, q)
		default:
			items[i] = mergeExpr(p.part(o.parts[0])) + " AS " + q
		}
	}
	return "SELECT " + strings.Join(items, ", ") + " FROM ", p.groupByClause()
}

// combineSQL merges partial rows into partial rows, one per key.
func (p *aggPlan) combineSQL() (head, tail string) {
	items := make([]string, len(p.parts))
	for i, pc := range p.parts {
		items[i] = mergeExpr(pc)
		if pc.role != roleKey && pc.role != roleHiddenKey {
			items[i] += " AS " + dataset.QuoteIdent(pc.name)
		}
	}
	head, tail = "SELECT "+strings.Join(items, ", ")+" FROM ", p.groupByClause()
	if !p.hasSketch() {
		return head, tail
	}
	outer := make([]string, len(p.parts))
	for i, pc := range p.parts {
		q := dataset.QuoteIdent(pc.name)
		outer[i] = q
		if pc.role == roleSketch {
			outer[i] = compactSketch(q) + " AS " + q
		}
	}
	return wrap(strings.Join(outer, ", "), head, tail, mergedAlias)
}

// finalOverCombined is the final form of a plan with sketches: the view's
// columns computed from the combine form's one row per key.
func (p *aggPlan) finalOverCombined() (head, tail string) {
	items := make([]string, len(p.out))
	for i, o := range p.out {
		q := dataset.QuoteIdent(o.name)
		switch o.role {
		case roleAvgSum:
			s, c := dataset.QuoteIdent(o.parts[0]), dataset.QuoteIdent(o.parts[1])
			items[i] = fmt.Sprintf("CAST(%s / nullif(%s, 0) AS DOUBLE) AS %s", s, c, q)
		case roleSketch:
			items[i] = estimateSketch(q) + " AS " + q
		default:
			items[i] = q
		}
	}
	combineHead, combineTail := p.combineSQL()
	return wrap(strings.Join(items, ", "), combineHead, combineTail, combinedAlias)
}
