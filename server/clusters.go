package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/duet-analytics/duet/batchlayer"
	"github.com/duet-analytics/duet/scheduler"
	"github.com/duet-analytics/duet/sqlgateway"
)

// Launchers of clusters.
const (
	launcherLocal = "local"
	launcherTrino = "trino"
)

// clusterFile is the JSON of --clusters-file.
type clusterFile struct {
	Clusters []clusterSpec `json:"clusters"`
	// HealthCheck probes the trino clusters as routing probes its own.
	HealthCheck sqlgateway.HealthCheck `json:"health_check"`
}

type clusterSpec struct {
	scheduler.Cluster
	// Launcher is local (executors on this machine) or trino (an executor
	// here sends the build's query to the Trino cluster).
	Launcher string                  `json:"launcher"`
	Trino    *batchlayer.TrinoSource `json:"trino,omitempty"`
}

// loadClusters reads a clusters file; slots of the local cluster default to
// workers.
func loadClusters(path string, workers int) (clusterFile, error) {
	var f clusterFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("clusters file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("clusters file %s: %w", path, err)
	}
	if len(f.Clusters) == 0 {
		return f, fmt.Errorf("clusters file %s: no clusters", path)
	}
	for i := range f.Clusters {
		c := &f.Clusters[i]
		where := fmt.Sprintf("clusters file %s: clusters[%d] (%s)", path, i, c.Name)
		switch c.Launcher {
		case launcherLocal:
			if c.Trino != nil {
				return f, fmt.Errorf("%s: a local cluster takes no trino settings", where)
			}
			if c.Slots == 0 {
				c.Slots = workers
			}
		case launcherTrino:
			if c.Trino == nil || c.Trino.URL == "" || c.Trino.User == "" || c.Trino.Catalog == "" || c.Trino.Schema == "" {
				return f, fmt.Errorf(`%s: a trino cluster needs "trino": {"url", "user", "catalog", "schema"} (the schema holding a table per dataset)`, where)
			}
			if !strings.HasPrefix(c.Trino.URL, "http://") && !strings.HasPrefix(c.Trino.URL, "https://") {
				return f, fmt.Errorf("%s: trino url %q: give http:// or https://", where, c.Trino.URL)
			}
		default:
			return f, fmt.Errorf("%s: launcher %q: use %s or %s", where, c.Launcher, launcherLocal, launcherTrino)
		}
	}
	f.HealthCheck = f.HealthCheck.WithDefaults()
	if err := f.HealthCheck.Validate(); err != nil {
		return f, fmt.Errorf("clusters file %s: health_check: %w", path, err)
	}
	return f, nil
}

// schedulerClusters are the clusters as the scheduler places jobs on them.
func (f clusterFile) schedulerClusters() []scheduler.Cluster {
	out := make([]scheduler.Cluster, len(f.Clusters))
	for i, c := range f.Clusters {
		out[i] = c.Cluster
	}
	return out
}

// clusterHealth probes the trino clusters; local ones are always healthy.
type clusterHealth struct {
	file   clusterFile
	client *http.Client
	logger *slog.Logger

	mu       sync.Mutex
	failures map[string]int
}

func newClusterHealth(f clusterFile, logger *slog.Logger) *clusterHealth {
	return &clusterHealth{file: f, logger: logger, failures: map[string]int{}, client: &http.Client{}}
}

// ClusterHealthy reports whether a cluster takes jobs: not one whose probes
// failed failure_threshold times in a row.
func (h *clusterHealth) ClusterHealthy(name string) bool {
	if h.trino(name) == nil {
		return true // this machine's executors: if the server runs, so do they
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failures[name] < h.file.HealthCheck.FailureThreshold
}

// trino is the cluster's Trino settings, nil for a local cluster.
func (h *clusterHealth) trino(name string) *batchlayer.TrinoSource {
	for _, c := range h.file.Clusters {
		if c.Name == name {
			return c.Trino
		}
	}
	return nil
}

// Run probes every trino cluster each interval until ctx ends.
func (h *clusterHealth) Run(ctx context.Context) error {
	if h.trinoClusters() == 0 {
		return nil
	}
	t := time.NewTicker(time.Duration(h.file.HealthCheck.Interval))
	defer t.Stop()
	for {
		for _, c := range h.file.Clusters {
			if t := c.Trino; t != nil {
				// Basic auth only with a password, as the executor's
				// trino-go-client sends it; /v1/info needs no user.
				user := ""
				if t.Password != "" {
					user = t.User
				}
				h.observe(c.Name, sqlgateway.ProbeCluster(ctx, h.client, strings.TrimRight(t.URL, "/"), user, t.Password, time.Duration(h.file.HealthCheck.Timeout)))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *clusterHealth) trinoClusters() int {
	n := 0
	for _, c := range h.file.Clusters {
		if c.Trino != nil {
			n++
		}
	}
	return n
}

func (h *clusterHealth) observe(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	before := h.failures[name] < h.file.HealthCheck.FailureThreshold
	if err == nil {
		h.failures[name] = 0
	} else {
		h.failures[name]++
	}
	after := h.failures[name] < h.file.HealthCheck.FailureThreshold
	switch {
	case before && !after:
		h.logger.Warn("cluster unhealthy: jobs go elsewhere or wait", "cluster", name, "err", err)
	case !before && after:
		h.logger.Info("cluster healthy again", "cluster", name)
	}
}
