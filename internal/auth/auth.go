// Package auth authenticates the clients of duet's HTTP listener (the REST API
// and the Trino protocol): passwords checked against a bcrypt file, as
// Trino's file authenticator does, and JWT bearer tokens signed with HS256 (a
// shared secret) or RS256 (keys of a JWKS file).
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Realm is the realm of every WWW-Authenticate challenge.
const Realm = "duet"

var (
	// ErrNoCredentials is a request without an Authorization header.
	ErrNoCredentials = errors.New("authentication required")
	// ErrBadCredentials is a wrong user, password or token.
	ErrBadCredentials = errors.New("invalid credentials")
)

// Config says which authentication methods are enabled; any subset may be.
type Config struct {
	// PasswordFile holds one `user:bcrypt-hash` line per user (htpasswd -B).
	PasswordFile string `yaml:"password_file"`
	// JWTSecretFile holds the HS256 secret (at least 32 bytes; surrounding
	// whitespace is ignored).
	JWTSecretFile string `yaml:"jwt_secret_file"`
	// JWKSFile is a JSON Web Key Set whose RSA keys verify RS256 tokens.
	JWKSFile string `yaml:"jwks_file"`
	// JWTIssuer and JWTAudience, when set, must match the token's iss and
	// one of its aud.
	JWTIssuer   string `yaml:"jwt_issuer"`
	JWTAudience string `yaml:"jwt_audience"`
	// JWTUserClaim names the claim holding the user; default "sub".
	JWTUserClaim string `yaml:"jwt_user_claim"`
}

// Enabled reports whether any method is configured.
func (c Config) Enabled() bool {
	return c.PasswordFile != "" || c.jwtEnabled()
}

func (c Config) jwtEnabled() bool { return c.JWTSecretFile != "" || c.JWKSFile != "" }

// Validate names the first bad field.
func (c Config) Validate() error {
	if !c.jwtEnabled() {
		for name, v := range map[string]string{"jwt_issuer": c.JWTIssuer, "jwt_audience": c.JWTAudience, "jwt_user_claim": c.JWTUserClaim} {
			if v != "" {
				return fmt.Errorf("%s %q: set only together with jwt_secret_file or jwks_file", name, v)
			}
		}
	}
	return nil
}

// Authenticator checks the credentials of a request. It is safe for
// concurrent use.
type Authenticator struct {
	passwords *passwordFile // nil when password authentication is off
	jwt       *jwtVerifier  // nil when bearer tokens are off
}

// New reads the files cfg names.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("no authentication method configured")
	}
	a := &Authenticator{}
	var err error
	if cfg.PasswordFile != "" {
		if a.passwords, err = loadPasswordFile(cfg.PasswordFile); err != nil {
			return nil, err
		}
	}
	if cfg.jwtEnabled() {
		if a.jwt, err = newJWTVerifier(cfg); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Authenticate returns the user a request authenticates as. An error means
// 401 with the Challenges.
func (a *Authenticator) Authenticate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoCredentials
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Basic") && a.passwords != nil:
		user, password, ok := r.BasicAuth()
		if !ok {
			return "", fmt.Errorf("%w: malformed basic authorization", ErrBadCredentials)
		}
		return a.passwords.verify(user, password)
	case strings.EqualFold(scheme, "Bearer") && a.jwt != nil:
		return a.jwt.verify(strings.TrimSpace(cred))
	}
	return "", fmt.Errorf("%w: authorization scheme %q is not accepted (use %s)", ErrBadCredentials, scheme, strings.Join(a.schemes(), " or "))
}

func (a *Authenticator) schemes() []string {
	var s []string
	if a.passwords != nil {
		s = append(s, "Basic")
	}
	if a.jwt != nil {
		s = append(s, "Bearer")
	}
	return s
}

// Challenges are the WWW-Authenticate values of a 401, one per method.
func (a *Authenticator) Challenges() []string {
	var c []string
	for _, s := range a.schemes() {
		c = append(c, fmt.Sprintf("%s realm=%q", s, Realm))
	}
	return c
}
