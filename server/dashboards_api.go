package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/catalog"
)

// Bounds of a saved dashboard, so one document cannot make every console
// that opens it poll without end.
const (
	maxDashboardCharts = 50
	maxChartLimit      = 100_000
	minDashboardPoll   = time.Second
)

var dashboardName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/dashboards", s.listDashboards)
	mux.HandleFunc("GET /v1/dashboards/{name}", s.getDashboard)
	mux.HandleFunc("PUT /v1/dashboards/{name}", s.putDashboard)
	mux.HandleFunc("DELETE /v1/dashboards/{name}", s.deleteDashboard)
}

// dashboardDoc is the API document of a stored dashboard: its saved JSON
// with the fields the catalog keeps beside it.
func dashboardDoc(d catalog.Dashboard) (api.Dashboard, error) {
	var doc api.Dashboard
	if err := json.Unmarshal([]byte(d.Doc), &doc); err != nil {
		return api.Dashboard{}, fmt.Errorf("dashboard %q: stored document: %w", d.Name, err)
	}
	created, updated := d.CreatedAt, d.UpdatedAt
	doc.Name, doc.Owner, doc.UpdatedBy, doc.CreatedAt, doc.UpdatedAt = d.Name, d.Owner, d.UpdatedBy, &created, &updated
	if doc.Charts == nil {
		doc.Charts = []api.DashboardChart{}
	}
	return doc, nil
}

func (s *Server) listDashboards(w http.ResponseWriter, r *http.Request) {
	ds, err := s.cat.ListDashboards(r.Context())
	if err != nil {
		s.internalError(w, "list dashboards", err)
		return
	}
	out := api.DashboardList{Dashboards: make([]api.Dashboard, 0, len(ds))}
	for _, d := range ds {
		doc, err := dashboardDoc(d)
		if err != nil {
			s.internalError(w, "read dashboard", err)
			return
		}
		out.Dashboards = append(out.Dashboards, doc)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getDashboard(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	d, err := s.cat.GetDashboard(r.Context(), name)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "dashboard %q not found", name)
		return
	}
	if err != nil {
		s.internalError(w, "read dashboard", err)
		return
	}
	doc, err := dashboardDoc(d)
	if err != nil {
		s.internalError(w, "read dashboard", err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// putDashboard creates (201) or replaces (200) a dashboard. Any user may
// save one whose views they can read (an admin, any); only its owner or an
// admin may replace or delete it.
func (s *Server) putDashboard(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var doc api.Dashboard
	if !decodeBody(w, r, &doc) {
		return
	}
	if doc.Name != "" && doc.Name != name {
		writeError(w, http.StatusBadRequest, "dashboard name %q in the body differs from %q in the path", doc.Name, name)
		return
	}
	if !dashboardName.MatchString(name) {
		writeError(w, http.StatusBadRequest, "dashboard name %q: use 1 to 64 letters, digits, _ and -, starting with a letter or digit", name)
		return
	}
	if err := validateDashboard(doc); err != nil {
		writeError(w, http.StatusBadRequest, "dashboard %q: %v", name, err)
		return
	}
	user := jobUser(r)
	for i, c := range doc.Charts {
		if _, err := s.cat.GetView(r.Context(), c.View); errors.Is(err, catalog.ErrNotFound) {
			writeError(w, http.StatusBadRequest, "dashboard %q: chart %d: view %q not found", name, i+1, c.View)
			return
		} else if err != nil {
			s.internalError(w, "read view", err)
			return
		}
		if !s.authz.CanRead(user, "views", c.View) && !s.authz.IsAdmin(user) {
			writeError(w, http.StatusForbidden, "Access Denied: user %s cannot read view %s (chart %d of dashboard %s)", user, c.View, i+1, name)
			return
		}
	}
	if msg := s.dashboardOwnerDenial(r, name, user, "replace"); msg != "" {
		writeError(w, http.StatusForbidden, "%s", msg)
		return
	}
	// The catalog keeps who and when beside the document.
	doc.Name, doc.Owner, doc.UpdatedBy, doc.CreatedAt, doc.UpdatedAt = name, "", "", nil, nil
	body, err := json.Marshal(doc)
	if err != nil {
		s.internalError(w, "save dashboard", err)
		return
	}
	created, err := s.cat.PutDashboard(r.Context(), catalog.Dashboard{Name: name, Doc: string(body), Owner: user, UpdatedBy: user, UpdatedAt: time.Now()})
	if err != nil {
		s.internalError(w, "save dashboard", err)
		return
	}
	stored, err := s.cat.GetDashboard(r.Context(), name)
	if err != nil {
		s.internalError(w, "read dashboard", err)
		return
	}
	out, err := dashboardDoc(stored)
	if err != nil {
		s.internalError(w, "read dashboard", err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/dashboards/"+name)
	}
	writeJSON(w, status, out)
}

func (s *Server) deleteDashboard(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if msg := s.dashboardOwnerDenial(r, name, jobUser(r), "delete"); msg != "" {
		writeError(w, http.StatusForbidden, "%s", msg)
		return
	}
	err := s.cat.DeleteDashboard(r.Context(), name)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "dashboard %q not found", name)
		return
	}
	if err != nil {
		s.internalError(w, "delete dashboard", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// dashboardOwnerDenial is why user may not change an existing dashboard
// someone else owns, or "".
func (s *Server) dashboardOwnerDenial(r *http.Request, name, user, what string) string {
	d, err := s.cat.GetDashboard(r.Context(), name)
	if err != nil || d.Owner == user || s.authz.IsAdmin(user) {
		return "" // a missing dashboard is the handler's to answer
	}
	return fmt.Sprintf("Access Denied: user %s cannot %s dashboard %s of %s: only its owner or an admin can", user, what, name, d.Owner)
}

// validateDashboard checks what a console needs to draw a dashboard; what
// the rows API checks (columns, filters) it reports when the chart polls.
func validateDashboard(d api.Dashboard) error {
	if d.Refresh != "" {
		p, err := parseSpan(d.Refresh)
		if err != nil || p < minDashboardPoll {
			return fmt.Errorf("refresh %q: give a duration of at least %s, such as 1s or 30s", d.Refresh, minDashboardPoll)
		}
	}
	if len(d.Charts) > maxDashboardCharts {
		return fmt.Errorf("%d charts: at most %d", len(d.Charts), maxDashboardCharts)
	}
	kinds := []string{api.ChartLine, api.ChartBar, api.ChartTable}
	for i, c := range d.Charts {
		n := i + 1
		switch {
		case c.View == "":
			return fmt.Errorf("chart %d: view is required", n)
		case !slices.Contains(kinds, c.Kind):
			return fmt.Errorf("chart %d: kind %q: use one of %s", n, c.Kind, strings.Join(kinds, ", "))
		case c.Kind != api.ChartTable && (c.X == "" || len(c.Y) == 0):
			return fmt.Errorf("chart %d: a %s chart needs x and at least one y column", n, c.Kind)
		case c.Limit < 0 || c.Limit > maxChartLimit:
			return fmt.Errorf("chart %d: limit %d: give a number from 1 to %d, or 0 for the server's default", n, c.Limit, maxChartLimit)
		}
		if c.Range != "" {
			if d, err := parseSpan(c.Range); err != nil || d <= 0 {
				return fmt.Errorf("chart %d: range %q: give a duration such as 15m, 1h, 24h or 7d", n, c.Range)
			}
		}
		for _, f := range c.Filters {
			if !strings.ContainsAny(f, "=<>") {
				return fmt.Errorf("chart %d: filter %q: write it as <column><op><value> with op one of =, !=, <, <=, >, >=", n, f)
			}
		}
	}
	return nil
}

// parseSpan reads a duration that may count days, as ranges do ("7d").
func parseSpan(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
