package batchlayer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// statement is one statement of a script and the line it starts on.
type statement struct {
	sql  string
	line int
}

// splitScript cuts a script at the semicolons outside string literals,
// quoted names, dollar-quoted strings and comments, dropping empty
// statements.
func splitScript(script string) []statement {
	var (
		out   []statement
		start int
		line  = 1
		first = 1 // line of the current statement's first character
	)
	flush := func(end int) {
		if text := strings.TrimSpace(script[start:end]); text != "" && !onlyComments(text) {
			out = append(out, statement{sql: text, line: first})
		}
	}
	inText := false // in the current statement, something but space seen
	for i := 0; i < len(script); i++ {
		c := script[i]
		if !inText && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			inText, first = true, line
		}
		if j := skipLiteral(script, i); j > i {
			line += strings.Count(script[i:j], "\n")
			i = j - 1
			continue
		}
		switch c {
		case '\n':
			line++
		case ';':
			flush(i)
			start, inText = i+1, false
		}
	}
	flush(len(script))
	return out
}

// skipLiteral is the index just past the string literal, quoted name,
// dollar-quoted string or comment starting at i; i when none starts there.
func skipLiteral(s string, i int) int {
	switch {
	case s[i] == '\'' || s[i] == '"':
		return closing(s, i+1, s[i:i+1])
	case strings.HasPrefix(s[i:], "$$"):
		return closing(s, i+2, "$$")
	case strings.HasPrefix(s[i:], "--"):
		if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
			return i + j // the newline itself is counted by the caller
		}
		return len(s)
	case strings.HasPrefix(s[i:], "/*"):
		return closing(s, i+2, "*/")
	}
	return i
}

// positional rewrites a statement's $name parameters as ? for a client
// that binds by position (trino-go-client), returning their values in
// order. A $name without a value is an error naming it.
func positional(stmt string, params map[string]string) (string, []any, error) {
	var (
		b    strings.Builder
		args []any
	)
	for i := 0; i < len(stmt); i++ {
		if j := skipLiteral(stmt, i); j > i {
			b.WriteString(stmt[i:j])
			i = j - 1
			continue
		}
		if stmt[i] != '$' {
			b.WriteByte(stmt[i])
			continue
		}
		j := i + 1
		for j < len(stmt) && (stmt[j] == '_' || stmt[j] >= 'a' && stmt[j] <= 'z' || stmt[j] >= 'A' && stmt[j] <= 'Z' || j > i+1 && stmt[j] >= '0' && stmt[j] <= '9') {
			j++
		}
		if j == i+1 {
			b.WriteByte('$')
			continue
		}
		name := stmt[i+1 : j]
		v, ok := params[name]
		if !ok {
			return "", nil, fmt.Errorf("parameter $%s has no value: give -p %s=...", name, name)
		}
		b.WriteByte('?')
		args = append(args, ParamValue(v))
		i = j - 1
	}
	return b.String(), args, nil
}

// closing is the index just past the first end at or after from (a doubled
// quote inside a literal is part of it), or len(s) if there is none.
func closing(s string, from int, end string) int {
	for i := from; i < len(s); i++ {
		if !strings.HasPrefix(s[i:], end) {
			continue
		}
		if len(end) == 1 && i+1 < len(s) && s[i+1] == end[0] {
			i++ // '' or "" escapes the quote
			continue
		}
		return i + len(end)
	}
	return len(s)
}

func onlyComments(text string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			return false
		}
	}
	return true
}

// ParamValue types a job parameter's text the way an analyst means it: an
// integer, a decimal number, a boolean, else text (which the engine casts
// where a date or timestamp is compared with it). The engine binds it, so
// no value can change a statement's meaning.
func ParamValue(text string) any {
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(text, 64); err == nil && strings.ContainsAny(text, ".eE") && !strings.ContainsAny(text, "nN") {
		return f // not "NaN" or "Inf", which are more likely text
	}
	switch strings.ToLower(text) {
	case "true":
		return true
	case "false":
		return false
	}
	return text
}

// runScript runs the setup and every statement of the script but the last,
// which it returns with the bound parameters, for the caller to write out.
func (e *Executor) runScript(ctx context.Context, task Task, progress Progress) (string, []any, error) {
	progress.Stage("setup")
	for _, s := range task.Setup {
		if _, err := e.conn.ExecContext(ctx, s); err != nil {
			return "", nil, fmt.Errorf("set up the relations the script reads: %w", err)
		}
	}
	args := make([]any, 0, len(task.Params))
	for k, v := range task.Params {
		args = append(args, sql.Named(k, ParamValue(v)))
	}
	stmts := splitScript(task.Script)
	if len(stmts) == 0 {
		return "", nil, errors.New("the script has no statement")
	}
	for i, st := range stmts[:len(stmts)-1] {
		progress.Stage(fmt.Sprintf("statement %d of %d", i+1, len(stmts)))
		res, err := e.conn.ExecContext(ctx, st.sql, args...)
		if err != nil {
			return "", nil, fmt.Errorf("statement %d of %d (line %d): %w", i+1, len(stmts), st.line, err)
		}
		if n, err := res.RowsAffected(); err == nil {
			progress.Rows(n)
		}
	}
	return stmts[len(stmts)-1].sql, args, nil
}

// ScriptRequest is one attempt of a sql job.
type ScriptRequest struct {
	JobID, LogPrefix string
	Script           string
	Params           map[string]string
	// Output is the object the result is written to, replaced if it exists.
	Output string
	// Inputs prepares what the script reads: it may write files into dir
	// and returns the statements that define the script's relations, and
	// the files those read. Unused on Trino, whose tables the script reads.
	Inputs func(ctx context.Context, dir string) (setup, reads []string, err error)
	// Trino, when set, runs the script's statements on that cluster.
	Trino *TrinoSource
}

// ScriptResult is what a sql job's attempt wrote.
type ScriptResult struct {
	Rows, Bytes int64
}

// RunScript runs a sql job's script on an executor and uploads its result.
func (b *Builder) RunScript(ctx context.Context, req ScriptRequest) (ScriptResult, error) {
	dir := filepath.Join(b.cfg.ScratchDir, "sql-"+req.JobID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ScriptResult{}, err
	}
	defer os.RemoveAll(dir)
	task := Task{
		Output: filepath.Join(dir, "out"), Memory: b.cfg.ExecutorMemory, Threads: b.cfg.ExecutorThreads,
		AllowedDirs: []string{dir}, Script: req.Script, Params: req.Params,
		RowGroupRows: 122_880, // DuckDB's default: results are read by queries, not merged
	}
	if req.Trino != nil {
		task.Trino = &TrinoTask{Source: *req.Trino}
	} else {
		setup, reads, err := req.Inputs(ctx, dir)
		if err != nil {
			return ScriptResult{}, fmt.Errorf("prepare the script's inputs: %w", err)
		}
		task.Setup, task.AllowedDirs = setup, allowedDirs(reads, dir)
	}
	res, err := b.run(ctx, req.LogPrefix, dir, task)
	if err != nil {
		return ScriptResult{}, err
	}
	if len(res.Files) != 1 {
		return ScriptResult{}, fmt.Errorf("executor result: %d files, want 1", len(res.Files))
	}
	f := res.Files[0]
	if err := b.upload(ctx, req.Output, f.Path); err != nil {
		return ScriptResult{}, fmt.Errorf("upload result to %s: %w", req.Output, err)
	}
	return ScriptResult{Rows: f.Rows, Bytes: f.Bytes}, nil
}
