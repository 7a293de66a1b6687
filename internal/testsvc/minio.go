package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/duet-analytics/duet/internal/objstore"
)

// MinIOEnv names a minio binary to use instead of the one on PATH or in the
// Go bin directory.
const MinIOEnv = "DUET_TEST_MINIO"

// MinIOInstall is how to get the minio binary.
const MinIOInstall = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

const minioReadyTimeout = 60 * time.Second

// MinIO is a MinIO server run for one test: a single drive in a temporary
// directory, on a free loopback port, with random root credentials. Its
// Start, Stop, Kill and Tail come from process; a restart keeps the port,
// data and credentials, and Start waits for /minio/health/ready.
type MinIO struct {
	process
	bin       string
	dataDir   string
	addr      string // host:port of the S3 API
	console   string
	accessKey string
	secretKey string
}

// StartMinIO starts a MinIO server that is killed when the test ends. It
// calls Missing when there is no minio binary.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin, ok := findBinary(MinIOEnv, "minio", filepath.Join(goBin(), "minio"))
	if !ok {
		Missing(t, "MinIO", MinIOInstall)
	}
	dir := t.TempDir()
	m := &MinIO{
		bin:       bin,
		dataDir:   filepath.Join(dir, "data"),
		addr:      net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		console:   net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		accessKey: "duet-" + randomHex(t, 6),
		secretKey: randomHex(t, 20),
	}
	m.process = process{
		t:       t,
		name:    "MinIO",
		where:   m.addr,
		logPath: filepath.Join(dir, "minio.log"),
		command: m.command,
		ready: func(exited <-chan struct{}) error {
			return waitReady(m.URL()+"/minio/health/ready", exited, minioReadyTimeout)
		},
	}
	if err := os.MkdirAll(m.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	m.Start()
	return m
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Endpoint is the S3 API's host:port.
func (m *MinIO) Endpoint() string { return m.addr }

// URL is the S3 API's base URL.
func (m *MinIO) URL() string { return "http://" + m.addr }

// AccessKey is the root user.
func (m *MinIO) AccessKey() string { return m.accessKey }

// SecretKey is the root password.
func (m *MinIO) SecretKey() string { return m.secretKey }

// Config is a config for bucket on this server, which need not exist.
func (m *MinIO) Config(bucket string) objstore.S3Config {
	return objstore.S3Config{
		Bucket:    bucket,
		Endpoint:  m.addr,
		Region:    "us-east-1",
		AccessKey: m.accessKey,
		SecretKey: m.secretKey,
		Insecure:  true,
	}
}

// Bucket creates a bucket and returns a config for it.
func (m *MinIO) Bucket(t testing.TB, name string) objstore.S3Config {
	t.Helper()
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	client, err := minio.New(m.addr, &minio.Options{
		Creds:     credentials.NewStaticV4(m.accessKey, m.secretKey, ""),
		Transport: tr,
		Region:    "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("create bucket %s on MinIO at %s: %v%s", name, m.addr, err, m.Tail())
	}
	return m.Config(name)
}

func (m *MinIO) command() *exec.Cmd {
	cmd := exec.Command(m.bin, "server", "--address", m.addr, "--console-address", m.console, m.dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.accessKey,
		"MINIO_ROOT_PASSWORD="+m.secretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	return cmd
}
