package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/objstore"
)

// What the server logs when the bucket fails it (see objstore.S3,
// speedlayer.Layer.Run and batchlayer.Builder.run).
const (
	logS3Retry       = `msg="object storage request failed; retrying"`
	logArchiveFailed = `msg="archive failed; will retry"`
	logKeepOutput    = `msg="keep executor output"`
	logGaveUp        = "gave up after"
)

// TestS3Faults stops the bucket's server (MinIO) in the middle of archiving
// and of builds, for less and for more than the S3 retry budget, and starts
// it again: nothing accepted is lost, queries stay exact throughout, no
// object the catalog does not name is left in the bucket, and the work
// resumes. The two cases run side by side, each on its own MinIO and
// PostgreSQL database: most of their time is waiting out the budget.
func TestS3Faults(t *testing.T) {
	t.Run("archive", func(t *testing.T) {
		t.Parallel()
		s3FaultsDuringArchiving(t)
	})
	t.Run("build", func(t *testing.T) {
		t.Parallel()
		s3FaultsDuringBuilds(t)
	})
}

// s3FaultsDuringArchiving: events keep arriving while the bucket is down.
// They are acknowledged (the log on local disk is what makes them durable),
// queries answer them from the speed layer and the archive files already
// uploaded (read from the local cache), and the archiving catches up once
// the bucket is back, also after an attempt gave up.
func s3FaultsDuringArchiving(t *testing.T) {
	st := startSharedStores(t)
	// No compaction: it would retire archive files while the test lists them.
	o := serveOpts{dataDir: t.TempDir(), flags: append([]string{"--compaction-schedule", ""}, st.flags...), env: st.env}
	p := startDuet(t, o)
	createFlightsAndDelays(t, p)
	prod := newProducer(71)
	prod.ingest(t, p.client, 4, 150)
	waitArchived(t, p, len(prod.all))
	assertExact(t, p, prod, "before the outages")
	checkArchiveObjects(t, p, st, len(prod.all))

	// An outage shorter than the retry budget: the upload in flight rides
	// it out.
	retries := logLines(p, logS3Retry, "op=upload", "raw/flights/")
	failures := logLines(p, logArchiveFailed)
	began := time.Now()
	st.minio.Stop()
	prod.ingest(t, p.client, 3, 150) // seals a segment by count: its archiving meets the outage
	waitLogLines(t, p, retries, time.Minute, logS3Retry, "op=upload", "raw/flights/")
	prod.ingest(t, p.client, 2, 150)
	assertExact(t, p, prod, "short outage, MinIO down")
	requireUnarchived(t, p, len(prod.all), "short outage")
	st.minio.Start()
	outage := time.Since(began)
	waitArchived(t, p, len(prod.all))
	// Leave a margin for the time between the first failed request and Stop
	// returning, and for MinIO's start.
	if budget := objstore.DefaultS3RetryBudget; outage < budget-5*time.Second {
		if n := logLines(p, logArchiveFailed); n != failures {
			t.Fatalf("a %s outage, shorter than the %s retry budget, failed an archive attempt:\n%s",
				outage.Round(time.Millisecond), budget, strings.Join(matchingLines(p, logArchiveFailed), "\n"))
		}
	} else {
		t.Logf("the short outage lasted %s, too close to the retry budget to require that no archive attempt failed", outage.Round(time.Millisecond))
	}
	assertExact(t, p, prod, "short outage, MinIO back")
	checkArchiveObjects(t, p, st, len(prod.all))

	// An outage longer than the budget, as a crash (requests in flight
	// break): an archive attempt gives up, and a later one, after MinIO is
	// back, archives the segments.
	failures = logLines(p, logArchiveFailed, logGaveUp)
	st.minio.Kill()
	prod.ingest(t, p.client, 3, 150)
	assertExact(t, p, prod, "long outage, MinIO down")
	waitFor(t, "archive attempt giving up on the stopped MinIO", 90*time.Second, time.Second, func() bool {
		prod.ingest(t, p.client, 1, 100) // acknowledged all along
		return logLines(p, logArchiveFailed, logGaveUp) > failures
	})
	t.Logf("archive attempt gave up: %s", matchingLines(p, logArchiveFailed, logGaveUp)[failures])
	assertExact(t, p, prod, "long outage, after an archive attempt gave up")
	requireUnarchived(t, p, len(prod.all), "long outage")
	st.minio.Start()
	waitArchived(t, p, len(prod.all))
	assertExact(t, p, prod, "long outage, MinIO back")
	checkArchiveObjects(t, p, st, len(prod.all))

	// The catalog and the bucket alone (with the local log) bring it back.
	p.stop(t)
	p = startDuet(t, o)
	assertExact(t, p, prod, "after restart")
	prod.ingest(t, p.client, 3, 150)
	waitArchived(t, p, len(prod.all))
	assertExact(t, p, prod, "ingest after restart")
	checkArchiveObjects(t, p, st, len(prod.all))
	p.stop(t)
}

// s3FaultsDuringBuilds: a build's executor finishes into an outage, so its
// uploads (executor output, then the view's files) meet it. A short outage
// is ridden out; a long one makes the attempt outlast its timeout, and the
// retry publishes. Either way there is exactly one new version.
func s3FaultsDuringBuilds(t *testing.T) {
	st := startSharedStores(t)
	flags := append([]string{"--job-retry-backoff", "100ms", "--compaction-schedule", ""}, st.flags...)
	p := startDuet(t, serveOpts{dataDir: t.TempDir(), flags: flags, env: st.env})
	ctx := ctxT(t)
	if _, err := p.client.CreateDataset(ctx, flightsSpec); err != nil {
		t.Fatal(err)
	}
	// The timeout is below the retry budget (30 s): an attempt whose first
	// upload gave up has timed out by the time it uploads the view's files.
	if _, err := p.client.CreateView(ctx, api.ViewRequest{Name: "delays", SQL: viewSQL, Timeout: "20s"}); err != nil {
		t.Fatal(err)
	}
	prod := newProducer(72)
	prod.ingest(t, p.client, 4, 150)
	if j := build(t, p); j.Version.Version != 1 {
		t.Fatalf("first build published version %d, want 1", j.Version.Version)
	}
	assertExact(t, p, prod, "first build")

	// Short: MinIO is back as soon as an upload of the build has retried.
	prod.ingest(t, p.client, 3, 150)
	retries := logLines(p, logS3Retry)
	j := buildThroughOutage(t, p, st, func(id string) {
		waitLogLines(t, p, retries, time.Minute, logS3Retry, "logs/jobs/"+id)
	})
	t.Logf("build %s through a short outage: attempt %d", j.ID, j.Attempt)
	requireVersions(t, p, prod, j, 2)
	assertExact(t, p, prod, "build through a short outage")
	checkViewObjects(t, p, st, "delays")

	// Long: MinIO stays down past the attempt's timeout: keeping the
	// executor's output gives up (bounded, so the attempt is not held past
	// its timeout for long), the attempt fails without publishing and the
	// retry, with MinIO back, publishes.
	prod.ingest(t, p.client, 3, 150)
	keepFailed := logLines(p, logKeepOutput)
	j = buildThroughOutage(t, p, st, func(id string) {
		waitLogLines(t, p, keepFailed, 90*time.Second, logKeepOutput)
		waitLogLines(t, p, 0, 90*time.Second, "job="+id, `msg="job attempt ended"`, "attempt=1 ")
	})
	if j.Attempt != 2 {
		t.Fatalf("build %s through a long outage succeeded at attempt %d; want attempt 1 to time out and attempt 2 to publish\n%s",
			j.ID, j.Attempt, strings.Join(matchingLines(p, "job="+j.ID), "\n"))
	}
	ended := matchingLines(p, "job="+j.ID, `msg="job attempt ended"`, "attempt=1 ")
	if len(ended) != 1 || !strings.Contains(ended[0], "state=queued") {
		t.Fatalf("build %s: want one log line of attempt 1 ending for a retry, got %q", j.ID, ended)
	}
	t.Logf("build %s through a long outage: %s", j.ID, ended[0])
	requireVersions(t, p, prod, j, 3)
	assertExact(t, p, prod, "build through a long outage")
	checkViewObjects(t, p, st, "delays")
	p.stop(t)
}

// buildThroughOutage triggers a build of delays, freezes its executor while
// MinIO stops, lets it finish into the outage, calls during (MinIO still
// down), starts MinIO, and returns the job once it succeeded.
func buildThroughOutage(t *testing.T, p *proc, st sharedStores, during func(jobID string)) api.Job {
	t.Helper()
	ctx := ctxT(t)
	jobID, pid := freezeExecutor(t, p, p, func() string {
		j, err := p.client.TriggerBuild(ctx, "delays")
		if err != nil {
			t.Fatal(err)
		}
		return j.ID
	})
	frozen := true
	t.Cleanup(func() {
		if frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	st.minio.Stop()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("resume executor %d of build %s: %v", pid, jobID, err)
	}
	frozen = false
	during(jobID)
	// Publishing needs the view's files in the bucket.
	j, err := p.client.GetJob(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State == api.JobSucceeded {
		t.Fatalf("build %s succeeded while MinIO was down: version %+v", j.ID, j.Version)
	}
	st.minio.Start()
	if j, err = p.client.WaitJob(ctx, j.ID, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobSucceeded || j.Version == nil {
		t.Fatalf("build %s after MinIO came back: %s at attempt %d: %s", j.ID, j.State, j.Attempt, j.Error)
	}
	return j
}

// requireVersions checks that j published version want, the newest and
// current, covering every accepted event, and that versions 1..want exist
// once each.
func requireVersions(t *testing.T, p *proc, prod *producer, j api.Job, want int64) {
	t.Helper()
	if j.Version.Version != want || j.Version.CoveredOffset != int64(len(prod.all)) {
		t.Fatalf("build %s published %+v; want version %d covering all %d offsets", j.ID, j.Version, want, len(prod.all))
	}
	versions, err := p.client.ListVersions(ctxT(t), "delays")
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(versions)) != want {
		t.Fatalf("%d versions %+v; want %d", len(versions), versions, want)
	}
	for i, v := range versions { // newest first
		if v.Version != want-int64(i) || v.Current != (i == 0) {
			t.Fatalf("versions %+v: want %d down to 1, the newest current", versions, want)
		}
	}
	if versions[0].JobID != j.ID || versions[0].CoveredOffset != j.Version.CoveredOffset {
		t.Fatalf("newest version %+v; want the one build %s published, covering %d", versions[0], j.ID, j.Version.CoveredOffset)
	}
	v, err := p.client.GetView(ctxT(t), "delays")
	if err != nil {
		t.Fatal(err)
	}
	if v.Batch == nil || v.Speed == nil || v.Batch.Version != want || v.Speed.FromOffset != v.Batch.CoveredOffset {
		t.Fatalf("view serves batch %+v, speed %+v; want version %d", v.Batch, v.Speed, want)
	}
}

// requireUnarchived checks, while MinIO is down, that the log holds every
// accepted event and that the newest are not archived: the queries that
// found them exact found them in the speed layer.
func requireUnarchived(t *testing.T, p *proc, events int, step string) {
	t.Helper()
	d, err := p.client.GetDataset(ctxT(t), "flights")
	if err != nil {
		t.Fatal(err)
	}
	if d.Log.EndOffset != int64(events) || d.Log.ArchivedOffset >= int64(events) {
		t.Fatalf("%s: log status %+v with MinIO down; want all %d events in the log and the newest unarchived", step, d.Log, events)
	}
}

// catalogFile is an object as the catalog records it.
type catalogFile struct {
	first, end int64 // archive files only
	rows, size int64
}

// checkArchiveObjects compares the bucket with the catalog, the commit point
// of archiving: every object under raw/ is an archive file the catalog
// records, with its size, and reads back as Parquet with the recorded row
// count; every recorded file is in the bucket; and the files' offset ranges
// hold exactly offsets [0, events) once each.
func checkArchiveObjects(t *testing.T, p *proc, st sharedStores, events int) {
	t.Helper()
	ctx := ctxT(t)
	files := map[string]catalogFile{}
	queryCatalog(t, st, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT path, first_offset, end_offset, row_count, byte_count FROM archive_files WHERE dataset = 'flights'`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var path string
			var f catalogFile
			if err := rows.Scan(&path, &f.first, &f.end, &f.rows, &f.size); err != nil {
				return err
			}
			files[path] = f
		}
		return rows.Err()
	})
	d, err := p.client.GetDataset(ctx, "flights")
	if err != nil {
		t.Fatal(err)
	}
	if d.Log.ArchiveFiles != len(files) {
		t.Fatalf("the API counts %d archive files, the catalog holds %d", d.Log.ArchiveFiles, len(files))
	}
	compareObjects(t, st, "raw/", files)

	// Offsets: each segment's day files together hold its range.
	ranges := map[[2]int64]int64{}
	for _, f := range files {
		ranges[[2]int64{f.first, f.end}] += f.rows
	}
	keys := make([][2]int64, 0, len(ranges))
	for r := range ranges {
		keys = append(keys, r)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0] < keys[j][0] })
	next := int64(0)
	for _, r := range keys {
		if r[0] != next || ranges[r] != r[1]-r[0] {
			t.Fatalf("archive ranges %v (rows %v): offsets [%d,%d) hold %d rows, expected to start at %d", keys, ranges, r[0], r[1], ranges[r], next)
		}
		next = r[1]
	}
	if next != int64(events) {
		t.Fatalf("the archive holds offsets up to %d, want all %d events", next, events)
	}
}

// checkViewObjects: every object under views/<view>/ is a file of a version
// the catalog records, with its size and row count, and every such file is
// in the bucket: a failed attempt left nothing behind.
func checkViewObjects(t *testing.T, p *proc, st sharedStores, view string) {
	t.Helper()
	ctx := ctxT(t)
	files := map[string]catalogFile{}
	queryCatalog(t, st, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT files_json FROM view_versions WHERE view_name = $1`, view)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var js string
			if err := rows.Scan(&js); err != nil {
				return err
			}
			var vfs []struct {
				Path  string `json:"path"`
				Rows  int64  `json:"rows"`
				Bytes int64  `json:"bytes"`
			}
			if err := json.Unmarshal([]byte(js), &vfs); err != nil {
				return fmt.Errorf("version files %s: %w", js, err)
			}
			// Incremental versions carry files of older ones over.
			for _, f := range vfs {
				files[f.Path] = catalogFile{rows: f.Rows, size: f.Bytes}
			}
		}
		return rows.Err()
	})
	compareObjects(t, st, "views/"+view+"/", files)
}

func queryCatalog(t *testing.T, st sharedStores, f func(*pgx.Conn) error) {
	t.Helper()
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, flagValue(t, st.flags, "--catalog"))
	if err != nil {
		t.Fatalf("connect to the catalog: %v", err)
	}
	defer conn.Close(context.Background())
	if err := f(conn); err != nil {
		t.Fatalf("read the catalog: %v", err)
	}
}

// compareObjects lists the objects under under (a name prefix inside the
// server's bucket prefix) and requires them to be exactly want, each of the
// recorded size and reading back as Parquet with the recorded rows.
func compareObjects(t *testing.T, st sharedStores, under string, want map[string]catalogFile) {
	t.Helper()
	ctx := ctxT(t)
	u, err := url.Parse(flagValue(t, st.flags, "--object-store"))
	if err != nil {
		t.Fatal(err)
	}
	bucket, prefix := u.Host, strings.Trim(u.Path, "/")+"/"
	client, err := minio.New(st.minio.Endpoint(), &minio.Options{
		Creds:  credentials.NewStaticV4(st.minio.AccessKey(), st.minio.SecretKey(), ""),
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range want {
		if !strings.HasPrefix(name, under) {
			t.Fatalf("the catalog names %s, outside %s", name, under)
		}
	}
	got := map[string]int64{}
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + under, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s%s in bucket %s: %v", prefix, under, bucket, o.Err)
		}
		got[strings.TrimPrefix(o.Key, prefix)] = o.Size
	}
	for name, size := range got {
		f, ok := want[name]
		if !ok {
			t.Fatalf("object %s in the bucket (%d bytes) is not in the catalog: %d objects under %s, %d recorded", name, size, len(got), under, len(want))
		}
		if size != f.size {
			t.Fatalf("object %s holds %d bytes, the catalog records %d", name, size, f.size)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Fatalf("the catalog records %s, missing from the bucket", name)
		}
	}

	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	dir := t.TempDir()
	for name, f := range want {
		local := filepath.Join(dir, strings.NewReplacer("/", "_", "=", "_").Replace(name))
		if err := client.FGetObject(ctx, bucket, prefix+name, local, minio.GetObjectOptions{}); err != nil {
			t.Fatalf("download %s: %v", name, err)
		}
		var rows int64
		if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FROM read_parquet('%s')", local)).Scan(&rows); err != nil {
			t.Fatalf("read object %s back as Parquet: %v", name, err)
		}
		if rows != f.rows {
			t.Fatalf("object %s holds %d rows, the catalog records %d", name, rows, f.rows)
		}
	}
}

func flagValue(t *testing.T, flags []string, name string) string {
	t.Helper()
	for i := 0; i+1 < len(flags); i++ {
		if flags[i] == name {
			return flags[i+1]
		}
	}
	t.Fatalf("no %s in %q", name, flags)
	return ""
}
