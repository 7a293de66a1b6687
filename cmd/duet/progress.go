package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/duet-analytics/duet/client"
)

// progress draws one status line for ingest on a terminal, redrawn in
// place; elsewhere it stays silent, so logs and pipes get only the summary.
type progress struct {
	w       io.Writer
	enabled bool
	name    string
	now     func() time.Time
	start   time.Time
	last    time.Time // last draw
	drawn   bool

	// totalBytes (input size) or totalRows (Parquet) give the percentage.
	totalBytes int64
	totalRows  int64

	rows, sentBytes, readBytes int64
	note                       string
}

func newProgress(w io.Writer, enabled bool, name string) *progress {
	p := &progress{w: w, enabled: enabled, name: name, now: time.Now}
	p.start = p.now()
	return p
}

// read is told how many input bytes have been read so far.
func (p *progress) read(n int64) { p.readBytes = n }

// sent counts a batch the server accepted.
func (p *progress) sent(rows, bytes int64) {
	p.rows += rows
	p.sentBytes += bytes
	p.note = ""
	p.draw(false)
}

// retrying says why ingest pauses; it is the client's OnRetry hook.
func (p *progress) retrying(e client.RetryEvent) {
	p.note = fmt.Sprintf("server busy (%d), retrying in %s", e.Status, formatDuration(e.Wait))
	p.draw(true)
}

func (p *progress) draw(force bool) {
	if !p.enabled {
		return
	}
	now := p.now()
	if !force && p.drawn && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.drawn = now, true
	fmt.Fprintf(p.w, "\r\033[K%s", p.line(now.Sub(p.start)))
}

// finish clears the line, so the summary or the error starts clean. It may
// be called more than once.
func (p *progress) finish() {
	if p.enabled && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// line renders the status: name, bar and percentage when the size is known,
// rows sent, rate and bytes sent.
func (p *progress) line(elapsed time.Duration) string {
	var b strings.Builder
	b.WriteString(p.name)
	frac := -1.0
	switch {
	case p.totalRows > 0:
		frac = float64(p.rows) / float64(p.totalRows)
	case p.totalBytes > 0:
		frac = float64(p.readBytes) / float64(p.totalBytes)
	}
	if frac >= 0 {
		frac = min(frac, 1)
		const width = 20
		filled := int(frac * width)
		fmt.Fprintf(&b, " [%s%s] %3.0f%%", strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.rows) / s
	}
	fmt.Fprintf(&b, "  %s rows  %s rows/s  %s sent", formatCount(p.rows), formatCount(int64(rate)), formatBytes(p.sentBytes))
	if p.note != "" {
		b.WriteString("  " + p.note)
	}
	return b.String()
}
