package server

import (
	"net/http"
	"strings"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/auth"
	"github.com/duet-analytics/duet/ui"
)

// consoleRoutes registers the web console at /ui/ and the API only it
// needs: who the user is, and saved dashboards.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	mux.Handle("GET /ui/", s.console)
	mux.Handle("GET /ui", s.console) // redirects to /ui/
	mux.HandleFunc("GET /v1/whoami", s.whoami)
	s.dashboardRoutes(mux)
}

// consoleShell lets the console's page and scripts load without
// credentials when the server takes bearer tokens: a browser cannot attach
// a token to a page load, so the page asks for one and sends it with every
// API call. The assets hold no data; every call they make still goes
// through authn. With passwords alone the console stays behind authn, and
// the browser's own Basic prompt signs in.
func (s *Server) consoleShell(authn http.Handler) http.Handler {
	if s.cfg.Auth.JWTSecretFile == "" && s.cfg.Auth.JWKSFile == "" {
		return authn
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			(r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, ui.Prefix)) {
			s.console.ServeHTTP(w, r)
			return
		}
		authn.ServeHTTP(w, r)
	})
}

// whoami tells the console who is signed in and whether to offer the
// administrators' buttons (the API refuses them to others anyway).
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	user, authenticated := auth.User(r.Context())
	if !authenticated {
		user = jobUser(r)
	}
	writeJSON(w, http.StatusOK, api.WhoAmI{User: user, Admin: s.authz.IsAdmin(user), Authenticated: authenticated})
}
