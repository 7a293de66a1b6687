package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/duet-analytics/duet/internal/objstore"
	"github.com/duet-analytics/duet/internal/testsvc"
)

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newS3(t *testing.T, cfg objstore.S3Config, logger *slog.Logger) *objstore.S3 {
	t.Helper()
	b, err := objstore.NewS3(t.Context(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func put(t *testing.T, b objstore.Bucket, name string, r io.Reader) {
	t.Helper()
	if err := b.Upload(t.Context(), name, r); err != nil {
		t.Fatalf("Upload(%s): %v", name, err)
	}
}

func get(t *testing.T, b objstore.Bucket, name string) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), name)
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

func list(t *testing.T, b objstore.Bucket, prefix string) []string {
	t.Helper()
	var names []string
	if err := b.Iter(t.Context(), prefix, func(n string) error { names = append(names, n); return nil }); err != nil {
		t.Fatalf("Iter(%q): %v", prefix, err)
	}
	return names
}

// data is n bytes that differ from those of other seeds.
func data(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%253)*3
	}
	return b
}

// onlyReader hides every method but Read, so the bucket cannot seek it.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

var errBroken = errors.New("disk read error")

// brokenReaderAt is a seekable source whose reads fail from failAt on.
type brokenReaderAt struct {
	*bytes.Reader
	failAt int64
}

func (b *brokenReaderAt) Read(p []byte) (int, error) {
	pos, _ := b.Seek(0, io.SeekCurrent)
	if pos >= b.failAt {
		return 0, errBroken
	}
	return b.Reader.Read(p[:min(int64(len(p)), b.failAt-pos)])
}

func (b *brokenReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > b.failAt {
		return 0, errBroken
	}
	return b.Reader.ReadAt(p, off)
}

// rawClient talks to the MinIO server directly, to look behind the bucket.
func rawClient(t *testing.T, m *testsvc.MinIO) *minio.Client {
	t.Helper()
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := minio.New(m.Endpoint(), &minio.Options{
		Creds: credentials.NewStaticV4(m.AccessKey(), m.SecretKey(), ""), Transport: tr, Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestS3Acceptance(t *testing.T) {
	m := testsvc.StartMinIO(t)
	cfg := m.Bucket(t, "acceptance")
	t.Run("NoPrefix", func(t *testing.T) {
		objstore.AcceptanceTest(t, newS3(t, cfg, nil))
	})
	t.Run("Prefix", func(t *testing.T) {
		root := newS3(t, cfg, nil)
		put(t, root, "outside/x", strings.NewReader("not under the prefix"))
		pcfg := cfg
		pcfg.Prefix = "/deploy/one/" // slashes are normalised away
		b := newS3(t, pcfg, nil)
		put(t, b, "inside", strings.NewReader("under the prefix"))
		objstore.AcceptanceTest(t, b)

		if got := list(t, b, ""); !slices.Equal(got, []string{"inside"}) {
			t.Errorf("prefixed Iter = %v, want only its own object without the prefix", got)
		}
		if got := list(t, root, ""); !slices.Equal(got, []string{"deploy/one/inside", "outside/x"}) {
			t.Errorf("unprefixed Iter = %v, want the prefixed key and the outside object", got)
		}
		if !strings.Contains(b.Name(), "s3://acceptance/deploy/one/") || !strings.Contains(b.Name(), m.Endpoint()) {
			t.Errorf("Name() = %q, want the bucket, prefix and endpoint", b.Name())
		}
	})
	t.Run("ForeignKeys", func(t *testing.T) {
		// Keys other tools may put in a bucket that are not valid names
		// here (a console's "folder" marker, a reserved segment) are skipped.
		c := rawClient(t, m)
		for _, k := range []string{"foreign/dir/", "foreign/.objstore-tmp-1", "foreign/ok"} {
			if _, err := c.PutObject(t.Context(), "acceptance", k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
		}
		if got := list(t, newS3(t, cfg, nil), "foreign/"); !slices.Equal(got, []string{"foreign/ok"}) {
			t.Errorf("Iter = %v, want only the valid name", got)
		}
	})
}

func TestS3Multipart(t *testing.T) {
	m := testsvc.StartMinIO(t)
	cfg := m.Bucket(t, "multipart")
	cfg.PartSize = 5 << 20 // S3's minimum
	b := newS3(t, cfg, nil)
	ctx := t.Context()
	big := data(7, 2*5<<20+12345) // three parts, the last one short
	raw := rawClient(t, m)

	for _, tc := range []struct {
		name string
		r    io.Reader
		want []byte
	}{
		{"seekable", bytes.NewReader(big), big},
		{"streamed", onlyReader{bytes.NewReader(big)}, big},
		// A reader already part-way through uploads from where it is.
		{"offset", func() io.Reader { r := bytes.NewReader(big); r.Seek(1<<20, io.SeekStart); return r }(), big[1<<20:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, b, tc.name, tc.r)
			if got := get(t, b, tc.name); !bytes.Equal(got, tc.want) {
				t.Fatalf("read back %d bytes that differ from the %d uploaded", len(got), len(tc.want))
			}
			attrs, err := b.Attributes(ctx, tc.name)
			if err != nil || attrs.Size != int64(len(tc.want)) {
				t.Fatalf("Attributes = %+v, %v; want size %d", attrs, err, len(tc.want))
			}
			// A multipart object's ETag ends in "-<parts>".
			info, err := raw.StatObject(ctx, "multipart", tc.name, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(info.ETag, "-3") && !strings.HasSuffix(info.ETag, "-2") {
				t.Errorf("ETag %q: the object was not uploaded in parts", info.ETag)
			}
		})
	}
	// A seekable source that fails is not retried: the network is fine.
	var logs logBuffer
	quiet := newS3(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	for _, size := range []int{1 << 20, len(big)} {
		err := quiet.Upload(ctx, "broken", &brokenReaderAt{Reader: bytes.NewReader(big[:size]), failAt: int64(size) / 2})
		if !errors.Is(err, errBroken) || !strings.Contains(err.Error(), "read source") {
			t.Errorf("Upload of %d bytes from a failing source = %v, want the source's error", size, err)
		}
	}
	if logs.String() != "" {
		t.Errorf("a failing source was retried:\n%s", logs.String())
	}
	if ok, err := b.Exists(ctx, "broken"); ok || err != nil {
		t.Errorf("a failed upload left an object: %v, %v", ok, err)
	}

	// At or under the part size, one PUT.
	small := data(9, 5<<20)
	put(t, b, "single", bytes.NewReader(small))
	if got := get(t, b, "single"); !bytes.Equal(got, small) {
		t.Fatal("single-part object differs")
	}
	if info, err := raw.StatObject(ctx, "multipart", "single", minio.StatObjectOptions{}); err != nil || strings.Contains(info.ETag, "-") {
		t.Errorf("single-part object ETag = %q, %v; want a plain MD5", info.ETag, err)
	}
}

// TestS3RetriesOutage stops the server, starts operations, and restarts the
// server while they retry: they must succeed with exact data.
func TestS3RetriesOutage(t *testing.T) {
	m := testsvc.StartMinIO(t)
	cfg := m.Bucket(t, "outage")
	cfg.PartSize = 5 << 20
	var logs logBuffer
	b := newS3(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := t.Context()

	stored := data(1, 3<<20)
	put(t, b, "stored", bytes.NewReader(stored))
	big := data(2, 11<<20) // multipart
	streamed := data(3, 1<<20)

	m.Stop()
	type result struct {
		what string
		data []byte
		err  error
	}
	results := make(chan result, 4)
	var wg sync.WaitGroup
	wg.Go(func() {
		results <- result{what: "upload big", err: b.Upload(ctx, "during/big", bytes.NewReader(big))}
	})
	wg.Go(func() {
		results <- result{what: "upload streamed", err: b.Upload(ctx, "during/streamed", onlyReader{bytes.NewReader(streamed)})}
	})
	wg.Go(func() {
		rc, err := b.Get(ctx, "stored")
		if err != nil {
			results <- result{what: "get", err: err}
			return
		}
		defer rc.Close()
		d, err := io.ReadAll(rc)
		results <- result{what: "get", data: d, err: err}
	})
	wg.Go(func() {
		var names []string
		err := b.Iter(ctx, "st", func(n string) error { names = append(names, n); return nil })
		results <- result{what: "iter", data: []byte(strings.Join(names, ",")), err: err}
	})
	time.Sleep(2 * time.Second)
	m.Start()
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Errorf("%s across a restart: %v%s", r.what, r.err, m.Tail())
		}
		switch r.what {
		case "get":
			if !bytes.Equal(r.data, stored) {
				t.Errorf("get across a restart read %d bytes that differ from the object", len(r.data))
			}
		case "iter":
			if string(r.data) != "stored" {
				t.Errorf("iter across a restart listed %q, want stored", r.data)
			}
		}
	}
	if got := get(t, b, "during/big"); !bytes.Equal(got, big) {
		t.Errorf("multipart upload across a restart stored %d bytes that differ", len(got))
	}
	if got := get(t, b, "during/streamed"); !bytes.Equal(got, streamed) {
		t.Errorf("streamed upload across a restart stored %d bytes that differ", len(got))
	}
	for _, want := range []string{"level=WARN", "op=upload", "object=during/big", "op=get", "object=stored", "retrying"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("retry logs lack %q:\n%s", want, logs.String())
			break
		}
	}
}

// TestS3GetResumesAfterCrash: the server dies in the middle of a download;
// the reader picks up where it stopped once the server is back.
func TestS3GetResumesAfterCrash(t *testing.T) {
	m := testsvc.StartMinIO(t)
	cfg := m.Bucket(t, "resume")
	var logs logBuffer
	b := newS3(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	obj := data(4, 32<<20) // far more than socket buffers hold
	put(t, b, "big", bytes.NewReader(obj))

	rc, err := b.Get(t.Context(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := make([]byte, 0, len(obj))
	buf := make([]byte, 1<<20)
	n, err := io.ReadFull(rc, buf)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, buf[:n]...)
	m.Kill()
	done := make(chan struct{})
	var rest []byte
	var readErr error
	go func() {
		defer close(done)
		rest, readErr = io.ReadAll(rc)
	}()
	time.Sleep(2 * time.Second)
	m.Start()
	<-done
	if readErr != nil {
		t.Fatalf("read across a crash: %v%s", readErr, m.Tail())
	}
	got = append(got, rest...)
	if !bytes.Equal(got, obj) {
		t.Fatalf("read %d bytes across a crash that differ from the %d-byte object", len(got), len(obj))
	}
	if !strings.Contains(logs.String(), "op=get") {
		t.Errorf("the read never had to resume (no retry logged), so this test tested nothing:\n%s", logs.String())
	}
}

// TestS3OutageBeyondBudget: when the server stays down longer than the
// retry budget, operations fail with an error saying so, and a failed
// upload leaves no object.
func TestS3OutageBeyondBudget(t *testing.T) {
	m := testsvc.StartMinIO(t)
	cfg := m.Bucket(t, "budget")
	cfg.RetryBudget = time.Second
	b := newS3(t, cfg, nil)
	ctx := t.Context()
	put(t, b, "old", strings.NewReader("old"))

	m.Stop()
	err := b.Upload(ctx, "lost", bytes.NewReader(data(5, 1<<20)))
	if err == nil {
		t.Fatal("Upload succeeded with the server down")
	}
	for _, want := range []string{"upload lost", "s3://budget/", m.Endpoint(), "gave up after", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Upload error %q does not mention %q", err, want)
		}
	}
	if _, err := b.Get(ctx, "old"); err == nil || objstore.IsObjNotFoundErr(err) || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("Get with the server down = %v, want a gave-up error (not 'not found')", err)
	}
	if _, err := b.Exists(ctx, "old"); err == nil {
		t.Error("Exists succeeded with the server down")
	}
	if err := b.Delete(ctx, "old"); err == nil {
		t.Error("Delete succeeded with the server down")
	}
	if err := b.Iter(ctx, "", func(string) error { return nil }); err == nil {
		t.Error("Iter succeeded with the server down")
	}
	// A cancelled context ends the retrying at once.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	cfg.RetryBudget = time.Hour
	if _, err := objstore.NewS3(cctx, cfg, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("NewS3 cancelled while retrying = %v, want context.Canceled", err)
	}

	m.Start()
	if ok, err := b.Exists(ctx, "lost"); ok || err != nil {
		t.Errorf("after the failed upload Exists = %v, %v; want false", ok, err)
	}
	if got := list(t, b, ""); !slices.Equal(got, []string{"old"}) {
		t.Errorf("after the outage Iter = %v, want [old]", got)
	}
}

func TestNewS3Errors(t *testing.T) {
	m := testsvc.StartMinIO(t)
	cfg := m.Bucket(t, "exists")
	ctx := t.Context()

	missing := m.Config("no-such-bucket")
	if _, err := objstore.NewS3(ctx, missing, nil); err == nil || !strings.Contains(err.Error(), `"no-such-bucket" does not exist`) || !strings.Contains(err.Error(), m.Endpoint()) {
		t.Errorf("NewS3(missing bucket) = %v, want a does-not-exist error naming the endpoint", err)
	}
	bad := cfg
	bad.SecretKey = "wrong-secret-key"
	if _, err := objstore.NewS3(ctx, bad, nil); err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("NewS3(wrong secret) = %v, want a credentials error", err)
	}
	for _, tc := range []struct {
		change func(*objstore.S3Config)
		want   string
	}{
		{func(c *objstore.S3Config) { c.Bucket = "" }, "bucket name is empty"},
		{func(c *objstore.S3Config) { c.Bucket = "Bad_Bucket" }, "invalid bucket name"},
		{func(c *objstore.S3Config) { c.Prefix = "a/../b" }, "prefix"},
		{func(c *objstore.S3Config) { c.PartSize = 1 << 20 }, "part size"},
		{func(c *objstore.S3Config) { c.SecretKey = "" }, "both the access key and the secret key"},
		{func(c *objstore.S3Config) { c.Endpoint = "ftp://host" }, "scheme must be http or https"},
		{func(c *objstore.S3Config) { c.Endpoint = "http://host/path" }, "no path"},
	} {
		c := cfg
		tc.change(&c)
		if _, err := objstore.NewS3(ctx, c, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewS3(%+v) = %v, want an error containing %q", c, err, tc.want)
		}
	}
	// The endpoint as a URL works as well as host:port.
	u := cfg
	u.Endpoint, u.Insecure = m.URL(), false
	newS3(t, u, nil)
}

func TestParseS3URL(t *testing.T) {
	for _, tc := range []struct {
		url            string
		bucket, prefix string
	}{
		{"s3://bucket", "bucket", ""},
		{"s3://bucket/", "bucket", ""},
		{"s3://my.bucket-1/some/prefix", "my.bucket-1", "some/prefix"},
		{"S3://bucket/some/prefix/", "bucket", "some/prefix/"},
	} {
		cfg, err := objstore.ParseS3URL(tc.url)
		if err != nil || cfg.Bucket != tc.bucket || cfg.Prefix != tc.prefix {
			t.Errorf("ParseS3URL(%q) = %+v, %v; want bucket %q prefix %q", tc.url, cfg, err, tc.bucket, tc.prefix)
		}
	}
	for _, tc := range []struct{ url, want string }{
		{"", "want the form s3://bucket/prefix"},
		{"bucket/prefix", "want the form s3://bucket/prefix"},
		{"http://bucket/prefix", "want the form s3://bucket/prefix"},
		{"s3:bucket", "missing '//'"},
		{"s3:///prefix", "no bucket name"},
		{"s3://key:secret@bucket/p", "credentials do not belong in the URL"},
		{"s3://bucket:9000/p", "not a server"},
		{"s3://bucket/p?region=x", "query parameters"},
		{"s3://Bucket_1/p", "invalid bucket name"},
		{"s3://bucket/a//b", "invalid prefix"},
		{"s3://bucket/a/../b", "invalid prefix"},
	} {
		_, err := objstore.ParseS3URL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseS3URL(%q) = %v, want an error containing %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseS3URL(%q) error %q shows the secret", tc.url, err)
		}
	}
}

func TestS3ConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	all := map[string]string{
		"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TOK",
		"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2",
		"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL": "https://other",
	}
	var c objstore.S3Config
	c.FromEnv(env(all))
	want := objstore.S3Config{AccessKey: "AK", SecretKey: "SK", SessionToken: "TOK", Region: "eu-west-1", Endpoint: "http://127.0.0.1:9000", Insecure: true}
	if c != want {
		t.Errorf("FromEnv = %+v, want %+v", c, want)
	}

	c = objstore.S3Config{}
	c.FromEnv(env(map[string]string{"AWS_DEFAULT_REGION": "us-east-2", "AWS_ENDPOINT_URL": "https://s3.example.com"}))
	if c.Region != "us-east-2" || c.Endpoint != "https://s3.example.com" || c.Insecure {
		t.Errorf("FromEnv fallbacks = %+v", c)
	}

	// Set fields win; a token never pairs with keys it does not belong to.
	c = objstore.S3Config{AccessKey: "mine", SecretKey: "mine-secret", Region: "ap-south-1", Endpoint: "minio:9000"}
	c.FromEnv(env(all))
	if c.AccessKey != "mine" || c.SessionToken != "" || c.Region != "ap-south-1" || c.Endpoint != "minio:9000" || c.Insecure {
		t.Errorf("FromEnv overrode set fields: %+v", c)
	}
}
