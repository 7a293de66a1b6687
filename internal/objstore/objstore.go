// Package objstore is duet's object storage: one small bucket interface,
// modelled on thanos-io/objstore, with a local-directory implementation (the
// embedded default) and an acceptance test every implementation must pass.
//
// Objects are whole and immutable once uploaded: an upload replaces an
// object atomically, so a reader sees the old bytes or the new bytes, never a
// mix. Object names are slash-separated paths relative to the bucket root.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Sentinel errors, wrapped with the object name; test with errors.Is.
var (
	// ErrNotFound: no object has that name.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidName: the name cannot name an object (see ValidateName).
	ErrInvalidName = errors.New("invalid object name")
)

// IsObjNotFoundErr reports whether err means the object does not exist.
func IsObjNotFoundErr(err error) bool { return errors.Is(err, ErrNotFound) }

// Attributes describe a stored object.
type Attributes struct {
	Size         int64
	LastModified time.Time
}

// Bucket is a flat namespace of objects.
type Bucket interface {
	// Upload stores the reader's bytes under name, replacing any object
	// there. It is atomic: until it returns nil, readers see the previous
	// object (or none), and a failed upload leaves no trace.
	Upload(ctx context.Context, name string, r io.Reader) error
	// Get opens an object for reading; ErrNotFound if it does not exist.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Exists reports whether an object exists.
	Exists(ctx context.Context, name string) (bool, error)
	// Attributes returns an object's size and modification time; ErrNotFound
	// if it does not exist.
	Attributes(ctx context.Context, name string) (Attributes, error)
	// Iter calls fn with the name of every object whose name starts with
	// prefix (a plain string prefix, as in S3), recursively and in lexical
	// order. An error from fn stops the iteration and is returned.
	Iter(ctx context.Context, prefix string, fn func(name string) error) error
	// Delete removes an object; ErrNotFound if it does not exist.
	Delete(ctx context.Context, name string) error
	// Name describes the bucket for logs and errors.
	Name() string
}

// LocalReader is implemented by buckets whose objects the engine (DuckDB) can
// read in place as local files; serving reads through it instead of copying.
type LocalReader interface {
	// LocalPath returns the local file holding the object; ErrNotFound if it
	// does not exist. The file must be treated as read-only.
	LocalPath(name string) (string, error)
}

// maxNameLen is S3's limit on key length, so names valid here are valid there.
const maxNameLen = 1024

// tempPrefix starts the names of in-progress uploads in the filesystem
// bucket. Object names cannot contain a segment with it, so a temporary file
// never collides with or lists as an object.
const tempPrefix = ".objstore-tmp-"

// ValidateName checks that name can name an object: slash-separated
// segments with no leading or trailing slash and no empty, "." or ".."
// segment. Names become file paths, so anything that could escape the
// bucket's directory or mean different files on different systems is refused.
func ValidateName(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, name, err)
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("name is longer than %d bytes", maxNameLen)
	case strings.HasPrefix(name, "/"):
		return errors.New("remove the leading '/': names are relative to the bucket root")
	case strings.HasSuffix(name, "/"):
		return errors.New("remove the trailing '/': a name ending in '/' is a prefix, not an object")
	case strings.ContainsRune(name, '\\'):
		return errors.New("use '/' to separate segments, not '\\'")
	case strings.ContainsRune(name, 0):
		return errors.New("names cannot contain NUL bytes")
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return errors.New("empty segment ('//'): remove the doubled slash")
		case seg == "." || seg == "..":
			return fmt.Errorf("%q segment: names cannot contain '.' or '..' segments", seg)
		case strings.HasPrefix(seg, tempPrefix):
			return fmt.Errorf("segments starting with %q are reserved for uploads in progress", tempPrefix)
		}
	}
	return nil
}

// validatePrefix checks an Iter prefix: "" (everything) or the beginning of
// a name, which may end with '/' or part-way through a segment. Only the
// complete segments name directories, so only they must be clean.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("%w: prefix %q: remove the leading '/': names are relative to the bucket root", ErrInvalidName, prefix)
	}
	if strings.ContainsAny(prefix, "\\\x00") {
		return fmt.Errorf("%w: prefix %q: use '/' to separate segments; NUL bytes are not allowed", ErrInvalidName, prefix)
	}
	if dir := prefixDir(prefix); dir != "" {
		if err := checkName(dir); err != nil {
			return fmt.Errorf("%w: prefix %q: %s", ErrInvalidName, prefix, err)
		}
	}
	return nil
}

// prefixDir is the part of prefix made of complete segments: "a/b" for
// "a/b/c" and for "a/b/", "" for "a".
func prefixDir(prefix string) string {
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		return prefix[:i]
	}
	return ""
}
