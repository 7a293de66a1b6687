package eventlog

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestAppendReplayRoundTripAllTypes(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	l := mustOpen(t, t.TempDir(), schema, Config{Allocator: mem})
	defer l.Close()

	var originals []arrow.RecordBatch
	for _, n := range []int{1, 4, 10} {
		rec := makeBatch(t, schema, l.EndOffset(), n)
		defer rec.Release()
		originals = append(originals, rec)
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.EndOffset(); got != 15 {
		t.Fatalf("EndOffset = %d, want 15", got)
	}
	i, nulls := 0, 0
	err := l.Replay(0, func(first int64, rec arrow.RecordBatch) error {
		if !array.RecordEqual(rec, originals[i]) {
			t.Errorf("batch %d differs:\n got %v\nwant %v", i, rec, originals[i])
		}
		if !rec.Schema().Equal(schema) {
			t.Errorf("batch %d schema %v, want %v", i, rec.Schema(), schema)
		}
		nulls += rec.Column(1).NullN()
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != 3 {
		t.Fatalf("replayed %d batches, want 3", i)
	}
	if nulls != 5 { // ids 1, 4 (batch 2) and 7, 10, 13 (batch 3)
		t.Fatalf("replayed %d nulls in column ok, want 5", nulls)
	}
	mem.AssertSize(t, 0)
}

func TestAppendRejectsEmptyAndMismatchedBatches(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	l := mustOpen(t, t.TempDir(), schema, Config{})
	defer l.Close()
	empty := makeBatch(t, schema, 0, 0)
	defer empty.Release()
	if _, err := l.Append(empty); err == nil {
		t.Error("Append of a 0-row batch succeeded")
	}
	other := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}}, nil)
	b := array.NewInt32Builder(memory.DefaultAllocator)
	b.Append(1)
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(other, []arrow.Array{col}, 1)
	col.Release()
	defer rec.Release()
	if _, err := l.Append(rec); err == nil {
		t.Error("Append of a batch with another schema succeeded")
	}
	if l.EndOffset() != 0 {
		t.Errorf("EndOffset = %d after rejected appends, want 0", l.EndOffset())
	}
}

func TestOffsetsContiguousAcrossRolls(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	defer l.Close()

	mustAppend(t, l, schema, 0, 3)
	mustAppend(t, l, schema, 3, 2)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := l.Roll(); err != nil { // empty active segment: no-op
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 5, 4)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	want := []Segment{{0, 5}, {5, 9}, {9, 9}}
	if got := l.Segments(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
	for _, name := range []string{"00000000000000000000.wal", "00000000000000000005.wal", "00000000000000000009.wal"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("segment file: %v", err)
		}
	}
	mustAppend(t, l, schema, 9, 1)
	got := replayAll(t, l, schema, 0)
	wantCalls := []replayed{{0, 3}, {3, 2}, {5, 4}, {9, 1}}
	if !reflect.DeepEqual(got, wantCalls) {
		t.Fatalf("replay calls = %v, want %v", got, wantCalls)
	}
}

func TestReplayFromSlicesStraddlingBatch(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	l := mustOpen(t, t.TempDir(), schema, Config{})
	defer l.Close()
	mustAppend(t, l, schema, 0, 5)
	mustAppend(t, l, schema, 5, 5)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 10, 5)

	cases := []struct {
		from int64
		want []replayed
	}{
		{0, []replayed{{0, 5}, {5, 5}, {10, 5}}},
		{5, []replayed{{5, 5}, {10, 5}}},
		{7, []replayed{{7, 3}, {10, 5}}},
		{10, []replayed{{10, 5}}},
		{14, []replayed{{14, 1}}},
		{15, nil},
	}
	for _, c := range cases {
		// replayAll checks each row's contents against its offset, so a
		// slice off by one fails there too.
		if got := replayAll(t, l, schema, c.from); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Replay(%d) calls = %v, want %v", c.from, got, c.want)
		}
	}
	err := l.Replay(16, func(int64, arrow.RecordBatch) error { return nil })
	if !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Replay(16) error = %v, want ErrOutOfRange", err)
	}
	stop := errors.New("stop")
	calls := 0
	err = l.Replay(0, func(int64, arrow.RecordBatch) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Replay with failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
}

func TestReopenContinuesOffsets(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppend(t, l, schema, 0, 4)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 4, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(makeBatch(t, schema, 7, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}

	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if got := l.EndOffset(); got != 7 {
		t.Fatalf("EndOffset after reopen = %d, want 7", got)
	}
	if got, want := l.Segments(), []Segment{{0, 4}, {4, 7}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments after reopen = %v, want %v", got, want)
	}
	mustAppend(t, l, schema, 7, 2)
	if got, want := replayAll(t, l, schema, 0), []replayed{{0, 4}, {4, 3}, {7, 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay = %v, want %v", got, want)
	}
}

func TestEmptyDirStartsAtZero(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := filepath.Join(t.TempDir(), "ds")
	l := mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if l.EndOffset() != 0 {
		t.Fatalf("EndOffset = %d, want 0", l.EndOffset())
	}
	if got, want := l.Segments(), []Segment{{0, 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
	if got := replayAll(t, l, schema, 0); len(got) != 0 {
		t.Fatalf("replay of empty log = %v", got)
	}
}

func TestTruncateBeforeKeepsActiveAndOffsetSurvivesReopen(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppend(t, l, schema, 0, 3)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 3, 3)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 6, 3)

	// Segments [0,3) [3,6) [6,9): truncating before 5 deletes only [0,3).
	if err := l.TruncateBefore(5); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Segments(), []Segment{{3, 6}, {6, 9}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
	if _, err := os.Stat(segmentPath(dir, 0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 0 still exists: %v", err)
	}
	if err := l.Replay(2, func(int64, arrow.RecordBatch) error { return nil }); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Replay(2) after truncation: %v, want ErrTruncated", err)
	}
	if got, want := replayAll(t, l, schema, 4), []replayed{{4, 2}, {6, 3}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay = %v, want %v", got, want)
	}

	// Everything sealed and the active segment full: the active one stays.
	if err := l.TruncateBefore(100); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Segments(), []Segment{{6, 9}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
	// Roll, then truncate all data: only the empty active segment remains,
	// and its name carries the next offset across a restart.
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateBefore(9); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Segments(), []Segment{{9, 9}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if got := l.EndOffset(); got != 9 {
		t.Fatalf("EndOffset after reopen = %d, want 9", got)
	}
	mustAppend(t, l, schema, 9, 2)
	if got, want := replayAll(t, l, schema, 9), []replayed{{9, 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay = %v, want %v", got, want)
	}
}

func TestConcurrentAppendReplayTruncate(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	l := mustOpen(t, t.TempDir(), schema, Config{NoSync: true})
	defer l.Close()
	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				// Offsets are assigned under the log's lock, so build the
				// batch with a placeholder id and check counts afterwards.
				rec := makeBatch(t, schema, 0, 2)
				if _, err := l.Append(rec); err != nil {
					t.Error(err)
				}
				rec.Release()
				if i%10 == 0 {
					if err := l.Roll(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			var next int64
			err := l.Replay(0, func(first int64, rec arrow.RecordBatch) error {
				if first != next {
					t.Errorf("replay: batch at %d, want %d", first, next)
				}
				next = first + rec.NumRows()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	if got := l.EndOffset(); got != writers*perWriter*2 {
		t.Fatalf("EndOffset = %d, want %d", got, writers*perWriter*2)
	}
	var total int64
	if err := l.Replay(0, func(_ int64, rec arrow.RecordBatch) error { total += rec.NumRows(); return nil }); err != nil {
		t.Fatal(err)
	}
	if total != writers*perWriter*2 {
		t.Fatalf("replayed %d rows, want %d", total, writers*perWriter*2)
	}
}
