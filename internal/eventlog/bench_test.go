package eventlog

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"fsync", Config{}}, {"nosync", Config{NoSync: true}}} {
		b.Run(c.name, func(b *testing.B) {
			schema := testSpec(b).ArrowSchema()
			l := mustOpen(b, b.TempDir(), schema, c.cfg)
			defer l.Close()
			const rows = 1000
			rec := makeBatch(b, schema, 0, rows)
			defer rec.Release()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(l.segs[len(l.segs)-1].size)/float64(b.N), "B/frame")
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	schema := testSpec(b).ArrowSchema()
	l := mustOpen(b, b.TempDir(), schema, Config{NoSync: true})
	defer l.Close()
	const rows, frames = 1000, 100
	for i := 0; i < frames; i++ {
		mustAppend(b, l, schema, int64(i*rows), rows)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.Replay(0, func(int64, arrow.RecordBatch) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*frames*b.N)/b.Elapsed().Seconds(), "rows/s")
}
