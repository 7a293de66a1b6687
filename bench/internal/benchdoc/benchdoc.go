// Package benchdoc writes benchmark results: each benchmark program owns one
// section of BENCHMARKS.md, between its markers, and a JSON file.
package benchdoc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const newDocument = "# Benchmarks\n\nFigures measured by `make bench`. Each section is written by its benchmark program between its markers; rerun the program rather than editing them.\n"

func markers(name string) (start, end string) {
	return "<!-- " + name + ":start -->", "<!-- " + name + ":end -->"
}

// WriteSection replaces the section name of the Markdown file at path with
// body, creating the file, or appending the section, when missing.
func WriteSection(path, name, body string) error {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = []byte(newDocument)
	case err != nil:
		return err
	}
	return writeFileAtomic(path, []byte(ReplaceSection(string(old), name, body)))
}

// ReplaceSection returns doc with the section name replaced by body, or
// appended when doc has none.
func ReplaceSection(doc, name, body string) string {
	start, end := markers(name)
	block := start + "\n" + body + end + "\n"
	i, j := strings.Index(doc, start), strings.Index(doc, end)
	if i >= 0 && j > i {
		return doc[:i] + block + strings.TrimPrefix(doc[j+len(end):], "\n")
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + block
}

// WriteJSON writes v, indented, to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// Thousands formats n with comma separators.
func Thousands(n int64) string {
	if n < 0 {
		return "-" + Thousands(-n)
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeFileAtomic replaces path by a complete file or leaves it as it was.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file private; results are for everyone to read.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
