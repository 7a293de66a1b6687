package eventlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/duet-analytics/duet/internal/durable"
)

const segmentExt = ".wal"

// segmentPath names a segment by its first offset, zero-padded so that names
// sort in offset order.
func segmentPath(dir string, first int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", first, segmentExt))
}

// parseSegmentName returns the first offset a segment file name encodes.
func parseSegmentName(name string) (int64, bool) {
	base, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(base) != 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(base, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// createSegment creates an empty segment file and makes its name durable.
func createSegment(dir string, first int64) error {
	path := segmentPath(dir, first)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		// Left by an earlier Roll that failed after creating it; an empty
		// file is exactly what we would create.
		if st, serr := os.Stat(path); serr == nil && st.Size() == 0 {
			return durable.SyncDir(dir)
		}
	}
	if err != nil {
		return fmt.Errorf("create segment %d: %w", first, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create segment %d: %w", first, err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("create segment %d: %w", first, err)
	}
	return nil
}

// recoverSegments scans the segment files in order, validating every frame. A bad
// tail of the last segment is truncated away (those writes were never
// acknowledged); anything bad before it is ErrCorrupt.
func (l *Log) recoverSegments() ([]segment, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var segs []segment
	for _, e := range entries {
		first, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			if strings.HasSuffix(e.Name(), segmentExt) {
				l.logger.Warn("ignoring file with a segment extension but not a segment name", "file", e.Name())
			}
			continue
		}
		segs = append(segs, segment{first: first, end: first, path: filepath.Join(l.dir, e.Name())})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	for i := range segs {
		s := &segs[i]
		if i > 0 && s.first != segs[i-1].end {
			return nil, fmt.Errorf("%w: segment %s starts at offset %d but the previous segment ends at %d",
				ErrCorrupt, filepath.Base(s.path), s.first, segs[i-1].end)
		}
		last := i == len(segs)-1
		if err := l.scanSegment(s, last); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// scanSegment validates s's frames and sets its end offset and size. When
// last, a bad tail is truncated instead of failing.
func (l *Log) scanSegment(s *segment, last bool) error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open segment %d: %w", s.first, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat segment %d: %w", s.first, err)
	}
	fileSize := st.Size()
	r := bufio.NewReaderSize(f, 1<<16)
	var buf []byte
	var h frameHeader
	pos, off := int64(0), s.first
	for {
		h, buf, err = readFrame(r, fileSize-pos, off, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				return fmt.Errorf("read segment %s at byte %d: %w", filepath.Base(s.path), pos, err)
			}
			if !last {
				return fmt.Errorf("%w: segment %s at byte %d (offset %d): %v; restore the file or remove it and every later segment (losing those records)",
					ErrCorrupt, filepath.Base(s.path), pos, off, err)
			}
			l.logger.Warn("truncating torn tail of event log", "segment", filepath.Base(s.path),
				"byte", pos, "offset", off, "bytes_dropped", fileSize-pos, "reason", err)
			if err := f.Truncate(pos); err != nil {
				return fmt.Errorf("truncate torn tail of segment %d: %w", s.first, err)
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("truncate torn tail of segment %d: %w", s.first, err)
			}
			break
		}
		pos += frameHeaderLen + int64(h.length)
		off += int64(h.rows)
		if src := h.source(buf); src != nil {
			l.lastSource, l.lastSourceEnd = bytes.Clone(src), off
		}
	}
	s.end, s.size = off, pos
	return nil
}
