package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

var flightsSpec = dataset.Spec{Name: "flights", TimeColumn: "ts", Columns: []dataset.Column{
	{Name: "ts", Type: dataset.Timestamp},
	{Name: "origin", Type: dataset.Varchar},
	{Name: "delay", Type: dataset.Double},
	{Name: "seats", Type: dataset.Integer},
	{Name: "on_time", Type: dataset.Boolean},
	{Name: "day", Type: dataset.Date},
}}

func addFlights(f *fakeAPI) {
	f.datasets["flights"] = api.Dataset{Name: "flights", TimeColumn: "ts", Columns: flightsSpec.Columns}
}

// arrowRows decodes an Arrow IPC stream body and counts its rows.
func arrowRows(t *testing.T, body []byte) int64 {
	var n int64
	for _, rec := range decodeArrow(t, body) {
		n += rec.NumRows()
	}
	return n
}

// decodeArrow reads every record batch of an Arrow IPC stream.
func decodeArrow(t *testing.T, body []byte) []arrow.RecordBatch {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("body is not an Arrow IPC stream: %v", err)
	}
	defer r.Release()
	var out []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		out = append(out, rec)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read Arrow IPC stream: %v", err)
	}
	return out
}

// arrowRowStrings renders each row of the batches of an Arrow stream as
// "v1|v2|...", with NULL for nulls and timestamps in RFC 3339.
func arrowRowStrings(t *testing.T, body []byte, wantSchema *arrow.Schema) []string {
	t.Helper()
	var rows []string
	for _, rec := range decodeArrow(t, body) {
		if !rec.Schema().Equal(wantSchema) {
			t.Fatalf("schema\n%s\nwant\n%s", rec.Schema(), wantSchema)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			vals := make([]string, rec.NumCols())
			for j, col := range rec.Columns() {
				if col.IsNull(i) {
					vals[j] = "NULL"
					continue
				}
				switch c := col.(type) {
				case *array.Timestamp:
					vals[j] = c.Value(i).ToTime(arrow.Microsecond).Format(time.RFC3339Nano)
				case *array.Date32:
					vals[j] = c.Value(i).FormattedString()
				default:
					vals[j] = col.ValueStr(i)
				}
			}
			rows = append(rows, strings.Join(vals, "|"))
		}
		rec.Release()
	}
	return rows
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ndjsonLines(n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"ts":"2024-05-01T12:%02d:00Z","origin":"A\"B","delay":%d.5}`, i%60, i)
	}
	return lines
}

func TestIngestNDJSONBatches(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	lines := ndjsonLines(11)
	// A blank line after line 3 and no newline at the end.
	content := strings.Join(lines[:3], "\n") + "\n\n" + strings.Join(lines[3:], "\n")
	path := writeFile(t, "events.ndjson", content)

	r := runCLI(t, url, "", "ingest", "--dataset", "flights", "--batch-rows", "5", path)
	r.wantSuccess(t)
	if !strings.HasPrefix(r.stdout, "ingested 11 rows into flights (offsets 0..10) in ") || !strings.HasSuffix(r.stdout, "s\n") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if len(f.batches) != 3 {
		t.Fatalf("server got %d batches, want 3 (5+5+1 rows)", len(f.batches))
	}
	var got []string
	for i, b := range f.batches {
		if b.contentType != "application/x-ndjson" {
			t.Errorf("batch %d content type %q", i, b.contentType)
		}
		if !bytes.HasSuffix(b.body, []byte("\n")) {
			t.Errorf("batch %d does not end with a newline: %q", i, b.body)
		}
		got = append(got, strings.Split(strings.TrimSuffix(string(b.body), "\n"), "\n")...)
	}
	if strings.Join(got, "\n") != strings.Join(lines, "\n") {
		t.Errorf("lines received:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(lines, "\n"))
	}
}

func TestIngestNDJSONFromStdin(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	lines := ndjsonLines(4)
	r := runCLI(t, url, strings.Join(lines, "\n")+"\n", "ingest", "-d", "flights", "-")
	r.wantSuccess(t)
	if len(f.batches) != 1 || string(f.batches[0].body) != strings.Join(lines, "\n")+"\n" {
		t.Errorf("batches = %q", f.batches)
	}
	if !strings.HasPrefix(r.stdout, "ingested 4 rows into flights (offsets 0..3)") {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestIngestNDJSONBatchBytesBound(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	lines := ndjsonLines(40) // about 60 bytes each
	path := writeFile(t, "e.jsonl", strings.Join(lines, "\n")+"\n")
	runCLI(t, url, "", "ingest", "-d", "flights", "--batch-bytes", "1024", path).wantSuccess(t)
	if len(f.batches) < 2 {
		t.Fatalf("%d batches; --batch-bytes 1024 should split ~2.4 kB", len(f.batches))
	}
	for i, b := range f.batches {
		if len(b.body) > 1024+100 {
			t.Errorf("batch %d is %d bytes", i, len(b.body))
		}
	}
}

func TestIngestRejectedSecondBatchNamesFileLine(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	lines := ndjsonLines(12)
	// Blank lines shift line numbers: line 1 is blank, so records are on lines 2..13.
	path := writeFile(t, "events.ndjson", "\n"+strings.Join(lines, "\n")+"\n")
	f.rejectIngest = func(i int, body []byte) *api.Error {
		if i == 1 {
			return &api.Error{Error: `row 3, column "delay": "x" is not a double`, Row: 3, Column: "delay"}
		}
		return nil
	}
	r := runCLI(t, url, "", "ingest", "--dataset", "flights", "--batch-rows", "5", path)
	// Batch 2 holds records 6..10, on lines 7..11; its row 3 is line 9.
	r.wantFailure(t, "duet: "+path+` line 9, column "delay": "x" is not a double; batches before line 7 were accepted (offsets 0..4)`)
	if len(f.batches) != 2 {
		t.Errorf("%d batches sent; ingest must stop at the rejected one", len(f.batches))
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestIngestRejectedFirstBatch(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	f.rejectIngest = func(int, []byte) *api.Error {
		return &api.Error{Error: `row 1: missing time column "ts"`, Row: 1}
	}
	path := writeFile(t, "e.ndjson", "{}\n")
	runCLI(t, url, "", "ingest", "-d", "flights", path).
		wantFailure(t, "duet: "+path+` line 1: missing time column "ts"; nothing was ingested`)
}

func TestIngestUnknownDataset(t *testing.T) {
	f, url := newFakeAPI(t)
	path := writeFile(t, "e.ndjson", "{}\n")
	runCLI(t, url, "", "ingest", "-d", "nope", path).wantFailure(t, `duet: dataset "nope" not found`)
	if len(f.batches) != 0 {
		t.Error("sent batches to an unknown dataset")
	}
}

func TestIngestCSV(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	// Columns in another order than the dataset's, "seats" missing, a quoted
	// field with a comma and a newline, timestamps in several ISO 8601 forms
	// and empty fields (NULL).
	csvText := "Delay,ts,origin,on_time,day\n" +
		"1.5,2024-05-01T12:00:00Z,SFO,true,2024-05-01\n" +
		"-2,2024-05-01 12:00:00.123456,\"Fort\nWorth, TX\",false,\n" +
		",2024-05-01T14:00:00+02:00,,,2024-05-02\n" +
		"1e3,2024-05-01,JFK,1,2024-05-03\n" +
		"0,2024-05-01T12:30,LAX,0,2024-05-04\n"
	path := writeFile(t, "flights.csv", csvText)
	r := runCLI(t, url, "", "ingest", "--dataset", "flights", "--batch-rows", "2", path)
	r.wantSuccess(t)
	if !strings.HasPrefix(r.stdout, "ingested 5 rows into flights (offsets 0..4)") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if len(f.batches) != 3 {
		t.Fatalf("%d batches, want 3 (2+2+1 rows)", len(f.batches))
	}
	var rows []string
	for i, b := range f.batches {
		if b.contentType != "application/vnd.apache.arrow.stream" {
			t.Errorf("batch %d content type %q", i, b.contentType)
		}
		rows = append(rows, arrowRowStrings(t, b.body, flightsSpec.ArrowSchema())...)
	}
	want := []string{
		"2024-05-01T12:00:00Z|SFO|1.5|NULL|true|2024-05-01",
		"2024-05-01T12:00:00.123456Z|Fort\nWorth, TX|-2|NULL|false|NULL",
		"2024-05-01T12:00:00Z|NULL|NULL|NULL|NULL|2024-05-02",
		"2024-05-01T00:00:00Z|JFK|1000|NULL|true|2024-05-03",
		"2024-05-01T12:30:00Z|LAX|0|NULL|false|2024-05-04",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

func TestIngestCSVRejectedRowMapsToLine(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	// Record 3 spans lines 4-5, so record 4 (row 2 of batch 2) is on line 6.
	csvText := "ts,origin\n" +
		"2024-05-01T00:00:00Z,a\n" +
		"2024-05-01T00:00:01Z,b\n" +
		"2024-05-01T00:00:02Z,\"c\nc\"\n" +
		"2024-05-01T00:00:03Z,d\n"
	path := writeFile(t, "f.csv", csvText)
	f.rejectIngest = func(i int, _ []byte) *api.Error {
		if i == 1 {
			return &api.Error{Error: `row 2, column "origin": too long`, Row: 2, Column: "origin"}
		}
		return nil
	}
	runCLI(t, url, "", "ingest", "-d", "flights", "--batch-rows", "2", path).
		wantFailure(t, "duet: "+path+` line 6, column "origin": too long; batches before line 4 were accepted (offsets 0..1)`)
}

func TestIngestCSVBadValue(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	csvText := "ts,seats\n2024-05-01T00:00:00Z,1\n2024-05-01T00:00:00Z,2\n2024-05-01T00:00:00Z,many\n"
	path := writeFile(t, "f.csv", csvText)
	runCLI(t, url, "", "ingest", "-d", "flights", "--batch-rows", "2", path).
		wantFailure(t, "duet: "+path+` line 4, column "seats": "many" is not an integer; batches up to line 3 were accepted (offsets 0..1)`)
	if len(f.batches) != 1 {
		t.Errorf("%d batches sent, want only the one before the bad line", len(f.batches))
	}
}

func TestIngestCSVHeaderErrors(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	path := writeFile(t, "f.csv", "ts,orign\n2024-05-01,x\n")
	runCLI(t, url, "", "ingest", "-d", "flights", path).
		wantFailure(t, "duet: "+path+` header: column "orign" not in dataset flights (its columns: ts, origin, delay, seats, on_time, day)`)
	path = writeFile(t, "g.csv", "origin\nx\n")
	runCLI(t, url, "", "ingest", "-d", "flights", path).
		wantFailure(t, "duet: "+path+` header: no column "ts": the dataset's time column needs a value in every record`)
	if len(f.batches) != 0 {
		t.Errorf("%d batches sent", len(f.batches))
	}
}

func TestIngestParquet(t *testing.T) {
	f, url := newFakeAPI(t)
	addFlights(f)
	// The file's types differ from the dataset's: zoned millisecond
	// timestamps, float32 delays, int64 seats; "on_time" and "day" are absent.
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "seats", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "origin", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "delay", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	}, nil)
	mem := memory.NewGoAllocator()
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var want []string
	for i := 0; i < 10; i++ {
		ts := base.Add(time.Duration(i) * 1500 * time.Millisecond)
		bld.Field(0).(*array.Int64Builder).Append(int64(100 + i))
		bld.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMilli()))
		origin := "NULL"
		if i%3 == 0 {
			bld.Field(2).AppendNull()
		} else {
			origin = fmt.Sprintf("o%d", i)
			bld.Field(2).(*array.StringBuilder).Append(origin)
		}
		bld.Field(3).(*array.Float32Builder).Append(float32(i) + 0.25)
		want = append(want, fmt.Sprintf("%s|%s|%v|%d|NULL|NULL", ts.Format(time.RFC3339Nano), origin, float64(i)+0.25, 100+i))
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	path := filepath.Join(t.TempDir(), "flights.parquet")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, out, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(6)), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, url, "", "ingest", "--dataset", "flights", "--batch-rows", "4", path)
	r.wantSuccess(t)
	if !strings.HasPrefix(r.stdout, "ingested 10 rows into flights (offsets 0..9)") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if len(f.batches) != 3 {
		t.Errorf("%d batches for 10 rows at --batch-rows 4, want 3", len(f.batches))
	}
	var rows []string
	for i, b := range f.batches {
		if b.contentType != "application/vnd.apache.arrow.stream" {
			t.Errorf("batch %d content type %q", i, b.contentType)
		}
		n := arrowRows(t, b.body)
		if n > 4 {
			t.Errorf("batch %d has %d rows, more than --batch-rows", i, n)
		}
		rows = append(rows, arrowRowStrings(t, b.body, flightsSpec.ArrowSchema())...)
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}

	// A rejection in the second batch names the file's row.
	f.batches = nil
	f.rejectIngest = func(i int, _ []byte) *api.Error {
		if i == 1 {
			return &api.Error{Error: `row 2, column "origin": nope`, Row: 2, Column: "origin"}
		}
		return nil
	}
	runCLI(t, url, "", "ingest", "--dataset", "flights", "--batch-rows", "4", path).
		wantFailure(t, "duet: "+path+` row 6, column "origin": nope; batches before row 5 were accepted (offsets 10..13)`)
}

// TestIngestGivesUpOverMemoryBudget: when the server kept answering 429 until
// the client gave up, the error says why, what went in, and where to resume.
func TestIngestGivesUpOverMemoryBudget(t *testing.T) {
	refusal := &client.APIError{Status: 429, RetryAfter: time.Second,
		Message: `dataset "flights": request not accepted, none of its 3 records were stored: the speed layer holds 8.1 MiB of unarchived records and view partials, at or over its memory budget of 8.0 MiB; retry in 1s, once archiving and view builds have freed memory`}
	err := rejectedBatchError(fmt.Errorf("server still refused the batch after 30 attempts: %w", refusal),
		"f.ndjson", &batch{rows: 3, lines: []int64{4, 5, 6}}, tally{rows: 3, first: 0, last: 2})
	want := `the server refused lines 4..6 of f.ndjson: server still refused the batch after 30 attempts: dataset "flights": request not accepted, ` +
		`none of its 3 records were stored: the speed layer holds 8.1 MiB of unarchived records and view partials, at or over its memory budget of 8.0 MiB; ` +
		`retry in 1s, once archiving and view builds have freed memory; batches before line 4 were accepted (offsets 0..2); ` +
		`its speed layer stayed at its memory budget: the server may be failing to archive (see its log) or its views may need a build; send f.ndjson from line 4 again later`
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
}
