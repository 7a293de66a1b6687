package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// sourcedBatch is one replayed batch with its source positions ("" for none).
type sourcedBatch struct {
	first, rows int64
	source      string
}

func mustAppendSourced(t testing.TB, l *Log, schema *arrow.Schema, start int64, rows int, source string) {
	t.Helper()
	rec := makeBatch(t, schema, start, rows)
	defer rec.Release()
	first, err := l.AppendSourced(rec, []byte(source))
	if err != nil {
		t.Fatalf("AppendSourced: %v", err)
	}
	if first != start {
		t.Fatalf("AppendSourced got first offset %d, want %d", first, start)
	}
}

// replaySourced replays from, checks every row's contents as replayAll does
// and returns each batch with its source.
func replaySourced(t testing.TB, l *Log, schema *arrow.Schema, from int64) []sourcedBatch {
	t.Helper()
	var got []sourcedBatch
	err := l.ReplaySourced(from, func(first int64, rec arrow.RecordBatch, source []byte) error {
		want := makeBatch(t, schema, first, int(rec.NumRows()))
		defer want.Release()
		if !array.RecordEqual(rec, want) {
			t.Errorf("replayed batch at %d differs:\n got %v\nwant %v", first, rec, want)
		}
		got = append(got, sourcedBatch{first, rec.NumRows(), string(source)})
		return nil
	})
	if err != nil {
		t.Fatalf("ReplaySourced(%d): %v", from, err)
	}
	return got
}

func wantLastSource(t testing.TB, l *Log, source string, end int64) {
	t.Helper()
	got, gotEnd, ok := l.LastSource()
	if source == "" {
		if ok {
			t.Fatalf("LastSource = %q at %d, want none", got, gotEnd)
		}
		return
	}
	if !ok || string(got) != source || gotEnd != end {
		t.Fatalf("LastSource = %q at %d (ok %v), want %q at %d", got, gotEnd, ok, source, end)
	}
}

func TestSourcedFramesRoundTripWithPlainOnes(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	wantLastSource(t, l, "", 0)
	mustAppend(t, l, schema, 0, 3) // written as before sources existed
	mustAppendSourced(t, l, schema, 3, 4, `{"p0":7}`)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppendSourced(t, l, schema, 7, 2, `{"p0":9}`)
	mustAppend(t, l, schema, 9, 1)
	// The positions of the last sourced frame, not of the log's end.
	wantLastSource(t, l, `{"p0":9}`, 9)

	want := []sourcedBatch{{0, 3, ""}, {3, 4, `{"p0":7}`}, {7, 2, `{"p0":9}`}, {9, 1, ""}}
	if got := replaySourced(t, l, schema, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReplaySourced(0) = %v, want %v", got, want)
	}
	// A batch sliced at from keeps the positions after its last row.
	if got, want := replaySourced(t, l, schema, 5), []sourcedBatch{{5, 2, `{"p0":7}`}, {7, 2, `{"p0":9}`}, {9, 1, ""}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ReplaySourced(5) = %v, want %v", got, want)
	}
	// Replay still sees every row.
	if got, want := replayAll(t, l, schema, 0), []replayed{{0, 3}, {3, 4}, {7, 2}, {9, 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Replay = %v, want %v", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if got := l.EndOffset(); got != 10 {
		t.Fatalf("EndOffset after reopen = %d, want 10", got)
	}
	wantLastSource(t, l, `{"p0":9}`, 9)
	if got := replaySourced(t, l, schema, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReplaySourced after reopen = %v, want %v", got, want)
	}
	mustAppendSourced(t, l, schema, 10, 5, `{"p0":15}`)
	wantLastSource(t, l, `{"p0":15}`, 15)
}

func TestLastSourceAfterTruncationAndReopen(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppendSourced(t, l, schema, 0, 3, "a")
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 3, 2)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateBefore(5); err != nil {
		t.Fatal(err)
	}
	// The log remembers what it read or wrote...
	wantLastSource(t, l, "a", 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// ...but after a reopen only what its files hold: the caller keeps the
	// positions of what it truncated.
	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	wantLastSource(t, l, "", 0)
	if got := l.EndOffset(); got != 5 {
		t.Fatalf("EndOffset = %d, want 5", got)
	}
}

func TestAppendSourcedRejectsEmptyAndHugePositions(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	l := mustOpen(t, t.TempDir(), schema, Config{})
	defer l.Close()
	rec := makeBatch(t, schema, 0, 2)
	defer rec.Release()
	if _, err := l.AppendSourced(rec, nil); err == nil || !strings.Contains(err.Error(), "source positions are empty") {
		t.Fatalf("AppendSourced(nil source) = %v", err)
	}
	if _, err := l.AppendSourced(rec, make([]byte, maxSource+1)); err == nil || !strings.Contains(err.Error(), "source positions of") {
		t.Fatalf("AppendSourced(huge source) = %v", err)
	}
	if l.EndOffset() != 0 {
		t.Fatalf("a refused append moved the log to %d", l.EndOffset())
	}
	if _, err := l.AppendSourced(rec, make([]byte, maxSource)); err != nil {
		t.Fatalf("AppendSourced(largest source): %v", err)
	}
}

// TestTornSourcedTailRecoversLastWholeFramesPositions cuts the log inside
// its last sourced frame: the frame and its positions go together, and the
// positions of the frame before it are the log's last.
func TestTornSourcedTailRecoversLastWholeFramesPositions(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	src := t.TempDir()
	l := mustOpen(t, src, schema, Config{})
	var starts []int64
	for i, n := range []int{3, 4, 5} {
		starts = append(starts, l.segs[0].size)
		mustAppendSourced(t, l, schema, []int64{0, 3, 7}[i], n, fmt.Sprintf("pos-%d", i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(segmentPath(src, 0))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 40; iter++ {
		// Cut anywhere in the last frame: in its header, its positions or its batch.
		cut := starts[2] + rng.Int64N(int64(len(data))-starts[2])
		dir := t.TempDir()
		if err := os.WriteFile(segmentPath(dir, 0), data[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		l := mustOpen(t, dir, schema, Config{})
		if got := l.EndOffset(); got != 7 {
			t.Fatalf("iter %d (cut %d): EndOffset = %d, want 7", iter, cut, got)
		}
		wantLastSource(t, l, "pos-1", 7)
		if got, want := replaySourced(t, l, schema, 0), []sourcedBatch{{0, 3, "pos-0"}, {3, 4, "pos-1"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d: replay = %v, want %v", iter, got, want)
		}
		mustAppendSourced(t, l, schema, 7, 1, "again")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, dir, schema, Config{})
		wantLastSource(t, l, "again", 8)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSourcedFrameWithBadPositionsLengthIsBad: a sourced frame whose CRC
// holds but whose positions length overruns its payload is not a frame.
func TestSourcedFrameWithBadPositionsLengthIsBad(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	for _, srclen := range []uint32{0, 1 << 30} {
		dir := t.TempDir()
		l := mustOpen(t, dir, schema, Config{})
		mustAppendSourced(t, l, schema, 0, 2, "ok")
		start := l.segs[0].size
		mustAppendSourced(t, l, schema, 2, 2, "bad")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(segmentPath(dir, 0))
		if err != nil {
			t.Fatal(err)
		}
		frame := data[start:]
		binary.LittleEndian.PutUint32(frame[frameHeaderLen:], srclen)
		binary.LittleEndian.PutUint32(frame[8:], frameCRC(frame, frame[frameHeaderLen:]))
		if err := os.WriteFile(segmentPath(dir, 0), data, 0o644); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, dir, schema, Config{})
		if got := l.EndOffset(); got != 2 {
			t.Fatalf("srclen %d: EndOffset = %d, want 2 (the bad frame dropped as a torn tail)", srclen, got)
		}
		wantLastSource(t, l, "ok", 2)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestartContinuesEmptyAtOffset(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppend(t, l, schema, 0, 4)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppendSourced(t, l, schema, 4, 3, "s")
	if err := l.Restart(6); err == nil {
		t.Fatal("Restart below EndOffset succeeded")
	}
	if err := l.Restart(20); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Segments(), []Segment{{20, 20}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
	for _, first := range []int64{0, 4} {
		if _, err := os.Stat(segmentPath(dir, first)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("segment %d still exists: %v", first, err)
		}
	}
	if err := l.Replay(4, func(int64, arrow.RecordBatch) error { return nil }); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Replay(4) after Restart: %v, want ErrTruncated", err)
	}
	mustAppendSourced(t, l, schema, 20, 2, "t")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if got, want := replaySourced(t, l, schema, 20), []sourcedBatch{{20, 2, "t"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay after reopen = %v, want %v", got, want)
	}
	// Restarting at the end of an empty log keeps it usable.
	if err := l.Restart(22); err != nil {
		t.Fatal(err)
	}
	if err := l.Restart(22); err != nil {
		t.Fatalf("Restart at the end again: %v", err)
	}
	mustAppend(t, l, schema, 22, 1)
}

func TestRestartOfLostDirectoryStartsAtOffset(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{}) // a fresh log, as after its directory was lost
	if err := l.Restart(100); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 100, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if got, want := l.Segments(), []Segment{{100, 103}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments after reopen = %v, want %v", got, want)
	}
}

func TestAppendBatchesWritesEachFrameWithOneCall(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppend(t, l, schema, 0, 2)
	batches := []Batch{
		{Rec: makeBatch(t, schema, 2, 3)},
		{Rec: makeBatch(t, schema, 5, 4), Source: []byte(`{"p0":9}`)},
		{Rec: makeBatch(t, schema, 9, 1)},
	}
	firsts, err := l.AppendBatches(batches)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{2, 5, 9}; !reflect.DeepEqual(firsts, want) {
		t.Fatalf("AppendBatches offsets = %v, want %v", firsts, want)
	}
	wantLastSource(t, l, `{"p0":9}`, 9)

	// One bad batch refuses the group: nothing of it reaches the log.
	other := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	bad := array.NewRecordBatch(other, []arrow.Array{makeBatch(t, schema, 0, 2).Column(0)}, 2)
	if _, err := l.AppendBatches([]Batch{{Rec: makeBatch(t, schema, 10, 2)}, {Rec: bad}}); err == nil {
		t.Fatal("AppendBatches took a batch of another schema")
	}
	if _, err := l.AppendBatches([]Batch{{Rec: makeBatch(t, schema, 10, 2), Source: []byte{}}}); err == nil {
		t.Fatal("AppendBatches took empty source positions")
	}
	if got := l.EndOffset(); got != 10 {
		t.Fatalf("EndOffset after refused groups = %d, want 10", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	want := []sourcedBatch{{0, 2, ""}, {2, 3, ""}, {5, 4, `{"p0":9}`}, {9, 1, ""}}
	if got := replaySourced(t, l, schema, 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReplaySourced after reopen = %v, want %v", got, want)
	}
	wantLastSource(t, l, `{"p0":9}`, 9)
}
