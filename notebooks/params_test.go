package notebooks

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseParameters(t *testing.T) {
	src := `# Parameters of the report
day = "2026-11-01"  # the day
min_delay = 30
ratio: float = 0.25
big = 1_000_000
neg = -7
sci = 1e3
flag = True
off = False
nothing = None
quoted = 'it''s'
` + "escaped = \"a \\\"b\\\" # not a comment\\n\\t\\u00e9\\x41\"\n" + `
min_delay = 45
`
	// 'it''s' is two adjacent literals in Python: refused, not guessed.
	if _, err := ParseParameters(src); err == nil || !strings.Contains(err.Error(), "line 11: quoted") {
		t.Fatalf("adjacent string literals: err = %v, want one naming line 11 and quoted", err)
	}
	src = strings.Replace(src, `quoted = 'it''s'`, `quoted = 'it\'s'`, 1)
	got, err := ParseParameters(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []Param{
		{"day", "2026-11-01"}, {"min_delay", int64(45)}, {"ratio", 0.25}, {"big", int64(1000000)},
		{"neg", int64(-7)}, {"sci", 1000.0}, {"flag", true}, {"off", false}, {"nothing", nil},
		{"quoted", "it's"}, {"escaped", "a \"b\" # not a comment\n\té" + "A"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseParameters:\n got %#v\nwant %#v", got, want)
	}
}

func TestParseParametersRefusesCode(t *testing.T) {
	for src, want := range map[string]string{
		"day = today()":            `line 1: day: "today()" is not a literal`,
		"x = 1\nimport os":         `line 2: cannot read "import os"`,
		"a, b = 1, 2":              `line 1: cannot read "a, b = 1, 2"`,
		`s = "open`:                `line 1: unterminated string`,
		"n = 99999999999999999999": "out of the 64-bit integer range",
	} {
		if _, err := ParseParameters(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseParameters(%q) = %v, want an error with %q", src, err, want)
		}
	}
}

func TestOverrideTypesLikeTheDefault(t *testing.T) {
	cases := []struct {
		def  Param
		text string
		want any
		err  string
	}{
		{Param{"day", "2026-11-01"}, "2026-11-02", "2026-11-02", ""},
		{Param{"origin", "AMS"}, "O'Hare", "O'Hare", ""},
		{Param{"origin", "AMS"}, "42", "42", ""}, // a string default keeps text as text
		{Param{"n", int64(30)}, "45", int64(45), ""},
		{Param{"n", int64(30)}, "4.5", nil, `-p n=4.5: n is an integer (default 30); "4.5" is not one`},
		{Param{"n", int64(30)}, "abc", nil, `n is an integer`},
		{Param{"x", 0.5}, "2", 2.0, ""},
		{Param{"x", 0.5}, "NaN", nil, "x is a number (default 0.5)"},
		{Param{"b", true}, "FALSE", false, ""},
		{Param{"b", true}, "yes", nil, "b is a boolean (default True)"},
		{Param{"v", nil}, "12", int64(12), ""},
		{Param{"v", nil}, "1.5", 1.5, ""},
		{Param{"v", nil}, "true", true, ""},
		{Param{"v", nil}, "text", "text", ""},
	}
	for _, c := range cases {
		got, err := c.def.Override(c.text)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s.Override(%q) = %v, %v; want error %q", c.def.Name, c.text, got.Value, err, c.err)
			}
			continue
		}
		if err != nil || got.Value != c.want || got.Name != c.def.Name {
			t.Errorf("%s.Override(%q) = %#v, %v; want %#v", c.def.Name, c.text, got, err, c.want)
		}
	}
}

func TestApplyOverrides(t *testing.T) {
	defaults := []Param{{"day", "2026-11-01"}, {"min_delay", int64(30)}}
	all, injected, err := ApplyOverrides(defaults, map[string]string{"min_delay": "45"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Param{{"day", "2026-11-01"}, {"min_delay", int64(45)}}; !reflect.DeepEqual(all, want) {
		t.Fatalf("all = %v, want %v", all, want)
	}
	if want := []Param{{"min_delay", int64(45)}}; !reflect.DeepEqual(injected, want) {
		t.Fatalf("injected = %v, want %v", injected, want)
	}
	if defaults[1].Value != int64(30) {
		t.Fatal("ApplyOverrides changed the defaults")
	}
	_, _, err = ApplyOverrides(defaults, map[string]string{"dya": "x"})
	if err == nil || err.Error() != "-p dya: the notebook has no parameter dya (its parameters: day, min_delay)" {
		t.Fatalf("unknown parameter: %v", err)
	}
	_, _, err = ApplyOverrides(nil, map[string]string{"day": "x"})
	if err == nil || !strings.Contains(err.Error(), `no cell tagged "parameters"`) {
		t.Fatalf("no parameters cell: %v", err)
	}
}

// TestInjectedSourceReadsBack checks that the injected cell's Python gives
// the same typed values when read again, as it must for the executed
// notebook to re-run with the same parameters.
func TestInjectedSourceReadsBack(t *testing.T) {
	params := []Param{
		{"s", `quote " backslash \ newline` + "\n tab\t cr\r nul\x00 del\x7f é 😀"},
		{"q", "x' OR '1'='1"},
		{"n", int64(-9223372036854775808)},
		{"f", 3.0},
		{"g", 1e300},
		{"h", -0.000123},
		{"t", true},
		{"z", nil},
	}
	src := injectedSource(params)
	if !strings.HasPrefix(src, "# Parameters\n") {
		t.Fatalf("injected source %q", src)
	}
	got, err := ParseParameters(src)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if !reflect.DeepEqual(got, params) {
		t.Fatalf("read back:\n got %#v\nwant %#v\nsource:\n%s", got, params, src)
	}
}

func FuzzParseParameters(f *testing.F) {
	f.Add("day = \"2026-11-01\"\nn = 3 # c\n")
	f.Add("x: int = -1_0\ny = 'a\\'b'")
	f.Fuzz(func(t *testing.T, src string) {
		params, err := ParseParameters(src)
		if err != nil {
			return
		}
		// Whatever reads must write back to the same values.
		again, err := ParseParameters(injectedSource(params))
		if err != nil {
			t.Fatalf("re-read of %q: %v", src, err)
		}
		if !reflect.DeepEqual(again, params) {
			t.Fatalf("round trip of %q: %#v != %#v", src, again, params)
		}
	})
}
