package batchlayer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/duet-analytics/duet/internal/catalog"
)

// ErrUpToDate means the current version already covers every archived record.
var ErrUpToDate = errors.New("view is up to date")

// Build kinds, as recorded in a version's metadata.
const (
	KindFull        = "full"
	KindIncremental = "incremental"
	KindBackfill    = "backfill"
)

// Request says what to build.
type Request struct {
	JobID, View string
	// Full rebuilds every partition.
	Full bool
	// From and To (YYYY-MM-DD, inclusive) make a backfill of those days.
	From, To string
	// LogPrefix is where the executor's stdout and stderr are kept ("" = not kept).
	LogPrefix string
	// Trino, when set, runs the build's query on that cluster: a full
	// rebuild, as the cluster's table knows no offsets to start from.
	Trino *TrinoSource
}

// buildPlan is what one build reads and writes, decided without I/O.
type buildPlan struct {
	kind    string
	covered int64
	// inputs are the archive files the executor reads.
	inputs []catalog.ArchiveFile
	// rebuilt are the partitions the new version builds anew ("" for an
	// unpartitioned view); carried are the base version's files it keeps.
	rebuilt []string
	carried []catalog.VersionFile
	// merge are base files of rebuilt partitions whose partials an
	// incremental build combines with the new records' partials.
	merge []catalog.VersionFile
}

// day is the view partition an archive file's records fall into.
func day(f catalog.ArchiveFile) string { return strings.TrimPrefix(f.Partition, "dt=") }

// planBuild decides a build from the current version (nil before the first),
// the archive and whether the view is partitioned by day of its time key.
// Incremental builds rebuild exactly the days the archive gained records for
// since the current version; a view without a time key is always rebuilt whole.
func planBuild(req Request, partitioned bool, cur *catalog.ViewVersion, archive []catalog.ArchiveFile) (buildPlan, error) {
	var covered int64
	for _, f := range archive {
		covered = max(covered, f.End)
	}
	if req.From != "" || req.To != "" {
		return planBackfill(req, partitioned, cur, archive)
	}
	if covered == 0 {
		return buildPlan{}, fmt.Errorf("%w: nothing is archived yet", ErrUpToDate)
	}
	if cur != nil && cur.Covered == covered && !req.Full {
		return buildPlan{}, fmt.Errorf("%w: version %d covers every archived record", ErrUpToDate, cur.Version)
	}
	// A base written before the view was partitioned cannot be patched.
	full := req.Full || cur == nil || !partitioned || hasUnpartitioned(cur.Files)
	if full {
		p := buildPlan{kind: KindFull, covered: covered, inputs: archive}
		if partitioned {
			p.rebuilt = days(archive)
		} else {
			p.rebuilt = []string{""}
		}
		return p, nil
	}
	touched := map[string]bool{}
	p := buildPlan{kind: KindIncremental, covered: covered}
	for _, f := range archive {
		if f.First >= cur.Covered {
			touched[day(f)] = true
			p.inputs = append(p.inputs, f)
		}
	}
	p.rebuilt = sortedKeys(touched)
	p.carried = carry(cur.Files, touched)
	for _, f := range cur.Files {
		if touched[f.Partition] {
			p.merge = append(p.merge, f)
		}
	}
	return p, nil
}

func planBackfill(req Request, partitioned bool, cur *catalog.ViewVersion, archive []catalog.ArchiveFile) (buildPlan, error) {
	if !partitioned {
		return buildPlan{}, errors.New("the view has no day-aligned time key to backfill by; run a full build instead")
	}
	if cur == nil {
		return buildPlan{}, errors.New("the view has no version yet; build it before backfilling")
	}
	from, err := time.Parse(time.DateOnly, req.From)
	if err != nil {
		return buildPlan{}, fmt.Errorf("backfill from %q: want YYYY-MM-DD", req.From)
	}
	to, err := time.Parse(time.DateOnly, req.To)
	if err != nil {
		return buildPlan{}, fmt.Errorf("backfill to %q: want YYYY-MM-DD", req.To)
	}
	if to.Before(from) {
		return buildPlan{}, fmt.Errorf("backfill from %s to %s: the range is empty", req.From, req.To)
	}
	if to.Sub(from) > 20*366*24*time.Hour {
		return buildPlan{}, fmt.Errorf("backfill from %s to %s: more than 20 years", req.From, req.To)
	}
	in := map[string]bool{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		in[d.Format(time.DateOnly)] = true
	}
	// The version keeps covering what the current one covers: records the
	// speed layer holds must not be counted in the batch as well.
	p := buildPlan{kind: KindBackfill, covered: cur.Covered}
	for _, f := range archive {
		if in[day(f)] && f.End <= cur.Covered {
			p.inputs = append(p.inputs, f)
		}
	}
	p.rebuilt = sortedKeys(in)
	p.carried = carry(cur.Files, in)
	return p, nil
}

func hasUnpartitioned(files []catalog.VersionFile) bool {
	for _, f := range files {
		if f.Partition == "" {
			return true
		}
	}
	return false
}

func carry(files []catalog.VersionFile, replaced map[string]bool) []catalog.VersionFile {
	var out []catalog.VersionFile
	for _, f := range files {
		if !replaced[f.Partition] {
			out = append(out, f)
		}
	}
	return out
}

func days(files []catalog.ArchiveFile) []string {
	set := map[string]bool{}
	for _, f := range files {
		set[day(f)] = true
	}
	return sortedKeys(set)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
