package catalog

import (
	"reflect"
	"testing"
	"time"
)

func testLogClaims(t *testing.T, s *Store) {
	ctx := t.Context()
	mustCreateDataset(t, s, "events")
	if got, err := s.LogClaims(ctx, "events", 0); err != nil || len(got) != 0 {
		t.Fatalf("LogClaims before any = %v, %v; want none", got, err)
	}
	claims := []LogClaim{
		{Dataset: "events", Epoch: 1, From: 0, ClaimedAt: at(1)},
		{Dataset: "events", Epoch: 3, From: 400, ClaimedAt: at(2)},
		{Dataset: "events", Epoch: 4, From: 400, ClaimedAt: at(3)},
	}
	for _, c := range claims {
		if err := s.ClaimLog(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	err := s.ClaimLog(ctx, LogClaim{Dataset: "events", Epoch: 3, From: 800, ClaimedAt: at(4)})
	wantErr(t, "a second claim of epoch 3", err, ErrExists)
	if got, err := s.LogClaims(ctx, "events", 2); err != nil || !reflect.DeepEqual(got, claims[1:]) {
		t.Fatalf("LogClaims since 2 = %+v, %v; want %+v", got, err, claims[1:])
	}
	if got, err := s.LogClaims(ctx, "events", 0); err != nil || !reflect.DeepEqual(got, claims) {
		t.Fatalf("LogClaims since 0 = %+v, %v; want %+v", got, err, claims)
	}
	if err := s.ClaimLog(ctx, LogClaim{Dataset: "nosuch", Epoch: 1}); err == nil {
		t.Fatal("a claim of a dataset that does not exist was recorded")
	}
}

// testGarbageQueue: objects queued by AddGarbage are listed for deletion
// until a published version names them.
func testGarbageQueue(t *testing.T, s *Store) {
	ctx := t.Context()
	mustCreateDataset(t, s, "clicks")
	mustCreateView(t, s, "pages", "clicks")
	orphans := []string{"views/pages/v1/part-0.parquet", "views/pages/v1/part-9.parquet"}
	if err := s.AddGarbage(ctx, orphans); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Garbage(ctx, time.Now().Add(time.Hour)); err != nil || !reflect.DeepEqual(got, orphans) {
		t.Fatalf("Garbage = %v, %v; want %v", got, err, orphans)
	}
	if _, err := s.PublishVersion(ctx, ViewVersion{View: "pages", Covered: 10, JobID: "j",
		Files: []VersionFile{{Path: orphans[0], Rows: 1, Bytes: 1}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Garbage(ctx, time.Now().Add(time.Hour)); err != nil || !reflect.DeepEqual(got, orphans[1:]) {
		t.Fatalf("Garbage after publishing %s = %v, %v; want %v", orphans[0], got, err, orphans[1:])
	}
}
