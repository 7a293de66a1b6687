package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// AcceptanceTest checks that bkt keeps the Bucket contract. Every
// implementation runs it (the filesystem bucket here, S3/MinIO where they are
// tested). It works in a prefix of its own, so bkt need not be empty, and
// removes what it uploaded.
func AcceptanceTest(t *testing.T, bkt Bucket) {
	t.Helper()
	if bkt.Name() == "" {
		t.Error("Name() is empty")
	}
	root := fmt.Sprintf("objstore-acceptance-%d/", time.Now().UnixNano())
	defer removeAll(t, bkt, root) // subtests return even when they fail

	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, bkt, root+"roundtrip/") })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, bkt, root+"overwrite/") })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, bkt, root+"notfound/") })
	t.Run("Iter", func(t *testing.T) { testIter(t, bkt, root+"iter/") })
	t.Run("Delete", func(t *testing.T) { testDelete(t, bkt, root+"delete/") })
	t.Run("InvalidNames", func(t *testing.T) { testInvalidNames(t, bkt, root+"invalid/") })
	t.Run("FailedUpload", func(t *testing.T) { testFailedUpload(t, bkt, root+"failed/") })
	t.Run("ConcurrentUploads", func(t *testing.T) { testConcurrentUploads(t, bkt, root+"concurrent/") })
}

func removeAll(t *testing.T, bkt Bucket, prefix string) {
	var names []string
	if err := bkt.Iter(context.Background(), prefix, func(name string) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Errorf("cleanup: iter %s: %v", prefix, err)
		return
	}
	for _, n := range names {
		if err := bkt.Delete(context.Background(), n); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if left := iterNames(t, bkt, prefix); len(left) != 0 {
		t.Errorf("cleanup: objects remain after deleting all under %s: %v", prefix, left)
	}
}

func mustUpload(t *testing.T, bkt Bucket, name string, data []byte) {
	t.Helper()
	if err := bkt.Upload(t.Context(), name, bytes.NewReader(data)); err != nil {
		t.Fatalf("Upload(%s): %v", name, err)
	}
}

func mustGet(t *testing.T, bkt Bucket, name string) []byte {
	t.Helper()
	rc, err := bkt.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): read: %v", name, err)
	}
	return data
}

func iterNames(t *testing.T, bkt Bucket, prefix string) []string {
	t.Helper()
	var names []string
	if err := bkt.Iter(t.Context(), prefix, func(name string) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatalf("Iter(%q): %v", prefix, err)
	}
	return names
}

// checkLocal checks, for buckets that are LocalReaders, that LocalPath gives
// a file holding want, or not found when want is nil.
func checkLocal(t *testing.T, bkt Bucket, name string, want []byte) {
	t.Helper()
	lr, ok := bkt.(LocalReader)
	if !ok {
		return
	}
	p, err := lr.LocalPath(name)
	if want == nil {
		if !IsObjNotFoundErr(err) {
			t.Errorf("LocalPath(%s) = %q, %v; want not found", name, p, err)
		}
		return
	}
	if err != nil {
		t.Errorf("LocalPath(%s): %v", name, err)
		return
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("LocalPath(%s) file holds %d bytes (%v) that differ from the %d uploaded", name, len(got), err, len(want))
	}
}

// pattern is n bytes that differ from any other seed's at every position.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)*7
	}
	return b
}

func testRoundTrip(t *testing.T, bkt Bucket, dir string) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{dir + "small.txt", []byte("hello, duet\n")},
		{dir + "empty", nil},
		{dir + "deep/er/than/that/binary.parquet", pattern(3, 3<<20+17)},
		{dir + "dt=2025-03-14/0-100.parquet", []byte{0, 1, 2, 0xff, '\n', 0}},
	} {
		start := time.Now()
		mustUpload(t, bkt, tc.name, tc.data)
		end := time.Now()
		if got := mustGet(t, bkt, tc.name); !bytes.Equal(got, tc.data) {
			t.Errorf("Get(%s) returned %d bytes that differ from the %d uploaded", tc.name, len(got), len(tc.data))
		}
		checkLocal(t, bkt, tc.name, append([]byte{}, tc.data...))
		ok, err := bkt.Exists(t.Context(), tc.name)
		if err != nil || !ok {
			t.Errorf("Exists(%s) = %v, %v; want true", tc.name, ok, err)
		}
		attrs, err := bkt.Attributes(t.Context(), tc.name)
		if err != nil {
			t.Fatalf("Attributes(%s): %v", tc.name, err)
		}
		if attrs.Size != int64(len(tc.data)) {
			t.Errorf("Attributes(%s).Size = %d, want %d", tc.name, attrs.Size, len(tc.data))
		}
		// Object stores keep whole seconds; allow for that and a little clock skew.
		if lm := attrs.LastModified; lm.Before(start.Add(-5*time.Second)) || lm.After(end.Add(5*time.Second)) {
			t.Errorf("Attributes(%s).LastModified = %v, want between %v and %v", tc.name, lm, start, end)
		}
	}
}

func testOverwrite(t *testing.T, bkt Bucket, dir string) {
	name := dir + "obj"
	mustUpload(t, bkt, name, []byte("first version, rather long"))
	mustUpload(t, bkt, name, []byte("second"))
	if got := mustGet(t, bkt, name); string(got) != "second" {
		t.Fatalf("after overwrite Get = %q, want %q", got, "second")
	}
	checkLocal(t, bkt, name, []byte("second"))
	if attrs, err := bkt.Attributes(t.Context(), name); err != nil || attrs.Size != int64(len("second")) {
		t.Fatalf("after overwrite Attributes = %+v, %v; want size %d", attrs, err, len("second"))
	}
	if names := iterNames(t, bkt, dir); !slices.Equal(names, []string{name}) {
		t.Fatalf("after overwrite Iter = %v, want just %s", names, name)
	}
}

func testNotFound(t *testing.T, bkt Bucket, dir string) {
	ctx := t.Context()
	mustUpload(t, bkt, dir+"prefix/child", []byte("x"))
	// A name that is only a prefix of other objects is not an object.
	for _, name := range []string{dir + "missing", dir + "prefix", dir + "prefix/child/below"} {
		if _, err := bkt.Get(ctx, name); !IsObjNotFoundErr(err) {
			t.Errorf("Get(%s) = %v, want not found", name, err)
		}
		if _, err := bkt.Attributes(ctx, name); !IsObjNotFoundErr(err) {
			t.Errorf("Attributes(%s) = %v, want not found", name, err)
		}
		if ok, err := bkt.Exists(ctx, name); ok || err != nil {
			t.Errorf("Exists(%s) = %v, %v; want false, nil", name, ok, err)
		}
		if err := bkt.Delete(ctx, name); !IsObjNotFoundErr(err) {
			t.Errorf("Delete(%s) = %v, want not found", name, err)
		}
		checkLocal(t, bkt, name, nil)
	}
	if got := mustGet(t, bkt, dir+"prefix/child"); string(got) != "x" {
		t.Errorf("a failed Delete of its prefix changed prefix/child: %q", got)
	}
	if IsObjNotFoundErr(errors.New("other")) || IsObjNotFoundErr(nil) {
		t.Error("IsObjNotFoundErr is true for an unrelated error")
	}
}

func testIter(t *testing.T, bkt Bucket, dir string) {
	// In lexical (byte) order, chosen so that listing directory by directory
	// in name order would be wrong: '-' < '.' < '/' < '0', so "a-b" and
	// "a.txt" come before everything in "a/", and "a0" after it.
	rel := []string{
		"a-b", "a.txt", "a/b", "a/c/d", "a/c/e", "a0", "ab", "b/x", "ba", "dt=2025-03-14/1.parquet", "dt=2025-03-15/0.parquet",
	}
	if !slices.IsSorted(rel) {
		t.Fatalf("test bug: names not sorted: %v", rel)
	}
	// Upload in reverse order so the listing order cannot come from upload order.
	for i := len(rel) - 1; i >= 0; i-- {
		mustUpload(t, bkt, dir+rel[i], []byte(rel[i]))
	}

	full := func(names ...string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = dir + n
		}
		return out
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", rel},
		{"a", []string{"a-b", "a.txt", "a/b", "a/c/d", "a/c/e", "a0", "ab"}},
		{"a/", []string{"a/b", "a/c/d", "a/c/e"}},
		{"a/c", []string{"a/c/d", "a/c/e"}},
		{"a/c/", []string{"a/c/d", "a/c/e"}},
		{"a/c/d", []string{"a/c/d"}},
		{"a.", []string{"a.txt"}},
		{"b", []string{"b/x", "ba"}},
		{"dt=2025-03-1", []string{"dt=2025-03-14/1.parquet", "dt=2025-03-15/0.parquet"}},
		{"dt=2025-03-15/", []string{"dt=2025-03-15/0.parquet"}},
		{"zzz", nil},
		{"nothing/here/", nil},
		{"a/b/", nil}, // a/b is an object, not a prefix of one
	} {
		if got := iterNames(t, bkt, dir+tc.prefix); !slices.Equal(got, full(tc.want...)) {
			t.Errorf("Iter(%q) =\n%v\nwant\n%v", dir+tc.prefix, got, full(tc.want...))
		}
	}

	// The whole bucket lists in lexical order and includes ours.
	all := iterNames(t, bkt, "")
	if !slices.IsSorted(all) {
		t.Errorf("Iter(\"\") is not in lexical order: %v", all)
	}
	var ours []string
	for _, n := range all {
		if strings.HasPrefix(n, dir) {
			ours = append(ours, n)
		}
	}
	if !slices.Equal(ours, full(rel...)) {
		t.Errorf("Iter(\"\") lists %v under %s, want %v", ours, dir, full(rel...))
	}

	// An error from fn stops the iteration and comes back.
	stop := errors.New("stop here")
	calls := 0
	err := bkt.Iter(t.Context(), dir, func(string) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Iter with failing fn = %v after %d calls, want %v after 1", err, calls, stop)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := bkt.Iter(ctx, dir, func(string) error { return nil }); err == nil {
		t.Error("Iter with a cancelled context succeeded")
	}
}

func testDelete(t *testing.T, bkt Bucket, dir string) {
	ctx := t.Context()
	mustUpload(t, bkt, dir+"a/b", []byte("1"))
	mustUpload(t, bkt, dir+"a/c/d", []byte("2"))
	mustUpload(t, bkt, dir+"top", []byte("3"))
	if err := bkt.Delete(ctx, dir+"a/c/d"); err != nil {
		t.Fatal(err)
	}
	if ok, err := bkt.Exists(ctx, dir+"a/c/d"); ok || err != nil {
		t.Fatalf("Exists after Delete = %v, %v; want false", ok, err)
	}
	if _, err := bkt.Get(ctx, dir+"a/c/d"); !IsObjNotFoundErr(err) {
		t.Fatalf("Get after Delete = %v, want not found", err)
	}
	checkLocal(t, bkt, dir+"a/c/d", nil)
	if err := bkt.Delete(ctx, dir+"a/c/d"); !IsObjNotFoundErr(err) {
		t.Fatalf("second Delete = %v, want not found", err)
	}
	if got := iterNames(t, bkt, dir); !slices.Equal(got, []string{dir + "a/b", dir + "top"}) {
		t.Fatalf("Iter after Delete = %v, want [a/b top]", got)
	}
	// A name freed by Delete can be uploaded again, even where a prefix emptied.
	mustUpload(t, bkt, dir+"a/c/d", []byte("again"))
	if got := mustGet(t, bkt, dir+"a/c/d"); string(got) != "again" {
		t.Fatalf("Get after re-upload = %q", got)
	}
	for _, n := range []string{"a/b", "a/c/d", "top"} {
		if err := bkt.Delete(ctx, dir+n); err != nil {
			t.Fatal(err)
		}
	}
	if got := iterNames(t, bkt, dir); len(got) != 0 {
		t.Fatalf("Iter after deleting everything = %v", got)
	}
}

func testInvalidNames(t *testing.T, bkt Bucket, dir string) {
	ctx := t.Context()
	bad := []string{
		"", "/abs", dir + "a//b", dir + "../escape", "..", ".", dir + "a/./b", dir + "a/..", dir + "trailing/",
		dir + `back\slash`, dir + "nul\x00byte", dir + tempPrefix + "x", dir + strings.Repeat("x", maxNameLen),
	}
	for _, name := range bad {
		if err := bkt.Upload(ctx, name, strings.NewReader("x")); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Upload(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := bkt.Get(ctx, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Get(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := bkt.Exists(ctx, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Exists(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := bkt.Attributes(ctx, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Attributes(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := bkt.Delete(ctx, name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	for _, prefix := range []string{"/", "/abs", "../", dir + "../x", dir + "a//"} {
		if err := bkt.Iter(ctx, prefix, func(string) error { return nil }); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Iter(%q) = %v, want ErrInvalidName", prefix, err)
		}
	}
	if got := iterNames(t, bkt, dir); len(got) != 0 {
		t.Errorf("rejected names left objects: %v", got)
	}
	// Names that look odd but are valid.
	for _, name := range []string{dir + "..x", dir + ".hidden", dir + "a b/c=d,e+f%20"} {
		mustUpload(t, bkt, name, []byte(name))
		if got := mustGet(t, bkt, name); string(got) != name {
			t.Errorf("Get(%q) = %q", name, got)
		}
	}
}

// failingReader returns n bytes, then an error.
type failingReader struct{ n int }

var errReader = errors.New("reader broke")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errReader
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = 'z'
	}
	r.n -= k
	return k, nil
}

func testFailedUpload(t *testing.T, bkt Bucket, dir string) {
	ctx := t.Context()
	if err := bkt.Upload(ctx, dir+"new", &failingReader{n: 100 << 10}); err == nil {
		t.Fatal("Upload from a failing reader succeeded")
	}
	if ok, err := bkt.Exists(ctx, dir+"new"); ok || err != nil {
		t.Fatalf("a failed upload left an object: %v, %v", ok, err)
	}
	mustUpload(t, bkt, dir+"old", []byte("keep me"))
	if err := bkt.Upload(ctx, dir+"old", &failingReader{n: 100 << 10}); err == nil {
		t.Fatal("Upload from a failing reader succeeded")
	}
	if got := mustGet(t, bkt, dir+"old"); string(got) != "keep me" {
		t.Fatalf("a failed overwrite changed the object to %d bytes", len(got))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := bkt.Upload(cctx, dir+"cancelled", strings.NewReader("x")); err == nil {
		t.Fatal("Upload with a cancelled context succeeded")
	}
	if ok, err := bkt.Exists(ctx, dir+"cancelled"); ok || err != nil {
		t.Fatalf("a cancelled upload left an object: %v, %v", ok, err)
	}
	if got := iterNames(t, bkt, dir); !slices.Equal(got, []string{dir + "old"}) {
		t.Fatalf("Iter after failed uploads = %v, want only %s", got, dir+"old")
	}
}

// testConcurrentUploads: writers race on one name while a reader reads it;
// every read and the final object must be exactly one writer's bytes.
func testConcurrentUploads(t *testing.T, bkt Bucket, dir string) {
	const writers, rounds, size = 6, 3, 512 << 10
	name := dir + "contended"
	payloads := make([][]byte, writers)
	for i := range payloads {
		payloads[i] = pattern(byte(i*37+1), size)
	}
	whole := func(data []byte) bool {
		for _, p := range payloads {
			if bytes.Equal(data, p) {
				return true
			}
		}
		return false
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		done    = make(chan struct{})
		readers sync.WaitGroup
		reads   int
	)
	fail := func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			rc, err := bkt.Get(t.Context(), name)
			if IsObjNotFoundErr(err) {
				continue
			}
			if err != nil {
				fail(err)
				return
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				fail(err)
				return
			}
			if !whole(data) {
				fail(fmt.Errorf("a reader saw %d bytes that are not one whole upload", len(data)))
				return
			}
			mu.Lock()
			reads++
			mu.Unlock()
		}
	})
	for i := range writers {
		wg.Go(func() {
			for range rounds {
				if err := bkt.Upload(t.Context(), name, bytes.NewReader(payloads[i])); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, bkt, name); !whole(got) {
		t.Fatalf("after concurrent uploads the object is %d bytes that are not one whole upload", len(got))
	}
	if got := iterNames(t, bkt, dir); !slices.Equal(got, []string{name}) {
		t.Fatalf("after concurrent uploads Iter = %v, want only %s", got, name)
	}
	t.Logf("%d whole reads during %d uploads", reads, writers*rounds)
}
