package ui

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func serve(c *Console, method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	return w
}

func TestConsoleServesAssetsAndRoutes(t *testing.T) {
	con, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path        string
		status      int
		contentType string
		bodyHas     string
	}{
		{"/ui/", 200, "text/html; charset=utf-8", `<script type="module" src="/ui/app.js">`},
		{"/ui/app.js", 200, "text/javascript; charset=utf-8", "import"},
		{"/ui/dashboards.js", 200, "text/javascript; charset=utf-8", "If-None-Match"},
		{"/ui/app.css", 200, "text/css; charset=utf-8", ":root"},
		{"/ui/favicon.svg", 200, "image/svg+xml", "<svg"},
		// The single-page app's routes all get the page.
		{"/ui/views", 200, "text/html; charset=utf-8", `<main id="page">`},
		{"/ui/jobs/0b4c3c1e-1111-4222-8333-944445555666", 200, "text/html; charset=utf-8", `<main id="page">`},
		{"/ui/dashboards/ops", 200, "text/html; charset=utf-8", `<main id="page">`},
		// A missing file is a 404, not the page (which no script parses).
		{"/ui/missing.js", 404, "", ""},
		{"/ui/js/app.js", 404, "", ""},
	} {
		w := serve(con, http.MethodGet, c.path)
		if w.Code != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, w.Code, c.status)
			continue
		}
		if c.status != 200 {
			continue
		}
		h := w.Header()
		if got := h.Get("Content-Type"); got != c.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.contentType)
		}
		if !strings.Contains(w.Body.String(), c.bodyHas) {
			t.Errorf("GET %s: body lacks %q", c.path, c.bodyHas)
		}
		if h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" || h.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: headers %v", c.path, h)
		}
		if h.Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
			t.Errorf("GET %s: Content-Length %s for %d bytes", c.path, h.Get("Content-Length"), w.Body.Len())
		}
	}
}

func TestConsoleRedirectsRevalidatesAndRefusesWrites(t *testing.T) {
	con, err := New()
	if err != nil {
		t.Fatal(err)
	}
	w := serve(con, http.MethodGet, "/ui")
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d Location %q, want 301 to /ui/", w.Code, w.Header().Get("Location"))
	}
	first := serve(con, http.MethodGet, "/ui/app.js")
	etag := first.Header().Get("ETag")
	if w := serve(con, http.MethodGet, "/ui/app.js", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("GET with If-None-Match %s: %d with %d bytes, want 304 and no body", etag, w.Code, w.Body.Len())
	}
	if w := serve(con, http.MethodGet, "/ui/app.js", "If-None-Match", `"other", W/`+etag); w.Code != http.StatusNotModified {
		t.Fatalf("GET with a list holding the weak form of the ETag: %d, want 304", w.Code)
	}
	if w := serve(con, http.MethodGet, "/ui/app.css", "If-None-Match", etag); w.Code != http.StatusOK {
		t.Fatalf("GET app.css with app.js's ETag: %d, want 200", w.Code)
	}
	if w := serve(con, http.MethodHead, "/ui/app.js"); w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") != first.Header().Get("Content-Length") {
		t.Fatalf("HEAD: %d, %d bytes, Content-Length %s", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
	if w := serve(con, http.MethodPost, "/ui/"); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /ui/: %d, want 405", w.Code)
	}
}
