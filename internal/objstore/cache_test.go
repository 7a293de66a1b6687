package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/internal/testsvc"
)

// countingBucket counts Gets of a real bucket and can hold them at a gate
// until the test opens it.
type countingBucket struct {
	objstore.Bucket
	gets atomic.Int64
	mu   sync.Mutex
	gate chan struct{} // while set, Gets wait for it to close
}

// Get opens the object, then waits at the gate if there is one: a slow
// download of the bytes the object had when it started.
func (c *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	c.gets.Add(1)
	rc, err := c.Bucket.Get(ctx, name)
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			if rc != nil {
				rc.Close()
			}
			return nil, ctx.Err()
		}
	}
	return rc, err
}

func (c *countingBucket) hold() (open func()) {
	gate := make(chan struct{})
	c.mu.Lock()
	c.gate = gate
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.gate = nil
		c.mu.Unlock()
		close(gate)
	}
}

func newCounting(t *testing.T) *countingBucket {
	t.Helper()
	fsb, err := objstore.NewFilesystem(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	return &countingBucket{Bucket: fsb}
}

func newCache(t *testing.T, inner objstore.Bucket, cfg objstore.CacheConfig) *objstore.Cache {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "cache")
	}
	c, err := objstore.NewCache(inner, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// clock is a settable time for Hold.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func localPath(t *testing.T, c *objstore.Cache, name string, want []byte) string {
	t.Helper()
	p, err := c.LocalPath(name)
	if err != nil {
		t.Fatalf("LocalPath(%s): %v", name, err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("LocalPath(%s) file holds %d bytes (%v) that differ from the object's %d", name, len(got), err, len(want))
	}
	return p
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

func TestCacheAcceptance(t *testing.T) {
	t.Run("Filesystem", func(t *testing.T) {
		inner := newCounting(t)
		objstore.AcceptanceTest(t, newCache(t, inner, objstore.CacheConfig{MaxBytes: 64 << 20}))
	})
	t.Run("FilesystemTinyCache", func(t *testing.T) {
		// Everything is larger than the cache and nothing is held: every
		// file is evicted as soon as the next one comes.
		inner := newCounting(t)
		c := newCache(t, inner, objstore.CacheConfig{MaxBytes: 1 << 10, Hold: -1})
		objstore.AcceptanceTest(t, c)
		if s := c.Stats(); s.Evictions == 0 {
			t.Errorf("Stats = %+v, want evictions", s)
		}
	})
	t.Run("S3", func(t *testing.T) {
		m := testsvc.StartMinIO(t)
		s3 := newS3(t, m.Bucket(t, "cached"), nil)
		c := newCache(t, s3, objstore.CacheConfig{MaxBytes: 64 << 20})
		objstore.AcceptanceTest(t, c)
		if !strings.Contains(c.Name(), "over s3: s3://cached/") {
			t.Errorf("Name() = %q, want it to name the cache and the bucket", c.Name())
		}
	})
}

func TestCacheLRU(t *testing.T) {
	inner := newCounting(t)
	c := newCache(t, inner, objstore.CacheConfig{MaxBytes: 250, Hold: -1})
	objs := map[string][]byte{"a": data(1, 100), "b": data(2, 100), "c": data(3, 100), "d": data(4, 100)}
	for n, d := range objs {
		put(t, inner.Bucket, n, bytes.NewReader(d)) // behind the cache's back: nothing cached
	}
	paths := map[string]string{}
	step := func(name string) {
		t.Helper()
		paths[name] = localPath(t, c, name, objs[name])
		if s := c.Stats(); s.Bytes > 250 {
			t.Fatalf("after LocalPath(%s) the cache holds %d bytes, over MaxBytes 250", name, s.Bytes)
		}
	}
	step("a")
	step("b")
	step("a") // a is now more recent than b
	step("c") // 300 > 250: evicts the least recently used, b
	if exists(paths["b"]) || !exists(paths["a"]) || !exists(paths["c"]) {
		t.Fatalf("evicted the wrong entry: a %v, b %v, c %v", exists(paths["a"]), exists(paths["b"]), exists(paths["c"]))
	}
	step("d") // evicts a (c and d are newer)
	if exists(paths["a"]) || !exists(paths["c"]) || !exists(paths["d"]) {
		t.Fatalf("evicted the wrong entry: a %v, c %v, d %v", exists(paths["a"]), exists(paths["c"]), exists(paths["d"]))
	}
	s := c.Stats()
	if s.Entries != 2 || s.Bytes != 200 || s.Evictions != 2 || s.Hits != 1 || s.Misses != 4 {
		t.Errorf("Stats = %+v, want 2 entries, 200 bytes, 2 evictions, 1 hit, 4 misses", s)
	}
	if g := inner.gets.Load(); g != 4 {
		t.Errorf("inner Gets = %d, want 4 (one per miss)", g)
	}
	step("b") // downloaded again
	if g := inner.gets.Load(); g != 5 {
		t.Errorf("inner Gets = %d after re-reading an evicted object, want 5", g)
	}
}

func TestCacheHold(t *testing.T) {
	inner := newCounting(t)
	clk := &clock{now: time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)}
	c := newCache(t, inner, objstore.CacheConfig{MaxBytes: 250, Hold: time.Minute, Now: clk.Now})
	objs := map[string][]byte{"a": data(1, 100), "b": data(2, 100), "c": data(3, 100), "d": data(4, 100), "big": data(5, 400)}
	for n, d := range objs {
		put(t, inner.Bucket, n, bytes.NewReader(d))
	}
	pa := localPath(t, c, "a", objs["a"])
	pb := localPath(t, c, "b", objs["b"])
	clk.Advance(10 * time.Second)
	pc := localPath(t, c, "c", objs["c"])
	// All three are within the hold: the cache goes over its bound rather
	// than remove a file just handed out.
	if s := c.Stats(); s.Bytes != 300 || s.Evictions != 0 || !exists(pa) || !exists(pb) || !exists(pc) {
		t.Fatalf("held entries were evicted: %+v", s)
	}
	clk.Advance(55 * time.Second) // a and b are out of their hold, c is not
	localPath(t, c, "c", objs["c"])
	if s := c.Stats(); s.Bytes != 200 || s.Evictions != 1 || exists(pa) || !exists(pb) {
		t.Fatalf("after the hold of a ended: %+v, a present %v, b present %v; want a evicted", s, exists(pa), exists(pb))
	}
	localPath(t, c, "b", objs["b"])

	// An object larger than the cache is served and held, then evicted
	// first: before c, although c was used earlier.
	clk.Advance(time.Second)
	pbig := localPath(t, c, "big", objs["big"])
	if s := c.Stats(); s.Bytes != 600 || s.Evictions != 1 || !exists(pbig) {
		t.Fatalf("oversized object: %+v, present %v; want all held", s, exists(pbig))
	}
	clk.Advance(2 * time.Minute)
	localPath(t, c, "b", objs["b"])
	if s := c.Stats(); exists(pbig) || !exists(pb) || !exists(pc) || s.Bytes != 200 || s.Evictions != 2 {
		t.Fatalf("after the hold of big ended: %+v, big present %v, c present %v; want only big evicted", s, exists(pbig), exists(pc))
	}
}

func TestCacheSingleflight(t *testing.T) {
	inner := newCounting(t)
	obj := data(6, 1<<20)
	put(t, inner.Bucket, "shared", bytes.NewReader(obj))
	c := newCache(t, inner, objstore.CacheConfig{MaxBytes: 64 << 20})

	const callers = 8
	open := inner.hold()
	paths := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { paths[i], errs[i] = c.LocalPath("shared") })
	}
	// Every caller has counted its miss before waiting on the download.
	for deadline := time.Now().Add(10 * time.Second); c.Stats().Misses < callers; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			open()
			wg.Wait()
			t.Fatalf("only %d of %d callers got to the cache", c.Stats().Misses, callers)
		}
	}
	open()
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("caller %d: %q, %v; want %q", i, paths[i], errs[i], paths[0])
		}
	}
	localPath(t, c, "shared", obj)
	if g := inner.gets.Load(); g != 1 {
		t.Errorf("%d concurrent misses made %d downloads, want 1", callers, g)
	}
}

func TestCacheWriteThroughAndDelete(t *testing.T) {
	inner := newCounting(t)
	c := newCache(t, inner, objstore.CacheConfig{MaxBytes: 64 << 20})
	obj := data(7, 200<<10)
	put(t, c, "raw/ds/dt=2025-03-14/0-100.parquet", onlyReader{bytes.NewReader(obj)})
	p := localPath(t, c, "raw/ds/dt=2025-03-14/0-100.parquet", obj)
	if !strings.HasSuffix(p, "-0-100.parquet") {
		t.Errorf("cached file %s does not keep the object's base name", p)
	}
	if rel, err := filepath.Rel(filepath.Dir(filepath.Dir(p)), p); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("cached file %s is outside the cache directory", p)
	}
	if g, s := inner.gets.Load(), c.Stats(); g != 0 || s.Hits != 1 || s.Misses != 0 || s.Bytes != int64(len(obj)) {
		t.Errorf("after a write-through upload LocalPath made %d inner Gets, stats %+v; want a hit", g, s)
	}
	if got := get(t, inner.Bucket, "raw/ds/dt=2025-03-14/0-100.parquet"); !bytes.Equal(got, obj) {
		t.Error("the inner bucket holds different bytes")
	}
	if err := c.Delete(t.Context(), "raw/ds/dt=2025-03-14/0-100.parquet"); err != nil {
		t.Fatal(err)
	}
	if exists(p) {
		t.Error("Delete left the cached file")
	}
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("after Delete Stats = %+v, want empty", s)
	}
	if _, err := c.LocalPath("raw/ds/dt=2025-03-14/0-100.parquet"); !objstore.IsObjNotFoundErr(err) {
		t.Errorf("LocalPath after Delete = %v, want not found", err)
	}
	// A failed upload keeps the cached copy of the object it did not replace.
	put(t, c, "kept", strings.NewReader("kept"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Upload(ctx, "kept", strings.NewReader("never")); err == nil {
		t.Fatal("Upload with a cancelled context succeeded")
	}
	localPath(t, c, "kept", []byte("kept"))
	if entries, err := os.ReadDir(filepath.Dir(localPath(t, c, "kept", []byte("kept")))); err != nil || len(entries) != 1 {
		t.Errorf("a failed upload left files in the cache: %v, %v", entries, err)
	}
}

// TestCacheDownloadRacesUpload: a download of the old bytes that finishes
// after an upload of new ones through the cache must not replace them.
func TestCacheDownloadRacesUpload(t *testing.T) {
	inner := newCounting(t)
	put(t, inner.Bucket, "obj", strings.NewReader("old"))
	c := newCache(t, inner, objstore.CacheConfig{MaxBytes: 1 << 20})
	open := inner.hold()
	done := make(chan error, 1)
	var p string
	go func() {
		var err error
		p, err = c.LocalPath("obj")
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); inner.gets.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			open()
			t.Fatal("the download never started")
		}
	}
	put(t, c, "obj", strings.NewReader("new"))
	open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "new" {
		t.Fatalf("after a download raced an upload the cache serves %q, %v; want the uploaded bytes", got, err)
	}
}

func TestCacheRestart(t *testing.T) {
	inner := newCounting(t)
	dir := filepath.Join(t.TempDir(), "cache")
	objs := map[string][]byte{"a": data(1, 1000), "b": data(2, 2000), "c": data(3, 3000), "d": data(4, 500)}
	put(t, inner.Bucket, "a", bytes.NewReader(objs["a"]))
	put(t, inner.Bucket, "b", bytes.NewReader(objs["b"]))
	put(t, inner.Bucket, "d", bytes.NewReader(objs["d"]))

	c1, err := objstore.NewCache(inner, objstore.CacheConfig{Dir: dir, MaxBytes: 1 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pa := localPath(t, c1, "a", objs["a"])
	pb := localPath(t, c1, "b", objs["b"])
	put(t, c1, "c", bytes.NewReader(objs["c"]))
	pc := localPath(t, c1, "c", objs["c"])
	localPath(t, c1, "d", objs["d"])
	c1.Close()
	// A crash during a download leaves a temporary file.
	junk := filepath.Join(filepath.Dir(pa), ".tmp-123456")
	if err := os.WriteFile(junk, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "README")
	if err := os.WriteFile(other, []byte("not an entry"), 0o644); err != nil {
		t.Fatal(err)
	}
	// While the cache was down another process replaced b and deleted c.
	put(t, inner.Bucket, "b", bytes.NewReader(data(9, 2000)))
	if err := inner.Bucket.Delete(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	// and replaced d with an object of another size that looks older than
	// the cached copy (a clock set back).
	put(t, inner.Bucket, "d", bytes.NewReader(data(8, 600)))
	pd, err := inner.Bucket.(*objstore.Filesystem).LocalPath("d")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(pd, time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}

	gets := inner.gets.Load()
	c2 := newCache(t, inner, objstore.CacheConfig{Dir: dir, MaxBytes: 1 << 20})
	if s := c2.Stats(); s.Entries != 4 || s.Bytes != 6500 {
		t.Fatalf("after restart Stats = %+v, want the 4 files, 6500 bytes", s)
	}
	if exists(junk) {
		t.Error("restart left the temporary file")
	}
	if !exists(other) {
		t.Error("restart removed a file that is not the cache's")
	}
	if p := localPath(t, c2, "a", objs["a"]); p != pa || inner.gets.Load() != gets {
		t.Errorf("after restart LocalPath(a) = %s with %d downloads, want the kept file %s and none", p, inner.gets.Load()-gets, pa)
	}
	localPath(t, c2, "b", data(9, 2000))
	if inner.gets.Load() != gets+1 {
		t.Error("after restart an outdated cached copy was served without downloading the new bytes")
	}
	if _, err := c2.LocalPath("c"); !objstore.IsObjNotFoundErr(err) || exists(pc) {
		t.Errorf("LocalPath of an object deleted while the cache was down = %v (file present %v), want not found and the file gone", err, exists(pc))
	}
	localPath(t, c2, "d", data(8, 600))
	if s := c2.Stats(); s.Hits != 1 || s.Misses != 2 || s.Entries != 3 {
		t.Errorf("Stats = %+v, want 1 hit (a), 2 misses (b, d), 3 entries", s)
	}
	if err := c2.Delete(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}

	// Restarting with a smaller bound evicts down to it, oldest first.
	c2.Close()
	c3 := newCache(t, inner, objstore.CacheConfig{Dir: dir, MaxBytes: 2500})
	if s := c3.Stats(); s.Bytes > 2500 || s.Entries != 1 {
		t.Errorf("restart with a smaller bound: %+v, want one entry under 2500 bytes", s)
	}
	if exists(pa) || !exists(pb) {
		t.Errorf("restart with a smaller bound evicted the newer entry: a present %v, b present %v", exists(pa), exists(pb))
	}
}

func TestNewCacheErrors(t *testing.T) {
	inner := newCounting(t)
	for _, tc := range []struct {
		bkt  objstore.Bucket
		cfg  objstore.CacheConfig
		want string
	}{
		{nil, objstore.CacheConfig{Dir: t.TempDir(), MaxBytes: 1}, "no bucket"},
		{inner, objstore.CacheConfig{MaxBytes: 1}, "directory is empty"},
		{inner, objstore.CacheConfig{Dir: t.TempDir()}, "max bytes must be positive"},
	} {
		if _, err := objstore.NewCache(tc.bkt, tc.cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCache(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	c := newCache(t, inner, objstore.CacheConfig{MaxBytes: 1 << 20})
	put(t, inner.Bucket, "x", strings.NewReader("x"))
	c.Close()
	if _, err := c.LocalPath("x"); err == nil {
		t.Error("LocalPath after Close succeeded")
	}
	if _, err := c.LocalPath("../x"); !errors.Is(err, objstore.ErrInvalidName) {
		t.Errorf("LocalPath(../x) = %v, want ErrInvalidName", err)
	}
}
