package objstore

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"
)

// DefaultCacheHold is how long a cached file handed out by LocalPath is kept
// from eviction.
const DefaultCacheHold = time.Minute

// cacheTempPrefix starts the names of downloads and uploads in progress in
// the cache directory; entries start with a hex digit, so never with it.
const cacheTempPrefix = ".tmp-"

// CacheConfig configures a Cache.
type CacheConfig struct {
	// Dir holds the cached files. The cache owns it: files left there by a
	// previous run are reused, temporary files are removed.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the total size of the cached files, except for the
	// entries protected by Hold (see Cache). Required.
	MaxBytes int64 `yaml:"max_bytes"`
	// Hold is how long after its last use an entry cannot be evicted, so
	// that a path just returned by LocalPath still exists when the engine
	// opens it. 0 means DefaultCacheHold; negative means no protection
	// (only for tests: the path returned by the current call is always
	// protected from that call's own eviction, nothing more).
	Hold time.Duration `yaml:"hold"`
	// Now is the clock for Hold; nil means time.Now. Tests set it.
	Now func() time.Time `yaml:"-"`
}

// CacheStats are the cache's counters, for tests and metrics.
type CacheStats struct {
	Bytes     int64  // total size of the cached files
	Entries   int    // number of cached files
	Hits      uint64 // LocalPath calls served from the cache
	Misses    uint64 // LocalPath calls that found nothing cached (and waited for a download)
	Evictions uint64 // entries removed to stay under MaxBytes
}

// Cache is a read cache of a bucket in a local directory, so that the engine
// can read objects of a remote bucket (S3) in place through LocalReader, as
// Druid historicals read segments from their local cache.
//
// It is a Bucket too: Upload writes through (the bytes land in the cache
// and then go to the inner bucket, so the uploader's next read is local) and
// Delete drops the cached file; the other methods go straight to the inner
// bucket. All writes through the cache keep it consistent with the bucket.
// An object replaced in the bucket by another process is noticed only for
// entries found on disk at start (checked once, by size and modification
// time, before first use); duet never replaces an object it has published
// with different bytes, which is what makes trusting the cache safe.
//
// Eviction is least-recently-used and keeps the total under MaxBytes, but
// never removes an entry used within Hold: while many entries are held the
// total may exceed MaxBytes, until they age. An object larger than MaxBytes
// is still downloaded and served, and is the first to go once its hold
// ends. Evicting a file that is open elsewhere is harmless: the reader keeps
// its bytes until it closes it.
type Cache struct {
	inner  Bucket
	dir    string
	max    int64
	hold   time.Duration
	now    func() time.Time
	logger *slog.Logger

	// ctx bounds downloads, which outlive any one caller's wait (several
	// LocalPath calls share one); Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	group  singleflight.Group

	mu        sync.Mutex
	entries   map[string]*cacheEntry // by path relative to dir
	lru       *list.List             // of *cacheEntry, most recently used first
	bytes     int64
	hits      uint64
	misses    uint64
	evictions uint64
	fetching  map[string]*fetchState // downloads in progress
	writers   map[string]*nameLock   // uploads and deletes in progress
	closed    bool
}

type cacheEntry struct {
	rel      string
	size     int64
	used     time.Time // last handed out; zero for entries found at start
	mtime    time.Time // when the file got its bytes
	verified bool      // known to match the bucket (false for entries found at start)
	elem     *list.Element
}

// fetchState lets an upload or delete tell a download that finished after it
// that its bytes are outdated.
type fetchState struct{ stale bool }

type nameLock struct {
	mu   sync.Mutex
	refs int
}

var (
	_ Bucket      = (*Cache)(nil)
	_ LocalReader = (*Cache)(nil)
)

// errStale: a download raced with an upload or delete of the same name; the
// caller looks again.
var errStale = errors.New("object changed during download")

// NewCache returns a cache of bkt in cfg.Dir, indexing the files already
// there so that a restart keeps the cache warm.
func NewCache(bkt Bucket, cfg CacheConfig, logger *slog.Logger) (*Cache, error) {
	switch {
	case bkt == nil:
		return nil, errors.New("cache: no bucket to cache")
	case cfg.Dir == "":
		return nil, errors.New("cache: directory is empty: give the directory to keep cached objects in")
	case cfg.MaxBytes <= 0:
		return nil, fmt.Errorf("cache %s: max bytes must be positive, got %d", cfg.Dir, cfg.MaxBytes)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache %s: %w", cfg.Dir, err)
	}
	if cfg.Hold == 0 {
		cfg.Hold = DefaultCacheHold
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		inner:    bkt,
		dir:      dir,
		max:      cfg.MaxBytes,
		hold:     cfg.Hold,
		now:      cfg.Now,
		logger:   logger,
		ctx:      ctx,
		cancel:   cancel,
		entries:  make(map[string]*cacheEntry),
		lru:      list.New(),
		fetching: make(map[string]*fetchState),
		writers:  make(map[string]*nameLock),
	}
	if err := c.index(); err != nil {
		cancel()
		return nil, fmt.Errorf("cache %s: index existing files: %w", dir, err)
	}
	return c, nil
}

// index adds the files a previous run left, least recently written last,
// and removes its unfinished temporary files.
func (c *Cache) index() error {
	var found []*cacheEntry
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		if strings.HasPrefix(d.Name(), cacheTempPrefix) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		rel, err := filepath.Rel(c.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !isCacheRel(rel) {
			c.logger.Debug("cache: ignoring a file that is not a cache entry", "file", p)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		found = append(found, &cacheEntry{rel: rel, size: fi.Size(), mtime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(found, func(i, j int) bool { return found[i].mtime.Before(found[j].mtime) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range found {
		e.elem = c.lru.PushFront(e)
		c.entries[e.rel] = e
		c.bytes += e.size
	}
	c.evictLocked(nil)
	return nil
}

// cacheRel is where name is cached: "<h0h1>/<hash>-<base>". Hashing keeps
// any valid name (up to 1024 bytes, "a" beside "a/b") a short flat file
// name; the base name keeps the extension and makes paths recognisable in
// the engine's messages.
func cacheRel(name string) string {
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:16])
	base := path.Base(name)
	if len(base) > 100 {
		cut := len(base) - 100 // keep the end, where the extension is
		for cut < len(base) && !utf8.RuneStart(base[cut]) {
			cut++
		}
		base = base[cut:]
	}
	return h[:2] + "/" + h + "-" + base
}

func isCacheRel(rel string) bool {
	d, f, ok := strings.Cut(rel, "/")
	return ok && len(d) == 2 && len(f) > 33 && strings.HasPrefix(f, d) && f[32] == '-' && isHex(f[:32])
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

func (c *Cache) path(rel string) string { return filepath.Join(c.dir, filepath.FromSlash(rel)) }

// Name describes the cache and the bucket under it.
func (c *Cache) Name() string { return "cache " + c.dir + " over " + c.inner.Name() }

// Stats returns the current counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Bytes: c.bytes, Entries: len(c.entries), Hits: c.hits, Misses: c.misses, Evictions: c.evictions}
}

// Close cancels downloads in progress; LocalPath fails afterwards. The
// cached files stay for the next run, and the inner bucket is not closed.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	return nil
}

// LocalPath returns the cached file holding the object, downloading it
// first if needed; concurrent calls for one object share one download. The
// file is complete (downloads are renamed into place) and must be treated as
// read-only; it stays at least Hold after this call.
func (c *Cache) LocalPath(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	rel := cacheRel(name)
	// An upload or delete of the name finishing during the download
	// discards it; look again, a few times.
	missed := false
	for range 5 {
		p, ok, miss := c.lookup(rel, missed)
		if ok {
			return p, nil
		}
		missed = missed || miss
		v, err, _ := c.group.Do(rel, func() (any, error) { return c.fetch(name, rel) })
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return "", err
		}
		if r := v.(fetchResult); !missed { // an entry found at start, checked
			c.mu.Lock()
			if r.downloaded {
				c.misses++
			} else {
				c.hits++
			}
			c.mu.Unlock()
		}
		return v.(fetchResult).path, nil
	}
	return "", fmt.Errorf("local path %s: the object kept changing during download", name)
}

// lookup returns a verified entry's path. Each LocalPath call counts once:
// a hit when it finds one here without having missed before, a miss when
// there is no entry at all (an unverified one is checked by fetch).
func (c *Cache) lookup(rel string, missed bool) (p string, ok, miss bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[rel]
	if e == nil {
		if !missed {
			c.misses++
		}
		return "", false, true
	}
	if !e.verified {
		return "", false, false
	}
	if !missed {
		c.hits++
	}
	c.touchLocked(e)
	c.evictLocked(e)
	return c.path(rel), true, false
}

type fetchResult struct {
	path       string
	downloaded bool
}

func (c *Cache) fetch(name, rel string) (fetchResult, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fetchResult{}, fmt.Errorf("local path %s: the cache is closed", name)
	}
	e := c.entries[rel]
	if e != nil && e.verified { // another call finished just before this one
		c.touchLocked(e)
		c.evictLocked(e)
		c.mu.Unlock()
		return fetchResult{path: c.path(rel)}, nil
	}
	f := &fetchState{}
	c.fetching[rel] = f
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.fetching, rel)
		c.mu.Unlock()
	}()

	if e != nil {
		ok, err := c.verify(name, e, f)
		if err != nil || ok {
			return fetchResult{path: c.path(rel)}, err
		}
	}

	rc, err := c.inner.Get(c.ctx, name)
	if err != nil {
		return fetchResult{}, fmt.Errorf("local path %s: %w", name, err)
	}
	defer rc.Close()
	tmp, err := c.createTemp(rel)
	if err != nil {
		return fetchResult{}, fmt.Errorf("local path %s: %w", name, err)
	}
	n, err := io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fetchResult{}, fmt.Errorf("local path %s: download: %w", name, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if f.stale {
		os.Remove(tmp.Name())
		return fetchResult{}, errStale
	}
	if err := os.Rename(tmp.Name(), c.path(rel)); err != nil {
		os.Remove(tmp.Name())
		return fetchResult{}, fmt.Errorf("local path %s: %w", name, err)
	}
	e = c.insertLocked(rel, n, c.now())
	c.evictLocked(e)
	return fetchResult{path: c.path(rel), downloaded: true}, nil
}

// verify checks an entry found at start against the bucket: same size and
// not modified since the file was written. A mismatch drops it.
func (c *Cache) verify(name string, e *cacheEntry, f *fetchState) (bool, error) {
	attrs, err := c.inner.Attributes(c.ctx, name)
	if err != nil && !IsObjNotFoundErr(err) {
		return false, fmt.Errorf("local path %s: check cached copy: %w", name, err)
	}
	fresh := err == nil && attrs.Size == e.size && !attrs.LastModified.After(e.mtime)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.stale || c.entries[e.rel] != e {
		return false, errStale
	}
	if !fresh {
		c.logger.Info("cache: dropping an outdated cached copy", "object", name, "cached_size", e.size)
		c.removeLocked(e)
		if err != nil {
			return false, fmt.Errorf("local path %s: %w", name, err)
		}
		return false, nil
	}
	e.verified = true
	c.touchLocked(e)
	c.evictLocked(e)
	return true, nil
}

// createTemp creates a temporary file beside where rel goes.
func (c *Cache) createTemp(rel string) (*os.File, error) {
	dir := filepath.Dir(c.path(rel))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, cacheTempPrefix+"*")
	if err != nil {
		return nil, err
	}
	// The engine may run as another user in a sandbox; objects read like
	// any other file.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// insertLocked records rel's new file, replacing any previous entry.
func (c *Cache) insertLocked(rel string, size int64, mtime time.Time) *cacheEntry {
	e := c.entries[rel]
	if e == nil {
		e = &cacheEntry{rel: rel}
		e.elem = c.lru.PushFront(e)
		c.entries[rel] = e
	}
	c.bytes += size - e.size
	e.size, e.mtime, e.verified = size, mtime, true
	c.touchLocked(e)
	return e
}

// touchLocked marks e used now. An entry larger than the whole cache goes to
// the cold end, to be evicted first once its hold ends.
func (c *Cache) touchLocked(e *cacheEntry) {
	e.used = c.now()
	if e.size > c.max {
		c.lru.MoveToBack(e.elem)
	} else {
		c.lru.MoveToFront(e.elem)
	}
}

func (c *Cache) removeLocked(e *cacheEntry) {
	delete(c.entries, e.rel)
	c.lru.Remove(e.elem)
	c.bytes -= e.size
	if err := os.Remove(c.path(e.rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.logger.Warn("cache: cannot remove a cached file", "file", c.path(e.rel), "err", err)
	}
}

// evictLocked removes least recently used entries until the total fits,
// skipping held entries and keep (the one being handed out).
func (c *Cache) evictLocked(keep *cacheEntry) {
	if c.bytes <= c.max {
		return
	}
	now := c.now()
	for el := c.lru.Back(); el != nil && c.bytes > c.max; {
		prev := el.Prev()
		e := el.Value.(*cacheEntry)
		if e != keep && (c.hold < 0 || now.Sub(e.used) >= c.hold) {
			c.removeLocked(e)
			c.evictions++
		}
		el = prev
	}
}

// lockName serialises uploads and deletes of one name through the cache, so
// the cached file ends as the last one the bucket committed.
func (c *Cache) lockName(rel string) func() {
	c.mu.Lock()
	l := c.writers[rel]
	if l == nil {
		l = &nameLock{}
		c.writers[rel] = l
	}
	l.refs++
	c.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(c.writers, rel)
		}
		c.mu.Unlock()
	}
}

// replacedLocked tells a download of rel in progress that its bytes are
// outdated.
func (c *Cache) replacedLocked(rel string) {
	if f := c.fetching[rel]; f != nil {
		f.stale = true
	}
}

// Upload writes the bytes to a file in the cache, uploads that file to the
// inner bucket (a local file can be re-read if the upload is retried) and
// then makes it the cached copy.
func (c *Cache) Upload(ctx context.Context, name string, r io.Reader) (err error) {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	rel := cacheRel(name)
	unlock := c.lockName(rel)
	defer unlock()

	tmp, err := c.createTemp(rel)
	if err != nil {
		return fmt.Errorf("upload %s: cache: %w", name, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx: ctx, r: r})
	if err != nil {
		tmp.Close()
		return fmt.Errorf("upload %s: read source: %w", name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return fmt.Errorf("upload %s: cache: %w", name, err)
	}
	err = c.inner.Upload(ctx, name, tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("upload %s: cache: %w", name, cerr)
	}
	if err != nil {
		return err
	}

	// The file's time must not precede the object's, or the check at the
	// next start would take it for outdated.
	now := time.Now()
	terr := os.Chtimes(tmp.Name(), now, now)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replacedLocked(rel)
	if terr == nil {
		terr = os.Rename(tmp.Name(), c.path(rel))
	}
	if terr != nil {
		// The object is uploaded; only the cache failed. Drop any older
		// copy so it is not served.
		os.Remove(tmp.Name())
		if e := c.entries[rel]; e != nil {
			c.removeLocked(e)
		}
		c.logger.Warn("cache: cannot keep an uploaded object", "object", name, "err", terr)
		return nil
	}
	e := c.insertLocked(rel, n, now)
	c.evictLocked(e)
	return nil
}

// Delete deletes the object from the inner bucket, then its cached copy
// (also when the bucket says it was not there, or failed: the copy may be
// outdated either way).
func (c *Cache) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	rel := cacheRel(name)
	unlock := c.lockName(rel)
	defer unlock()
	err := c.inner.Delete(ctx, name)
	c.mu.Lock()
	c.replacedLocked(rel)
	if e := c.entries[rel]; e != nil {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	return err
}

// Get opens the object in the inner bucket.
func (c *Cache) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return c.inner.Get(ctx, name)
}

// Exists asks the inner bucket.
func (c *Cache) Exists(ctx context.Context, name string) (bool, error) {
	return c.inner.Exists(ctx, name)
}

// Attributes asks the inner bucket.
func (c *Cache) Attributes(ctx context.Context, name string) (Attributes, error) {
	return c.inner.Attributes(ctx, name)
}

// Iter lists the inner bucket.
func (c *Cache) Iter(ctx context.Context, prefix string, fn func(name string) error) error {
	return c.inner.Iter(ctx, prefix, fn)
}
