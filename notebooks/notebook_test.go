package notebooks

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/duet-analytics/duet/internal/testsvc"
)

func exampleNotebooks(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("examples", "*.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("examples/ holds %d notebooks, want 3: %v", len(paths), paths)
	}
	return paths
}

// TestExamplesAreValidNbformat4 checks the example notebooks with Jupyter's
// own validator against the nbformat 4 schema.
func TestExamplesAreValidNbformat4(t *testing.T) {
	testsvc.ValidateNotebooks(t, exampleNotebooks(t)...)
}

// TestWriteIsJupyterFormat reads each example and writes it back: the bytes
// are the same, because Write formats as Jupyter does (nbformat's writer,
// json.dump with indent=1 and sort_keys, made the examples).
func TestWriteIsJupyterFormat(t *testing.T) {
	for _, path := range exampleNotebooks(t) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		nb, err := Read(bytes.NewReader(src))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var out bytes.Buffer
		if err := nb.Write(&out); err != nil {
			t.Fatal(err)
		}
		if out.String() != string(src) {
			t.Errorf("%s written back differs:\n%s", path, firstDiff(string(src), out.String()))
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n- " + al[i] + "\n+ " + bl[i]
		}
	}
	return "lengths differ"
}

func TestReadRefuses(t *testing.T) {
	for doc, want := range map[string]string{
		`{"nbformat": 3, "nbformat_minor": 0, "worksheets": []}`: "nbformat 3 notebooks are not supported",
		`{"cells": []}`: "no nbformat version",
		`[1, 2]`:        "not a notebook (JSON)",
		`{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "widget"}]}`:            `cell 1: unknown cell_type "widget"`,
		`{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": 7}]}`: "cell 1: source: want a string or a list of strings",
	} {
		if _, err := Read(strings.NewReader(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Read(%s) = %v, want an error with %q", doc, err, want)
		}
	}
}

// TestReadKeepsWhatItDoesNotRun checks that metadata, attachments and an
// older minor version (no cell ids) survive a read and a write.
func TestReadKeepsWhatItDoesNotRun(t *testing.T) {
	doc := `{
 "cells": [
  {
   "attachments": {"a.png": {"image/png": "iVBORw0KGgo="}},
   "cell_type": "markdown",
   "metadata": {"custom": {"z": 1, "a": [true, null]}},
   "source": "# Title\n![a](attachment:a.png)"
  },
  {
   "cell_type": "raw",
   "metadata": {},
   "source": ["line 1\n", "line 2"]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}, "zz": "<&>"},
 "nbformat": 4,
 "nbformat_minor": 4
}`
	nb, err := Read(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if nb.Cells[1].Source != "line 1\nline 2" {
		t.Fatalf("raw cell source %q", nb.Cells[1].Source)
	}
	var out bytes.Buffer
	if err := nb.Write(&out); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kept.ipynb")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	testsvc.ValidateNotebooks(t, path)
	for _, want := range []string{`"a.png": {`, `"custom": {`, `"a": [`, `"z": 1`, `"zz": "<&>"`, `"nbformat_minor": 4`, `"line 1\n",`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("written notebook lacks %s:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), `"id"`) {
		t.Errorf("a 4.4 notebook got cell ids, which its schema refuses:\n%s", out.String())
	}
}
