// Package notebooks runs Jupyter notebooks (nbformat 4) whose SQL cells
// (JupySQL's %%sql cell magic) query a duet server, Papermill-style: a cell
// tagged "parameters" holds typed defaults, a run may override them, and the
// executed notebook, with each cell's result, is the record of the run.
package notebooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Cell types of nbformat 4.
const (
	CellCode     = "code"
	CellMarkdown = "markdown"
	CellRaw      = "raw"
)

// Output types of nbformat 4 that a run writes or reads back.
const (
	OutputExecuteResult = "execute_result"
	OutputDisplayData   = "display_data"
	OutputStream        = "stream"
	OutputError         = "error"
)

// Notebook is an nbformat 4 notebook. Metadata the runner does not know is
// kept as it was, so a notebook written back differs only where it ran.
type Notebook struct {
	Cells         []*Cell
	Metadata      map[string]json.RawMessage
	Nbformat      int
	NbformatMinor int
}

// Cell is one cell. Source is the cell's text joined into one string (the
// file may hold it as a list of lines).
type Cell struct {
	ID       string
	Type     string
	Metadata map[string]json.RawMessage
	Source   string
	// Attachments of markdown and raw cells, kept as they were.
	Attachments json.RawMessage
	// Outputs and ExecutionCount exist on code cells only.
	Outputs        []Output
	ExecutionCount *int
}

// Output is one output of a code cell. Data maps MIME types to their
// values: JSON strings or lists of lines for text types, JSON documents for
// the +json types.
type Output struct {
	Type           string
	ExecutionCount *int
	Data           map[string]json.RawMessage
	Metadata       map[string]json.RawMessage
	// Error outputs.
	Ename     string
	Evalue    string
	Traceback []string
	// Stream outputs.
	Name string
	Text string
}

// DataText returns the output's value of a text MIME type, joined into one
// string; "" if it has none.
func (o Output) DataText(mime string) string {
	raw, ok := o.Data[mime]
	if !ok {
		return ""
	}
	s, _ := decodeMultiline(raw)
	return s
}

// Read parses an nbformat 4 notebook.
func Read(r io.Reader) (*Notebook, error) {
	var doc struct {
		Cells         []json.RawMessage          `json:"cells"`
		Metadata      map[string]json.RawMessage `json:"metadata"`
		Nbformat      *int                       `json:"nbformat"`
		NbformatMinor *int                       `json:"nbformat_minor"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a notebook (JSON): %w", err)
	}
	if doc.Nbformat == nil {
		return nil, errors.New("not a notebook: no nbformat version")
	}
	if *doc.Nbformat != 4 {
		return nil, fmt.Errorf("nbformat %d notebooks are not supported: convert it to version 4 (jupyter nbconvert --to notebook --nbformat 4)", *doc.Nbformat)
	}
	nb := &Notebook{Metadata: doc.Metadata, Nbformat: 4}
	if doc.NbformatMinor != nil {
		nb.NbformatMinor = *doc.NbformatMinor
	}
	if nb.Metadata == nil {
		nb.Metadata = map[string]json.RawMessage{}
	}
	for i, raw := range doc.Cells {
		c, err := readCell(raw)
		if err != nil {
			return nil, fmt.Errorf("cell %d: %w", i+1, err)
		}
		nb.Cells = append(nb.Cells, c)
	}
	return nb, nil
}

func readCell(raw json.RawMessage) (*Cell, error) {
	var c struct {
		ID             string                     `json:"id"`
		Type           string                     `json:"cell_type"`
		Metadata       map[string]json.RawMessage `json:"metadata"`
		Source         json.RawMessage            `json:"source"`
		Attachments    json.RawMessage            `json:"attachments"`
		Outputs        []json.RawMessage          `json:"outputs"`
		ExecutionCount *int                       `json:"execution_count"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case CellCode, CellMarkdown, CellRaw:
	default:
		return nil, fmt.Errorf("unknown cell_type %q (want code, markdown or raw)", c.Type)
	}
	src, err := decodeMultiline(c.Source)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	cell := &Cell{ID: c.ID, Type: c.Type, Metadata: c.Metadata, Source: src, Attachments: c.Attachments, ExecutionCount: c.ExecutionCount}
	if cell.Metadata == nil {
		cell.Metadata = map[string]json.RawMessage{}
	}
	if c.Type != CellCode {
		cell.ExecutionCount = nil
		return cell, nil
	}
	for i, o := range c.Outputs {
		out, err := readOutput(o)
		if err != nil {
			return nil, fmt.Errorf("output %d: %w", i+1, err)
		}
		cell.Outputs = append(cell.Outputs, out)
	}
	return cell, nil
}

func readOutput(raw json.RawMessage) (Output, error) {
	var o struct {
		Type           string                     `json:"output_type"`
		ExecutionCount *int                       `json:"execution_count"`
		Data           map[string]json.RawMessage `json:"data"`
		Metadata       map[string]json.RawMessage `json:"metadata"`
		Ename          string                     `json:"ename"`
		Evalue         string                     `json:"evalue"`
		Traceback      []string                   `json:"traceback"`
		Name           string                     `json:"name"`
		Text           json.RawMessage            `json:"text"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return Output{}, err
	}
	out := Output{Type: o.Type, ExecutionCount: o.ExecutionCount, Data: o.Data, Metadata: o.Metadata,
		Ename: o.Ename, Evalue: o.Evalue, Traceback: o.Traceback, Name: o.Name}
	if o.Type == OutputStream {
		var err error
		if out.Text, err = decodeMultiline(o.Text); err != nil {
			return Output{}, fmt.Errorf("text: %w", err)
		}
	}
	return out, nil
}

// decodeMultiline reads nbformat's multiline string: one string, or a list
// of strings to concatenate.
func decodeMultiline(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []string
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("want a string or a list of strings")
	}
	return strings.Join(parts, ""), nil
}

// lines splits text into the list-of-lines form Jupyter writes: each line
// keeps its "\n", the last one has none.
func lines(s string) []string {
	out := strings.SplitAfter(s, "\n")
	if out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// Write writes the notebook as Jupyter does (keys sorted, one-space indent,
// a final newline), so that a written notebook diffs line by line.
func (nb *Notebook) Write(w io.Writer) error {
	cells := make([]map[string]any, len(nb.Cells))
	for i, c := range nb.Cells {
		cells[i] = c.document(nb.NbformatMinor)
	}
	meta := nb.Metadata
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	doc := map[string]any{"cells": cells, "metadata": meta, "nbformat": nb.Nbformat, "nbformat_minor": nb.NbformatMinor}
	// Marshal once, then re-indent through generic values, which sorts the
	// keys of every object, those inside kept metadata included.
	var first bytes.Buffer
	if err := encodeJSON(&first, doc, ""); err != nil {
		return fmt.Errorf("encode notebook: %w", err)
	}
	dec := json.NewDecoder(&first)
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return fmt.Errorf("encode notebook: %w", err)
	}
	var out bytes.Buffer
	if err := encodeJSON(&out, generic, " "); err != nil {
		return fmt.Errorf("encode notebook: %w", err)
	}
	_, err := w.Write(out.Bytes())
	return err
}

// encodeJSON writes v without escaping <, > and &, which HTML outputs are
// full of; the Encoder adds the final newline.
func encodeJSON(w io.Writer, v any, indent string) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(v)
}

func (c *Cell) document(minor int) map[string]any {
	meta := c.Metadata
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	d := map[string]any{"cell_type": c.Type, "metadata": meta, "source": lines(c.Source)}
	// Cell ids exist from nbformat 4.5; earlier schemas refuse them.
	if minor >= 5 && c.ID != "" {
		d["id"] = c.ID
	}
	if c.Type != CellCode {
		if len(c.Attachments) > 0 {
			d["attachments"] = c.Attachments
		}
		return d
	}
	outs := make([]map[string]any, len(c.Outputs))
	for i, o := range c.Outputs {
		outs[i] = o.document()
	}
	d["outputs"] = outs
	d["execution_count"] = c.ExecutionCount
	return d
}

func (o Output) document() map[string]any {
	d := map[string]any{"output_type": o.Type}
	switch o.Type {
	case OutputExecuteResult, OutputDisplayData:
		data, meta := o.Data, o.Metadata
		if data == nil {
			data = map[string]json.RawMessage{}
		}
		if meta == nil {
			meta = map[string]json.RawMessage{}
		}
		d["data"], d["metadata"] = data, meta
		if o.Type == OutputExecuteResult {
			d["execution_count"] = o.ExecutionCount
		}
	case OutputError:
		tb := o.Traceback
		if tb == nil {
			tb = []string{}
		}
		d["ename"], d["evalue"], d["traceback"] = o.Ename, o.Evalue, tb
	case OutputStream:
		d["name"], d["text"] = o.Name, lines(o.Text)
	}
	return d
}

// Tags returns the cell's metadata tags (Papermill marks cells so).
func (c *Cell) Tags() []string {
	var tags []string
	if raw, ok := c.Metadata["tags"]; ok {
		_ = json.Unmarshal(raw, &tags)
	}
	return tags
}

// HasTag reports whether the cell carries tag.
func (c *Cell) HasTag(tag string) bool {
	for _, t := range c.Tags() {
		if t == tag {
			return true
		}
	}
	return false
}
