package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/duet-analytics/duet/server"
	"github.com/duet-analytics/duet/sqlgateway"
)

func newServeCmd() *cobra.Command {
	cfg := server.DefaultConfig()
	var logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the duet server: API, speed layer, scheduler, serving and the SQL gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := server.NewReplica(ctx, cfg, logger)
			if err != nil {
				return err
			}
			return rep.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the catalog, object store and event logs")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the HTTP API and the SQL gateway; other than loopback, it needs an --auth-* flag")
	f.StringVar(&cfg.Catalog, "catalog", "", "postgres:// URL of the catalog database, shared by replicas (default: a SQLite file in --data-dir)")
	f.StringVar(&cfg.ObjectStore, "object-store", "", "s3://bucket/prefix to keep objects in (default: a directory in --data-dir); credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	f.StringVar(&cfg.S3Endpoint, "s3-endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:9000 for MinIO (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS)")
	f.StringVar(&cfg.S3Region, "s3-region", "", "S3 region (default: AWS_REGION, AWS_DEFAULT_REGION)")
	f.Int64Var(&cfg.ObjectCacheBytes, "object-cache-bytes", cfg.ObjectCacheBytes, "bound of the local cache S3 objects are read through, in --data-dir")
	f.StringVar(&cfg.AdvertiseURL, "advertise-url", "", "URL other replicas forward requests to while this one leads (default: http(s)://<--listen>)")
	f.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS; needs --tls-key")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key file of --tls-cert")
	f.StringVar(&cfg.Auth.PasswordFile, "auth-password-file", "", "require a user and password (basic auth, needs --tls-cert) found in this file of user:bcrypt-hash lines (htpasswd -B)")
	f.StringVar(&cfg.Auth.JWTSecretFile, "auth-jwt-secret-file", "", "accept JWT bearer tokens signed with HS256 by the secret in this file (at least 32 bytes)")
	f.StringVar(&cfg.Auth.JWKSFile, "auth-jwks-file", "", "accept JWT bearer tokens signed with RS256 by an RSA key of this JWKS file")
	f.StringVar(&cfg.Auth.JWTIssuer, "auth-jwt-issuer", "", "require this iss claim in bearer tokens")
	f.StringVar(&cfg.Auth.JWTAudience, "auth-jwt-audience", "", "require this audience in the aud claim of bearer tokens")
	f.StringVar(&cfg.Auth.JWTUserClaim, "auth-jwt-user-claim", "", `claim of a bearer token naming the user (default "sub")`)
	f.StringVar(&cfg.AuthzFile, "authz-file", "", "JSON rules of who reads which relations, ingests into which datasets and administers (see README); without it every user may do everything")
	f.Int64Var(&cfg.SegmentMaxRecords, "segment-max-records", cfg.SegmentMaxRecords, "seal and archive a speed segment at this many records")
	f.DurationVar(&cfg.SegmentMaxAge, "segment-max-age", cfg.SegmentMaxAge, "seal and archive a speed segment this long after its first record")
	f.StringVar(&cfg.Engine.MemoryLimit, "memory-limit", "", `engine memory limit, e.g. "4GB" (default: DuckDB's, 80% of RAM)`)
	f.StringVar(&cfg.SpeedMemoryBudget, "speed-memory-budget", cfg.SpeedMemoryBudget, `engine memory for unarchived records and view partials, as a size ("512MiB", "2GB") or a share of --memory-limit; at it, ingest answers 429 with Retry-After`)
	f.DurationVar(&cfg.MaterializeAfter, "materialize-after", cfg.MaterializeAfter, "once a dataset has taken no records for this long, its aggregate views' merged answers are computed once and queries read them until records arrive again (0: merge at every query)")
	f.Int64Var(&cfg.ViewCacheRows, "view-cache-rows", cfg.ViewCacheRows, "a view version of at most this many rows is copied into the engine when published, and queries read it there instead of its Parquet files (0: always read the files)")
	f.IntVar(&cfg.Engine.Threads, "threads", 0, "engine threads (default: one fewer than the cores, at least one; executors: one per core)")
	f.IntVar(&cfg.Executor.Nice, "executor-nice", cfg.Executor.Nice, "how much lower executors' CPU priority is than the server's (0-19, added to its nice value), so builds and jobs give way to ingest and queries")
	f.IntVar(&cfg.Executor.Standby, "executor-standby", cfg.Executor.Standby, "executors kept started and warmed up, so a build need not wait for one (0: start each with its task)")
	f.IntVar(&cfg.Scheduler.Workers, "workers", cfg.Scheduler.Workers, "jobs (view builds, backfills, compactions, sql jobs) run at once on this machine's executors")
	f.StringVar(&cfg.ClustersFile, "clusters-file", "", "JSON file of the clusters jobs run on: local executors and Trino clusters, with tags and slots (default: one local cluster with --workers slots)")
	f.IntVar(&cfg.Scheduler.MaxActivePerUser, "max-active-jobs-per-user", cfg.Scheduler.MaxActivePerUser, "queued and running jobs a user may have; more are refused with 429 (0: no limit)")
	f.DurationVar(&cfg.Scheduler.RetryBackoff, "job-retry-backoff", cfg.Scheduler.RetryBackoff, "wait before a failed job's second attempt; doubles for each further one")
	f.DurationVar(&cfg.Executor.HeartbeatTimeout, "executor-heartbeat-timeout", cfg.Executor.HeartbeatTimeout, "an executor silent this long is taken for lost: killed, and its attempt failed")
	f.IntVar(&cfg.KeepVersions, "keep-versions", cfg.KeepVersions, "newest versions of each view kept for rollback (the current one always is)")
	f.DurationVar(&cfg.GCGrace, "gc-grace", cfg.GCGrace, "how long files of replaced versions and compacted archive files stay before deletion; longer than --query-timeout")
	f.DurationVar(&cfg.QueryTimeout, "query-timeout", cfg.QueryTimeout, "longest a SQL query may run")
	f.IntVar(&cfg.QueryMaxConcurrent, "query-max-concurrent", sqlgateway.DefaultMaxConcurrent, "SQL queries running at once; more wait QUEUED, shared fairly between users")
	f.IntVar(&cfg.QueryMaxQueued, "query-max-queued", sqlgateway.DefaultMaxQueued, "SQL queries waiting; beyond, a query fails with QUERY_QUEUE_FULL")
	f.Int64Var(&cfg.QueryMaxRows, "query-max-rows", sqlgateway.DefaultMaxResultRows, "rows a SQL query's result may have (-1: no limit)")
	f.Int64Var(&cfg.RowsCacheBytes, "rows-cache-bytes", cfg.RowsCacheBytes, "bound of the cache of GET /v1/views/{name}/rows answers, least recently used out first (0: no cache)")
	f.IntVar(&cfg.QueryHistory, "query-history", sqlgateway.DefaultHistorySize, "finished SQL queries system.queries keeps")
	f.StringVar(&cfg.RoutingFile, "routing-file", "", "JSON file of Trino clusters and routing rules: matching SQL statements run on those clusters, proxied through this server")
	f.Int64Var(&cfg.CompactionTarget, "compaction-target-bytes", cfg.CompactionTarget, "compaction merges small archive files into files of about this size")
	f.StringVar(&cfg.CompactionSchedule, "compaction-schedule", cfg.CompactionSchedule, `when to compact every dataset's raw archive (cron, "@hourly"; "" disables)`)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
