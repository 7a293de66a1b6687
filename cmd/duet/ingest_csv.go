package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

// csvSource reads CSV with a header row into Arrow record batches of the
// dataset's schema. Columns are matched by name, in any order; a column the
// file lacks is NULL. It parses fields itself rather than with arrow/csv,
// which matches columns by position, rejects zoned timestamps for zone-less
// columns and cannot say which line a bad value is on.
type csvSource struct {
	r         *csv.Reader
	counter   *countingReader
	spec      *dataset.Spec
	schema    *arrow.Schema
	srcIndex  []int // per dataset column: its field in the CSV record, or -1
	headerLen int
	timeCol   int
	maxRows   int
	maxBytes  int
	mem       memory.Allocator
	done      bool
	onClose   func()
}

// newCSVSource reads the header. Its errors read well after the file name.
func newCSVSource(counter *countingReader, spec *dataset.Spec, maxRows, maxBytes int, mem memory.Allocator) (*csvSource, error) {
	r := csv.NewReader(counter)
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("is empty: a CSV file needs a header row naming its columns")
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	s := &csvSource{
		r: r, counter: counter, spec: spec, schema: spec.ArrowSchema(), timeCol: spec.TimeIndex(),
		maxRows: maxRows, maxBytes: maxBytes, mem: mem, headerLen: len(header),
	}
	s.srcIndex, err = matchColumns(spec, header)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return s, nil
}

// matchColumns maps each dataset column to the input column of that name
// (case-insensitively), or -1. Unknown and repeated input columns are errors:
// a misspelt column would otherwise become NULL without a word.
func matchColumns(spec *dataset.Spec, names []string) ([]int, error) {
	idx := make([]int, len(spec.Columns))
	for i := range idx {
		idx[i] = -1
	}
	var unknown []string
	for j, name := range names {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		found := false
		for i, c := range spec.Columns {
			if strings.EqualFold(c.Name, name) {
				if idx[i] >= 0 {
					return nil, fmt.Errorf("column %q appears twice", name)
				}
				idx[i], found = j, true
				break
			}
		}
		if !found {
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("column %s not in dataset %s (its columns: %s)",
			strings.Join(unknown, ", "), spec.Name, columnNames(spec))
	}
	if ti := spec.TimeIndex(); idx[ti] < 0 {
		return nil, fmt.Errorf("no column %q: the dataset's time column needs a value in every record", spec.TimeColumn)
	}
	return idx, nil
}

func columnNames(spec *dataset.Spec) string {
	names := make([]string, len(spec.Columns))
	for i, c := range spec.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

func (s *csvSource) next(ctx context.Context) (*batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.done {
		return nil, io.EOF
	}
	bld := array.NewRecordBuilder(s.mem, s.schema)
	defer bld.Release()
	b := &batch{contentType: client.ContentTypeArrowStream}
	startBytes := s.counter.n
	for b.rows < s.maxRows && s.counter.n-startBytes < int64(s.maxBytes) {
		rec, err := s.r.Read()
		if errors.Is(err, io.EOF) {
			s.done = true
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				msg := pe.Err.Error()
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					msg = fmt.Sprintf("%d fields, but the header has %d", len(rec), s.headerLen)
				}
				return nil, &inputError{where: fmt.Sprintf("line %d", pe.StartLine), err: errors.New(msg)}
			}
			return nil, err
		}
		line, _ := s.r.FieldPos(0)
		for i, col := range s.spec.Columns {
			j := s.srcIndex[i]
			if j < 0 {
				bld.Field(i).AppendNull()
				continue
			}
			if i == s.timeCol && strings.TrimSpace(rec[j]) == "" {
				return nil, &inputError{where: fmt.Sprintf("line %d, column %q", line, col.Name),
					err: errors.New("empty, but the time column needs a value in every record")}
			}
			if err := appendText(bld.Field(i), col.Type, rec[j]); err != nil {
				return nil, &inputError{where: fmt.Sprintf("line %d, column %q", line, col.Name), err: err}
			}
		}
		b.rows++
		b.lines = append(b.lines, int64(line))
	}
	if b.rows == 0 {
		return nil, io.EOF
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	body, err := arrowStream(s.schema, rec, s.mem)
	if err != nil {
		return nil, err
	}
	b.body = body
	return b, nil
}

func (s *csvSource) close() {
	if s.onClose != nil {
		s.onClose()
	}
}
