package eventlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// writeLog writes batches of the given sizes into one segment and returns
// the segment's bytes and the byte position where each frame starts.
func writeLog(t testing.TB, dir string, schema *arrow.Schema, sizes []int) (data []byte, starts []int64) {
	t.Helper()
	l := mustOpen(t, dir, schema, Config{})
	var off int64
	for _, n := range sizes {
		starts = append(starts, l.segs[0].size)
		mustAppend(t, l, schema, off, n)
		off += int64(n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(segmentPath(dir, 0))
	if err != nil {
		t.Fatal(err)
	}
	return data, starts
}

func TestTornTailRecoversToLastWholeFrame(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	data, starts := writeLog(t, t.TempDir(), schema, []int{3, 4, 5})
	lastStart := starts[2]
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 40; iter++ {
		// Cut inside the last frame (possibly right at its start, which is
		// a clean end), then maybe append garbage.
		cut := lastStart + rng.Int64N(int64(len(data))-lastStart)
		tail := data[:cut:cut]
		if iter%2 == 1 {
			garbage := make([]byte, 1+rng.IntN(200))
			for i := range garbage {
				garbage[i] = byte(rng.Uint32())
			}
			if iter%4 == 3 && len(garbage) >= 4 {
				copy(garbage, data[:4]) // looks like a frame header
			}
			tail = append(tail, garbage...)
		}
		dir := t.TempDir()
		if err := os.WriteFile(segmentPath(dir, 0), tail, 0o644); err != nil {
			t.Fatal(err)
		}
		l := mustOpen(t, dir, schema, Config{})
		if got := l.EndOffset(); got != 7 {
			t.Fatalf("iter %d (cut %d): EndOffset = %d, want 7", iter, cut, got)
		}
		if got, want := replayAll(t, l, schema, 0), []replayed{{0, 3}, {3, 4}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d: replay = %v, want %v", iter, got, want)
		}
		st, err := os.Stat(segmentPath(dir, 0))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != lastStart {
			t.Fatalf("iter %d: segment is %d bytes after recovery, want %d", iter, st.Size(), lastStart)
		}
		// The log keeps working and the new frame survives another reopen.
		mustAppend(t, l, schema, 7, 2)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, dir, schema, Config{})
		if got := l.EndOffset(); got != 9 {
			t.Fatalf("iter %d: EndOffset after second reopen = %d, want 9", iter, got)
		}
		l.Close()
	}
}

func TestTornTailOfLastSegmentAfterRoll(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppend(t, l, schema, 0, 3)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 3, 2)
	l.Close()
	p := segmentPath(dir, 3)
	st, _ := os.Stat(p)
	if err := os.Truncate(p, st.Size()-5); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if got, want := l.Segments(), []Segment{{0, 3}, {3, 3}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
}

func TestCorruptionInSealedSegmentIsError(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppend(t, l, schema, 0, 3)
	secondFrame := l.segs[0].size
	mustAppend(t, l, schema, 3, 4)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, schema, 7, 1)
	l.Close()

	p := segmentPath(dir, 0)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[secondFrame+frameHeaderLen+10] ^= 0xff // a payload byte of the frame at offset 3
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, schema, Config{}, nil)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open error = %v, want ErrCorrupt", err)
	}
	for _, want := range []string{"00000000000000000000.wal", "offset 3", "checksum"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The damaged file is left as it was for an operator to inspect.
	after, _ := os.ReadFile(p)
	if !bytes.Equal(after, data) {
		t.Error("Open modified a corrupt sealed segment")
	}
}

func TestGapBetweenSegmentsIsError(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	l := mustOpen(t, dir, schema, Config{})
	mustAppend(t, l, schema, 0, 3)
	l.Close()
	if err := os.WriteFile(segmentPath(dir, 5), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, schema, Config{}, nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "00000000000000000005.wal") {
		t.Fatalf("Open error = %v, want ErrCorrupt naming the segment after the gap", err)
	}
}

func TestOpenIgnoresForeignFiles(t *testing.T) {
	schema := testSpec(t).ArrowSchema()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, dir, schema, Config{})
	defer l.Close()
	if got, want := l.Segments(), []Segment{{0, 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Segments = %v, want %v", got, want)
	}
}
