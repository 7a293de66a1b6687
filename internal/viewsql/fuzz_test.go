package viewsql

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzAnalyze: whatever the SQL, Analyze does not panic, user errors read as
// one "view SQL: " line, and an accepted view's forms bind with the columns
// the plan promises.
func FuzzAnalyze(f *testing.F) {
	for _, v := range views {
		f.Add(v.sql)
	}
	f.Add(`SELECT origin, count(*) AS n FROM flights GROUP BY origin HAVING n > 1`)
	f.Add(`SELECT sum(delay) / count(*) AS r FROM flights`)
	f.Add(`SELECT "select", count(*) AS "a""b" FROM flights GROUP BY 1`)
	f.Add(`SELECT origin || '__duet_source__' AS x FROM flights`)
	f.Add("\xee")
	f.Add("\"\n0")
	f.Add("SELECT * FROM flights WHERE $A00000%B'000'")
	conn := openConn(f)
	spec := flightsSpec(f)
	empty := spec.EmptyRelation()
	f.Fuzz(func(t *testing.T, sqlText string) {
		p, err := Analyze(context.Background(), conn, sqlText, spec)
		if err != nil {
			var ve *Error
			if !errors.As(err, &ve) {
				t.Fatalf("%q: engine error %v for view SQL", sqlText, err)
			}
			if !strings.HasPrefix(ve.Msg, "view SQL: ") || strings.Contains(ve.Msg, "\n") {
				t.Fatalf("%q: message %q", sqlText, ve.Msg)
			}
			return
		}
		partial := "(" + p.PartialSQL(empty) + ")"
		if got := describeCols(t, conn, partial); !sameColumns(got, p.Partial) {
			t.Fatalf("%q: partial columns %v, plan says %v", sqlText, got, p.Partial)
		}
		if got := describeCols(t, conn, p.FinalSQL(partial)); !sameColumns(got, p.Columns) {
			t.Fatalf("%q: final columns %v, plan says %v", sqlText, got, p.Columns)
		}
	})
}
