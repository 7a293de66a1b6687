package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

// parquetInput is what the Parquet reader needs: random access.
type parquetInput interface {
	io.ReaderAt
	io.Seeker
}

// parquetSource reads a Parquet file with pqarrow in batches of rows and
// converts its columns, matched by name, to the dataset's Arrow schema.
type parquetSource struct {
	rr        pqarrow.RecordReader
	spec      *dataset.Spec
	schema    *arrow.Schema
	srcIndex  []int // per dataset column: its field in rr's records, or -1
	timeCol   int
	mem       memory.Allocator
	rowsRead  int64
	totalRows int64
	onClose   func()
}

func newParquetSource(ctx context.Context, in parquetInput, spec *dataset.Spec, batchRows int, mem memory.Allocator) (*parquetSource, error) {
	pf, err := file.NewParquetReader(in)
	if err != nil {
		return nil, fmt.Errorf("not a readable Parquet file: %w", err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batchRows)}, mem)
	if err != nil {
		return nil, fmt.Errorf("read Parquet schema: %w", err)
	}
	names := make([]string, len(fr.Manifest.Fields))
	for i, f := range fr.Manifest.Fields {
		names[i] = f.Field.Name
	}
	fileIndex, err := matchColumns(spec, names)
	if err != nil {
		return nil, err
	}
	var leaves []int
	for i, j := range fileIndex {
		if j < 0 {
			continue
		}
		f := fr.Manifest.Fields[j]
		if !f.IsLeaf() {
			return nil, fmt.Errorf("column %q is %s, but dataset column %s is %s: duet columns are flat",
				f.Field.Name, f.Field.Type, spec.Columns[i].Name, spec.Columns[i].Type)
		}
		leaves = append(leaves, f.ColIndex)
	}
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return nil, fmt.Errorf("read Parquet columns: %w", err)
	}
	s := &parquetSource{
		rr: rr, spec: spec, schema: spec.ArrowSchema(), timeCol: spec.TimeIndex(),
		mem: mem, totalRows: pf.NumRows(), srcIndex: make([]int, len(spec.Columns)),
	}
	got := rr.Schema()
	for i, j := range fileIndex {
		s.srcIndex[i] = -1
		if j < 0 {
			continue
		}
		name := fr.Manifest.Fields[j].Field.Name
		for k, f := range got.Fields() {
			if f.Name == name {
				s.srcIndex[i] = k
			}
		}
		if s.srcIndex[i] < 0 {
			rr.Release()
			return nil, fmt.Errorf("column %q: the Parquet reader did not return it", name)
		}
	}
	return s, nil
}

func (s *parquetSource) next(ctx context.Context) (*batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !s.rr.Next() {
		if err := s.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return nil, &inputError{where: fmt.Sprintf("row %d", s.rowsRead+1), err: err}
		}
		return nil, io.EOF
	}
	rec := s.rr.RecordBatch()
	n := rec.NumRows()
	first := s.rowsRead + 1
	s.rowsRead += n

	cols := make([]arrow.Array, len(s.spec.Columns))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, col := range s.spec.Columns {
		want := col.Type.ArrowType()
		j := s.srcIndex[i]
		if j < 0 {
			cols[i] = array.MakeArrayOfNull(s.mem, want, int(n))
			continue
		}
		arr := rec.Column(j)
		if arrow.TypeEqual(arr.DataType(), want) {
			arr.Retain()
			cols[i] = arr
		} else {
			cast, err := compute.CastArray(ctx, arr, compute.SafeCastOptions(want))
			if err != nil {
				return nil, &inputError{
					where: fmt.Sprintf("rows %d..%d, column %q", first, first+n-1, col.Name),
					err:   fmt.Errorf("cannot convert %s to %s: %s", arr.DataType(), col.Type, strings.TrimPrefix(err.Error(), "invalid: ")),
				}
			}
			cols[i] = cast
		}
		if i == s.timeCol && cols[i].NullN() > 0 {
			k := 0
			for cols[i].IsValid(k) {
				k++
			}
			return nil, &inputError{where: fmt.Sprintf("row %d, column %q", first+int64(k), col.Name),
				err: errors.New("null, but the time column needs a value in every record")}
		}
	}
	out := array.NewRecordBatch(s.schema, cols, n)
	defer out.Release()
	body, err := arrowStream(s.schema, out, s.mem)
	if err != nil {
		return nil, err
	}
	return &batch{contentType: client.ContentTypeArrowStream, body: body, rows: int(n), firstRow: first}, nil
}

func (s *parquetSource) close() {
	s.rr.Release()
	if s.onClose != nil {
		s.onClose()
	}
}
