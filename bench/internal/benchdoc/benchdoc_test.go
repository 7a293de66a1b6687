package benchdoc

import (
	"strings"
	"testing"
)

func TestReplaceSectionKeepsOtherSections(t *testing.T) {
	doc := "# Benchmarks\n\n<!-- build-bench:start -->\nbuild\n<!-- build-bench:end -->\n"
	once := ReplaceSection(doc, "ingest-bench", "first\n")
	twice := ReplaceSection(once, "ingest-bench", "second\n")
	start, end := markers("ingest-bench")
	if !strings.Contains(twice, "build\n<!-- build-bench:end -->") || strings.Contains(twice, "first") ||
		strings.Count(twice, start) != 1 || !strings.Contains(twice, start+"\nsecond\n"+end) {
		t.Fatalf("section not replaced in place:\n%s", twice)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
