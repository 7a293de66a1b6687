package api

import "time"

// Version is one entry of GET /v1/views/{name}/versions.
type Version struct {
	BatchVersion
	// Kind is how it was built: full, incremental or backfill.
	Kind string `json:"kind"`
	// Base is the version an incremental build or backfill started from.
	Base int64 `json:"base,omitempty"`
	// Rebuilt are the partitions (days) built anew; the rest were carried over.
	Rebuilt    []string   `json:"rebuilt"`
	BuildMs    int64      `json:"build_ms"`
	Current    bool       `json:"current"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"`
	Partitions int        `json:"partitions"`
}

// VersionList is the answer of GET /v1/views/{name}/versions, newest first.
type VersionList struct {
	Versions []Version `json:"versions"`
}

// BuildRequest is the optional body of POST /v1/views/{name}/builds.
type BuildRequest struct {
	// Full rebuilds every partition instead of only the days with new records.
	Full bool `json:"full,omitempty"`
}

// BackfillRequest is the body of POST /v1/views/{name}/backfills: rebuild
// the days From..To (YYYY-MM-DD, inclusive) from the master dataset.
type BackfillRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// RollbackRequest is the body of POST /v1/views/{name}/rollback.
type RollbackRequest struct {
	Version int64 `json:"version"`
}
