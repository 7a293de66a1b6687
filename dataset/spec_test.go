package dataset_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/dataset"
)

func dedupSpec(key string, window time.Duration) dataset.Spec {
	return dataset.Spec{Name: "ev", TimeColumn: "ts", DedupKey: key, DedupWindow: dataset.Duration(window), Columns: []dataset.Column{
		{Name: "ts", Type: dataset.Timestamp}, {Name: "Id", Type: dataset.Varchar}, {Name: "n", Type: dataset.Integer},
		{Name: "b", Type: dataset.Bigint}, {Name: "x", Type: dataset.Double},
	}}
}

func TestDedupSpecValidation(t *testing.T) {
	for _, tc := range []struct {
		key     string
		window  time.Duration
		wantErr string // empty: valid
	}{
		{key: "", window: 0},
		{key: "id", window: 0},
		{key: "n", window: time.Hour},
		{key: "b", window: 24 * time.Hour},
		{key: "", window: time.Minute, wantErr: "dedup_window 1m0s: set only together with dedup_key"},
		{key: "nope", wantErr: `dedup_key "nope": no such column`},
		{key: "x", wantErr: `dedup_key "x": must be a varchar, bigint or integer column, not double`},
		{key: "ts", wantErr: `dedup_key "ts": must be a varchar, bigint or integer column, not timestamp`},
		{key: "id", window: 25 * time.Hour, wantErr: "dedup_window 25h0m0s: must be at most 24h0m0s"},
		{key: "id", window: -time.Minute, wantErr: "dedup_window -1m0s: must be at least 1s"},
		{key: "id", window: time.Millisecond, wantErr: "dedup_window 1ms: must be at least 1s"},
	} {
		s := dedupSpec(tc.key, tc.window)
		err := s.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("key %q window %s: %v", tc.key, tc.window, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("key %q window %s: got error %v, want one containing %q", tc.key, tc.window, err, tc.wantErr)
		}
	}
}

func TestDedupSpecDefaultsAndJSON(t *testing.T) {
	s := dedupSpec("ID", 0)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// The key is normalised to the column's own spelling, the window to the default.
	if s.DedupKey != "Id" || time.Duration(s.DedupWindow) != dataset.DefaultDedupWindow || s.DedupIndex() != 1 {
		t.Fatalf("got key %q window %s index %d", s.DedupKey, time.Duration(s.DedupWindow), s.DedupIndex())
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"dedup_key":"Id","dedup_window":"10m0s"`) {
		t.Fatalf("JSON %s lacks the dedup fields as strings", b)
	}
	var back dataset.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.DedupKey != s.DedupKey || back.DedupWindow != s.DedupWindow {
		t.Fatalf("round trip: got %q %s", back.DedupKey, time.Duration(back.DedupWindow))
	}
	// A spec without deduplication stores no dedup fields at all, as before.
	plain := dedupSpec("", 0)
	if b, _ := json.Marshal(plain); strings.Contains(string(b), "dedup") {
		t.Fatalf("JSON %s of a spec without dedup mentions it", b)
	}
	if plain.DedupIndex() != -1 {
		t.Fatal("DedupIndex without a key")
	}
	if err := json.Unmarshal([]byte(`{"dedup_window":"ten minutes"}`), &back); err == nil || !strings.Contains(err.Error(), "write it like") {
		t.Fatalf("bad duration: %v", err)
	}
}
