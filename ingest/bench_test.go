package ingest

import (
	"bytes"
	"fmt"
	"testing"
)

func BenchmarkDecodeNDJSON(b *testing.B) {
	spec := testSpec(b)
	var body bytes.Buffer
	const rows = 1000
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&body, `{"id": %d, "ok": true, "n": %d, "x": 1.5, "s": "row %d", "d": "2001-01-01", "ts": "2001-01-01T00:01:00.123Z", "delay": -3}`+"\n", i, i, i)
	}
	b.SetBytes(int64(body.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec, err := DecodeNDJSON(bytes.NewReader(body.Bytes()), spec, nil, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		rec.Release()
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
