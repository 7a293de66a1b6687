package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// TestJSONMessagesSkipsBadOnesAndKeepsTheRest decodes good messages with
// bad ones between them, each bad in a way that leaves a different partial
// row, and checks the batch equals NDJSON decoding of the good ones alone.
func TestJSONMessagesSkipsBadOnesAndKeepsTheRest(t *testing.T) {
	spec := testSpec(t)
	type msg struct {
		text   string
		reason string // empty: good
	}
	msgs := []msg{
		{`{"id": 1, "s": "a", "ts": "2001-01-01T00:00:00Z", "delay": 5}`, ""},
		{`{"id": 2, "s": "b", "n": "three", "ts": "2001-01-01T00:00:01Z"}`, `column "n": expected integer, got string "three"`},
		{`{"id": 3, "s": "c", "ts": 978307202000}`, ""},
		{`{"id": 4, "s": "d", "delay": 1}`, "missing time column"},
		{`{"id": 5, "bogus": 1, "ts": "2001-01-01T00:00:03Z"}`, `column "bogus": unknown column`},
		{`{"id": 6, "ts": "2001-01-01T00:00:04Z"`, "invalid JSON"},
		{`[1, 2]`, "expected a JSON object, got an array"},
		{"  \n", "empty message"},
		{"{\n  \"id\": 7,\n  \"ts\": \"2001-01-01T00:00:05Z\"\n}", ""}, // pretty-printed: one message, not lines
		{`{"id": 8, "ok": true, "x": 1.5, "s": "e", "d": "2001-01-02", "ts": "2001-01-01T00:00:06Z", "delay": "late"}`, `column "delay": expected bigint`},
		{`{"id": 9, "ts": "2001-01-01T00:00:07Z"}`, ""},
	}
	mem := checkedMem(t)
	m := NewJSONMessages(spec, mem)
	defer m.Release()
	var good []string
	for i, tc := range msgs {
		err := m.Add([]byte(tc.text))
		if tc.reason == "" {
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			good = append(good, strings.ReplaceAll(tc.text, "\n", ""))
			continue
		}
		var re *RowError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.reason) {
			t.Fatalf("message %d: error %v, want a *RowError containing %q", i, err, tc.reason)
		}
	}
	if m.Rows() != int64(len(good)) {
		t.Fatalf("Rows = %d, want %d", m.Rows(), len(good))
	}
	got, err := m.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	want, err := DecodeNDJSON(strings.NewReader(strings.Join(good, "\n")), spec, mem, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer want.Release()
	if !got.Schema().Equal(spec.ArrowSchema()) {
		t.Fatalf("schema %v, want %v", got.Schema(), spec.ArrowSchema())
	}
	if !array.RecordEqual(got, want) {
		t.Fatalf("batch differs from decoding the good messages:\n got %v\nwant %v", got, want)
	}

	// Finish starts a new batch; a batch of only bad messages is nil.
	if m.Rows() != 0 {
		t.Fatalf("Rows after Finish = %d", m.Rows())
	}
	if err := m.Add([]byte(`{"id": "x", "ts": "2001-01-01T00:00:00Z"}`)); err == nil {
		t.Fatal("a bad message was accepted")
	}
	if rec, err := m.Finish(); err != nil || rec != nil {
		t.Fatalf("Finish of only bad messages = %v, %v; want nil", rec, err)
	}
	if err := m.Add([]byte(`{"id": 10, "ts": "2001-01-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	rec, err := m.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if rec.NumRows() != 1 || cell(rec, 0, 0) != int64(10) {
		t.Fatalf("batch after refusals: %v", rec)
	}
}
