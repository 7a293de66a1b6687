package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/duet-analytics/duet/internal/auth"
)

// adminActions name what the endpoints that need the admin right do. The
// jobs API is the administrators' tool, so reading it needs the right too.
var adminActions = map[string]string{
	"POST /v1/datasets":                    "create datasets",
	"POST /v1/views":                       "create views",
	"POST /v1/views/{name}/builds":         "build views",
	"POST /v1/views/{name}/rollback":       "roll back views",
	"POST /v1/views/{name}/backfills":      "backfill views",
	"POST /v1/datasets/{name}/compactions": "compact datasets",
	"GET /v1/jobs":                         "list jobs",
	"GET /v1/jobs/{id}":                    "read jobs",
	"GET /v1/jobs/{id}/logs":               "read job logs",
	"GET /v1/jobs/{id}/output":             "read job output",
	"GET /v1/jobs/{id}/output/{file}":      "read job output",
	"POST /v1/jobs":                        "submit jobs",
	"DELETE /v1/jobs/{id}":                 "kill jobs",
	"POST /v1/schedules":                   "create job schedules",
	"GET /v1/schedules":                    "list job schedules",
	"GET /v1/schedules/{name}":             "read job schedules",
	"DELETE /v1/schedules/{name}":          "delete job schedules",
}

// readEndpoints are the endpoints that show one relation: its schema, and
// the path wildcard naming it.
var readEndpoints = map[string]struct{ schema, what string }{
	"GET /v1/datasets/{name}":       {"raw", "dataset"},
	"GET /v1/views/{name}":          {"views", "view"},
	"GET /v1/views/{name}/versions": {"views", "view"},
	"GET /v1/views/{name}/rows":     {"views", "view"},
}

const ingestEndpoint = "POST /v1/ingest/{dataset}"

// ownerEndpoints change something any authenticated user may own: they
// check themselves that the user owns it or is an admin. Saving a dashboard
// needs read on every view it charts (checked by the handler, too); its
// charts then show each viewer only what that viewer may read.
var ownerEndpoints = map[string]bool{
	"PUT /v1/dashboards/{name}":    true,
	"DELETE /v1/dashboards/{name}": true,
}

// authorize applies the authorization rules to the REST API before mux
// routes a request (the SQL gateway applies them to queries itself). An
// endpoint not listed above that changes something needs the admin right,
// so a new one is closed until it is classified.
func (s *Server) authorize(mux *http.ServeMux) http.Handler {
	if s.authz == nil {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if msg := s.denial(requestUser(r), pattern, r.URL.Path); msg != "" {
			writeError(w, http.StatusForbidden, "%s", msg)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// denial is why user may not call the endpoint of pattern at path, or "".
func (s *Server) denial(user, pattern, path string) string {
	method, route, routed := strings.Cut(pattern, " ")
	if pattern == ingestEndpoint {
		if d := pathValue(route, path, "dataset"); !s.authz.CanIngest(user, d) {
			return fmt.Sprintf("Access Denied: user %s cannot ingest into dataset %s", user, d)
		}
		return ""
	}
	if e, ok := readEndpoints[pattern]; ok {
		if name := pathValue(route, path, "name"); !s.authz.CanRead(user, e.schema, name) {
			return fmt.Sprintf("Access Denied: user %s cannot read %s %s", user, e.what, name)
		}
		return ""
	}
	if ownerEndpoints[pattern] {
		return ""
	}
	action, ok := adminActions[pattern]
	if !ok && routed && method != http.MethodGet {
		ok, action = true, "call "+pattern
	}
	if ok && !s.authz.IsAdmin(user) {
		return fmt.Sprintf("Access Denied: user %s cannot %s: that needs the admin right of the authorization rules", user, action)
	}
	return ""
}

// pathValue is the segment of path at the {name} wildcard of route; the
// mux sets path values only on the request it hands to the handler.
func pathValue(route, path, name string) string {
	segments := strings.Split(path, "/")
	for i, seg := range strings.Split(route, "/") {
		if seg == "{"+name+"}" && i < len(segments) {
			return segments[i]
		}
	}
	return ""
}

// requestUser is the authenticated user of r ("" without authentication,
// which a rules file does not allow).
func requestUser(r *http.Request) string {
	user, _ := auth.User(r.Context())
	return user
}

// headerUser names the user of a request to the jobs API when the server
// authenticates no one: a claim, as Trino's X-Trino-User is without
// authentication, good for attributing and limiting jobs, not for security.
const headerUser = "X-Duet-User"

// jobUser is who submits a job: the authenticated user, else the claim.
func jobUser(r *http.Request) string {
	if u := requestUser(r); u != "" {
		return u
	}
	return strings.TrimSpace(r.Header.Get(headerUser))
}
