// Package authz decides what an authenticated user may do: read which
// relations (through SQL and the REST API), ingest into which datasets, and
// whether they may change things (create datasets and views, run and kill
// jobs). The rules come from a JSON file; the decisions are pure functions
// of the rules and their arguments.
package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/duet-analytics/duet/dataset"
)

// Everyone, as a rule's user, matches every authenticated user.
const Everyone = "*"

// File is the rules file as written.
type File struct {
	// Groups maps a group to its users.
	Groups map[string][]string `json:"groups"`
	// Read grants reading relations, as schema.table patterns whose parts
	// are a name or *: views.delays, views.*, raw.flights, system.*.
	Read []ReadRule `json:"read"`
	// Ingest grants POST /v1/ingest/{dataset} for datasets named or *.
	Ingest []IngestRule `json:"ingest"`
	// Admin grants creating datasets and views, builds, rollbacks,
	// backfills, compactions and the jobs API.
	Admin []Principal `json:"admin"`
}

// Principal is a user (or Everyone) or a group: exactly one is set.
type Principal struct {
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
}

// ReadRule lets a principal read the relations its patterns match.
type ReadRule struct {
	Principal
	Tables []string `json:"tables"`
}

// IngestRule lets a principal ingest into the datasets named.
type IngestRule struct {
	Principal
	Datasets []string `json:"datasets"`
}

// Rules are a loaded rules file. A nil *Rules allows everything, as duet
// does without a rules file.
type Rules struct {
	// groups maps a user to their groups.
	groups map[string][]string
	read   []readGrant
	ingest []ingestGrant
	admin  []Principal
}

type pattern struct{ schema, table string } // lower case; "*" matches any

type readGrant struct {
	who      Principal
	patterns []pattern
}

type ingestGrant struct {
	who      Principal
	datasets []string // lower case; "*" matches any
}

// Load reads and checks a rules file.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authz file: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("authz file %s: %w", path, err)
	}
	return r, nil
}

// Parse checks a rules file's content; an error names the line or the
// entry at fault.
func Parse(data []byte) (*Rules, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected content after the rules object", position(data, dec.InputOffset()-1))
	}
	return f.compile()
}

// decodeError locates a JSON error in the file.
func decodeError(data []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		// Offset is just past the offending character.
		return fmt.Errorf("%s: invalid JSON: %v", position(data, syntax.Offset-1), err)
	case errors.As(err, &typ):
		// Offset is just past the value, so only its line is certain.
		line, _, _ := strings.Cut(position(data, typ.Offset-1), ",")
		return fmt.Errorf("%s: %s must be %s, not a JSON %s", line, typ.Field, typeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.EOF):
		return errors.New("the file is empty: write a JSON object with groups, read, ingest and admin")
	}
	// An unknown field: the decoder reports it after reading its whole
	// object, so find the name's first occurrence instead.
	where := "the file"
	if _, name, ok := strings.Cut(err.Error(), "unknown field "); ok {
		if i := bytes.Index(data, []byte(name)); i >= 0 {
			where = position(data, int64(i))
		}
	}
	return fmt.Errorf("%s: %v (the fields are groups, read, ingest and admin; in entries user, group, tables and datasets)", where, err)
}

func typeName(kind string) string {
	switch kind {
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return "a " + kind
}

// position is "line L, column C" (1-based) of the byte at offset.
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

func (f *File) compile() (*Rules, error) {
	r := &Rules{groups: map[string][]string{}}
	for _, g := range slices.Sorted(maps.Keys(f.Groups)) {
		if strings.TrimSpace(g) == "" || g == Everyone {
			return nil, fmt.Errorf("groups: %q is not a group name", g)
		}
		for i, u := range f.Groups[g] {
			if strings.TrimSpace(u) == "" || u == Everyone {
				return nil, fmt.Errorf("groups.%s[%d]: %q is not a user name", g, i, u)
			}
			r.groups[u] = append(r.groups[u], g)
		}
	}
	for i, rule := range f.Read {
		where := fmt.Sprintf("read[%d]", i)
		who, err := f.principal(where, rule.Principal)
		if err != nil {
			return nil, err
		}
		if len(rule.Tables) == 0 {
			return nil, fmt.Errorf("%s (%s): tables: list at least one schema.table pattern, such as views.*", where, who)
		}
		g := readGrant{who: rule.Principal}
		for j, p := range rule.Tables {
			pat, err := parsePattern(p)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): tables[%d]: %w", where, who, j, err)
			}
			g.patterns = append(g.patterns, pat)
		}
		r.read = append(r.read, g)
	}
	for i, rule := range f.Ingest {
		where := fmt.Sprintf("ingest[%d]", i)
		who, err := f.principal(where, rule.Principal)
		if err != nil {
			return nil, err
		}
		if len(rule.Datasets) == 0 {
			return nil, fmt.Errorf("%s (%s): datasets: list at least one dataset, or *", where, who)
		}
		g := ingestGrant{who: rule.Principal}
		for j, d := range rule.Datasets {
			if d != "*" && !dataset.ValidIdentifier(d) {
				return nil, fmt.Errorf("%s (%s): datasets[%d]: %q is not a dataset name (letters, digits, underscores) or *", where, who, j, d)
			}
			g.datasets = append(g.datasets, strings.ToLower(d))
		}
		r.ingest = append(r.ingest, g)
	}
	for i, p := range f.Admin {
		if _, err := f.principal(fmt.Sprintf("admin[%d]", i), p); err != nil {
			return nil, err
		}
		r.admin = append(r.admin, p)
	}
	return r, nil
}

// principal checks a rule's user or group and describes it.
func (f *File) principal(where string, p Principal) (string, error) {
	switch {
	case (p.User == "") == (p.Group == ""):
		return "", fmt.Errorf("%s: set exactly one of user and group", where)
	case p.Group != "":
		if _, ok := f.Groups[p.Group]; !ok {
			return "", fmt.Errorf("%s: group %q is not defined in groups", where, p.Group)
		}
		return fmt.Sprintf("group %q", p.Group), nil
	}
	return fmt.Sprintf("user %q", p.User), nil
}

// parsePattern reads schema.table, each part a name or *.
func parsePattern(s string) (pattern, error) {
	schema, table, ok := strings.Cut(s, ".")
	valid := func(part string) bool { return part == "*" || dataset.ValidIdentifier(part) }
	if !ok || !valid(schema) || !valid(table) {
		return pattern{}, fmt.Errorf("%q: write schema.table, each part a name or *, such as views.delays, views.* or system.*", s)
	}
	return pattern{strings.ToLower(schema), strings.ToLower(table)}, nil
}

// matches reports whether a principal covers user.
func (r *Rules) matches(p Principal, user string) bool {
	if p.Group != "" {
		return slices.Contains(r.groups[user], p.Group)
	}
	return p.User == Everyone || p.User == user
}

// CanRead reports whether user may read schema.table. Names compare
// without regard to case, as SQL identifiers do.
func (r *Rules) CanRead(user, schema, table string) bool {
	if r == nil {
		return true
	}
	schema, table = strings.ToLower(schema), strings.ToLower(table)
	for _, g := range r.read {
		if !r.matches(g.who, user) {
			continue
		}
		for _, p := range g.patterns {
			if (p.schema == "*" || p.schema == schema) && (p.table == "*" || p.table == table) {
				return true
			}
		}
	}
	return false
}

// CanIngest reports whether user may ingest into the dataset.
func (r *Rules) CanIngest(user, datasetName string) bool {
	if r == nil {
		return true
	}
	datasetName = strings.ToLower(datasetName)
	for _, g := range r.ingest {
		if r.matches(g.who, user) && (slices.Contains(g.datasets, "*") || slices.Contains(g.datasets, datasetName)) {
			return true
		}
	}
	return false
}

// IsAdmin reports whether user may create datasets and views and run and
// kill jobs.
func (r *Rules) IsAdmin(user string) bool {
	if r == nil {
		return true
	}
	return slices.ContainsFunc(r.admin, func(p Principal) bool { return r.matches(p, user) })
}
