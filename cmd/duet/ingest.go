package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

const (
	formatNDJSON  = "ndjson"
	formatCSV     = "csv"
	formatParquet = "parquet"
)

type ingestOptions struct {
	dataset    string
	format     string
	batchRows  int
	batchBytes int
}

func newIngestCmd(a *app) *cobra.Command {
	o := ingestOptions{}
	cmd := &cobra.Command{
		Use:   "ingest --dataset NAME FILE|-",
		Short: "Send a file of records (NDJSON, CSV or Parquet) to a dataset",
		Long: `Send a file of records to a dataset, in batches of --batch-rows records, one
request per batch. Each accepted batch is durable; if the server rejects one,
the batches before it stay accepted and the error names the line (or Parquet
row) at fault.

Formats (default from the file's extension; stdin, given as -, is NDJSON):
  ndjson   one JSON object per line (.ndjson, .jsonl, .json), sent as it is
  csv      a header row naming the dataset's columns, in any order; columns
           missing from the file are NULL, as are empty fields; timestamps in
           ISO 8601 (2024-05-01T12:00:00Z, 2024-05-01 12:00:00.5, 2024-05-01)
  parquet  columns matched by name and converted to the dataset's types

  duet ingest --dataset flights flights.csv
  producer | duet ingest --dataset flights -`,
		Args: argsExactly("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), a, args[0])
		},
	}
	cmd.Flags().StringVarP(&o.dataset, "dataset", "d", "", "the dataset to ingest into (required)")
	cmd.Flags().StringVar(&o.format, "format", "", "ndjson, csv or parquet (default from the file's extension)")
	cmd.Flags().IntVar(&o.batchRows, "batch-rows", 50000, "records per request")
	cmd.Flags().IntVar(&o.batchBytes, "batch-bytes", 32<<20, "input bytes per request at most (NDJSON, CSV), so wide records make smaller batches")
	return cmd
}

func (o *ingestOptions) validate(path string) (format string, err error) {
	if o.dataset == "" {
		return "", errors.New("--dataset is required: name the dataset to ingest into (see \"duet dataset list\")")
	}
	if o.batchRows < 1 {
		return "", fmt.Errorf("--batch-rows %d: must be at least 1", o.batchRows)
	}
	if o.batchBytes < 1024 {
		return "", fmt.Errorf("--batch-bytes %d: must be at least 1024", o.batchBytes)
	}
	return resolveFormat(o.format, path)
}

// resolveFormat takes --format, else the file's extension; stdin is NDJSON.
func resolveFormat(flag, path string) (string, error) {
	switch strings.ToLower(flag) {
	case formatNDJSON, "jsonl", "json":
		return formatNDJSON, nil
	case formatCSV:
		return formatCSV, nil
	case formatParquet:
		return formatParquet, nil
	case "":
	default:
		return "", fmt.Errorf("--format %q: use ndjson, csv or parquet", flag)
	}
	if path == "-" {
		return formatNDJSON, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ndjson", ".jsonl", ".json":
		return formatNDJSON, nil
	case ".csv":
		return formatCSV, nil
	case ".parquet", ".pq":
		return formatParquet, nil
	}
	return "", fmt.Errorf("cannot tell the format of %s from its extension; pass --format ndjson, csv or parquet", path)
}

// batch is one request's worth of records.
type batch struct {
	contentType string
	body        []byte
	rows        int
	// lines[i] is the input line of the batch's row i+1 (NDJSON, CSV); nil
	// for Parquet, whose rows are numbered from firstRow.
	lines    []int64
	firstRow int64
}

// at names where the batch's 1-based row is in the input.
func (b *batch) at(row int) string {
	if b.lines != nil {
		return fmt.Sprintf("line %d", b.lines[row-1])
	}
	return fmt.Sprintf("row %d", b.firstRow+int64(row)-1)
}

// span names the batch's extent in the input.
func (b *batch) span() string {
	if b.lines != nil {
		return fmt.Sprintf("lines %d..%d", b.lines[0], b.lines[len(b.lines)-1])
	}
	return fmt.Sprintf("rows %d..%d", b.firstRow, b.firstRow+int64(b.rows)-1)
}

// batchSource reads an input into batches.
type batchSource interface {
	// next returns the next batch, or io.EOF after the last.
	next(ctx context.Context) (*batch, error)
	close()
}

// inputError is a record the input itself gets wrong; where is "line 7,
// column "delay"" or similar, and the caller prefixes the input's name.
type inputError struct {
	where string
	err   error
}

func (e *inputError) Error() string { return e.where + ": " + e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// tally is what the server has accepted so far, and how many records it
// ignored as duplicates (datasets with a dedup key).
type tally struct {
	rows, first, last int64
	duplicates        int64
}

func (t *tally) add(r api.IngestResult) {
	t.duplicates += r.Duplicates
	if r.Accepted == 0 {
		return
	}
	if t.rows == 0 {
		t.first = r.FirstOffset
	}
	t.rows += r.Accepted
	t.last = r.LastOffset
}

func (o *ingestOptions) run(ctx context.Context, a *app, path string) error {
	format, err := o.validate(path)
	if err != nil {
		return err
	}
	start := time.Now()
	name := displayName(path)
	prog := newProgress(a.io.err, a.io.errTerminal, name)
	defer prog.finish()

	// While the server's speed layer is at its memory budget it asks for a
	// retry after a second: half a minute of patience covers archiving a
	// backlog, and a stuck archiver still ends in a clear error.
	c, err := a.client(client.Config{IngestAttempts: 30, OnRetry: prog.retrying})
	if err != nil {
		return err
	}
	ds, err := c.GetDataset(ctx, o.dataset)
	if err != nil {
		return err
	}
	spec := dataset.Spec{Name: ds.Name, TimeColumn: ds.TimeColumn, Columns: ds.Columns}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("dataset %s as the server describes it: %w", ds.Name, err)
	}

	src, err := o.openSource(ctx, format, path, a.io.in, &spec, prog)
	if err != nil {
		return err
	}
	defer src.close()

	var (
		got  tally
		last *batch // the last accepted batch
	)
	for {
		b, err := src.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			prog.finish()
			var ie *inputError
			if errors.As(err, &ie) {
				return fmt.Errorf("%s %w; %s", name, err, acceptedThrough(last, got))
			}
			return fmt.Errorf("read %s: %w; %s", name, err, acceptedThrough(last, got))
		}
		res, err := c.Ingest(ctx, o.dataset, b.contentType, b.body)
		if err != nil {
			prog.finish()
			return rejectedBatchError(err, name, b, got)
		}
		got.add(res)
		last = b
		prog.sent(int64(b.rows), int64(len(b.body)))
	}
	prog.finish()
	elapsed := fmt.Sprintf("%.1fs", time.Since(start).Seconds())
	switch {
	case got.rows == 0 && got.duplicates > 0:
		fmt.Fprintf(a.io.out, "ingested 0 rows into %s in %s (all %s of %s were duplicates of records already accepted, ignored)\n",
			o.dataset, elapsed, plural(got.duplicates, "record"), name)
	case got.rows == 0:
		fmt.Fprintf(a.io.out, "ingested 0 rows into %s in %s (%s has no records)\n", o.dataset, elapsed, name)
	case got.duplicates > 0:
		fmt.Fprintf(a.io.out, "ingested %d rows into %s (offsets %d..%d) in %s; ignored %s already accepted\n",
			got.rows, o.dataset, got.first, got.last, elapsed, plural(got.duplicates, "duplicate"))
	default:
		fmt.Fprintf(a.io.out, "ingested %d rows into %s (offsets %d..%d) in %s\n", got.rows, o.dataset, got.first, got.last, elapsed)
	}
	return nil
}

func (o *ingestOptions) openSource(ctx context.Context, format, path string, stdin io.Reader, spec *dataset.Spec, prog *progress) (batchSource, error) {
	mem := memory.DefaultAllocator
	if format == formatParquet {
		ra, closeFile, err := openReaderAt(path, stdin)
		if err != nil {
			return nil, err
		}
		src, err := newParquetSource(ctx, ra, spec, o.batchRows, mem)
		if err != nil {
			closeFile()
			return nil, fmt.Errorf("%s: %w", displayName(path), err)
		}
		src.onClose = closeFile
		prog.totalRows = src.totalRows
		return src, nil
	}

	var r io.Reader = stdin
	closeFile := func() {}
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err // *PathError names the file
		}
		closeFile = func() { _ = f.Close() }
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			prog.totalBytes = st.Size()
		}
		r = f
	}
	counter := &countingReader{r: r, onRead: prog.read}
	if format == formatCSV {
		src, err := newCSVSource(counter, spec, o.batchRows, o.batchBytes, mem)
		if err != nil {
			closeFile()
			return nil, fmt.Errorf("%s %w", displayName(path), err)
		}
		src.onClose = closeFile
		return src, nil
	}
	src := newNDJSONSource(counter, o.batchRows, o.batchBytes)
	src.onClose = closeFile
	return src, nil
}

func displayName(path string) string {
	if path == "-" {
		return "stdin"
	}
	return path
}

// openReaderAt gives Parquet's reader random access: the file itself, or
// stdin read whole into memory.
func openReaderAt(path string, stdin io.Reader) (parquetInput, func(), error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, nil, fmt.Errorf("read stdin: %w", err)
		}
		return bytes.NewReader(b), func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

// countingReader reports how many input bytes have been read, for progress
// and for the --batch-bytes bound.
type countingReader struct {
	r      io.Reader
	n      int64
	onRead func(n int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.onRead != nil && n > 0 {
		c.onRead(c.n)
	}
	return n, err
}

// acceptedThrough says what stays ingested when reading the input fails
// after the batch last was accepted.
func acceptedThrough(last *batch, t tally) string {
	if last == nil {
		return "nothing was ingested"
	}
	return fmt.Sprintf("batches up to %s were accepted (offsets %d..%d)", last.at(last.rows), t.first, t.last)
}

// serverRowPrefix is how the server locates an ingest error within the
// request; the CLI replaces it with the position in the file.
var serverRowPrefix = regexp.MustCompile(`^(?:row|line) \d+(?:, column "(?:[^"\\]|\\.)*")?:\s*`)

// rejectedBatchError explains a batch the server refused: where in the file,
// why, and what was ingested before it.
func rejectedBatchError(err error, name string, b *batch, got tally) error {
	accepted := "nothing was ingested"
	if got.rows > 0 {
		accepted = fmt.Sprintf("batches before %s were accepted (offsets %d..%d)", b.at(1), got.first, got.last)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("send %s of %s: %w; %s", b.span(), name, err, accepted)
	}
	switch {
	case ae.Status == http.StatusBadRequest && ae.Row >= 1 && ae.Row <= b.rows:
		where := b.at(ae.Row)
		if ae.Column != "" {
			where += fmt.Sprintf(", column %q", ae.Column)
		}
		msg := serverRowPrefix.ReplaceAllString(ae.Message, "")
		return fmt.Errorf("%s %s: %s; %s", name, where, msg, accepted)
	case ae.Status == http.StatusTooManyRequests:
		return fmt.Errorf("the server refused %s of %s: %w; %s; its speed layer stayed at its memory budget: "+
			"the server may be failing to archive (see its log) or its views may need a build; send %s from %s again later",
			b.span(), name, err, accepted, name, b.at(1))
	case ae.Status == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("the server refused %s of %s (%s) as too large: %v; lower --batch-rows or --batch-bytes; %s",
			b.span(), name, formatBytes(int64(len(b.body))), err, accepted)
	}
	return fmt.Errorf("the server refused %s of %s: %w; %s", b.span(), name, err, accepted)
}

// arrowStream serialises one record batch as an Arrow IPC stream.
func arrowStream(schema *arrow.Schema, rec arrow.RecordBatch, mem memory.Allocator) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("encode Arrow IPC stream: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode Arrow IPC stream: %w", err)
	}
	return buf.Bytes(), nil
}
