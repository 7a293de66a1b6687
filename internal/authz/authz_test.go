package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const example = `{
  "groups": {"analysts": ["alice", "bob"], "ops": ["olga"]},
  "read": [
    {"group": "analysts", "tables": ["views.*", "system.queries"]},
    {"user": "carol", "tables": ["views.delays", "raw.Flights"]},
    {"user": "*", "tables": ["system.views"]}
  ],
  "ingest": [
    {"user": "loader", "datasets": ["flights"]},
    {"group": "ops", "datasets": ["*"]}
  ],
  "admin": [{"group": "ops"}, {"user": "root"}]
}`

func TestDecisions(t *testing.T) {
	r, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, schema, table string
		want                bool
	}{
		{"alice", "views", "delays", true},
		{"alice", "VIEWS", "Delays", true}, // SQL names ignore case
		{"bob", "views", "anything", true},
		{"alice", "raw", "flights", false},
		{"alice", "system", "queries", true},
		{"alice", "system", "datasets", false},
		{"carol", "views", "delays", true},
		{"carol", "views", "other", false},
		{"carol", "raw", "flights", true},
		{"dave", "system", "views", true}, // everyone
		{"dave", "views", "delays", false},
		{"olga", "views", "delays", false},  // admin does not imply read
		{"Alice", "views", "delays", false}, // user names are exact
	} {
		if got := r.CanRead(c.user, c.schema, c.table); got != c.want {
			t.Errorf("CanRead(%s, %s.%s) = %v, want %v", c.user, c.schema, c.table, got, c.want)
		}
	}
	for _, c := range []struct {
		user, dataset string
		want          bool
	}{
		{"loader", "flights", true},
		{"loader", "FLIGHTS", true},
		{"loader", "weather", false},
		{"olga", "weather", true},
		{"alice", "flights", false},
		{"root", "flights", false},
	} {
		if got := r.CanIngest(c.user, c.dataset); got != c.want {
			t.Errorf("CanIngest(%s, %s) = %v, want %v", c.user, c.dataset, got, c.want)
		}
	}
	for user, want := range map[string]bool{"olga": true, "root": true, "alice": false, "loader": false, "": false} {
		if got := r.IsAdmin(user); got != want {
			t.Errorf("IsAdmin(%q) = %v, want %v", user, got, want)
		}
	}
}

func TestNoRulesAllowEverything(t *testing.T) {
	var r *Rules
	if !r.CanRead("anyone", "raw", "x") || !r.CanIngest("anyone", "x") || !r.IsAdmin("anyone") {
		t.Error("nil rules must allow everything")
	}
	empty, err := Parse([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if empty.CanRead("anyone", "views", "x") || empty.CanIngest("anyone", "x") || empty.IsAdmin("anyone") {
		t.Error("an empty rules file must allow nothing")
	}
}

func TestBadFiles(t *testing.T) {
	for name, c := range map[string]struct{ file, want string }{
		"empty":           {"", "the file is empty"},
		"syntax":          {"{\n  \"groups\": {\"a\": [\"x\"],}\n}", `line 2, column 25: invalid JSON: invalid character '}'`},
		"wrong type":      {"{\n  \"read\": [{\"user\": \"a\", \"tables\": \"views.*\"}]\n}", "line 2: read.tables must be a list, not a JSON string"},
		"unknown field":   {"{\n  \"read\": [{\"user\": \"a\", \"tabels\": [\"views.*\"]}]\n}", `line 2, column 26: json: unknown field "tabels"`},
		"trailing":        {`{} {}`, "line 1, column 4: unexpected content after the rules object"},
		"no principal":    {`{"read": [{"tables": ["views.*"]}]}`, "read[0]: set exactly one of user and group"},
		"both principals": {`{"groups": {"g": ["a"]}, "admin": [{"user": "a", "group": "g"}]}`, "admin[0]: set exactly one of user and group"},
		"undefined group": {`{"read": [{"group": "analyts", "tables": ["views.*"]}]}`, `read[0]: group "analyts" is not defined in groups`},
		"bad pattern":     {`{"read": [{"user": "a", "tables": ["views.*", "views"]}]}`, `read[0] (user "a"): tables[1]: "views": write schema.table, each part a name or *, such as views.delays, views.* or system.*`},
		"three parts":     {`{"read": [{"user": "a", "tables": ["duet.views.x"]}]}`, `tables[0]: "duet.views.x": write schema.table`},
		"partial star":    {`{"read": [{"user": "a", "tables": ["views.del*"]}]}`, `tables[0]: "views.del*"`},
		"no tables":       {`{"read": [{"user": "a"}]}`, `read[0] (user "a"): tables: list at least one schema.table pattern`},
		"bad dataset":     {`{"ingest": [{"user": "a", "datasets": ["fl-ights"]}]}`, `ingest[0] (user "a"): datasets[0]: "fl-ights" is not a dataset name`},
		"no datasets":     {`{"ingest": [{"user": "a", "datasets": []}]}`, `ingest[0] (user "a"): datasets: list at least one dataset, or *`},
		"everyone member": {`{"groups": {"g": ["*"]}}`, `groups.g[0]: "*" is not a user name`},
	} {
		_, err := Parse([]byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.json")
	if err := os.WriteFile(path, []byte(`{"admin": [{}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || err.Error() != "authz file "+path+": admin[0]: set exactly one of user and group" {
		t.Errorf("got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "authz file: open ") {
		t.Errorf("missing file: got %v", err)
	}
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := Load(path); err != nil || !r.IsAdmin("root") {
		t.Errorf("Load(example): %v", err)
	}
}
