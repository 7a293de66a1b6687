package auth

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// minHMACSecret is the HS256 key size RFC 7518 §3.2 requires.
	minHMACSecret = 32
	minRSABits    = 2048
	// clockSkew tolerates clocks of the token issuer and of this server
	// that disagree by a little when checking exp and nbf.
	clockSkew = 30 * time.Second
)

// jwtVerifier checks bearer tokens.
type jwtVerifier struct {
	parser    *jwt.Parser
	secret    []byte // HS256; nil when off
	rsaKeys   []jwk  // RS256; empty when off
	userClaim string
}

type jwk struct {
	kid string
	key *rsa.PublicKey
}

func newJWTVerifier(cfg Config) (*jwtVerifier, error) {
	v := &jwtVerifier{userClaim: cfg.JWTUserClaim}
	if v.userClaim == "" {
		v.userClaim = "sub"
	}
	var methods []string
	if cfg.JWTSecretFile != "" {
		data, err := os.ReadFile(cfg.JWTSecretFile)
		if err != nil {
			return nil, fmt.Errorf("jwt secret file: %w", err)
		}
		v.secret = bytes.TrimSpace(data)
		if len(v.secret) < minHMACSecret {
			return nil, fmt.Errorf("jwt secret file %s: the HS256 secret has %d bytes, want at least %d", cfg.JWTSecretFile, len(v.secret), minHMACSecret)
		}
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSFile != "" {
		keys, err := loadJWKS(cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		v.rsaKeys = keys
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	// Only the configured algorithms are accepted, so neither "none" nor an
	// HS256 token signed with the public RSA key as secret can pass.
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(clockSkew)}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func (v *jwtVerifier) verify(token string) (string, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.key); err != nil {
		return "", fmt.Errorf("%w: bearer token: %w", ErrBadCredentials, err)
	}
	user, _ := claims[v.userClaim].(string)
	if user == "" {
		return "", fmt.Errorf("%w: bearer token has no %q claim naming the user", ErrBadCredentials, v.userClaim)
	}
	return user, nil
}

// key picks the verification key by the token's algorithm and, for RS256,
// by its kid; a token without kid is tried against every RSA key.
func (v *jwtVerifier) key(t *jwt.Token) (any, error) {
	if t.Method.Alg() == jwt.SigningMethodHS256.Alg() {
		return v.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		set := jwt.VerificationKeySet{}
		for _, k := range v.rsaKeys {
			set.Keys = append(set.Keys, k.key)
		}
		return set, nil
	}
	for _, k := range v.rsaKeys {
		if k.kid == kid {
			return k.key, nil
		}
	}
	return nil, fmt.Errorf("no key with kid %q in the JWKS file", kid)
}

// loadJWKS reads the RSA signing keys of a JSON Web Key Set (RFC 7517);
// keys of other types or for other uses are skipped.
func loadJWKS(path string) ([]jwk, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks file: %w", err)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks file %s: %w", path, err)
	}
	var keys []jwk
	for i, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != jwt.SigningMethodRS256.Alg()) {
			continue
		}
		key, err := rsaKey(k.N, k.E)
		if err != nil {
			return nil, fmt.Errorf("jwks file %s: key %d (kid %q): %w", path, i+1, k.Kid, err)
		}
		keys = append(keys, jwk{kid: k.Kid, key: key})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks file %s: holds no RSA signing key (kty RSA, alg RS256 or none)", path)
	}
	return keys, nil
}

func rsaKey(n, e string) (*rsa.PublicKey, error) {
	nb, err := decodeBase64URL(n)
	if err != nil || len(nb) == 0 {
		return nil, errors.New(`"n" is not a base64url number`)
	}
	eb, err := decodeBase64URL(e)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New(`"e" is not a base64url number of at most 4 bytes`)
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(new(big.Int).SetBytes(eb).Int64())}
	if bits := key.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("the RSA key has %d bits, want at least %d", bits, minRSABits)
	}
	if key.E < 3 || key.E%2 == 0 {
		return nil, fmt.Errorf("RSA exponent %d is invalid", key.E)
	}
	return key, nil
}

// decodeBase64URL accepts base64url with or without padding (RFC 7515 says
// without; some issuers pad).
func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
