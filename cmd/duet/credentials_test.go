package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCredentialsFromEnvironment runs the CLI against a server that wants a
// bearer token: DUET_TOKEN carries it, and without it the 401 is one line.
func TestCredentialsFromEnvironment(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="duet"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"authentication required"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"datasets":[]}`))
	}))
	defer srv.Close()
	cli := func(env map[string]string) (int, string, string) {
		var out, errOut strings.Builder
		code := run(t.Context(), []string{"--server", srv.URL, "dataset", "list"}, ioStreams{in: strings.NewReader(""), out: &out, err: &errOut},
			func(k string) string { return env[k] })
		return code, out.String(), errOut.String()
	}
	if code, out, errOut := cli(map[string]string{"DUET_TOKEN": "tok"}); code != 0 || !strings.Contains(out, "no datasets yet") {
		t.Errorf("with DUET_TOKEN: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := cli(nil); code != 1 || errOut != "duet: authentication required\n" {
		t.Errorf("without: code %d, stderr %q", code, errOut)
	}
	if code, _, errOut := cli(map[string]string{"DUET_USER": "ana", "DUET_PASSWORD": "x"}); code != 1 || !strings.Contains(errOut, "a password is sent only over https") {
		t.Errorf("password over http: code %d, stderr %q", code, errOut)
	}
}

func TestDefaultSQLUser(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"USER": "unix"}, "unix"},
		{map[string]string{}, "duet"},
		{map[string]string{"USER": "unix", "DUET_USER": "ana"}, "ana"},
		// The server takes the token's user; $USER would be refused.
		{map[string]string{"USER": "unix", "DUET_TOKEN": "tok"}, ""},
		{map[string]string{"USER": "unix", "DUET_TOKEN": "tok", "DUET_USER": "ana"}, "ana"},
	} {
		if got := defaultUser(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
}
