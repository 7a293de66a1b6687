package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/duet-analytics/duet/internal/durable"
)

// Filesystem is a bucket in a local directory: object "a/b" is the file
// <dir>/a/b. Unlike S3, a name cannot be both an object and a prefix of other
// objects ("a" and "a/b"), since "a" cannot be both a file and a directory.
type Filesystem struct {
	root string
}

var (
	_ Bucket      = (*Filesystem)(nil)
	_ LocalReader = (*Filesystem)(nil)
)

// NewFilesystem returns a bucket storing objects under dir, creating dir if needed.
func NewFilesystem(dir string) (*Filesystem, error) {
	if dir == "" {
		return nil, errors.New("filesystem bucket: directory is empty: give the directory to store objects in")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filesystem bucket %s: %w", dir, err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem bucket %s: %w", dir, err)
	}
	return &Filesystem{root: root}, nil
}

// Name describes the bucket.
func (b *Filesystem) Name() string { return "fs: " + b.root }

func (b *Filesystem) path(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// Upload writes the object to a temporary file in its final directory, syncs
// it, renames it over the name and syncs the directory: after a crash the
// name holds the old object or the whole new one.
func (b *Filesystem) Upload(ctx context.Context, name string, r io.Reader) (err error) {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	f, err := b.createTemp(dir)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, b.explainConflict(name, err))
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("upload %s: write: %w", name, err)
	}
	// CreateTemp makes files 0600; objects should read like any other file.
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("upload %s: sync: %w", name, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("upload %s: close: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("upload %s: %w", name, b.explainConflict(name, err))
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

// createTemp creates a temporary file in dir, creating dir first. Delete
// removes directories that become empty, possibly between our mkdir and
// create, so a vanished directory is retried.
func (b *Filesystem) createTemp(dir string) (*os.File, error) {
	var err error
	for range 10 {
		if err = b.mkdirAll(dir); err != nil {
			return nil, err
		}
		var f *os.File
		f, err = os.CreateTemp(dir, tempPrefix+"*")
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

// mkdirAll creates dir and its missing parents, syncing each new directory's
// parent so the new entries survive a crash along with the object.
func (b *Filesystem) mkdirAll(dir string) error {
	var missing []string
	for d := dir; d != b.root && len(d) > len(b.root); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: d, Err: syscall.ENOTDIR}
			}
			break
		}
		if !isNotExist(err) {
			return err
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := durable.SyncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// explainConflict turns the errors of a name clashing with the directory
// layout into an error that says which names clash.
func (b *Filesystem) explainConflict(name string, err error) error {
	if errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("a leading part of %q is an object, so %q cannot also be a prefix: %w", name, name, err)
	}
	// os.Rename reports a directory in the way as EEXIST; rename(2) as EISDIR.
	if errors.Is(err, syscall.EISDIR) || errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%q is a prefix of other objects, so it cannot also be an object in a filesystem bucket: %w", name, err)
	}
	return err
}

// Get opens the object. The returned file keeps the bytes it opened even if
// the object is replaced or deleted meanwhile.
func (b *Filesystem) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	f, err := os.Open(p)
	if isNotExist(err) {
		return nil, fmt.Errorf("get %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", name, ErrNotFound)
	}
	return f, nil
}

// stat returns the file info of an object, ErrNotFound for anything that is
// not a regular file (a directory is a prefix, not an object).
func (b *Filesystem) stat(op, name string) (string, fs.FileInfo, error) {
	p, err := b.path(name)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Stat(p)
	if isNotExist(err) || (err == nil && !fi.Mode().IsRegular()) {
		return "", nil, fmt.Errorf("%s %s: %w", op, name, ErrNotFound)
	}
	if err != nil {
		return "", nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	return p, fi, nil
}

// Exists reports whether the object exists.
func (b *Filesystem) Exists(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("exists %s: %w", name, err)
	}
	_, _, err := b.stat("exists", name)
	if IsObjNotFoundErr(err) {
		return false, nil
	}
	return err == nil, err
}

// Attributes returns the object's size and modification time.
func (b *Filesystem) Attributes(ctx context.Context, name string) (Attributes, error) {
	if err := ctx.Err(); err != nil {
		return Attributes{}, fmt.Errorf("attributes %s: %w", name, err)
	}
	_, fi, err := b.stat("attributes", name)
	if err != nil {
		return Attributes{}, err
	}
	return Attributes{Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// LocalPath returns the file holding the object.
func (b *Filesystem) LocalPath(name string) (string, error) {
	p, _, err := b.stat("local path", name)
	return p, err
}

// Delete removes the object, then the directories its removal left empty, so
// the tree holds no litter of empty prefixes.
func (b *Filesystem) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	p, _, err := b.stat("delete", name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("delete %s: %w", name, ErrNotFound)
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	dir := filepath.Dir(p)
	if err := durable.SyncDir(dir); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	for d := dir; d != b.root && len(d) > len(b.root); d = filepath.Dir(d) {
		// Fails harmlessly (ENOTEMPTY) once a directory still holds
		// something, including a concurrent upload's temporary file.
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// Iter walks the directories under prefix in an order that yields names in
// lexical order: in each directory, a subdirectory sorts as its name plus
// '/', which is exactly where the names inside it sort among its siblings.
func (b *Filesystem) Iter(ctx context.Context, prefix string, fn func(name string) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	dir := prefixDir(prefix)
	if err := b.walk(ctx, filepath.Join(b.root, filepath.FromSlash(dir)), dir, prefix, fn); err != nil {
		return fmt.Errorf("iter %q: %w", prefix, err)
	}
	return nil
}

func (b *Filesystem) walk(ctx context.Context, dir, rel, prefix string, fn func(string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if isNotExist(err) {
		return nil // nothing under this prefix, or it was deleted while we walked
	}
	if err != nil {
		return err
	}
	type entry struct {
		name, key string
		dir       bool
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), tempPrefix):
		case e.IsDir():
			list = append(list, entry{name: e.Name(), key: e.Name() + "/", dir: true})
		case e.Type().IsRegular():
			list = append(list, entry{name: e.Name(), key: e.Name()})
		}
	}
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, e := range list {
		name := e.name
		if rel != "" {
			name = rel + "/" + e.name
		}
		if e.dir {
			// Descend only where names can match: the directory is inside
			// the prefix, or the prefix continues inside the directory.
			if sub := name + "/"; strings.HasPrefix(sub, prefix) || strings.HasPrefix(prefix, sub) {
				if err := b.walk(ctx, filepath.Join(dir, e.name), name, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if strings.HasPrefix(name, prefix) {
			if err := fn(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// ctxReader stops a long copy once the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
