package engine

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/arrowmapping"
	"github.com/duckdb/duckdb-go/v2/mapping"
)

// ArrowAppender appends Arrow records of one schema to engine tables through
// DuckDB's appender, inside whatever transaction is open on its connection.
//
// It replaces duckdb-go's only Arrow ingestion path, Arrow.RegisterView:
// that calls the C API's duckdb_arrow_scan, which leaks about 10 KB of C
// memory per call whatever the record's size (measured: 20,000 ten-row
// ingests grew the server by 200 MB), ignores the projection and filters
// DuckDB pushes into it (a scan reading some columns reads wrong ones or
// crashes), and costs a statement to register. DuckDB's own
// duckdb_data_chunk_from_arrow and duckdb_append_data_chunk do the job
// without either; duckdb-go's public arrowmapping package binds them but
// keeps the connection handle they need unexported, so rawConnection
// reads it (the module is pinned; TestArrowAppender fails if its layout
// changes).
type ArrowAppender struct {
	conn   *sql.Conn
	schema *arrow.Schema
	// converted is DuckDB's reading of schema, made once on conn.
	converted arrowmapping.ArrowConvertedSchema
}

// NewArrowAppender prepares appends of records of schema on conn, which
// must stay open until Close.
func NewArrowAppender(conn *sql.Conn, schema *arrow.Schema) (*ArrowAppender, error) {
	a := &ArrowAppender{conn: conn, schema: schema}
	err := conn.Raw(func(dc any) error {
		raw, err := rawConnection(dc)
		if err != nil {
			return err
		}
		converted, ed := arrowmapping.SchemaFromArrow(raw, schema)
		if err := errorData(ed); err != nil {
			return fmt.Errorf("convert Arrow schema: %w", err)
		}
		a.converted = converted
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("arrow appender: %w", err)
	}
	return a, nil
}

// Close frees DuckDB's copy of the schema.
func (a *ArrowAppender) Close() {
	arrowmapping.DestroyArrowConvertedSchema(&a.converted)
}

// Append adds recs, in order, to catalog.schema.table, whose columns are
// the appender's schema's, in its order. The rows join the transaction open
// on the connection, if any: a rollback discards them. After an error some
// of the rows may have been appended, so the caller rolls back.
func (a *ArrowAppender) Append(catalog, schema, table string, recs []arrow.RecordBatch) error {
	for _, rec := range recs {
		if !rec.Schema().Equal(a.schema) {
			return fmt.Errorf("append to %s.%s: record schema %s is not the appender's %s", schema, table, rec.Schema(), a.schema)
		}
	}
	err := a.conn.Raw(func(dc any) error {
		raw, err := rawConnection(dc)
		if err != nil {
			return err
		}
		var app mapping.Appender
		// Destroyed on every error path, a failed creation's included.
		defer mapping.AppenderDestroy(&app)
		if mapping.AppenderCreateExt(raw, catalog, schema, table, &app) == mapping.StateError {
			return errors.New(mapping.AppenderError(app))
		}
		if err := a.appendChunks(raw, app, recs); err != nil {
			return err
		}
		if mapping.AppenderFlush(app) == mapping.StateError {
			return errors.New(mapping.AppenderError(app))
		}
		// The deferred destroy is then a no-op.
		if mapping.AppenderDestroy(&app) == mapping.StateError {
			return errors.New("close appender")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append to %s.%s: %w", schema, table, err)
	}
	return nil
}

// vectorSize is DuckDB's data chunk capacity (STANDARD_VECTOR_SIZE): a
// chunk converted from Arrow holds at most this many rows.
const vectorSize = 2048

func (a *ArrowAppender) appendChunks(raw mapping.Connection, app mapping.Appender, recs []arrow.RecordBatch) error {
	for _, rec := range recs {
		for off := int64(0); off < rec.NumRows(); off += vectorSize {
			end := min(off+vectorSize, rec.NumRows())
			part := rec.NewSlice(off, end)
			chunk, ed := arrowmapping.DataChunkFromArrow(raw, part, a.converted)
			part.Release()
			if err := errorData(ed); err != nil {
				return fmt.Errorf("convert Arrow rows %d-%d: %w", off, end, err)
			}
			state := mapping.AppendDataChunk(app, chunk)
			mapping.DestroyDataChunk(&chunk)
			if state == mapping.StateError {
				return errors.New(mapping.AppenderError(app))
			}
		}
	}
	return nil
}

// errorData turns a C API error into a Go error and frees it.
func errorData(ed mapping.ErrorData) error {
	defer mapping.DestroyErrorData(&ed)
	if !mapping.ErrorDataHasError(ed) {
		return nil
	}
	return errors.New(mapping.ErrorDataMessage(ed))
}

// rawConnection is the C connection handle inside duckdb-go's connection.
func rawConnection(dc any) (mapping.Connection, error) {
	c, ok := dc.(*duckdb.Conn)
	if !ok {
		return mapping.Connection{}, fmt.Errorf("not a duckdb connection: %T", dc)
	}
	f := reflect.ValueOf(c).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeFor[mapping.Connection]() {
		return mapping.Connection{}, errors.New("duckdb-go's connection no longer holds a mapping.Connection named conn")
	}
	raw := *(*mapping.Connection)(unsafe.Pointer(f.UnsafeAddr()))
	if raw.Ptr == nil {
		return mapping.Connection{}, errors.New("duckdb connection is closed")
	}
	return raw, nil
}
