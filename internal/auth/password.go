package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// maxVerified bounds the cache of verified passwords.
const maxVerified = 4096

// passwordFile checks users and passwords against bcrypt hashes.
type passwordFile struct {
	hashes map[string][]byte
	// dummy is compared against for an unknown user, so the answer takes as
	// long as for a known one and does not reveal which users exist.
	dummy []byte

	// A Trino client sends its credentials with every poll of a query, and
	// one bcrypt comparison costs tens of milliseconds of CPU by design, so
	// pairs already verified are remembered, as keyed hashes only.
	mu       sync.Mutex
	seed     [32]byte
	verified map[[32]byte]struct{}
}

// loadPasswordFile reads `user:bcrypt-hash` lines; blank lines and lines
// starting with # are skipped.
func loadPasswordFile(path string) (*passwordFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	p := &passwordFile{hashes: map[string][]byte{}, verified: map[[32]byte]struct{}{}}
	cost := bcrypt.DefaultCost
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("password file %s line %d: want user:bcrypt-hash (as written by htpasswd -B)", path, n)
		}
		if _, dup := p.hashes[user]; dup {
			return nil, fmt.Errorf("password file %s line %d: user %q is listed twice", path, n, user)
		}
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("password file %s line %d: the hash of user %q is not a bcrypt hash: %w", path, n, user, err)
		}
		cost = c
		p.hashes[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("password file %s: %w", path, err)
	}
	if len(p.hashes) == 0 {
		return nil, fmt.Errorf("password file %s: lists no user", path)
	}
	if p.dummy, err = bcrypt.GenerateFromPassword([]byte(rand.Text()), cost); err != nil {
		return nil, fmt.Errorf("password file %s: %w", path, err)
	}
	if _, err := rand.Read(p.seed[:]); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *passwordFile) verify(user, password string) (string, error) {
	h := sha256.New()
	h.Write(p.seed[:])
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var key [32]byte
	h.Sum(key[:0])
	p.mu.Lock()
	_, ok := p.verified[key]
	p.mu.Unlock()
	if ok {
		return user, nil
	}
	hash, known := p.hashes[user]
	if !known {
		hash = p.dummy
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil || !known {
		return "", fmt.Errorf("%w: wrong user or password", ErrBadCredentials)
	}
	p.mu.Lock()
	if len(p.verified) >= maxVerified {
		clear(p.verified)
	}
	p.verified[key] = struct{}{}
	p.mu.Unlock()
	return user, nil
}
