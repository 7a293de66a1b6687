package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/duet-analytics/duet/api"
)

// trinoUserHeader is the Trino protocol's session user.
const trinoUserHeader = "X-Trino-User"

type userKey struct{}

// User is the authenticated user of a request's context; ok is false when
// the server runs without authentication.
func User(ctx context.Context) (user string, ok bool) {
	user, ok = ctx.Value(userKey{}).(string)
	return user, ok
}

// Handler serves next only to authenticated requests, except those for the
// open paths (a health check): others get 401 with the Challenges. The
// authenticated user is the request context's User and also the Trino
// session user: a request without X-Trino-User gets it set to the user, and
// one naming somebody else gets 403, as duet has no impersonation rules.
func (a *Authenticator) Handler(next http.Handler, open ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range open {
			if r.URL.Path == p {
				next.ServeHTTP(w, r)
				return
			}
		}
		user, err := a.Authenticate(r)
		if err != nil {
			for _, c := range a.Challenges() {
				w.Header().Add("WWW-Authenticate", c)
			}
			writeError(w, r, http.StatusUnauthorized, err.Error())
			return
		}
		if session := strings.TrimSpace(r.Header.Get(trinoUserHeader)); session != "" && session != user {
			writeError(w, r, http.StatusForbidden, fmt.Sprintf("Access Denied: User %s cannot impersonate user %s (omit X-Trino-User or set it to the authenticated user)", user, session))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
		r.Header = r.Header.Clone()
		r.Header.Set(trinoUserHeader, user)
		next.ServeHTTP(w, r)
	})
}

// writeError answers in JSON (api.Error) to clients that accept it, like
// duet's own client, and in plain text, as Trino does, to the others.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(api.Error{Error: msg})
		return
	}
	http.Error(w, msg, status)
}
