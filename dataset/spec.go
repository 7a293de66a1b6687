// Package dataset defines a dataset's schema: its columns, their types and the
// time column, and how those types map onto Arrow and DuckDB. Every layer that
// stores or reads a dataset's records (ingest, the log, the speed layer, the
// archive, the batch layer) derives its schema from a Spec, so they agree.
package dataset

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Type is a column type as users write it in a dataset definition.
type Type string

// The column types a dataset may declare.
const (
	Boolean   Type = "boolean"
	Integer   Type = "integer"
	Bigint    Type = "bigint"
	Double    Type = "double"
	Varchar   Type = "varchar"
	Date      Type = "date"
	Timestamp Type = "timestamp"
)

var typeAliases = map[string]Type{
	"boolean": Boolean, "bool": Boolean,
	"integer": Integer, "int": Integer, "int32": Integer,
	"bigint": Bigint, "int64": Bigint, "long": Bigint,
	"double": Double, "float64": Double, "double precision": Double,
	"varchar": Varchar, "string": Varchar, "text": Varchar,
	"date":      Date,
	"timestamp": Timestamp,
}

// ParseType accepts a type name case-insensitively, with common aliases.
func ParseType(s string) (Type, error) {
	t, ok := typeAliases[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return "", fmt.Errorf("unknown column type %q (use boolean, integer, bigint, double, varchar, date or timestamp)", s)
	}
	return t, nil
}

// Column is one named, typed column.
type Column struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
}

// Spec is a dataset's definition.
type Spec struct {
	Name       string   `json:"name"`
	TimeColumn string   `json:"time_column"`
	Columns    []Column `json:"columns"`
	// DedupKey, when set, names a varchar, bigint or integer column: a
	// record whose key equals that of a record accepted less than
	// DedupWindow before is ignored (see speedlayer/dedup.go).
	DedupKey string `json:"dedup_key,omitempty"`
	// DedupWindow is how long an accepted key keeps its duplicates out;
	// Validate sets DefaultDedupWindow when DedupKey is set and it is not.
	DedupWindow Duration `json:"dedup_window,omitempty"`
	// Source, when set, is the Kafka topic or JetStream stream the dataset
	// reads its events from (see Source).
	Source *Source `json:"source,omitempty"`
}

// Deduplication windows: the default when a dataset names a key, and the
// longest allowed, which bounds the memory of the keys remembered.
const (
	DefaultDedupWindow = 10 * time.Minute
	MaxDedupWindow     = 24 * time.Hour
)

// Duration is a time.Duration that JSON carries as a string such as "10m0s".
type Duration time.Duration

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a duration such as "10m" or "1h30m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: write it like 90s, 10m or 1h30m", b)
	}
	*d = Duration(v)
	return nil
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidIdentifier reports whether s can name a dataset, view or column without
// quoting surprises in SQL, file paths or URLs.
func ValidIdentifier(s string) bool { return identRe.MatchString(s) && len(s) <= 128 }

// Validate normalises type names and checks the spec, naming the bad field.
func (s *Spec) Validate() error {
	if !ValidIdentifier(s.Name) {
		return fmt.Errorf("name %q: must start with a letter or underscore and contain only letters, digits and underscores", s.Name)
	}
	if len(s.Columns) == 0 {
		return fmt.Errorf("columns: a dataset needs at least one column")
	}
	seen := map[string]bool{}
	for i := range s.Columns {
		c := &s.Columns[i]
		if !ValidIdentifier(c.Name) {
			return fmt.Errorf("columns[%d].name %q: must start with a letter or underscore and contain only letters, digits and underscores", i, c.Name)
		}
		if strings.HasPrefix(c.Name, "__") {
			return fmt.Errorf("columns[%d].name %q: names starting with two underscores are reserved", i, c.Name)
		}
		lower := strings.ToLower(c.Name)
		if seen[lower] {
			return fmt.Errorf("columns[%d].name %q: duplicate column", i, c.Name)
		}
		seen[lower] = true
		t, err := ParseType(string(c.Type))
		if err != nil {
			return fmt.Errorf("columns[%d].type: %w", i, err)
		}
		c.Type = t
	}
	if s.TimeColumn == "" {
		return fmt.Errorf("time_column: required (the column holding each event's time)")
	}
	tc, ok := s.Column(s.TimeColumn)
	if !ok {
		return fmt.Errorf("time_column %q: no such column", s.TimeColumn)
	}
	if tc.Type != Timestamp && tc.Type != Date {
		return fmt.Errorf("time_column %q: must be a timestamp or date column, not %s", s.TimeColumn, tc.Type)
	}
	if err := s.validateDedup(); err != nil {
		return err
	}
	return s.validateSource()
}

func (s *Spec) validateDedup() error {
	if s.DedupKey == "" {
		if s.DedupWindow != 0 {
			return fmt.Errorf("dedup_window %s: set only together with dedup_key (the column whose repeats are ignored)", time.Duration(s.DedupWindow))
		}
		return nil
	}
	kc, ok := s.Column(s.DedupKey)
	if !ok {
		return fmt.Errorf("dedup_key %q: no such column", s.DedupKey)
	}
	if kc.Type != Varchar && kc.Type != Bigint && kc.Type != Integer {
		return fmt.Errorf("dedup_key %q: must be a varchar, bigint or integer column, not %s", s.DedupKey, kc.Type)
	}
	s.DedupKey = kc.Name
	w := time.Duration(s.DedupWindow)
	switch {
	case w == 0:
		s.DedupWindow = Duration(DefaultDedupWindow)
	case w < time.Second:
		return fmt.Errorf("dedup_window %s: must be at least 1s", w)
	case w > MaxDedupWindow:
		return fmt.Errorf("dedup_window %s: must be at most %s (every key accepted within the window is kept in memory)", w, MaxDedupWindow)
	}
	return nil
}

// DedupIndex is the position of the dedup key column, or -1 without one.
func (s *Spec) DedupIndex() int {
	if s.DedupKey == "" {
		return -1
	}
	for i, c := range s.Columns {
		if strings.EqualFold(c.Name, s.DedupKey) {
			return i
		}
	}
	return -1
}

// Column finds a column by name, case-insensitively as SQL does.
func (s *Spec) Column(name string) (Column, bool) {
	for _, c := range s.Columns {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return Column{}, false
}

// TimeIndex is the position of the time column.
func (s *Spec) TimeIndex() int {
	for i, c := range s.Columns {
		if strings.EqualFold(c.Name, s.TimeColumn) {
			return i
		}
	}
	return -1
}

// ArrowType is the Arrow type records of this column are carried in.
// Timestamps are microseconds without a zone: instants in UTC, which DuckDB
// reads as TIMESTAMP and Parquet stores with microsecond precision.
func (t Type) ArrowType() arrow.DataType {
	switch t {
	case Boolean:
		return arrow.FixedWidthTypes.Boolean
	case Integer:
		return arrow.PrimitiveTypes.Int32
	case Bigint:
		return arrow.PrimitiveTypes.Int64
	case Double:
		return arrow.PrimitiveTypes.Float64
	case Varchar:
		return arrow.BinaryTypes.String
	case Date:
		return arrow.FixedWidthTypes.Date32
	case Timestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	}
	panic(fmt.Sprintf("dataset: unknown type %q", t))
}

// DuckDBType is the engine's name for this type.
func (t Type) DuckDBType() string {
	switch t {
	case Boolean:
		return "BOOLEAN"
	case Integer:
		return "INTEGER"
	case Bigint:
		return "BIGINT"
	case Double:
		return "DOUBLE"
	case Varchar:
		return "VARCHAR"
	case Date:
		return "DATE"
	case Timestamp:
		return "TIMESTAMP"
	}
	panic(fmt.Sprintf("dataset: unknown type %q", t))
}

// ArrowSchema is the schema of this dataset's records, column for column.
// Every column is nullable except the time column.
func (s *Spec) ArrowSchema() *arrow.Schema {
	fields := make([]arrow.Field, len(s.Columns))
	ti := s.TimeIndex()
	for i, c := range s.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: c.Type.ArrowType(), Nullable: i != ti}
	}
	return arrow.NewSchema(fields, nil)
}

// QuoteIdent quotes a SQL identifier for DuckDB (and Trino): "a""b".
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// QuoteString quotes a SQL string literal, doubling embedded single quotes.
func QuoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// EmptyRelation is a SQL relation with this dataset's columns and no rows,
// for planning and for queries over a dataset that has no data yet.
func (s *Spec) EmptyRelation() string {
	var b strings.Builder
	b.WriteString("(SELECT ")
	for i, c := range s.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "CAST(NULL AS %s) AS %s", c.Type.DuckDBType(), QuoteIdent(c.Name))
	}
	b.WriteString(" WHERE false)")
	return b.String()
}

// ArchiveRowGroupRows bounds the row groups of the raw archive's Parquet
// files. DuckDB scans a file's row groups in parallel, one per thread, so a
// day's file of a million late events in one row group would be read by one
// core; 128Ki rows keeps every core busy and is still a row group other
// readers (Trino, Spark) handle well.
const ArchiveRowGroupRows = 128 * 1024

// ReadParquet is a SQL relation reading the Parquet files at paths. Hive
// partition detection is off: duet's files live under dt=... directories,
// and a column named like that directory must keep its own values.
func ReadParquet(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = QuoteString(p)
	}
	return "read_parquet([" + strings.Join(q, ", ") + "], hive_partitioning = false)"
}
