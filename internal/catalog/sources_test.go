package catalog

import (
	"reflect"
	"testing"
)

// testSourcePositions: positions recorded with archive files appear with
// them, only move forward, and survive compaction.
func testSourcePositions(t *testing.T, s *Store) {
	ctx := t.Context()
	_, _, err := s.ArchivedSource(ctx, "clicks")
	wantErr(t, "ArchivedSource(missing dataset)", err, ErrNotFound)
	mustCreateDataset(t, s, "clicks")
	mustCreateDataset(t, s, "other")

	wantSource := func(step, dataset string, end int64, positions string) {
		t.Helper()
		gotEnd, got, err := s.ArchivedSource(ctx, dataset)
		if err != nil {
			t.Fatalf("%s: ArchivedSource(%s): %v", step, dataset, err)
		}
		if gotEnd != end || string(got) != positions || (positions == "" && got != nil) {
			t.Fatalf("%s: ArchivedSource(%s) = %d, %q; want %d, %q", step, dataset, gotEnd, got, end, positions)
		}
	}
	wantSource("no archive", "clicks", 0, "")

	file := func(ds, path, part string, first, end int64) ArchiveFile {
		return ArchiveFile{Dataset: ds, Path: path, Partition: part, First: first, End: end, Rows: end - first, Bytes: 10, CreatedAt: at(int(first))}
	}
	a := file("clicks", "raw/clicks/dt=2025-03-14/0-100.parquet", "dt=2025-03-14", 0, 100)
	if err := s.RecordSourcedArchive(ctx, []ArchiveFile{a}, SourcePositions{Dataset: "clicks", End: 100, Positions: []byte(`{"0":60,"1":40}`)}); err != nil {
		t.Fatal(err)
	}
	wantSource("first archive", "clicks", 100, `{"0":60,"1":40}`)
	wantSource("first archive", "other", 0, "")

	// A range over two days: two files, one End.
	b1 := file("clicks", "raw/clicks/dt=2025-03-14/100-250.parquet", "dt=2025-03-14", 100, 250)
	b2 := file("clicks", "raw/clicks/dt=2025-03-15/100-250.parquet", "dt=2025-03-15", 100, 250)
	if err := s.RecordSourcedArchive(ctx, []ArchiveFile{b1, b2}, SourcePositions{Dataset: "clicks", End: 250, Positions: []byte(`{"0":150,"1":100}`)}); err != nil {
		t.Fatal(err)
	}
	wantSource("second archive", "clicks", 250, `{"0":150,"1":100}`)

	// Redoing an older archive (a crash between upload and commit) records
	// its files again but does not move the positions back.
	if err := s.RecordSourcedArchive(ctx, []ArchiveFile{a}, SourcePositions{Dataset: "clicks", End: 100, Positions: []byte(`{"0":60,"1":40}`)}); err != nil {
		t.Fatal(err)
	}
	wantSource("older archive again", "clicks", 250, `{"0":150,"1":100}`)
	// Files recorded without positions leave them as they are.
	if err := s.RecordArchive(ctx, []ArchiveFile{file("other", "raw/other/0-5.parquet", "dt=2025-03-14", 0, 5)}); err != nil {
		t.Fatal(err)
	}
	wantSource("plain archive", "other", 0, "")

	for _, bad := range []struct {
		name  string
		files []ArchiveFile
		src   SourcePositions
	}{
		{"end differs from the files'", []ArchiveFile{file("clicks", "raw/clicks/x1.parquet", "dt=2025-03-16", 250, 300)}, SourcePositions{Dataset: "clicks", End: 299, Positions: []byte("{}")}},
		{"empty positions", []ArchiveFile{file("clicks", "raw/clicks/x2.parquet", "dt=2025-03-16", 250, 300)}, SourcePositions{Dataset: "clicks", End: 300}},
		{"positions not text", []ArchiveFile{file("clicks", "raw/clicks/x3.parquet", "dt=2025-03-16", 250, 300)}, SourcePositions{Dataset: "clicks", End: 300, Positions: []byte{'{', 0, '}'}}},
		{"another dataset's file", []ArchiveFile{file("other", "raw/other/x4.parquet", "dt=2025-03-16", 250, 300)}, SourcePositions{Dataset: "clicks", End: 300, Positions: []byte("{}")}},
		{"no files", nil, SourcePositions{Dataset: "clicks", End: 300, Positions: []byte("{}")}},
	} {
		if err := s.RecordSourcedArchive(ctx, bad.files, bad.src); err == nil {
			t.Errorf("RecordSourcedArchive(%s) succeeded, want a validation error", bad.name)
		}
	}
	// A missing dataset fails the whole transaction: no files, no positions.
	ghost := file("ghost", "raw/ghost/0-10.parquet", "dt=2025-03-14", 0, 10)
	err = s.RecordSourcedArchive(ctx, []ArchiveFile{ghost}, SourcePositions{Dataset: "ghost", End: 10, Positions: []byte("{}")})
	wantErr(t, "RecordSourcedArchive(missing dataset)", err, ErrNotFound)
	wantSource("after refusals", "clicks", 250, `{"0":150,"1":100}`)
	files, err := s.ArchiveFiles(ctx, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if want := []ArchiveFile{a, b1, b2}; !reflect.DeepEqual(files, want) {
		t.Fatalf("ArchiveFiles after refusals =\n%+v\nwant\n%+v", files, want)
	}

	// Compaction swaps files for others holding the same records: the
	// positions at the archive's end stay.
	merged := file("clicks", "raw/clicks/dt=2025-03-14/compacted-0-250.parquet", "dt=2025-03-14", 0, 250)
	if err := s.ReplaceArchive(ctx, "clicks", []string{a.Path, b1.Path}, []ArchiveFile{merged}); err != nil {
		t.Fatal(err)
	}
	wantSource("after compaction", "clicks", 250, `{"0":150,"1":100}`)
}
