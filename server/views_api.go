package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/catalog"
)

func (s *Server) versionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/views/{name}/versions", s.listVersions)
	mux.HandleFunc("POST /v1/views/{name}/rollback", s.rollbackView)
	mux.HandleFunc("POST /v1/views/{name}/backfills", s.backfillView)
	mux.HandleFunc("POST /v1/datasets/{name}/compactions", s.compactDataset)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	versions, err := s.cat.ListVersions(r.Context(), name)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "view %q not found", name)
		return
	}
	if err != nil {
		s.internalError(w, "list versions", err)
		return
	}
	var current int64
	if cur, err := s.cat.CurrentVersion(r.Context(), name); err == nil {
		current = cur.Version
	}
	out := api.VersionList{Versions: []api.Version{}}
	for _, v := range versions {
		doc := api.Version{
			BatchVersion: *versionDoc(v), Kind: v.Meta.Kind, Base: v.Meta.Base, Rebuilt: v.Meta.Rebuilt,
			BuildMs: v.BuildMillis, Current: v.Version == current,
		}
		if doc.Rebuilt == nil {
			doc.Rebuilt = []string{}
		}
		if !v.RetiredAt.IsZero() {
			t := v.RetiredAt
			doc.RetiredAt = &t
		}
		parts := map[string]bool{}
		for _, f := range v.Files {
			parts[f.Partition] = true
		}
		doc.Partitions = len(parts)
		out.Versions = append(out.Versions, doc)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) rollbackView(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req api.RollbackRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if _, err := s.cat.GetView(r.Context(), name); errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "view %q not found", name)
		return
	}
	if _, err := s.builder.Rollback(r.Context(), name, req.Version); err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			writeError(w, http.StatusNotFound, "view %q has no version %d (see GET /v1/views/%s/versions)", name, req.Version, name)
			return
		}
		s.internalError(w, "rollback", err)
		return
	}
	doc, err := s.viewDoc(r, name)
	if err != nil {
		s.internalError(w, "read view", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) backfillView(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req api.BackfillRequest
	if !decodeBody(w, r, &req) {
		return
	}
	from, err1 := time.Parse(time.DateOnly, req.From)
	to, err2 := time.Parse(time.DateOnly, req.To)
	switch {
	case err1 != nil || err2 != nil:
		writeError(w, http.StatusBadRequest, "backfill of view %q: from and to must be dates as YYYY-MM-DD, got %q and %q", name, req.From, req.To)
		return
	case to.Before(from):
		writeError(w, http.StatusBadRequest, "backfill of view %q: from %s is after to %s", name, req.From, req.To)
		return
	}
	plan, err := s.speed.Plan(name)
	if err != nil {
		writeError(w, http.StatusNotFound, "view %q not found", name)
		return
	}
	if plan.TimeKey == "" {
		writeError(w, http.StatusBadRequest, "view %q has no day-aligned time key (such as date_trunc('hour', <time column>)) to backfill by; run a full build instead", name)
		return
	}
	s.submitJob(w, r, jobKindBackfill, name, map[string]string{"from": req.From, "to": req.To})
}

func (s *Server) compactDataset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.cat.GetDataset(r.Context(), name); errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "dataset %q not found", name)
		return
	}
	s.submitJob(w, r, jobKindCompaction, "", map[string]string{"dataset": name})
}
