package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/duet-analytics/duet/internal/auth"
	"github.com/duet-analytics/duet/internal/engine"
	"github.com/duet-analytics/duet/internal/executor"
	"github.com/duet-analytics/duet/scheduler"
	"github.com/duet-analytics/duet/speedlayer"
)

// Config is one duet server's configuration.
type Config struct {
	// DataDir holds the catalog, the object store, the event logs and scratch space.
	DataDir string `yaml:"data_dir"`
	// Listen is the HTTP address of the API and the SQL gateway.
	Listen string `yaml:"listen"`
	// Catalog is a postgres:// URL; empty keeps the catalog in a SQLite
	// file in DataDir. Replicas share one PostgreSQL catalog.
	Catalog string `yaml:"catalog"`
	// ObjectStore is an s3://bucket/prefix URL; empty keeps objects in
	// DataDir. S3Endpoint and S3Region override what the URL and the AWS_*
	// environment say; credentials come from the environment.
	ObjectStore string `yaml:"object_store"`
	S3Endpoint  string `yaml:"s3_endpoint"`
	S3Region    string `yaml:"s3_region"`
	// ObjectCacheBytes bounds the local cache S3 objects are read through.
	ObjectCacheBytes int64 `yaml:"object_cache_bytes"`
	// AdvertiseURL is how other replicas reach this one to forward requests
	// while it leads (default http://<listen>).
	AdvertiseURL string `yaml:"advertise_url"`
	// TLSCertFile and TLSKeyFile (PEM), when set, make Listen serve HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// Auth says how clients authenticate; it is required unless Listen is a
	// loopback address.
	Auth auth.Config `yaml:"auth"`
	// AuthzFile holds the authorization rules (see internal/authz): who
	// reads which relations, ingests where, and administers. Without it
	// every authenticated user may do everything.
	AuthzFile string `yaml:"authz_file"`
	// Engine bounds the embedded query engine.
	Engine engine.Config `yaml:"engine"`
	// SegmentMaxRecords and SegmentMaxAge decide when the speed layer seals
	// and archives a segment.
	SegmentMaxRecords int64         `yaml:"segment_max_records"`
	SegmentMaxAge     time.Duration `yaml:"segment_max_age"`
	// MaxIngestBytes bounds one ingest request's body.
	MaxIngestBytes int64 `yaml:"max_ingest_bytes"`
	// SpeedMemoryBudget bounds the engine memory of the speed layer's
	// unarchived records and view partials: a size ("512MiB") or a share of
	// the engine's memory limit ("25%"). At the budget, ingest answers 429.
	SpeedMemoryBudget string `yaml:"speed_memory_budget"`
	// ViewCacheRows: a published view version of at most this many rows is
	// copied into the engine (a file-backed table its buffer manager may
	// evict) and queries read it there rather than its Parquet files; 0
	// always reads the files.
	ViewCacheRows int64 `yaml:"view_cache_rows"`
	// MaterializeAfter: once a dataset has taken no records for this long,
	// its aggregate views' merged answers are computed once into engine
	// tables that queries read until records arrive again; 0 merges at
	// every query.
	MaterializeAfter time.Duration `yaml:"materialize_after"`
	// Executor says how executors start: the duet command (empty: this
	// process's executable) and how many wait warmed up for a task.
	Executor executor.Config `yaml:"executor"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Scheduler bounds concurrent jobs and paces retries.
	Scheduler scheduler.Config `yaml:"scheduler"`
	// KeepVersions, GCGrace and CompactionTarget tune the batch layer
	// (see batchlayer.Config).
	KeepVersions     int           `yaml:"keep_versions"`
	GCGrace          time.Duration `yaml:"gc_grace"`
	CompactionTarget int64         `yaml:"compaction_target_bytes"`
	// CompactionSchedule (cron) queues a compaction of every dataset's raw
	// archive; empty disables it.
	CompactionSchedule string `yaml:"compaction_schedule"`
	// QueryTimeout bounds one SQL query; it must be shorter than GCGrace so
	// no query outlives the files of the version it started on.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// QueryMaxConcurrent, QueryMaxQueued, QueryMaxRows and QueryHistory
	// bound the SQL gateway's queries (see sqlgateway.Config; zero takes
	// its defaults).
	QueryMaxConcurrent int   `yaml:"query_max_concurrent"`
	QueryMaxQueued     int   `yaml:"query_max_queued"`
	QueryMaxRows       int64 `yaml:"query_max_rows"`
	QueryHistory       int   `yaml:"query_history"`
	// RowsCacheBytes bounds the cache of GET /v1/views/{name}/rows answers
	// (0 disables it).
	RowsCacheBytes int64 `yaml:"rows_cache_bytes"`
	// RoutingFile is a JSON file of Trino clusters and the rules sending
	// statements to them (see sqlgateway.RoutingConfig); empty runs every
	// statement here.
	RoutingFile string `yaml:"routing_file"`
	// ClustersFile is a JSON file of the clusters jobs run on (see
	// loadClusters); empty runs every job on this machine's executors.
	ClustersFile string `yaml:"clusters_file"`

	// archiveBucket, when set, wraps the bucket the speed layer archives to
	// (tests gate uploads with it).
	archiveBucket func(speedlayer.Bucket) speedlayer.Bucket
	// replica, when set, runs the server as that replica's leader: on its
	// catalog, behind its listener.
	replica *Replica
}

// DefaultConfig is the configuration of `duet serve` without flags.
func DefaultConfig() Config {
	return Config{
		DataDir:            "./duet-data",
		Listen:             "127.0.0.1:8080",
		ObjectCacheBytes:   10 << 30,
		SegmentMaxRecords:  100_000,
		SegmentMaxAge:      30 * time.Second,
		MaxIngestBytes:     64 << 20,
		SpeedMemoryBudget:  speedlayer.DefaultMemoryBudget,
		ViewCacheRows:      1_000_000,
		MaterializeAfter:   200 * time.Millisecond,
		ShutdownTimeout:    10 * time.Second,
		Scheduler:          scheduler.DefaultConfig(),
		KeepVersions:       5,
		GCGrace:            10 * time.Minute,
		CompactionTarget:   128 << 20,
		CompactionSchedule: "@hourly",
		QueryTimeout:       5 * time.Minute,
		RowsCacheBytes:     64 << 20,
		Executor:           executor.Config{Standby: 1, HeartbeatTimeout: executor.DefaultHeartbeatTimeout, Nice: executor.DefaultNice},
	}
}

// Validate fills defaults and names the first bad field.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.DataDir == "" {
		return errors.New("data_dir: required")
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	if err := c.validateSecurity(host); err != nil {
		return err
	}
	if c.ObjectCacheBytes == 0 {
		c.ObjectCacheBytes = d.ObjectCacheBytes
	}
	if err := c.validateStores(); err != nil {
		return err
	}
	if c.KeepVersions == 0 {
		c.KeepVersions = d.KeepVersions
	}
	if c.GCGrace == 0 {
		c.GCGrace = d.GCGrace
	}
	if c.CompactionTarget == 0 {
		c.CompactionTarget = d.CompactionTarget
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = d.QueryTimeout
	}
	if c.QueryTimeout >= c.GCGrace {
		return fmt.Errorf("query_timeout %s must be shorter than gc_grace %s: files of a replaced version are deleted after gc_grace, and a query may read them until it ends", c.QueryTimeout, c.GCGrace)
	}
	if c.CompactionSchedule != "" {
		if err := scheduler.ValidateSchedule(c.CompactionSchedule); err != nil {
			return fmt.Errorf("compaction_schedule: %w", err)
		}
	}
	if c.SegmentMaxRecords == 0 {
		c.SegmentMaxRecords = d.SegmentMaxRecords
	}
	if c.SegmentMaxAge == 0 {
		c.SegmentMaxAge = d.SegmentMaxAge
	}
	if c.MaxIngestBytes == 0 {
		c.MaxIngestBytes = d.MaxIngestBytes
	}
	if c.SpeedMemoryBudget == "" {
		c.SpeedMemoryBudget = d.SpeedMemoryBudget
	}
	if _, err := speedlayer.ParseMemoryBudget(c.SpeedMemoryBudget); err != nil {
		return fmt.Errorf("speed_memory_budget: %w", err)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.RowsCacheBytes < 0 {
		return fmt.Errorf("rows_cache_bytes %d: must be 0 (no cache) or more", c.RowsCacheBytes)
	}
	if c.SegmentMaxRecords < 0 || c.SegmentMaxAge < 0 || c.MaxIngestBytes < 0 {
		return errors.New("segment_max_records, segment_max_age and max_ingest_bytes must be positive")
	}
	return c.Scheduler.Validate()
}

// validateSecurity refuses to expose the server unauthenticated, and
// passwords over plain HTTP (Trino refuses them too).
func (c *Config) validateSecurity(listenHost string) error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("tls_cert_file and tls_key_file: set both (--tls-cert and --tls-key) or neither")
	}
	if err := c.Auth.Validate(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if c.Auth.PasswordFile != "" && c.TLSCertFile == "" {
		return errors.New("auth password_file: password authentication needs TLS, or passwords cross the network in clear: set --tls-cert and --tls-key")
	}
	if c.AuthzFile != "" && !c.Auth.Enabled() {
		return fmt.Errorf("authz_file %s: authorization rules need authenticated users: set --auth-password-file (with --tls-cert and --tls-key), --auth-jwt-secret-file or --auth-jwks-file", c.AuthzFile)
	}
	if !c.Auth.Enabled() && !isLoopback(listenHost) {
		return fmt.Errorf("listen %q: not a loopback address, so clients must authenticate: set --auth-password-file (with --tls-cert and --tls-key), --auth-jwt-secret-file or --auth-jwks-file, or listen on 127.0.0.1", c.Listen)
	}
	return nil
}

// isLoopback reports whether host only reaches this machine; a host name
// other than localhost may resolve anywhere, so it is not.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
