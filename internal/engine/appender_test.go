package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/lambdatest"
)

// appenderSpec has a column of every dataset type.
var appenderSpec = dataset.Spec{Name: "all_types", TimeColumn: "ts", Columns: []dataset.Column{
	{Name: "ts", Type: dataset.Timestamp},
	{Name: "b", Type: dataset.Boolean},
	{Name: "i", Type: dataset.Integer},
	{Name: "l", Type: dataset.Bigint},
	{Name: "d", Type: dataset.Double},
	{Name: "s", Type: dataset.Varchar},
	{Name: "day", Type: dataset.Date},
}}

// randomRecord has n rows of random values, a tenth of the nullable
// columns' values null, and strings both inlined by DuckDB (up to 12
// bytes) and not.
func randomRecord(rnd *rand.Rand, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, appenderSpec.ArrowSchema())
	defer b.Release()
	for range n {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(rnd.Int64N(4e15)))
		if rnd.IntN(10) == 0 {
			for c := 1; c < 7; c++ {
				b.Field(c).AppendNull()
			}
			continue
		}
		b.Field(1).(*array.BooleanBuilder).Append(rnd.IntN(2) == 0)
		b.Field(2).(*array.Int32Builder).Append(rnd.Int32())
		b.Field(3).(*array.Int64Builder).Append(rnd.Int64() - rnd.Int64())
		b.Field(4).(*array.Float64Builder).Append(rnd.NormFloat64() * 1e6)
		b.Field(5).(*array.StringBuilder).Append(strings.Repeat("é", rnd.IntN(3)) + strconv.Itoa(rnd.IntN(1<<30)) + strings.Repeat("x", rnd.IntN(20)))
		b.Field(6).(*array.Date32Builder).Append(arrow.Date32(rnd.Int32N(40000)))
	}
	return b.NewRecordBatch()
}

// rowsOf renders records as DuckDB renders the table's rows.
func rowsOf(recs ...arrow.RecordBatch) []string {
	var out []string
	for _, rec := range recs {
		for r := range int(rec.NumRows()) {
			vals := make([]string, rec.NumCols())
			for c, col := range rec.Columns() {
				switch {
				case col.IsNull(r):
					vals[c] = "NULL"
				case c == 0:
					vals[c] = col.(*array.Timestamp).Value(r).ToTime(arrow.Microsecond).Format("2006-01-02 15:04:05.000000")
				case c == 4:
					vals[c] = fmt.Sprintf("%.17g", col.(*array.Float64).Value(r))
				case c == 6:
					vals[c] = col.(*array.Date32).Value(r).ToTime().Format(time.DateOnly)
				default:
					vals[c] = col.ValueStr(r)
				}
			}
			out = append(out, strings.Join(vals, "|"))
		}
	}
	return out
}

func tableRows(t *testing.T, conn *sql.Conn, table string) []string {
	t.Helper()
	var out []string
	for _, row := range lambdatest.QueryAll(context.Background(), t, conn, `SELECT concat_ws('|',
		coalesce(strftime(ts, '%Y-%m-%d %H:%M:%S.%f'), 'NULL'), coalesce(b::VARCHAR, 'NULL'), coalesce(i::VARCHAR, 'NULL'),
		coalesce(l::VARCHAR, 'NULL'), coalesce(printf('%.17g', d), 'NULL'), coalesce(s, 'NULL'), coalesce(day::VARCHAR, 'NULL'))
		FROM `+table+` ORDER BY rowid`) {
		out = append(out, row[0].(string))
	}
	return out
}

func openAppender(t *testing.T) (*sql.Conn, *engine.ArrowAppender, string) {
	t.Helper()
	ctx := context.Background()
	db, err := engine.Open(ctx, engine.Config{MemoryLimit: "1GB", Threads: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	defs := make([]string, len(appenderSpec.Columns))
	for i, c := range appenderSpec.Columns {
		defs[i] = c.Name + " " + c.Type.DuckDBType()
	}
	table := engine.Table(engine.InternalSchema, "appended")
	if _, err := conn.ExecContext(ctx, "CREATE TABLE "+table+" ("+strings.Join(defs, ", ")+")"); err != nil {
		t.Fatal(err)
	}
	app, err := engine.NewArrowAppender(conn, appenderSpec.ArrowSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	return conn, app, table
}

// TestArrowAppender appends records of every type, nulls, and slices that
// start inside a record's buffers, across DuckDB's 2048-row chunks, and
// reads back exactly those rows; a rolled back transaction keeps none.
func TestArrowAppender(t *testing.T) {
	ctx := context.Background()
	conn, app, table := openAppender(t)
	rnd := rand.New(rand.NewPCG(4, 2))
	whole := randomRecord(rnd, 5000)
	defer whole.Release()
	sliced := whole.NewSlice(7, 4100) // an offset, and more than two chunks
	defer sliced.Release()
	small := randomRecord(rnd, 3)
	defer small.Release()

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Append(engine.Catalog, engine.InternalSchema, "appended", []arrow.RecordBatch{sliced, small}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := rowsOf(sliced, small)
	got := tableRows(t, conn, table)
	if len(got) != len(want) {
		t.Fatalf("table holds %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d: got %s, want %s", i, got[i], want[i])
		}
	}

	tx, err = conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Append(engine.Catalog, engine.InternalSchema, "appended", []arrow.RecordBatch{whole}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := len(tableRows(t, conn, table)); n != len(want) {
		t.Fatalf("after a rollback the table holds %d rows, want %d", n, len(want))
	}

	other := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	wrong := array.NewRecordBatch(other, []arrow.Array{whole.Column(3)}, whole.NumRows())
	defer wrong.Release()
	err = app.Append(engine.Catalog, engine.InternalSchema, "appended", []arrow.RecordBatch{wrong})
	if err == nil || !strings.Contains(err.Error(), "appended") || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("appending a record of another schema: got %v, want an error naming the table and the schema", err)
	}
	if err := app.Append(engine.Catalog, engine.InternalSchema, "missing", []arrow.RecordBatch{small}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("appending to a missing table: got %v, want an error naming it", err)
	}
}

// TestArrowAppenderKeepsNoMemoryPerAppend appends many small records, as a
// speed layer under many small ingest requests does. Registering each record
// with duckdb-go's RegisterView as well grew the process by 17 MB over this
// test (about 9 KB per call, whatever the record's size); the appender alone
// grows it by 5-6 MB, its 24,000 rows and the allocator's warm-up.
func TestArrowAppenderKeepsNoMemoryPerAppend(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the resident set from /proc")
	}
	ctx := context.Background()
	conn, app, table := openAppender(t)
	rec := randomRecord(rand.New(rand.NewPCG(1, 1)), 10)
	defer rec.Release()
	appendOnce := func() {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := app.Append(engine.Catalog, engine.InternalSchema, "appended", []arrow.RecordBatch{rec}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for range 200 { // allocator and catalog warm-up
		appendOnce()
	}
	const appends = 2000
	before := lambdatest.ResidentBytes(t)
	for range appends {
		appendOnce()
	}
	runtime.GC()
	grew := lambdatest.ResidentBytes(t) - before
	var rows int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != (200+appends)*10 {
		t.Fatalf("table holds %d rows, want %d", rows, (200+appends)*10)
	}
	if limit := int64(10 << 20); grew > limit {
		t.Fatalf("%d appends of 10 rows grew the resident set by %d KB (%d bytes per append), more than %d KB", appends, grew>>10, grew/appends, limit>>10)
	}
	t.Logf("%d appends of 10 rows grew the resident set by %d KB", appends, grew>>10)
}
