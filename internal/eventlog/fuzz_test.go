package eventlog

import (
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// FuzzOpenRecover keeps the first cut bytes of a valid segment holding three
// frames, appends arbitrary bytes, and checks that Open neither panics nor
// fails, and recovers a prefix of the original frames that ends before cut.
func FuzzOpenRecover(f *testing.F) {
	schema := testSpec(f).ArrowSchema()
	data, starts := writeLog(f, f.TempDir(), schema, []int{2, 3, 4})
	frameEnds := append(append([]int64(nil), starts[1:]...), int64(len(data)))
	firstOffsets := []int64{0, 2, 5, 9}

	f.Add(uint32(len(data)), []byte{})
	f.Add(uint32(len(data)), []byte("garbage"))
	f.Add(uint32(starts[2]+3), []byte{})
	f.Add(uint32(starts[1]), data[starts[1]:starts[2]]) // a duplicate frame: wrong offset
	f.Add(uint32(len(data)), data[starts[0]:starts[1]])
	f.Add(uint32(0), data[:frameHeaderLen])
	f.Fuzz(func(t *testing.T, cut uint32, tail []byte) {
		keep := min(int64(cut), int64(len(data)))
		content := append(append([]byte(nil), data[:keep]...), tail...)
		dir := t.TempDir()
		if err := os.WriteFile(segmentPath(dir, 0), content, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, schema, Config{NoSync: true}, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		// Frames wholly inside the kept bytes must survive.
		whole := 0
		for whole < len(frameEnds) && frameEnds[whole] <= keep {
			whole++
		}
		end := l.EndOffset()
		if end < firstOffsets[whole] {
			t.Fatalf("EndOffset = %d, lost frames: %d whole frames (%d rows) were kept", end, whole, firstOffsets[whole])
		}
		var next int64
		err = l.Replay(0, func(first int64, rec arrow.RecordBatch) error {
			if first != next {
				t.Fatalf("replay: batch at %d, want %d", first, next)
			}
			next = first + rec.NumRows()
			return nil
		})
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		if next != end {
			t.Fatalf("replayed up to %d, EndOffset %d", next, end)
		}
	})
}
