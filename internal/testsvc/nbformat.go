package testsvc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NbformatEnv names a Python interpreter that can import nbformat, to use
// instead of /usr/bin/python3 or python3 on PATH.
const NbformatEnv = "DUET_TEST_NBFORMAT_PYTHON"

// NbformatInstall is how to get Jupyter's reference notebook validator.
const NbformatInstall = "apt-get install python3-nbformat"

// nbformatCheck validates each notebook named on the command line with
// nbformat's own validator, against the nbformat 4 schema of the notebook's
// minor version, with no silent repair of duplicate cell ids.
const nbformatCheck = `
import json, sys, warnings
warnings.simplefilter("ignore")
import nbformat
failed = False
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
        if nb.get("nbformat") != 4:
            raise ValueError("nbformat %r, want 4" % nb.get("nbformat"))
        nbformat.validate(nb, repair_duplicate_cell_ids=False)
    except Exception as e:
        failed = True
        print("%s: %s" % (path, str(e).splitlines()[0] if str(e) else type(e).__name__))
        print("  " + str(e).replace("\n", "\n  "))
sys.exit(1 if failed else 0)
`

// ValidateNotebooks checks notebook files against the nbformat 4 JSON schema
// with Jupyter's reference implementation (the nbformat Python package,
// which ships the official schema), failing the test with its message for
// each invalid one. It calls Missing when no Python can import nbformat.
func ValidateNotebooks(t testing.TB, paths ...string) {
	t.Helper()
	python := nbformatPython()
	if python == "" {
		Missing(t, "Python with the nbformat package (Jupyter's notebook validator)", NbformatInstall)
	}
	script := filepath.Join(t.TempDir(), "nbcheck.py")
	if err := os.WriteFile(script, []byte(nbformatCheck), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, append([]string{script}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("not valid nbformat 4 (checked by %s with nbformat): %v\n%s", python, err, out)
	}
}

func nbformatPython() string {
	candidates := []string{os.Getenv(NbformatEnv), "/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		out, err := exec.Command(p, "-c", "import nbformat; print(nbformat.__version__)").Output()
		if err == nil && strings.TrimSpace(string(out)) != "" {
			return p
		}
	}
	return ""
}
