package objstore

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3 defaults, in one place.
const (
	DefaultS3Endpoint       = "s3.amazonaws.com"
	DefaultS3PartSize       = 16 << 20
	DefaultS3RetryBudget    = 30 * time.Second
	DefaultS3RequestTimeout = 30 * time.Second
	DefaultS3DialTimeout    = 5 * time.Second

	// S3 refuses multipart parts under 5 MiB (but the last) and over 5 GiB.
	minS3PartSize = 5 << 20
	maxS3PartSize = 5 << 30

	// Backoff between attempts: short first, so a blip costs little, and
	// capped low, so a restarted server is noticed within a couple of seconds.
	minRetryDelay = 100 * time.Millisecond
	maxRetryDelay = 2 * time.Second
)

// S3Config says where an S3 bucket is and how to talk to it. The zero values
// of the tuning fields mean the defaults above.
type S3Config struct {
	// Bucket is the bucket's name. Required.
	Bucket string `yaml:"bucket"`
	// Prefix, if set, is a directory-like key prefix every object is
	// stored under ("duet/prod" stores object "a" as key "duet/prod/a"), so
	// several deployments can share a bucket.
	Prefix string `yaml:"prefix"`
	// Endpoint is host[:port] or an http(s):// URL (http:// implies
	// Insecure). Empty means AWS (DefaultS3Endpoint; minio-go picks the
	// region's endpoint).
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region; empty asks the server.
	Region string `yaml:"region"`
	// AccessKey, SecretKey and SessionToken are static credentials. With
	// none, the shared credentials file (~/.aws/credentials) and then the
	// instance/task role (IAM) are tried.
	AccessKey    string `yaml:"access_key"`
	SecretKey    string `yaml:"secret_key"`
	SessionToken string `yaml:"session_token"`
	// Insecure talks plain HTTP instead of HTTPS.
	Insecure bool `yaml:"insecure"`
	// PartSize is the multipart upload part size: objects larger than it
	// are uploaded in parts of this size (up to 4 in parallel, each
	// buffered in memory when the source is not a file). 5 MiB to 5 GiB.
	PartSize uint64 `yaml:"part_size"`
	// RetryBudget is how long an operation keeps retrying after its first
	// failure on a transient error (5xx, throttling, connection errors,
	// timeouts), with exponential backoff and jitter. The default rides
	// out a server restart. Negative disables retries.
	RetryBudget time.Duration `yaml:"retry_budget"`
	// RequestTimeout is how long one request waits for the server's
	// response headers after sending the request, so a hung server fails
	// the attempt (and is retried) instead of blocking forever.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// DialTimeout bounds connecting to the server.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// SpoolDir holds temporary copies of uploads whose reader cannot seek,
	// so that they can be retried; empty means os.TempDir().
	SpoolDir string `yaml:"spool_dir"`
}

// ParseS3URL reads "s3://bucket" or "s3://bucket/some/prefix" into a config
// holding the bucket and the prefix; everything else stays unset (see
// FromEnv).
func ParseS3URL(s string) (S3Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return S3Config{}, fmt.Errorf("s3 URL %q: %w", s, err)
	}
	switch {
	case !strings.EqualFold(u.Scheme, "s3"):
		return S3Config{}, fmt.Errorf("s3 URL %q: want the form s3://bucket/prefix", s)
	case u.Opaque != "":
		return S3Config{}, fmt.Errorf("s3 URL %q: missing '//' after 's3:': want s3://bucket/prefix", s)
	case u.User != nil:
		return S3Config{}, fmt.Errorf("s3 URL %q: credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", redactURL(u))
	case u.Port() != "":
		return S3Config{}, fmt.Errorf("s3 URL %q: the host part is the bucket name, not a server: give the server as the endpoint (AWS_ENDPOINT_URL)", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return S3Config{}, fmt.Errorf("s3 URL %q: query parameters and fragments are not supported", s)
	case u.Host == "":
		return S3Config{}, fmt.Errorf("s3 URL %q: no bucket name: want s3://bucket/prefix", s)
	}
	cfg := S3Config{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	if err := checkBucketName(cfg.Bucket); err != nil {
		return S3Config{}, fmt.Errorf("s3 URL %q: %w", s, err)
	}
	if _, err := normalizePrefix(cfg.Prefix); err != nil {
		return S3Config{}, fmt.Errorf("s3 URL %q: %w", s, err)
	}
	return cfg, nil
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// FromEnv fills the fields left empty from the variables the AWS tools use.
// The session token is taken only with keys from the environment, since a
// token belongs to its keys.
func (c *S3Config) FromEnv(getenv func(string) string) {
	if c.AccessKey == "" && c.SecretKey == "" {
		c.AccessKey = getenv("AWS_ACCESS_KEY_ID")
		c.SecretKey = getenv("AWS_SECRET_ACCESS_KEY")
		if c.SessionToken == "" {
			c.SessionToken = getenv("AWS_SESSION_TOKEN")
		}
	}
	if c.Region == "" {
		c.Region = firstNonEmpty(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	}
	if c.Endpoint == "" {
		c.Endpoint = firstNonEmpty(getenv("AWS_ENDPOINT_URL_S3"), getenv("AWS_ENDPOINT_URL"))
		if strings.HasPrefix(strings.ToLower(c.Endpoint), "http://") {
			c.Insecure = true
		}
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Validate checks the config, naming the bad field.
func (c S3Config) Validate() error {
	if err := checkBucketName(c.Bucket); err != nil {
		return fmt.Errorf("s3 config: bucket: %w", err)
	}
	if _, err := normalizePrefix(c.Prefix); err != nil {
		return fmt.Errorf("s3 config: prefix: %w", err)
	}
	if _, _, err := c.endpoint(); err != nil {
		return fmt.Errorf("s3 config: endpoint: %w", err)
	}
	if c.PartSize != 0 && (c.PartSize < minS3PartSize || c.PartSize > maxS3PartSize) {
		return fmt.Errorf("s3 config: part size %d is out of S3's range: use 5 MiB (%d) to 5 GiB", c.PartSize, minS3PartSize)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return errors.New("s3 config: give both the access key and the secret key, or neither")
	}
	if c.RequestTimeout < 0 || c.DialTimeout < 0 {
		return errors.New("s3 config: request and dial timeouts cannot be negative")
	}
	return nil
}

func (c S3Config) withDefaults() S3Config {
	if c.PartSize == 0 {
		c.PartSize = DefaultS3PartSize
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = DefaultS3RetryBudget
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultS3RequestTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultS3DialTimeout
	}
	return c
}

// endpoint returns the server's host[:port] and whether to use TLS.
func (c S3Config) endpoint() (host string, secure bool, err error) {
	e := c.Endpoint
	if e == "" {
		return DefaultS3Endpoint, !c.Insecure, nil
	}
	if !strings.Contains(e, "://") {
		if strings.ContainsAny(e, "/?#") {
			return "", false, fmt.Errorf("%q: want host[:port] or http(s)://host[:port]", e)
		}
		return e, !c.Insecure, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", false, fmt.Errorf("%q: %w", e, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, fmt.Errorf("%q: scheme must be http or https", e)
	case u.Host == "":
		return "", false, fmt.Errorf("%q: no host", e)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.User != nil:
		return "", false, fmt.Errorf("%q: want only scheme, host and port (no path, query or credentials)", redactURL(u))
	}
	return u.Host, u.Scheme == "https" && !c.Insecure, nil
}

func checkBucketName(name string) error {
	if name == "" {
		return errors.New("bucket name is empty")
	}
	if err := s3utils.CheckValidBucketNameStrict(name); err != nil {
		return fmt.Errorf("invalid bucket name %q: %w", name, err)
	}
	return nil
}

// normalizePrefix turns "a/b", "/a/b/" into "a/b/", and "" or "/" into "".
func normalizePrefix(p string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if err := checkName(p); err != nil {
		return "", fmt.Errorf("invalid prefix %q: %s", p, err)
	}
	return p + "/", nil
}

// S3 is a bucket on S3 or an S3-compatible server (MinIO).
//
// minio-go's own retries are turned off: retrying here instead puts the
// whole operation (an upload with its parts, a listing page, the rest of a
// download) under one time budget, rewinds upload sources, and logs each
// retry with the object.
type S3 struct {
	client    *minio.Client
	core      minio.Core
	transport *http.Transport
	cfg       S3Config
	prefix    string
	where     string // "s3://bucket/prefix at endpoint", for errors
	logger    *slog.Logger
}

var _ Bucket = (*S3)(nil)

// NewS3 connects to the bucket and checks that it exists and is reachable
// with the credentials, retrying transient failures within the retry budget.
func NewS3(ctx context.Context, cfg S3Config, logger *slog.Logger) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	prefix, _ := normalizePrefix(cfg.Prefix)
	host, secure, _ := cfg.endpoint()

	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s: %w", cfg.Bucket, err)
	}
	tr.DialContext = (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = cfg.RequestTimeout
	tr.ExpectContinueTimeout = time.Second

	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.FileAWSCredentials{},
			&credentials.IAM{Client: &http.Client{Transport: tr}},
		})
	}
	client, err := minio.New(host, &minio.Options{
		Creds:      creds,
		Secure:     secure,
		Transport:  tr,
		Region:     cfg.Region,
		MaxRetries: 1, // we retry, see S3
	})
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s at %s: %w", cfg.Bucket, host, err)
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	b := &S3{
		client:    client,
		core:      minio.Core{Client: client},
		transport: tr,
		cfg:       cfg,
		prefix:    prefix,
		where:     fmt.Sprintf("s3://%s/%s at %s://%s", cfg.Bucket, prefix, scheme, host),
		logger:    logger,
	}

	var exists bool
	err = b.retry(ctx, "check bucket", "", func() error {
		var err error
		exists, err = client.BucketExists(ctx, cfg.Bucket)
		return err
	})
	if err != nil {
		b.Close()
		hint := ""
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "AccessDenied" || er.Code == "InvalidAccessKeyId" || er.Code == "SignatureDoesNotMatch") {
			hint = fmt.Sprintf(" (check the credentials, access key %q, and the bucket policy)", cfg.AccessKey)
		}
		return nil, fmt.Errorf("s3 bucket %s is not reachable%s: %w", b.where, hint, err)
	}
	if !exists {
		b.Close()
		return nil, fmt.Errorf("s3 bucket %q does not exist at %s://%s: create it or fix the bucket name", cfg.Bucket, scheme, host)
	}
	return b, nil
}

// Close releases idle connections. The bucket must not be used afterwards.
func (b *S3) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

// Name describes the bucket.
func (b *S3) Name() string { return "s3: " + b.where }

func (b *S3) key(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return b.prefix + name, nil
}

// wrap gives an error the operation, the object and the bucket.
func (b *S3) wrap(op, name string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%s %s: %w", op, name, ErrNotFound)
	}
	return fmt.Errorf("%s %s in %s: %w", op, name, b.where, err)
}

func isNotFound(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.Code == minio.NoSuchKey || er.Code == "NotFound" ||
		(er.StatusCode == http.StatusNotFound && er.Code != minio.NoSuchBucket))
}

// Upload stores the object: in one PUT up to PartSize, in parts above it.
// S3 makes the object visible only when the PUT or the multipart upload
// completes, so readers never see part of it. A failed multipart attempt is
// aborted; if even the abort fails (server down), its parts stay invisible
// and cost storage until a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) removes them. A source that cannot seek
// is first copied to a temporary file so that a failed attempt can be retried.
func (b *S3) Upload(ctx context.Context, name string, r io.Reader) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	src, cleanup, err := b.newSource(ctx, r)
	if err != nil {
		return fmt.Errorf("upload %s: read source: %w", name, err)
	}
	defer cleanup()
	err = b.retry(ctx, "upload", name, func() error {
		body, err := src.rewind()
		if err != nil {
			return err
		}
		_, err = b.client.PutObject(ctx, b.cfg.Bucket, key, body, src.size, minio.PutObjectOptions{
			PartSize:    b.cfg.PartSize,
			ContentType: "application/octet-stream",
		})
		if serr := src.failure(); serr != nil {
			return &sourceError{serr}
		}
		return err
	})
	if err != nil {
		return b.wrap("upload", name, err)
	}
	return nil
}

// sourceError is a failure of the uploader's reader, not of the network:
// never retried.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read source: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// source is an upload's bytes, readable again from the start for each
// attempt. It remembers the first error its reader returned.
type source struct {
	size   int64
	rewind func() (io.Reader, error)
	mu     sync.Mutex
	err    error
}

func (s *source) note(err error) {
	if err != nil && err != io.EOF {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
}

func (s *source) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// sourceReader reads a source sequentially.
type sourceReader struct {
	s *source
	r io.Reader
}

func (r *sourceReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.s.note(err)
	return n, err
}

// sourceReaderAt also reads at offsets, which lets minio-go upload the parts
// of a large object in parallel straight from the source without buffering.
type sourceReaderAt struct {
	s  *source
	sr *io.SectionReader
}

func (r *sourceReaderAt) Read(p []byte) (int, error) {
	n, err := r.sr.Read(p)
	r.s.note(err)
	return n, err
}

func (r *sourceReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.sr.ReadAt(p, off)
	r.s.note(err)
	return n, err
}

func (r *sourceReaderAt) Seek(off int64, whence int) (int64, error) { return r.sr.Seek(off, whence) }

func (r *sourceReaderAt) Size() int64 { return r.sr.Size() }

// newSource makes r re-readable: a seekable r is read from its current
// offset to its end, anything else is spooled to a temporary file.
func (b *S3) newSource(ctx context.Context, r io.Reader) (*source, func(), error) {
	s := &source{}
	if rs, ok := r.(io.ReadSeeker); ok {
		start, err1 := rs.Seek(0, io.SeekCurrent)
		end, err2 := rs.Seek(0, io.SeekEnd)
		if err1 == nil && err2 == nil {
			s.size = end - start
			if ra, ok := r.(io.ReaderAt); ok {
				s.rewind = func() (io.Reader, error) {
					return &sourceReaderAt{s: s, sr: io.NewSectionReader(ra, start, s.size)}, nil
				}
			} else {
				s.rewind = func() (io.Reader, error) {
					if _, err := rs.Seek(start, io.SeekStart); err != nil {
						return nil, &sourceError{err}
					}
					return &sourceReader{s: s, r: io.LimitReader(rs, s.size)}, nil
				}
			}
			return s, func() {}, nil
		}
		// Not really seekable (a pipe): spool it. If Seek moved it we
		// cannot know, so fail rather than upload the wrong bytes.
		if err1 == nil {
			if _, err := rs.Seek(start, io.SeekStart); err != nil {
				return nil, nil, err
			}
		}
	}
	f, err := os.CreateTemp(b.cfg.SpoolDir, "duet-s3-upload-*")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	s.size = n
	s.rewind = func() (io.Reader, error) {
		return &sourceReaderAt{s: s, sr: io.NewSectionReader(f, 0, n)}, nil
	}
	return s, cleanup, nil
}

// Get opens the object. The request is made here, so a missing object is
// reported now; if the connection breaks while reading, the reader resumes
// where it stopped, from the same version of the object (If-Match on its
// ETag), within the retry budget.
func (b *S3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := b.key(name)
	if err != nil {
		return nil, err
	}
	var (
		body io.ReadCloser
		info minio.ObjectInfo
	)
	err = b.retry(ctx, "get", name, func() error {
		var err error
		body, info, _, err = b.core.GetObject(ctx, b.cfg.Bucket, key, minio.GetObjectOptions{})
		return err
	})
	if err != nil {
		return nil, b.wrap("get", name, err)
	}
	return &s3Reader{b: b, ctx: ctx, name: name, key: key, etag: info.ETag, size: info.Size, body: body}, nil
}

type s3Reader struct {
	b         *S3
	ctx       context.Context
	name, key string
	etag      string
	size, off int64
	body      io.ReadCloser
	closed    bool
}

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("read after close")
	}
	var rs *retryState
	for {
		if r.body == nil {
			if err := r.reopen(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if err == nil {
			return n, nil
		}
		if r.off >= r.size && (r.size >= 0 || err == io.EOF) {
			// All bytes are in, whatever the connection did after.
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the server closed the stream early
		}
		r.body.Close()
		r.body = nil
		if n > 0 {
			return n, nil // reopen on the next Read
		}
		if rs == nil {
			rs = r.b.newRetry("get", r.name)
		}
		if err := rs.wait(r.ctx, err); err != nil {
			return 0, r.b.wrap("get", r.name, fmt.Errorf("read at offset %d of %d: %w", r.off, r.size, err))
		}
	}
}

// reopen requests the rest of the object from the current offset.
func (r *s3Reader) reopen() error {
	err := r.b.retry(r.ctx, "get", r.name, func() error {
		opts := minio.GetObjectOptions{}
		if err := opts.SetRange(r.off, 0); err != nil {
			return err
		}
		if r.etag != "" {
			if err := opts.SetMatchETag(r.etag); err != nil {
				return err
			}
		}
		body, _, _, err := r.b.core.GetObject(r.ctx, r.b.cfg.Bucket, r.key, opts)
		if err != nil {
			if minio.ToErrorResponse(err).Code == "PreconditionFailed" {
				return fmt.Errorf("the object was replaced while being read: %w", err)
			}
			return err
		}
		r.body = body
		return nil
	})
	if err != nil {
		return r.b.wrap("get", r.name, fmt.Errorf("resume at offset %d of %d: %w", r.off, r.size, err))
	}
	return nil
}

func (r *s3Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

func (b *S3) stat(ctx context.Context, op, name string) (minio.ObjectInfo, error) {
	key, err := b.key(name)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	var info minio.ObjectInfo
	err = b.retry(ctx, op, name, func() error {
		var err error
		info, err = b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return minio.ObjectInfo{}, b.wrap(op, name, err)
	}
	return info, nil
}

// Exists reports whether the object exists.
func (b *S3) Exists(ctx context.Context, name string) (bool, error) {
	_, err := b.stat(ctx, "exists", name)
	if IsObjNotFoundErr(err) {
		return false, nil
	}
	return err == nil, err
}

// Attributes returns the object's size and modification time (whole seconds).
func (b *S3) Attributes(ctx context.Context, name string) (Attributes, error) {
	info, err := b.stat(ctx, "attributes", name)
	if err != nil {
		return Attributes{}, err
	}
	return Attributes{Size: info.Size, LastModified: info.LastModified}, nil
}

// Delete removes the object. S3 deletes succeed for missing keys, so the
// object is looked up first to report ErrNotFound.
func (b *S3) Delete(ctx context.Context, name string) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	removeSent := false
	err = b.retry(ctx, "delete", name, func() error {
		_, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
		if isNotFound(err) && removeSent {
			return nil // an earlier attempt deleted it but its answer was lost
		}
		if err != nil {
			return err
		}
		removeSent = true
		return b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{})
	})
	if err != nil {
		return b.wrap("delete", name, err)
	}
	return nil
}

// Iter lists the objects under prefix in lexical order (S3 lists keys in
// UTF-8 byte order). A listing that fails part-way resumes after the last
// name returned. Keys under the bucket prefix that are not valid object
// names (such as "dir/" markers made by other tools) are skipped.
func (b *S3) Iter(ctx context.Context, prefix string, fn func(name string) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	after := ""
	rs := b.newRetry("iter", prefix)
	for {
		var listErr error
		progress := false
		for obj := range b.client.ListObjectsIter(ctx, b.cfg.Bucket, minio.ListObjectsOptions{
			Prefix:     b.prefix + prefix,
			Recursive:  true,
			StartAfter: after,
		}) {
			if obj.Err != nil {
				listErr = obj.Err
				break
			}
			after = obj.Key
			progress = true
			name := strings.TrimPrefix(obj.Key, b.prefix)
			if ValidateName(name) != nil {
				continue
			}
			if err := fn(name); err != nil {
				return fmt.Errorf("iter %q: %w", prefix, err)
			}
		}
		if listErr == nil {
			// The iterator ends silently when ctx is cancelled.
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("iter %q: %w", prefix, err)
			}
			return nil
		}
		if progress {
			rs = b.newRetry("iter", prefix)
		}
		if err := rs.wait(ctx, listErr); err != nil {
			return fmt.Errorf("iter %q in %s: %w", prefix, b.where, err)
		}
	}
}

// retry runs f until it succeeds, fails for good, or the retry budget since
// its first failure is spent.
func (b *S3) retry(ctx context.Context, op, name string, f func() error) error {
	rs := b.newRetry(op, name)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if err := rs.wait(ctx, err); err != nil {
			return err
		}
	}
}

// retryState is the backoff of one operation.
type retryState struct {
	b        *S3
	op, name string
	attempts int
	first    time.Time
	delay    time.Duration
}

func (b *S3) newRetry(op, name string) *retryState {
	return &retryState{b: b, op: op, name: name, delay: minRetryDelay}
}

// wait returns nil after sleeping if err is worth another attempt, else the
// error to give up with.
func (s *retryState) wait(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return fmt.Errorf("%w: %w", cerr, err)
	}
	if !retryable(err) {
		return err
	}
	now := time.Now()
	if s.attempts == 0 {
		s.first = now
	}
	s.attempts++
	budget := s.b.cfg.RetryBudget
	left := budget - now.Sub(s.first)
	if budget < 0 || left <= 0 {
		if budget < 0 {
			return err
		}
		return fmt.Errorf("gave up after %d attempts over %s: %w", s.attempts, now.Sub(s.first).Round(time.Millisecond), err)
	}
	// "Equal jitter": at least half the delay, so retries stay spread out.
	sleep := min(s.delay/2+rand.N(s.delay/2+1), left)
	s.delay = min(2*s.delay, maxRetryDelay)
	s.b.logger.Warn("object storage request failed; retrying",
		"op", s.op, "object", s.name, "bucket", s.b.where, "attempt", s.attempts, "retry_in", sleep, "err", err)
	t := time.NewTimer(sleep)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w while retrying after: %w", ctx.Err(), err)
	}
}

// retryable reports whether err is transient: a server error, throttling, a
// timeout or a broken connection. Client errors (4xx), failures of the
// upload's source and certificate problems are not.
func retryable(err error) bool {
	var se *sourceError
	if errors.As(err, &se) {
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "RequestTimeout", "Throttling", "ThrottlingException", "RequestLimitExceeded",
			"RequestThrottled", "SlowDown", "SlowDownRead", "SlowDownWrite", "InternalError",
			"ServiceUnavailable", "XMinioServerNotInitialized":
			return true
		}
		return er.StatusCode >= 500 || er.StatusCode == http.StatusTooManyRequests ||
			er.StatusCode == http.StatusRequestTimeout || er.StatusCode == 499
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalidCert      x509.CertificateInvalidError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalidCert) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false // the caller's context is checked before; this is someone else's
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true // dial errors, timeouts (including response-header timeouts)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return !strings.Contains(ue.Err.Error(), "server gave HTTP response to HTTPS client")
	}
	return false
}
