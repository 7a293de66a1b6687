package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "0123456789abcdef0123456789abcdef-hs256"

// rsaKeys are generated once: 2048-bit generation is slow.
var rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// jwksJSON renders public keys as a JSON Web Key Set, with kid "k1", "k2", ...
func jwksJSON(t *testing.T, keys ...*rsa.PublicKey) string {
	t.Helper()
	type key struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	set := struct {
		Keys []any `json:"keys"`
	}{Keys: []any{
		// Keys duet must skip: another type, and an encryption key.
		map[string]string{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "ec"},
		map[string]string{"kty": "RSA", "use": "enc", "n": "AAAA", "e": "AQAB"},
	}}
	for i, k := range keys {
		set.Keys = append(set.Keys, key{Kty: "RSA", Kid: "k" + string(rune('1'+i)), Use: "sig", Alg: "RS256",
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bearerRequest(token string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "https://duet.example/v1/statement", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// claims are sub's, expiring in exp, with more name, value pairs; a nil
// value removes the claim.
func claims(sub string, exp time.Duration, more ...any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix(), "iat": time.Now().Unix()}
	for i := 0; i+1 < len(more); i += 2 {
		if more[i+1] == nil {
			delete(c, more[i].(string))
			continue
		}
		c[more[i].(string)] = more[i+1]
	}
	return c
}

type tokenCase struct {
	name  string
	token string
	want  string // the user; "" for a rejected token
	err   string // part of the rejection
}

func checkTokens(t *testing.T, a *Authenticator, cases []tokenCase) {
	t.Helper()
	for _, c := range cases {
		got, err := a.Authenticate(bearerRequest(c.token))
		if c.want != "" {
			if err != nil || got != c.want {
				t.Errorf("%s: got %q, %v; want user %q", c.name, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, ErrBadCredentials) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: got %q, %v; want ErrBadCredentials saying %q", c.name, got, err, c.err)
		}
	}
}

func TestHS256(t *testing.T) {
	a, err := New(Config{JWTSecretFile: writeFile(t, "secret", testSecret+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte(testSecret)
	rsaKey := rsaKeys()[0]
	checkTokens(t, a, []tokenCase{
		{"valid", sign(t, jwt.SigningMethodHS256, key, "", claims("alice", time.Hour)), "alice", ""},
		{"no exp", sign(t, jwt.SigningMethodHS256, key, "", jwt.MapClaims{"sub": "bob"}), "bob", ""},
		{"expired", sign(t, jwt.SigningMethodHS256, key, "", claims("alice", -time.Hour)), "", "token is expired"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, key, "", jwt.MapClaims{"sub": "alice", "nbf": time.Now().Add(time.Hour).Unix()}), "", "token is not valid yet"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), "", claims("alice", time.Hour)), "", "signature is invalid"},
		{"none alg", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("alice", time.Hour)), "", "signing method none is invalid"},
		{"HS512", sign(t, jwt.SigningMethodHS512, key, "", claims("alice", time.Hour)), "", "signing method HS512 is invalid"},
		{"RS256 when only HS256 is on", sign(t, jwt.SigningMethodRS256, rsaKey, "", claims("alice", time.Hour)), "", "signing method RS256 is invalid"},
		{"no sub", sign(t, jwt.SigningMethodHS256, key, "", jwt.MapClaims{"name": "alice"}), "", `no "sub" claim`},
		{"garbage", "not.a.token", "", "token is malformed"},
	})
	if got := a.Challenges(); len(got) != 1 || got[0] != `Bearer realm="duet"` {
		t.Errorf("challenges %q", got)
	}
	r := basicRequest("alice", "x")
	if _, err := a.Authenticate(r); err == nil || !strings.Contains(err.Error(), `"Basic" is not accepted (use Bearer)`) {
		t.Errorf("basic to a token-only server: %v", err)
	}

	if _, err := New(Config{JWTSecretFile: writeFile(t, "secret", "short\n")}); err == nil || !strings.Contains(err.Error(), "has 5 bytes, want at least 32") {
		t.Errorf("short secret: %v", err)
	}
}

func TestRS256WithJWKS(t *testing.T) {
	k1, k2 := rsaKeys()[0], rsaKeys()[1]
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwksPath := writeFile(t, "jwks.json", jwksJSON(t, &k1.PublicKey, &k2.PublicKey))
	a, err := New(Config{JWKSFile: jwksPath, JWTIssuer: "https://idp.example", JWTAudience: "duet", JWTUserClaim: "email"})
	if err != nil {
		t.Fatal(err)
	}
	ok := func(more ...any) jwt.MapClaims {
		return claims("ignored", time.Hour, append([]any{"iss", "https://idp.example", "aud", []string{"other", "duet"}, "email", "ana@example.com"}, more...)...)
	}
	// The public key as an HMAC secret: the algorithm-confusion attack.
	der, err := x509.MarshalPKIXPublicKey(&k1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	checkTokens(t, a, []tokenCase{
		{"kid k1", sign(t, jwt.SigningMethodRS256, k1, "k1", ok()), "ana@example.com", ""},
		{"kid k2", sign(t, jwt.SigningMethodRS256, k2, "k2", ok()), "ana@example.com", ""},
		{"no kid", sign(t, jwt.SigningMethodRS256, k2, "", ok()), "ana@example.com", ""},
		{"kid of another key", sign(t, jwt.SigningMethodRS256, k2, "k1", ok()), "", "signature is invalid"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, k1, "k9", ok()), "", `no key with kid "k9"`},
		{"wrong key", sign(t, jwt.SigningMethodRS256, other, "", ok()), "", "signature is invalid"},
		{"expired", sign(t, jwt.SigningMethodRS256, k1, "k1", ok("exp", time.Now().Add(-time.Hour).Unix())), "", "token is expired"},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, k1, "k1", ok("iss", "https://evil.example")), "", "token has invalid issuer"},
		{"no issuer", sign(t, jwt.SigningMethodRS256, k1, "k1", ok("iss", nil)), "", "iss claim is required"},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, k1, "k1", ok("aud", "other")), "", "token has invalid audience"},
		{"no user claim", sign(t, jwt.SigningMethodRS256, k1, "k1", ok("email", "")), "", `no "email" claim`},
		{"none alg", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", ok()), "", "signing method none is invalid"},
		{"HS256 with the public key", sign(t, jwt.SigningMethodHS256, pubPEM, "k1", ok()), "", "signing method HS256 is invalid"},
		{"RS512", sign(t, jwt.SigningMethodRS512, k1, "k1", ok()), "", "signing method RS512 is invalid"},
	})
}

func TestHS256AndRS256Together(t *testing.T) {
	k1 := rsaKeys()[0]
	a, err := New(Config{JWTSecretFile: writeFile(t, "secret", testSecret), JWKSFile: writeFile(t, "jwks.json", jwksJSON(t, &k1.PublicKey))})
	if err != nil {
		t.Fatal(err)
	}
	checkTokens(t, a, []tokenCase{
		{"HS256", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims("hs", time.Hour)), "hs", ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, k1, "k1", claims("rs", time.Hour)), "rs", ""},
	})
}

func TestJWKSErrors(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ content, want string }{
		{`{"keys": [`, "unexpected end of JSON input"},
		{`{"keys": [{"kty": "EC", "crv": "P-256"}]}`, "holds no RSA signing key"},
		{`{"keys": [{"kty": "RSA", "kid": "a", "n": "!!", "e": "AQAB"}]}`, `key 1 (kid "a"): "n" is not a base64url number`},
		{`{"keys": [{"kty": "RSA", "kid": "a", "n": "` + base64.RawURLEncoding.EncodeToString(rsaKeys()[0].N.Bytes()) + `", "e": "AQIDBAU"}]}`, `"e" is not a base64url number of at most 4 bytes`},
		{jwksJSON(t, &small.PublicKey), `key 3 (kid "k1"): the RSA key has 1024 bits, want at least 2048`},
	} {
		path := writeFile(t, "jwks.json", c.content)
		if _, err := New(Config{JWKSFile: path}); err == nil || !strings.HasPrefix(err.Error(), "jwks file "+path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming the file and saying %q", c.content, err, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{JWTIssuer: "x"}).Validate(); err == nil || !strings.Contains(err.Error(), `jwt_issuer "x": set only together with jwt_secret_file or jwks_file`) {
		t.Errorf("issuer without a key: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without any method: no error")
	}
}
