package auth

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func basicRequest(user, password string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "https://duet.example/v1/views", nil)
	r.SetBasicAuth(user, password)
	return r
}

func TestPasswordFile(t *testing.T) {
	// htpasswd -B writes $2y$ hashes; Go's bcrypt writes $2a$: both verify.
	y := strings.Replace(bcryptHash(t, "bob-secret"), "$2a$", "$2y$", 1)
	path := writeFile(t, "passwords", "# duet users\n\nalice:"+bcryptHash(t, "alice-secret")+"\n  bob:"+y+"  \n")
	a, err := New(Config{PasswordFile: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ user, password, want string }{
		{"alice", "alice-secret", "alice"},
		{"alice", "alice-secret", "alice"}, // from the cache of verified pairs
		{"bob", "bob-secret", "bob"},
		{"alice", "bob-secret", ""},
		{"alice", "alice-secret ", ""},
		{"carol", "alice-secret", ""},
		{"", "", ""},
	} {
		got, err := a.Authenticate(basicRequest(c.user, c.password))
		if c.want == "" {
			if !errors.Is(err, ErrBadCredentials) {
				t.Errorf("%s/%q: got user %q, err %v; want ErrBadCredentials", c.user, c.password, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s/%q: got %q, %v; want %q", c.user, c.password, got, err, c.want)
		}
	}
	if got := a.Challenges(); len(got) != 1 || got[0] != `Basic realm="duet"` {
		t.Errorf("challenges %q", got)
	}
	r, _ := http.NewRequest(http.MethodGet, "https://duet.example/", nil)
	if _, err := a.Authenticate(r); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no Authorization: %v, want ErrNoCredentials", err)
	}
	r.Header.Set("Authorization", "Bearer abc")
	if _, err := a.Authenticate(r); !errors.Is(err, ErrBadCredentials) || !strings.Contains(err.Error(), `"Bearer" is not accepted (use Basic)`) {
		t.Errorf("bearer to a password-only server: %v", err)
	}
}

func TestPasswordFileErrorsNameTheLine(t *testing.T) {
	good := "alice:" + bcryptHash(t, "x") + "\n"
	for _, c := range []struct{ content, want string }{
		{good + "# comment\nbob\n", "line 3: want user:bcrypt-hash"},
		{good + ":" + bcryptHash(t, "y") + "\n", "line 2: want user:bcrypt-hash"},
		{good + "bob:\n", "line 2: want user:bcrypt-hash"},
		{"\n\nbob:secret\n", `line 3: the hash of user "bob" is not a bcrypt hash`},
		{good + good, `line 2: user "alice" is listed twice`},
		{"# nobody\n", "lists no user"},
	} {
		path := writeFile(t, "passwords", c.content)
		_, err := New(Config{PasswordFile: path})
		if err == nil || !strings.HasPrefix(err.Error(), "password file "+path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error naming the file and containing %q", c.content, err, c.want)
		}
	}
	if _, err := New(Config{PasswordFile: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}
