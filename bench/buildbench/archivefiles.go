package main

import (
	"slices"
	"sort"

	"github.com/duet-analytics/duet/internal/catalog"
)

// lateDays are the earlier days (since epoch) late events of an increment
// fall on: the day before the last, the middle one and the first.
func lateDays(n int64) []int64 {
	var out []int64
	for _, d := range []int64{0, n / 2, n - 2} {
		if d >= 0 && d < n-1 && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func days(files []catalog.ArchiveFile) []string {
	var out []string
	for _, f := range files {
		d := f.Partition[len("dt="):]
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

func partialRowsOnDays(v catalog.ViewVersion, ds []string) int64 {
	var n int64
	for _, f := range v.Files {
		if slices.Contains(ds, f.Partition) {
			n += f.Rows
		}
	}
	return n
}

func archivedEnd(files []catalog.ArchiveFile) int64 {
	var end int64
	for _, f := range files {
		end = max(end, f.End)
	}
	return end
}
