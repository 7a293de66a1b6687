package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/duet-analytics/duet/client"
)

// ndjsonSource cuts NDJSON into batches on line boundaries and sends each
// line as it is; the server parses it. Blank lines are skipped, so the
// server's row numbers map back to lines through batch.lines.
type ndjsonSource struct {
	r        *bufio.Reader
	maxRows  int
	maxBytes int
	line     int64
	done     bool
	onClose  func()
}

func newNDJSONSource(r io.Reader, maxRows, maxBytes int) *ndjsonSource {
	return &ndjsonSource{r: bufio.NewReaderSize(r, 256<<10), maxRows: maxRows, maxBytes: maxBytes}
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func (s *ndjsonSource) next(ctx context.Context) (*batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := &batch{contentType: client.ContentTypeNDJSON}
	var body []byte
	for !s.done && b.rows < s.maxRows && len(body) < s.maxBytes {
		start := len(body)
		var err error
		body, err = appendLine(s.r, body)
		if errors.Is(err, io.EOF) {
			s.done = true
			if len(body) == start {
				break
			}
		} else if err != nil {
			return nil, fmt.Errorf("line %d: %w", s.line+1, err)
		}
		s.line++
		if s.line == 1 && bytes.HasPrefix(body[start:], utf8BOM) {
			body = append(body[:start], body[start+len(utf8BOM):]...)
		}
		if len(bytes.TrimSpace(body[start:])) == 0 {
			body = body[:start]
			continue
		}
		if body[len(body)-1] != '\n' {
			body = append(body, '\n')
		}
		b.rows++
		b.lines = append(b.lines, s.line)
	}
	if b.rows == 0 {
		return nil, io.EOF
	}
	b.body = body
	return b, nil
}

// appendLine appends the next line, with its newline if it has one, to dst;
// lines may be longer than the reader's buffer.
func appendLine(r *bufio.Reader, dst []byte) ([]byte, error) {
	for {
		chunk, err := r.ReadSlice('\n')
		dst = append(dst, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return dst, err
		}
	}
}

func (s *ndjsonSource) close() {
	if s.onClose != nil {
		s.onClose()
	}
}
