package benchenv

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataDir(t *testing.T) {
	work := filepath.Join(t.TempDir(), "work")
	for _, keep := range []bool{false, true} {
		dir, cleanup, err := DataDir(work, "somebench", keep, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(dir) != work || !strings.HasPrefix(filepath.Base(dir), "duet-somebench-") {
			t.Fatalf("data directory %s, want duet-somebench-* in %s", dir, work)
		}
		cleanup()
		if _, err := os.Stat(dir); os.IsNotExist(err) == keep {
			t.Fatalf("keep %v: after cleanup, stat %s: %v", keep, dir, err)
		}
	}
}
