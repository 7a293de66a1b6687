package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/objstore"
)

// bucket is the object store as the server uses it: objects, and local files
// the engine reads them from.
type bucket interface {
	objstore.Bucket
	objstore.LocalReader
}

// isPostgres reports whether a catalog setting names a PostgreSQL database.
func isPostgres(catalogURL string) bool {
	return strings.HasPrefix(catalogURL, "postgres://") || strings.HasPrefix(catalogURL, "postgresql://")
}

// validateStores checks the catalog and object store settings.
func (c *Config) validateStores() error {
	if c.Catalog != "" && !isPostgres(c.Catalog) {
		return fmt.Errorf("catalog %q: give a postgres:// URL, or leave it empty for the SQLite file in the data directory", redactURL(c.Catalog))
	}
	if c.ObjectStore != "" {
		if _, err := objstore.ParseS3URL(c.ObjectStore); err != nil {
			return fmt.Errorf("object_store: %w", err)
		}
	}
	if c.ObjectCacheBytes < 0 {
		return fmt.Errorf("object_cache_bytes %d: must be positive", c.ObjectCacheBytes)
	}
	return nil
}

// openCatalog opens the configured catalog: PostgreSQL, or the SQLite file
// in the data directory.
func openCatalog(ctx context.Context, cfg Config, logger *slog.Logger) (*catalog.Store, error) {
	logger = logger.With("component", "catalog")
	if isPostgres(cfg.Catalog) {
		cat, err := catalog.OpenPostgres(ctx, cfg.Catalog, logger)
		if err != nil {
			return nil, fmt.Errorf("open catalog: %w", err)
		}
		return cat, nil
	}
	cat, err := catalog.Open(ctx, filepath.Join(cfg.DataDir, "catalog.db"), logger)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	return cat, nil
}

// openBucket opens the configured object store: an S3 bucket read through a
// bounded local cache in the data directory (as Druid historicals cache
// segments), or a directory there. It returns the local directory the
// engine reads objects from, and sets s.closeBucket.
func openBucket(ctx context.Context, cfg Config, s *Server) (bucket, string, error) {
	s.closeBucket = func() {}
	if cfg.ObjectStore == "" {
		dir := s.dir("objects")
		b, err := objstore.NewFilesystem(dir)
		if err != nil {
			return nil, "", fmt.Errorf("open object store: %w", err)
		}
		return b, dir, nil
	}
	s3cfg, err := objstore.ParseS3URL(cfg.ObjectStore)
	if err != nil {
		return nil, "", err
	}
	if cfg.S3Endpoint != "" {
		s3cfg.Endpoint = cfg.S3Endpoint
	}
	if cfg.S3Region != "" {
		s3cfg.Region = cfg.S3Region
	}
	s3cfg.FromEnv(os.Getenv)
	logger := s.logger.With("component", "objstore")
	remote, err := objstore.NewS3(ctx, s3cfg, logger)
	if err != nil {
		return nil, "", fmt.Errorf("open object store: %w", err)
	}
	dir := s.dir("object-cache")
	cached, err := objstore.NewCache(remote, objstore.CacheConfig{Dir: dir, MaxBytes: cfg.ObjectCacheBytes}, logger)
	if err != nil {
		remote.Close()
		return nil, "", fmt.Errorf("open object cache: %w", err)
	}
	s.closeBucket = func() {
		cached.Close()
		remote.Close()
	}
	return cached, dir, nil
}

// redactURL hides a URL's password, for errors and logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
