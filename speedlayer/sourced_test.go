package speedlayer_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/internal/lambdatest"
)

// sourcedOptions is the harness's dataset and view, read from a source (the
// layer never connects to it: the test plays the source).
func sourcedOptions() lambdatest.Options {
	spec := lambdatest.Spec
	spec.Source = &dataset.Source{Kind: dataset.SourceKafka, Brokers: []string{"127.0.0.1:9"}, Topic: "ev"}
	return lambdatest.Options{SegmentRecords: 1000, Spec: &spec, Views: []lambdatest.View{{Name: "v", SQL: lambdatest.ViewSQL}}}
}

// sourced plays a source: it ingests batches with positions and checks what
// the layer says the positions are.
type sourced struct {
	t        *testing.T
	rnd      *rand.Rand
	n        *lambdatest.Node
	accepted []lambdatest.Row
}

func (s *sourced) ingest(rows int, positions string) {
	s.t.Helper()
	batch := lambdatest.RandomRows(s.rnd, rows)
	rec := lambdatest.Record(batch)
	defer rec.Release()
	res, err := s.n.Layer.IngestSourced(context.Background(), "ev", rec, []byte(positions))
	if err != nil {
		s.t.Fatal(err)
	}
	if res.First != int64(len(s.accepted)) || res.Stored != int64(rows) {
		s.t.Fatalf("IngestSourced stored %d at %d, want %d at %d", res.Stored, res.First, rows, len(s.accepted))
	}
	s.accepted = append(s.accepted, batch...)
}

func (s *sourced) wantPositions(step, want string) {
	s.t.Helper()
	got, err := s.n.Layer.SourcePositions("ev")
	if err != nil {
		s.t.Fatal(err)
	}
	if string(got) != want || (want == "" && got != nil) {
		s.t.Fatalf("%s: SourcePositions = %q, want %q", step, got, want)
	}
}

func (s *sourced) wantArchived(step string, end int64, want string) {
	s.t.Helper()
	got, err := s.n.Layer.ArchivedSourcePositions("ev")
	if err != nil {
		s.t.Fatal(err)
	}
	if string(got) != want {
		s.t.Fatalf("%s: ArchivedSourcePositions = %q, want %q", step, got, want)
	}
	gotEnd, cat, err := s.n.Cat.ArchivedSource(context.Background(), "ev")
	if err != nil {
		s.t.Fatal(err)
	}
	if gotEnd != end || string(cat) != want {
		s.t.Fatalf("%s: catalog's archived source = %d, %q; want %d, %q", step, gotEnd, cat, end, want)
	}
}

func (s *sourced) flush() {
	s.t.Helper()
	if err := s.n.Layer.Flush(context.Background(), "ev"); err != nil {
		s.t.Fatal(err)
	}
}

func TestSourcePositionsFollowTheLogAcrossArchiveAndRestart(t *testing.T) {
	dir := t.TempDir()
	opts := sourcedOptions()
	s := &sourced{t: t, rnd: rand.New(rand.NewPCG(7, 8)), n: lambdatest.Start(t, dir, opts)}
	defer func() { s.n.Stop() }()
	restart := func() {
		s.n.Stop()
		s.n = lambdatest.Start(t, dir, opts)
	}
	s.wantPositions("fresh", "")
	s.wantArchived("fresh", 0, "")

	s.ingest(5, "p1")
	s.ingest(7, "p2")
	s.wantPositions("after two batches", "p2")
	s.flush()
	s.wantArchived("after the first archive", 12, "p2")

	s.ingest(4, "p3")
	// Records without a source (HTTP) do not move the positions.
	rows := lambdatest.RandomRows(s.rnd, 3)
	rec := lambdatest.Record(rows)
	if _, err := s.n.Layer.IngestBatch(context.Background(), "ev", rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	s.accepted = append(s.accepted, rows...)
	s.wantPositions("after a batch without a source", "p3")
	// A batch whose every message was rejected moves them in memory only.
	if res, err := s.n.Layer.IngestSourced(context.Background(), "ev", nil, []byte("p4")); err != nil || res.Stored != 0 {
		t.Fatalf("IngestSourced(no rows) = %+v, %v", res, err)
	}
	s.wantPositions("after a batch of rejected messages", "p4")
	s.n.Check(s.accepted, "before restart")

	// After a restart the log's last sourced batch says where the source stands.
	restart()
	s.wantPositions("after restart", "p3")
	s.wantArchived("after restart", 12, "p2")
	s.n.Check(s.accepted, "after restart")

	// Archiving everything: the positions come from the catalog once the
	// log holds no sourced batch any more.
	s.flush()
	s.wantArchived("after the second archive", 19, "p3")
	restart()
	s.wantPositions("after restart with the log archived", "p3")
	s.n.Check(s.accepted, "after restart with the log archived")
	s.ingest(2, "p5")
	s.wantPositions("after ingest", "p5")
	s.n.Check(s.accepted, "after ingest")
}

// TestLostLogOfSourcedDatasetContinuesAtArchive: with only the catalog and
// the archive left, a sourced dataset opens at the archive's end, where the
// source's archived positions say to resume, and the records it holds are
// exactly the archived ones.
func TestLostLogOfSourcedDatasetContinuesAtArchive(t *testing.T) {
	dir := t.TempDir()
	opts := sourcedOptions()
	s := &sourced{t: t, rnd: rand.New(rand.NewPCG(9, 10)), n: lambdatest.Start(t, dir, opts)}
	defer func() { s.n.Stop() }()
	s.ingest(6, "p1")
	s.ingest(9, "p2")
	s.flush()
	archived := append([]lambdatest.Row(nil), s.accepted...)
	s.ingest(4, "p3") // only in the log
	s.n.Stop()

	if err := os.RemoveAll(filepath.Join(dir, "log")); err != nil {
		t.Fatal(err)
	}
	s.n = lambdatest.Start(t, dir, opts)
	s.wantPositions("log lost", "p2")
	s.accepted = archived
	s.n.Check(s.accepted, "log lost")
	// The source sends what followed p2 again; it continues the offsets.
	s.ingest(4, "p3")
	s.ingest(1, "p4")
	s.n.Check(s.accepted, "after resending")
	s.n.Stop()
	s.n = lambdatest.Start(t, dir, opts)
	s.wantPositions("reopened", "p4")
	s.n.Check(s.accepted, "reopened")
}
