package objstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newFS(t *testing.T) (*Filesystem, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bucket")
	b, err := NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func TestFilesystemAcceptance(t *testing.T) {
	b, _ := newFS(t)
	AcceptanceTest(t, b)
}

func TestFilesystemAcceptanceNonEmptyBucket(t *testing.T) {
	b, _ := newFS(t)
	for _, n := range []string{"a", "objstore-acceptance-0/x", "z/z"} {
		mustUpload(t, b, n, []byte(n))
	}
	AcceptanceTest(t, b)
	if got := iterNames(t, b, ""); !slices.Equal(got, []string{"a", "objstore-acceptance-0/x", "z/z"}) {
		t.Fatalf("AcceptanceTest touched other objects or left its own: %v", got)
	}
}

func TestFilesystemLayoutAndLocalPath(t *testing.T) {
	b, dir := newFS(t)
	mustUpload(t, b, "raw/clicks/dt=2025-03-14/0-100.parquet", []byte("PAR1"))
	p, err := b.LocalPath("raw/clicks/dt=2025-03-14/0-100.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "raw", "clicks", "dt=2025-03-14", "0-100.parquet"); p != want {
		t.Fatalf("LocalPath = %s, want %s", p, want)
	}
	if data, err := os.ReadFile(p); err != nil || string(data) != "PAR1" {
		t.Fatalf("reading LocalPath = %q, %v", data, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("object file mode = %v, %v; want 0644", fi.Mode(), err)
	}
	if _, err := b.LocalPath("raw/clicks"); !IsObjNotFoundErr(err) {
		t.Errorf("LocalPath(prefix) = %v, want not found", err)
	}
	if _, err := b.LocalPath("missing"); !IsObjNotFoundErr(err) {
		t.Errorf("LocalPath(missing) = %v, want not found", err)
	}
	if _, err := b.LocalPath("../etc/passwd"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("LocalPath(../etc/passwd) = %v, want ErrInvalidName", err)
	}
	if !strings.Contains(b.Name(), dir) {
		t.Errorf("Name() = %q, want it to mention %s", b.Name(), dir)
	}

	// Deleting the last object under a prefix removes the emptied directories
	// but never the bucket's own.
	if err := b.Delete(t.Context(), "raw/clicks/dt=2025-03-14/0-100.parquet"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("bucket dir after deleting its only object: %v, %v; want empty and present", entries, err)
	}
}

func TestFilesystemIgnoresTempFiles(t *testing.T) {
	b, dir := newFS(t)
	mustUpload(t, b, "d/obj", []byte("x"))
	// A crashed upload leaves a temporary file behind; it is not an object.
	if err := os.WriteFile(filepath.Join(dir, "d", tempPrefix+"123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := iterNames(t, b, ""); !slices.Equal(got, []string{"d/obj"}) {
		t.Fatalf("Iter = %v, want only d/obj", got)
	}
}

func TestFilesystemNameConflicts(t *testing.T) {
	b, _ := newFS(t)
	mustUpload(t, b, "a", []byte("file"))
	err := b.Upload(t.Context(), "a/b", strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "cannot also be a prefix") {
		t.Errorf("Upload(a/b) over object a = %v, want a name-conflict error", err)
	}
	mustUpload(t, b, "p/q", []byte("x"))
	err = b.Upload(t.Context(), "p", strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "is a prefix of other objects") {
		t.Errorf("Upload(p) over prefix p/ = %v, want a name-conflict error", err)
	}
	if got := iterNames(t, b, ""); !slices.Equal(got, []string{"a", "p/q"}) {
		t.Fatalf("failed uploads left files: %v", got)
	}
}

func TestNewFilesystemErrors(t *testing.T) {
	if _, err := NewFilesystem(""); err == nil {
		t.Error("NewFilesystem(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFilesystem(f); err == nil {
		t.Error("NewFilesystem(a regular file) succeeded")
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "raw/ds/dt=2025-01-01/0-10.parquet", "..a", "a..", ".x/y"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "/", "/a", "a/", "a//b", "a/../b", "./a", `a\b`} {
		err := ValidateName(bad)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), ": ") {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName with a reason", bad, err)
		}
	}
}
