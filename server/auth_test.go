package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/trinodb/trino-go-client/trino"
	"golang.org/x/crypto/bcrypt"

	"github.com/duet-analytics/duet/client"
)

const testJWTSecret = "duet-auth-test-secret-of-at-least-32-bytes"

// selfSignedCert writes a certificate for 127.0.0.1 and its key to dir and
// returns a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "duet test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTestFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeTestFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func hs256Token(t *testing.T, sub string, exp time.Duration) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix()}).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAuthOverTLS runs the real server with TLS, password and HS256 token
// authentication, and talks to it with the real trino-go-client, duet's
// client and raw HTTP.
func TestAuthOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "passwords"), "alice:"+string(hash)+"\n")
	writeTestFile(t, filepath.Join(dir, "jwt-secret"), testJWTSecret+"\n")

	cfg := testConfig(filepath.Join(dir, "data"))
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	cfg.Auth.PasswordFile = filepath.Join(dir, "passwords")
	cfg.Auth.JWTSecretFile = filepath.Join(dir, "jwt-secret")
	ctx := t.Context()
	srv := runServer(t, cfg)
	base := "https://" + srv.Addr()
	httpClient := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer httpClient.CloseIdleConnections()
	const customClient = "duet-auth-test"
	if err := trino.RegisterCustomClient(customClient, httpClient); err != nil {
		t.Fatal(err)
	}
	defer trino.DeregisterCustomClient(customClient)
	bob := hs256Token(t, "bob", time.Hour)

	t.Run("trino-go-client", func(t *testing.T) {
		dsn := func(user *url.Userinfo, params ...string) string {
			q := url.Values{"catalog": {"duet"}, "schema": {"views"}, "custom_client": {customClient}}
			for i := 0; i+1 < len(params); i += 2 {
				q.Set(params[i], params[i+1])
			}
			return (&url.URL{Scheme: "https", User: user, Host: srv.Addr(), RawQuery: q.Encode()}).String()
		}
		for _, c := range []struct {
			name string
			dsn  string
			err  string // "" when the query must succeed
		}{
			{"password", dsn(url.UserPassword("alice", "alice-secret")), ""},
			{"token", dsn(url.User("bob"), "accessToken", bob), ""},
			{"token without user", dsn(nil, "accessToken", bob), ""},
			{"wrong password", dsn(url.UserPassword("alice", "wrong")), "401"},
			{"unknown user", dsn(url.UserPassword("mallory", "alice-secret")), "401"},
			{"no credentials", dsn(url.User("alice")), "401"},
			{"expired token", dsn(url.User("bob"), "accessToken", hs256Token(t, "bob", -time.Hour)), "token is expired"},
			{"token of another user", dsn(url.User("alice"), "accessToken", bob), "Access Denied: User bob cannot impersonate user alice"},
		} {
			db, err := sql.Open("trino", c.dsn)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			err = db.QueryRowContext(ctx, "SELECT count(*) FROM system.views").Scan(&n)
			db.Close()
			switch {
			case c.err == "" && err != nil:
				t.Errorf("%s: %v", c.name, err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.err)
			}
		}
	})

	t.Run("gateway session user is the token's", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/statement", strings.NewReader("SELECT 1"))
		req.Header.Set("Authorization", "Bearer "+bob)
		var doc struct{ ID, NextURI string }
		getJSON(t, httpClient, req, &doc)
		if !strings.HasPrefix(doc.NextURI, base+"/") {
			t.Errorf("nextUri %q does not start with %s", doc.NextURI, base)
		}
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/query/"+doc.ID, nil)
		req.Header.Set("Authorization", "Bearer "+bob)
		var info struct{ User string }
		getJSON(t, httpClient, req, &info)
		if info.User != "bob" {
			t.Errorf("query %s runs as %q, want bob", doc.ID, info.User)
		}
	})

	t.Run("raw HTTP", func(t *testing.T) {
		for _, c := range []struct {
			name, path, authorization string
			status                    int
		}{
			{"health check needs no credentials", "/healthz", "", 200},
			{"missing credentials", "/v1/datasets", "", 401},
			{"missing credentials, metrics", "/metrics", "", 401},
			{"missing credentials, trino", "/v1/info", "", 401},
			{"wrong password", "/v1/datasets", basicAuthHeader("alice", "nope"), 401},
			{"wrong token", "/v1/datasets", "Bearer " + hs256Token(t, "bob", time.Hour) + "x", 401},
			{"other scheme", "/v1/datasets", "Negotiate abc", 401},
			{"password", "/v1/datasets", basicAuthHeader("alice", "alice-secret"), 200},
			{"token", "/metrics", "Bearer " + bob, 200},
		} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+c.path, nil)
			if c.authorization != "" {
				req.Header.Set("Authorization", c.authorization)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
			}
			challenges := resp.Header.Values("WWW-Authenticate")
			want := []string{`Basic realm="duet"`, `Bearer realm="duet"`}
			if c.status == 401 && !slices.Equal(challenges, want) {
				t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, challenges, want)
			}
		}
		// Plain HTTP on the TLS listener gets no answer from the API.
		resp, err := http.Get("http://" + srv.Addr() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Error("plain HTTP answered 200 on the TLS listener")
			}
		}
	})

	t.Run("duet client", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			creds  client.Credentials
			status int
		}{
			{"password", client.Credentials{User: "alice", Password: "alice-secret"}, 0},
			{"token", client.Credentials{Token: bob}, 0},
			{"none", client.Credentials{}, 401},
			{"wrong password", client.Credentials{User: "alice", Password: "x"}, 401},
		} {
			cl, err := client.NewWithConfig(base, httpClient, client.Config{Credentials: c.creds})
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.ListDatasets(ctx)
			var ae *client.APIError
			switch {
			case c.status == 0 && err != nil:
				t.Errorf("%s: %v", c.name, err)
			case c.status != 0 && (!errors.As(err, &ae) || ae.Status != c.status || !strings.Contains(ae.Message, "credentials") && !strings.Contains(ae.Message, "authentication required")):
				t.Errorf("%s: got %v, want a %d naming the credentials", c.name, err, c.status)
			}
			if c.status != 0 {
				continue
			}
			// The SQL path of the client carries the same credentials.
			db, err := sql.Open("trino", cl.TrinoDSN("")+"&custom_client="+customClient)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM system.datasets").Scan(&n); err != nil {
				t.Errorf("%s: SQL through TrinoDSN: %v", c.name, err)
			}
			db.Close()
		}
		if _, err := client.NewWithConfig("http://"+srv.Addr(), nil, client.Config{Credentials: client.Credentials{User: "alice", Password: "x"}}); err == nil || !strings.Contains(err.Error(), "a password is sent only over https") {
			t.Errorf("password over http: %v", err)
		}
	})
}

func getJSON(t *testing.T, c *http.Client, req *http.Request, out any) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s %s: %v in %s", req.Method, req.URL.Path, err, body)
	}
}

func basicAuthHeader(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// TestStartupRefusesInsecureConfig checks that the server will not start
// exposed without authentication, nor take passwords over plain HTTP.
func TestStartupRefusesInsecureConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, _, _ := selfSignedCert(t, dir)
	secret := filepath.Join(dir, "secret")
	writeTestFile(t, secret, testJWTSecret)
	assertRefused(t, dir, []refusal{
		{"all interfaces without auth", func(c *Config) { c.Listen = "0.0.0.0:0" },
			`listen "0.0.0.0:0": not a loopback address, so clients must authenticate: set --auth-password-file (with --tls-cert and --tls-key), --auth-jwt-secret-file or --auth-jwks-file, or listen on 127.0.0.1`},
		{"host name without auth", func(c *Config) { c.Listen = "duet.example:8080" }, "not a loopback address"},
		{"empty host without auth", func(c *Config) { c.Listen = ":8080" }, "not a loopback address"},
		{"password without TLS", func(c *Config) { c.Auth.PasswordFile = filepath.Join(dir, "passwords") },
			"password authentication needs TLS, or passwords cross the network in clear: set --tls-cert and --tls-key"},
		{"cert without key", func(c *Config) { c.TLSCertFile = certFile }, "set both (--tls-cert and --tls-key) or neither"},
		{"issuer without a key", func(c *Config) { c.Auth.JWTIssuer = "https://idp.example" }, "auth: jwt_issuer"},
		{"missing secret file", func(c *Config) { c.Auth.JWTSecretFile = filepath.Join(dir, "nope") }, "auth: jwt secret file: open"},
		{"key of another certificate", func(c *Config) {
			c.Auth.JWTSecretFile = secret
			c.TLSCertFile, c.TLSKeyFile = certFile, certFile
		}, "tls certificate " + certFile},
	})
	// Loopback without authentication keeps working, over plain HTTP.
	for _, listen := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		cfg := DefaultConfig()
		cfg.Listen = listen
		cfg.DataDir = dir
		if err := cfg.Validate(); err != nil {
			t.Errorf("listen %s: %v", listen, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a refused start left %s behind (%v)", filepath.Join(dir, "data"), err)
	}
}
