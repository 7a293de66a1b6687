package main

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"time"
)

// normalize makes the values of the two drivers comparable: trino-go-client
// and duckdb-go agree on int64, float64 and string but may give timestamps
// in different locations (both carry the wall-clock time of a TIMESTAMP).
func normalize(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.Format("2006-01-02 15:04:05.999999")
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case float32:
		return float64(x)
	case []byte:
		return string(x)
	case *big.Int:
		return x.String()
	}
	return v
}

// relTolerance bounds the relative difference of averages: the engines may
// add in different orders.
const relTolerance = 1e-9

// sameAnswer says how two normalised answers differ, or "" when they are
// the same: exact for everything but floats, which may differ in the last
// bits.
func sameAnswer(got, want [][]any) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return fmt.Sprintf("row %d: %d columns, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			if !sameValue(got[i][j], want[i][j]) {
				return fmt.Sprintf("row %d column %d: %v (%T), want %v (%T)", i, j, got[i][j], got[i][j], want[i][j], want[i][j])
			}
		}
	}
	return ""
}

func sameValue(a, b any) bool {
	fa, aok := a.(float64)
	fb, bok := b.(float64)
	if aok && bok {
		return fa == fb || math.Abs(fa-fb) <= relTolerance*math.Max(1, math.Abs(fb))
	}
	return a == b
}

// checkAnswers sends every shape with checks parameter sets to duet and to
// DuckDB and fails on the first difference. The first set's "now" is past
// the end of the data, so it covers every event. DuckDB's answers are kept
// in known, by query: a recompute takes seconds, and the same data gets the
// same answer.
func checkAnswers(ctx context.Context, duet, duck system, gen paramGen, checks int, seed uint64, known map[string][][]any) (int, error) {
	r := rand.New(rand.NewPCG(seed, 0xc0ffee))
	compared := 0
	for i := range checks {
		p := gen.draw(r)
		if i == 0 {
			p.now = gen.lastHour.Add(time.Hour)
		}
		for _, s := range shapes {
			got, err := query(ctx, duet.db, s.sql(duet.relation, p), true)
			if err != nil {
				return compared, fmt.Errorf("check %s on duet: %w", s.Name, err)
			}
			q := s.sql(duck.relation, p)
			want, ok := known[q]
			if !ok {
				if want, err = query(ctx, duck.db, q, true); err != nil {
					return compared, fmt.Errorf("check %s on DuckDB: %w", s.Name, err)
				}
				known[q] = want
			}
			if len(want) == 0 {
				return compared, fmt.Errorf("check %s: DuckDB's answer is empty; the parameters miss the data", s.Name)
			}
			if diff := sameAnswer(got, want); diff != "" {
				return compared, fmt.Errorf("check %s (origin %s, now %s): duet's answer differs from DuckDB's over the raw files: %s",
					s.Name, p.origin, p.now.Format(timeLiteral), diff)
			}
			compared++
		}
	}
	return compared, nil
}

// countFlights is the flights the view counts.
func countFlights(ctx context.Context, db *sql.DB, relation string) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, "SELECT CAST(sum(flights) AS BIGINT) FROM "+relation).Scan(&n)
	return n, err
}
