package auth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duet-analytics/duet/api"
)

func TestHandler(t *testing.T) {
	a, err := New(Config{
		PasswordFile:  writeFile(t, "passwords", "alice:"+bcryptHash(t, "alice-secret")+"\n"),
		JWTSecretFile: writeFile(t, "secret", testSecret),
	})
	if err != nil {
		t.Fatal(err)
	}
	// next answers with what it saw: the context's user and the session user.
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := User(r.Context())
		fmt.Fprintf(w, "%s %v %s", user, ok, r.Header.Get("X-Trino-User"))
	})
	srv := httptest.NewServer(a.Handler(next, "/healthz"))
	defer srv.Close()
	token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims("bob", time.Hour))

	for _, c := range []struct {
		name    string
		path    string
		headers map[string]string
		status  int
		body    string
	}{
		{"health check is open", "/healthz", nil, 200, " false "},
		{"no credentials", "/v1/views", nil, 401, "authentication required\n"},
		{"no credentials, JSON", "/v1/views", map[string]string{"Accept": "application/json"}, 401, `{"error":"authentication required"}` + "\n"},
		{"wrong password", "/v1/statement", map[string]string{"Authorization": basicAuth("alice", "nope")}, 401, "invalid credentials: wrong user or password\n"},
		{"bad token", "/v1/statement", map[string]string{"Authorization": "Bearer " + token + "x"}, 401, "invalid credentials: bearer token: token signature is invalid: signature is invalid\n"},
		{"password", "/v1/statement", map[string]string{"Authorization": basicAuth("alice", "alice-secret")}, 200, "alice true alice"},
		{"token, same session user", "/v1/statement", map[string]string{"Authorization": "Bearer " + token, "X-Trino-User": "bob"}, 200, "bob true bob"},
		{"token, other session user", "/v1/statement", map[string]string{"Authorization": "Bearer " + token, "X-Trino-User": "alice"}, 403,
			"Access Denied: User bob cannot impersonate user alice (omit X-Trino-User or set it to the authenticated user)\n"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || string(body) != c.body {
			t.Errorf("%s: got %d %q, want %d %q", c.name, resp.StatusCode, body, c.status, c.body)
		}
		challenges := resp.Header.Values("WWW-Authenticate")
		if want := []string{`Basic realm="duet"`, `Bearer realm="duet"`}; c.status == 401 && !slices.Equal(challenges, want) {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, challenges, want)
		}
		if c.status == 401 && strings.Contains(c.headers["Accept"], "json") {
			var e api.Error
			if err := json.Unmarshal(body, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: not an api.Error: %s %v", c.name, resp.Header.Get("Content-Type"), err)
			}
		}
	}
}

func basicAuth(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}
