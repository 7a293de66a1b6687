package server

import (
	"path/filepath"
	"testing"
)

// TestStartupRefusesBadClusters: a clusters file duet cannot use stops the
// server before it opens anything, naming the entry.
func TestStartupRefusesBadClusters(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeTestFile(t, p, content)
		return p
	}
	cases := []struct{ name, content, want string }{
		{"unknown launcher", `{"clusters": [{"name": "k8s", "launcher": "kubernetes", "tags": ["default"], "slots": 1}]}`,
			`clusters[0] (k8s): launcher "kubernetes": use local or trino`},
		{"trino without settings", `{"clusters": [{"name": "t", "launcher": "trino", "tags": ["trino"], "slots": 1}]}`,
			`clusters[0] (t): a trino cluster needs "trino": {"url", "user", "catalog", "schema"}`},
		{"trino url", `{"clusters": [{"name": "t", "launcher": "trino", "slots": 1, "trino": {"url": "trino:8080", "user": "u", "catalog": "c", "schema": "s"}}]}`,
			`clusters[0] (t): trino url "trino:8080": give http:// or https://`},
		{"no slots", `{"clusters": [{"name": "t", "launcher": "trino", "trino": {"url": "http://t", "user": "u", "catalog": "c", "schema": "s"}}]}`,
			`scheduler.clusters[0] (t): slots 0: must be at least 1`},
		{"twice", `{"clusters": [{"name": "a", "launcher": "local"}, {"name": "a", "launcher": "local"}]}`,
			`scheduler.clusters[1]: name "a" is used twice`},
		{"bad health check", `{"clusters": [{"name": "a", "launcher": "local"}], "health_check": {"interval": "-1s"}}`,
			`health_check: interval and timeout must be positive and failure_threshold at least 1, got -1s, 5s and 3`},
		{"unknown field", `{"clusters": [{"name": "a", "launcher": "local", "tag": ["x"]}]}`, `unknown field "tag"`},
	}
	var refusals []refusal
	for _, c := range cases {
		path := file(c.name+".json", c.content)
		refusals = append(refusals, refusal{c.name, func(cfg *Config) { cfg.ClustersFile = path }, c.want})
	}
	assertRefused(t, dir, refusals)
}
