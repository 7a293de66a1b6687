package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/dataset"
	"github.com/duet-analytics/duet/ingest"
	"github.com/duet-analytics/duet/internal/catalog"
	"github.com/duet-analytics/duet/internal/viewsql"
	"github.com/duet-analytics/duet/scheduler"
	"github.com/duet-analytics/duet/speedlayer"
)

// Content types accepted by POST /v1/ingest/{dataset}.
const (
	ContentTypeNDJSON = "application/x-ndjson"
	ContentTypeArrow  = "application/vnd.apache.arrow.stream"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.versionRoutes(mux)
	mux.HandleFunc("POST /v1/datasets", s.createDataset)
	mux.HandleFunc("GET /v1/datasets", s.listDatasets)
	mux.HandleFunc("GET /v1/datasets/{name}", s.getDataset)
	mux.HandleFunc("POST /v1/ingest/{dataset}", s.ingest)
	mux.HandleFunc("POST /v1/views", s.createView)
	mux.HandleFunc("GET /v1/views", s.listViews)
	mux.HandleFunc("GET /v1/views/{name}", s.getView)
	mux.HandleFunc("POST /v1/views/{name}/builds", s.buildView)
	s.rowsRoutes(mux)
	s.jobRoutes(mux)
	s.scheduleRoutes(mux)
	s.consoleRoutes(mux)
	mux.HandleFunc("GET /healthz", s.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	gw := s.gateway.Handler()
	for _, p := range []string{"/v1/statement", "/v1/statement/", "/v1/query/", "/v1/info", "/v1/info/state"} {
		mux.Handle(p, gw)
	}
	return s.authorize(mux)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, api.Error{Error: fmt.Sprintf(format, args...)})
}

// decodeBody reads a JSON request body strictly, so misspelt fields are errors.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
		return false
	}
	return true
}

func (s *Server) createDataset(w http.ResponseWriter, r *http.Request) {
	var req api.Dataset
	if !decodeBody(w, r, &req) {
		return
	}
	spec := dataset.Spec{Name: req.Name, TimeColumn: req.TimeColumn, Columns: req.Columns, DedupKey: req.DedupKey, Source: req.Source}
	if req.DedupWindow != "" {
		window, err := time.ParseDuration(req.DedupWindow)
		if err != nil {
			writeError(w, http.StatusBadRequest, "dataset dedup_window %q: write it like 90s, 10m or 1h30m", req.DedupWindow)
			return
		}
		spec.DedupWindow = dataset.Duration(window)
	}
	if err := spec.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "dataset %v", err)
		return
	}
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	if err := s.cat.CreateDataset(r.Context(), catalog.Dataset{Spec: spec, CreatedAt: time.Now().UTC()}); err != nil {
		if errors.Is(err, catalog.ErrExists) {
			writeError(w, http.StatusConflict, "dataset %q already exists", spec.Name)
			return
		}
		s.internalError(w, "create dataset", err)
		return
	}
	if err := s.speed.AddDataset(r.Context(), spec); err != nil {
		s.internalError(w, "start dataset", err)
		return
	}
	if err := s.sources.start(spec); err != nil {
		s.internalError(w, "start the dataset's source", err)
		return
	}
	d, err := s.datasetDoc(r, spec.Name)
	if err != nil {
		s.internalError(w, "read dataset", err)
		return
	}
	w.Header().Set("Location", "/v1/datasets/"+spec.Name)
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) datasetDoc(r *http.Request, name string) (api.Dataset, error) {
	d, err := s.cat.GetDataset(r.Context(), name)
	if err != nil {
		return api.Dataset{}, err
	}
	created := d.CreatedAt
	doc := api.Dataset{Name: d.Spec.Name, TimeColumn: d.Spec.TimeColumn, Columns: d.Spec.Columns, CreatedAt: &created}
	if d.Spec.DedupKey != "" {
		doc.DedupKey, doc.DedupWindow = d.Spec.DedupKey, time.Duration(d.Spec.DedupWindow).String()
	}
	if st, err := s.speed.DatasetStatus(name); err == nil {
		doc.Log = &api.LogStatus{EndOffset: st.LogEnd, ArchivedOffset: st.ArchivedEnd, ArchiveFiles: st.ArchiveFiles}
	}
	doc.Source = d.Spec.Source
	doc.SourceStatus = s.sources.status(name)
	return doc, nil
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request) {
	ds, err := s.cat.ListDatasets(r.Context())
	if err != nil {
		s.internalError(w, "list datasets", err)
		return
	}
	out := api.DatasetList{Datasets: []api.Dataset{}}
	for _, d := range ds {
		if !s.authz.CanRead(requestUser(r), "raw", d.Spec.Name) {
			continue
		}
		doc, err := s.datasetDoc(r, d.Spec.Name)
		if err != nil {
			s.internalError(w, "read dataset", err)
			return
		}
		out.Datasets = append(out.Datasets, doc)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	doc, err := s.datasetDoc(r, name)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "dataset %q not found", name)
		return
	}
	if err != nil {
		s.internalError(w, "read dataset", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("dataset")
	d, err := s.cat.GetDataset(r.Context(), name)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "dataset %q not found", name)
		return
	}
	if err != nil {
		s.internalError(w, "read dataset", err)
		return
	}
	if src := d.Spec.Source; src != nil {
		// Only the source can send its events again after a lost log, so
		// it is the dataset's one way in.
		writeError(w, http.StatusConflict, "dataset %q reads its events from %s: publish them there", name, src.Describe())
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxIngestBytes)
	var rec arrow.RecordBatch
	switch ct {
	case ContentTypeNDJSON, "application/jsonl", "application/json":
		rec, err = ingest.DecodeNDJSON(body, &d.Spec, memory.DefaultAllocator, ingest.Limits{})
	case ContentTypeArrow:
		rec, err = ingest.DecodeArrowIPC(body, &d.Spec, memory.DefaultAllocator, ingest.Limits{})
	default:
		writeError(w, http.StatusUnsupportedMediaType, "unsupported Content-Type %q: send %s or %s", r.Header.Get("Content-Type"), ContentTypeNDJSON, ContentTypeArrow)
		return
	}
	var rowErr *ingest.RowError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds %d bytes: split it into smaller requests", tooBig.Limit)
		return
	case errors.As(err, &rowErr):
		writeJSON(w, http.StatusBadRequest, api.Error{Error: rowErr.Error(), Row: rowErr.Row, Column: rowErr.Column})
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	defer rec.Release()
	res, err := s.speed.IngestBatch(r.Context(), name, rec)
	var overBudget *speedlayer.BudgetError
	switch {
	case err == nil:
		out := api.IngestResult{Accepted: res.Stored, FirstOffset: -1, LastOffset: -1, Duplicates: res.Duplicates}
		if res.Stored > 0 {
			out.FirstOffset, out.LastOffset = res.First, res.First+res.Stored-1
		}
		writeJSON(w, http.StatusOK, out)
	case errors.As(err, &overBudget):
		// Refused before the log: the client may send the same body again.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(overBudget.RetryAfter.Seconds()))))
		writeError(w, http.StatusTooManyRequests, "%v", err)
	case errors.Is(err, speedlayer.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "%v", err)
	default:
		s.internalError(w, "ingest", err)
	}
}

func (s *Server) createView(w http.ResponseWriter, r *http.Request) {
	var req api.ViewRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if !dataset.ValidIdentifier(req.Name) {
		writeError(w, http.StatusBadRequest, "view name %q: must start with a letter or underscore and contain only letters, digits and underscores", req.Name)
		return
	}
	if strings.TrimSpace(req.SQL) == "" {
		writeError(w, http.StatusBadRequest, "view %q: sql is required", req.Name)
		return
	}
	if req.Schedule != "" {
		if err := scheduler.ValidateSchedule(req.Schedule); err != nil {
			writeError(w, http.StatusBadRequest, "view %q: %v", req.Name, err)
			return
		}
	}
	// --- the view's job policy (scheduler) ---
	policy, err := viewPolicy(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "view %q: %v", req.Name, err)
		return
	}
	// --- end of the job policy ---
	ctx := r.Context()
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	if _, err := s.cat.GetView(ctx, req.Name); err == nil {
		writeError(w, http.StatusConflict, "view %q already exists", req.Name)
		return
	}
	plan, _, err := s.planView(ctx, req.Name, req.SQL)
	if err != nil {
		s.viewError(w, req.Name, err)
		return
	}
	v := catalog.View{Name: req.Name, Dataset: plan.Dataset, SQL: req.SQL, Schedule: req.Schedule, CreatedAt: time.Now().UTC(),
		Catchup: policy.Catchup, MaxRetries: policy.MaxRetries, Timeout: policy.Timeout}
	if err := s.cat.CreateView(ctx, v); err != nil {
		if errors.Is(err, catalog.ErrExists) {
			writeError(w, http.StatusConflict, "view %q already exists", req.Name)
			return
		}
		s.internalError(w, "create view", err)
		return
	}
	if err := s.startView(ctx, v); err != nil {
		s.internalError(w, "start view", err)
		return
	}
	doc, err := s.viewDoc(r, v.Name)
	if err != nil {
		s.internalError(w, "read view", err)
		return
	}
	w.Header().Set("Location", "/v1/views/"+v.Name)
	writeJSON(w, http.StatusCreated, doc)
}

func (s *Server) viewError(w http.ResponseWriter, name string, err error) {
	var verr *viewsql.Error
	if errors.As(err, &verr) {
		writeError(w, http.StatusBadRequest, "view %q: %s", name, verr.Msg)
		return
	}
	s.internalError(w, "analyse view", err)
}

func (s *Server) viewDoc(r *http.Request, name string) (api.View, error) {
	v, err := s.cat.GetView(r.Context(), name)
	if err != nil {
		return api.View{}, err
	}
	created := v.CreatedAt
	doc := api.View{Name: v.Name, Dataset: v.Dataset, SQL: v.SQL, Schedule: v.Schedule, CreatedAt: &created,
		Catchup: v.Catchup, MaxRetries: v.MaxRetries, Timeout: formatDuration(v.Timeout)}
	st, err := s.speed.ViewStatus(name, time.Now())
	if err != nil {
		return api.View{}, err
	}
	if st.Version != nil {
		doc.Batch = versionDoc(*st.Version)
	}
	speed := &api.SpeedStatus{FromOffset: st.FromOffset, LogEndOffset: st.LogEnd, Segments: []api.Segment{}, LagRecords: st.LagRecords, LagMillis: st.LagMillis, Materialized: st.Materialized}
	for _, seg := range st.Segments {
		speed.Segments = append(speed.Segments, api.Segment{First: seg.First, End: seg.End, Sealed: seg.Sealed})
	}
	doc.Speed = speed
	return doc, nil
}

func versionDoc(v catalog.ViewVersion) *api.BatchVersion {
	return &api.BatchVersion{
		Version: v.Version, CoveredOffset: v.Covered, PublishedAt: v.CreatedAt,
		Rows: v.Rows, Bytes: v.Bytes, Files: len(v.Files), JobID: v.JobID,
	}
}

func (s *Server) listViews(w http.ResponseWriter, r *http.Request) {
	views, err := s.cat.ListViews(r.Context())
	if err != nil {
		s.internalError(w, "list views", err)
		return
	}
	out := api.ViewList{Views: []api.View{}}
	for _, v := range views {
		if !s.authz.CanRead(requestUser(r), "views", v.Name) {
			continue
		}
		doc, err := s.viewDoc(r, v.Name)
		if err != nil {
			s.internalError(w, "read view", err)
			return
		}
		out.Views = append(out.Views, doc)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getView(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	doc, err := s.viewDoc(r, name)
	if errors.Is(err, catalog.ErrNotFound) || errors.Is(err, speedlayer.ErrUnknownView) {
		writeError(w, http.StatusNotFound, "view %q not found", name)
		return
	}
	if err != nil {
		s.internalError(w, "read view", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) buildView(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req api.BuildRequest
	if r.ContentLength != 0 && !decodeBody(w, r, &req) { // the body is optional
		return
	}
	if _, err := s.cat.GetView(r.Context(), name); errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "view %q not found", name)
		return
	}
	var params map[string]string
	if req.Full {
		params = map[string]string{"full": "true"}
	}
	s.submitJob(w, r, jobKindViewBuild, name, params)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if err := s.cat.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "catalog: %v", err)
		return
	}
	if err := s.speed.Healthy(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "speed layer: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	s.logger.Error(what, "err", err)
	writeError(w, http.StatusInternalServerError, "%s: %v", what, err)
}
