package sqlgateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duet-analytics/duet/dataset"
)

// Routing sends statements to other Trino clusters the way Trino Gateway
// does: every statement is assigned a routing group (the
// X-Trino-Routing-Group header, else the first matching rule, else the
// default group), runs on a healthy cluster of that group, and the gateway
// proxies the whole protocol exchange, rewriting the URIs of every document
// to point back at itself, so clients need no route to the clusters.

// LocalGroup is the routing group of this duet server itself.
const LocalGroup = "local"

const (
	// headerRoutingGroup is Trino Gateway's header naming a routing group.
	headerRoutingGroup = "X-Trino-Routing-Group"
	// headerRoutedTo names the cluster (or "local") that ran a statement.
	headerRoutedTo = "X-Duet-Routed-To"
	// headerRoutingFallback says why a statement left its routing group.
	headerRoutingFallback = "X-Duet-Routing-Fallback"
)

// Defaults of the health checks.
const (
	DefaultHealthInterval         = 10 * time.Second
	DefaultHealthTimeout          = 5 * time.Second
	DefaultHealthFailureThreshold = 3
)

// RoutingConfig configures routing to Trino clusters; without clusters every
// statement runs locally.
type RoutingConfig struct {
	Clusters []Cluster     `json:"clusters" yaml:"clusters"`
	Rules    []RoutingRule `json:"rules" yaml:"rules"`
	// DefaultGroup takes statements no header or rule assigns. Default "local".
	DefaultGroup string `json:"default_group" yaml:"default_group"`
	// FallbackGroup takes statements whose group has no healthy cluster;
	// when it has none either, they run locally. Default "local".
	FallbackGroup string      `json:"fallback_group" yaml:"fallback_group"`
	HealthCheck   HealthCheck `json:"health_check" yaml:"health_check"`
}

// Cluster is a Trino coordinator (or another duet) statements can go to.
type Cluster struct {
	Name string `json:"name" yaml:"name"`
	// URL is the coordinator's scheme, host and port, e.g. https://trino:8443.
	URL   string `json:"url" yaml:"url"`
	Group string `json:"group" yaml:"group"`
	// User and Password, when set, authenticate the gateway to the cluster
	// (basic auth) in place of the client's own Authorization header.
	User     string `json:"user,omitempty" yaml:"user"`
	Password string `json:"password,omitempty" yaml:"password"`
}

// RoutingRule sends the statements matching all its conditions to Group.
// Rules are tried in order; the first match wins.
type RoutingRule struct {
	Name  string `json:"name" yaml:"name"`
	Group string `json:"group" yaml:"group"`
	// User and Source are regular expressions the whole session user or
	// source (X-Trino-Source) must match.
	User   string `json:"user,omitempty" yaml:"user"`
	Source string `json:"source,omitempty" yaml:"source"`
	// ClientTags must all be among the statement's X-Trino-Client-Tags.
	ClientTags []string `json:"client_tags,omitempty" yaml:"client_tags"`
	// Schema matches the session schema, or a schema the SQL names in a
	// qualified name (raw.events, duet.raw.events).
	Schema string `json:"schema,omitempty" yaml:"schema"`
}

// HealthCheck configures the probe of each cluster's GET /v1/info.
type HealthCheck struct {
	// Interval between probes. Default 10s.
	Interval dataset.Duration `json:"interval" yaml:"interval"`
	// Timeout of one probe. Default 5s.
	Timeout dataset.Duration `json:"timeout" yaml:"timeout"`
	// FailureThreshold consecutive failures make a cluster unhealthy; one
	// success makes it healthy again. Default 3.
	FailureThreshold int `json:"failure_threshold" yaml:"failure_threshold"`
}

// LoadRoutingFile reads a JSON routing configuration and validates it.
func LoadRoutingFile(path string) (RoutingConfig, error) {
	var c RoutingConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("routing file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("routing file %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("routing file %s: %w", path, err)
	}
	return c, nil
}

func (c RoutingConfig) withDefaults() RoutingConfig {
	if c.DefaultGroup == "" {
		c.DefaultGroup = LocalGroup
	}
	if c.FallbackGroup == "" {
		c.FallbackGroup = LocalGroup
	}
	c.HealthCheck = c.HealthCheck.WithDefaults()
	return c
}

// WithDefaults fills the zero fields with the defaults.
func (h HealthCheck) WithDefaults() HealthCheck {
	if h.Interval == 0 {
		h.Interval = dataset.Duration(DefaultHealthInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = dataset.Duration(DefaultHealthTimeout)
	}
	if h.FailureThreshold == 0 {
		h.FailureThreshold = DefaultHealthFailureThreshold
	}
	return h
}

// Validate names what is wrong with a health check (defaults filled in).
func (h HealthCheck) Validate() error {
	if h.Interval < 0 || h.Timeout < 0 || h.FailureThreshold < 1 {
		return fmt.Errorf("interval and timeout must be positive and failure_threshold at least 1, got %s, %s and %d",
			time.Duration(h.Interval), time.Duration(h.Timeout), h.FailureThreshold)
	}
	return nil
}

var clusterNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// Validate names the first invalid field.
func (c RoutingConfig) Validate() error {
	c = c.withDefaults()
	groups := map[string]bool{LocalGroup: true}
	names := map[string]bool{}
	for i, cl := range c.Clusters {
		switch {
		case !clusterNameRe.MatchString(cl.Name) || cl.Name == LocalGroup:
			return fmt.Errorf("routing clusters[%d].name %q: use letters, digits, '_', '-' and '.', and not %q", i, cl.Name, LocalGroup)
		case names[cl.Name]:
			return fmt.Errorf("routing clusters[%d].name %q: two clusters have this name", i, cl.Name)
		case cl.Group == "" || cl.Group == LocalGroup:
			return fmt.Errorf("routing cluster %q: group is required and cannot be %q, the name of this server's own group", cl.Name, LocalGroup)
		case cl.Password != "" && cl.User == "":
			return fmt.Errorf("routing cluster %q: password needs a user", cl.Name)
		}
		u, err := url.Parse(cl.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return fmt.Errorf("routing cluster %q: url %q must be http(s)://host:port, without a path", cl.Name, cl.URL)
		}
		if cl.Password != "" && u.Scheme != "https" {
			return fmt.Errorf("routing cluster %q: a password needs an https url, or it crosses the network in clear", cl.Name)
		}
		names[cl.Name] = true
		groups[cl.Group] = true
	}
	for i, r := range c.Rules {
		where := fmt.Sprintf("routing rules[%d] (%s)", i, r.Name)
		if !groups[r.Group] {
			return fmt.Errorf("%s: group %q has no cluster (and is not %q)", where, r.Group, LocalGroup)
		}
		if r.User == "" && r.Source == "" && len(r.ClientTags) == 0 && r.Schema == "" {
			return fmt.Errorf("%s: give at least one of user, source, client_tags and schema", where)
		}
		for field, expr := range map[string]string{"user": r.User, "source": r.Source} {
			if _, err := regexp.Compile(expr); err != nil {
				return fmt.Errorf("%s: %s %q is not a regular expression: %w", where, field, expr, err)
			}
		}
	}
	for field, g := range map[string]string{"default_group": c.DefaultGroup, "fallback_group": c.FallbackGroup} {
		if !groups[g] {
			return fmt.Errorf("routing %s %q: no cluster has this group (and it is not %q)", field, g, LocalGroup)
		}
	}
	if err := c.HealthCheck.Validate(); err != nil {
		return fmt.Errorf("routing health_check: %w", err)
	}
	return nil
}

// cluster is a configured cluster and its health.
type cluster struct {
	Cluster
	origin string // scheme://host:port

	mu       sync.Mutex
	failures int // consecutive failed probes or connections
	healthy  bool
}

func (c *cluster) isHealthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy
}

type rule struct {
	RoutingRule
	user, source *regexp.Regexp
}

// router assigns statements to clusters and proxies their exchanges.
type router struct {
	cfg RoutingConfig
	// authorize, set under authorization rules, decides whether a
	// statement may leave this server: see Gateway.routable.
	authorize    func(ctx context.Context, sess *session, sqlText string) (bool, *queryError)
	abandonAfter time.Duration
	clusters     []*cluster
	groups       map[string][]*cluster
	rules        []rule
	client       *http.Client
	logger       *slog.Logger
	rr           atomic.Uint64 // round robin within a group

	routedTotal *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	health      *prometheus.GaugeVec

	mu     sync.Mutex
	routed map[string]*routedQuery // query id -> where it runs
}

type routedQuery struct {
	c       *cluster
	expires time.Time
}

func newRouter(cfg RoutingConfig, abandonAfter time.Duration, logger *slog.Logger, reg prometheus.Registerer) (*router, error) {
	cfg = cfg.withDefaults()
	rt := &router{
		cfg: cfg, abandonAfter: abandonAfter, logger: logger,
		groups: map[string][]*cluster{},
		routed: map[string]*routedQuery{},
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: time.Duration(cfg.HealthCheck.Timeout)}).DialContext,
				MaxIdleConnsPerHost:   32,
				IdleConnTimeout:       90 * time.Second,
				ResponseHeaderTimeout: 2 * time.Minute,
			},
			// A redirect would resend the statement elsewhere; the client
			// should see it instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		routedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_sqlgateway_routed_queries_total",
			Help: "Statements the SQL gateway sent to each cluster; \"local\" counts the ones this server ran.",
		}, []string{"cluster"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "duet_sqlgateway_routing_fallbacks_total",
			Help: "Statements that left their routing group because it had no healthy cluster, by that group.",
		}, []string{"group"}),
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "duet_sqlgateway_cluster_healthy",
			Help: "1 while a routing cluster passes its health checks, 0 once it failed failure_threshold in a row.",
		}, []string{"cluster"}),
	}
	for _, c := range cfg.Clusters {
		u, _ := url.Parse(c.URL) // Validate parsed it
		cl := &cluster{Cluster: c, origin: u.Scheme + "://" + u.Host, healthy: true}
		rt.clusters = append(rt.clusters, cl)
		rt.groups[c.Group] = append(rt.groups[c.Group], cl)
		rt.health.WithLabelValues(c.Name).Set(1)
	}
	for _, r := range cfg.Rules {
		rt.rules = append(rt.rules, rule{RoutingRule: r, user: anchored(r.User), source: anchored(r.Source)})
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{rt.routedTotal, rt.fallbacks, rt.health} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("sqlgateway: register routing metrics: %w", err)
			}
		}
	}
	return rt, nil
}

// anchored compiles a regular expression that must match a whole value; an
// empty one matches anything and gives nil.
func anchored(expr string) *regexp.Regexp {
	if expr == "" {
		return nil
	}
	return regexp.MustCompile(`^(?:` + expr + `)$`)
}

// group decides a statement's routing group.
func (rt *router) group(header string, sess *session, sqlText string) (string, *queryError) {
	if header = strings.TrimSpace(header); header != "" {
		if header != LocalGroup && rt.groups[header] == nil {
			return "", newQueryError(errGenericUser, fmt.Sprintf("routing group %q (header %s) is not configured: use %s", header, headerRoutingGroup, rt.knownGroups()))
		}
		return header, nil
	}
	var schemas []string // computed once, when a rule needs them
	for _, r := range rt.rules {
		if r.user != nil && !r.user.MatchString(sess.user) ||
			r.source != nil && !r.source.MatchString(sess.source) ||
			!hasAll(sess.clientTags, r.ClientTags) {
			continue
		}
		if r.Schema != "" {
			if schemas == nil {
				schemas = append(referencedSchemas(sqlText), sess.schema)
			}
			if !slices.ContainsFunc(schemas, func(s string) bool { return strings.EqualFold(s, r.Schema) }) {
				continue
			}
		}
		return r.Group, nil
	}
	return rt.cfg.DefaultGroup, nil
}

func (rt *router) knownGroups() string {
	names := []string{LocalGroup}
	for g := range rt.groups {
		names = append(names, g)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// referencedSchemas lists the names that may be schemas in the SQL's
// qualified names: the first part of a.b, and the first two of a.b.c. A
// table alias named like a schema also counts, which routes a statement too
// eagerly rather than not at all.
func referencedSchemas(sqlText string) []string {
	toks, qe := lex(sqlText)
	if qe != nil {
		return nil
	}
	ident := func(i int) bool { return i < len(toks) && (toks[i].kind == tokWord || toks[i].kind == tokQuoted) }
	dot := func(i int) bool { return i < len(toks) && toks[i].isSymbol(".") }
	var out []string
	for i := 0; i < len(toks); i++ {
		if !ident(i) || i > 0 && dot(i-1) || !dot(i+1) || !ident(i+2) {
			continue
		}
		out = append(out, toks[i].text)
		if dot(i+3) && ident(i+4) {
			out = append(out, toks[i+2].text)
		}
	}
	return out
}

// pick chooses a healthy cluster of group, else of the fallback group, else
// none (run locally); note says why the statement left its group.
func (rt *router) pick(group string, skip []*cluster) (c *cluster, note string) {
	if group == LocalGroup {
		return nil, ""
	}
	if c := rt.healthyIn(group, skip); c != nil {
		return c, ""
	}
	rt.fallbacks.WithLabelValues(group).Inc()
	note = fmt.Sprintf("no healthy cluster in group %q; used fallback group %q", group, rt.cfg.FallbackGroup)
	if rt.cfg.FallbackGroup != LocalGroup && rt.cfg.FallbackGroup != group {
		if c := rt.healthyIn(rt.cfg.FallbackGroup, skip); c != nil {
			return c, note
		}
		note = fmt.Sprintf("no healthy cluster in group %q nor in fallback group %q; ran locally", group, rt.cfg.FallbackGroup)
	}
	return nil, note
}

func (rt *router) healthyIn(group string, skip []*cluster) *cluster {
	var ok []*cluster
	for _, c := range rt.groups[group] {
		if c.isHealthy() && !slices.Contains(skip, c) {
			ok = append(ok, c)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	return ok[rt.rr.Add(1)%uint64(len(ok))]
}

// submit routes a POST /v1/statement. It reports whether it answered the
// request; when not, the statement runs locally, failing with the returned
// error if there is one.
func (rt *router) submit(w http.ResponseWriter, r *http.Request, sqlText string, sess *session, sessErr *queryError) (bool, *queryError) {
	group, qe := rt.group(r.Header.Get(headerRoutingGroup), sess, sqlText)
	if qe != nil {
		rt.routedTotal.WithLabelValues(LocalGroup).Inc()
		return false, qe
	}
	if group != LocalGroup && rt.authorize != nil {
		ok, qe := rt.authorize(r.Context(), sess, sqlText)
		if qe != nil {
			rt.routedTotal.WithLabelValues(LocalGroup).Inc()
			return false, qe
		}
		if !ok {
			rt.routedTotal.WithLabelValues(LocalGroup).Inc()
			w.Header().Set(headerRoutingFallback, "not routed: under authorization rules only a single SELECT duet can check leaves this server")
			w.Header().Set(headerRoutedTo, LocalGroup)
			return false, sessErr
		}
	}
	var tried []*cluster
	var note string
	for {
		c, why := rt.pick(group, tried)
		if note == "" {
			note = why
		}
		if note != "" {
			w.Header().Set(headerRoutingFallback, note)
			rt.logger.Debug("routing fallback", "group", group, "reason", note, "user", sess.user)
		}
		if c == nil {
			rt.routedTotal.WithLabelValues(LocalGroup).Inc()
			w.Header().Set(headerRoutedTo, LocalGroup)
			return false, sessErr
		}
		resp, err := rt.send(r, c, []byte(sqlText))
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" && r.Context().Err() == nil {
			// Nothing reached the cluster, so the statement can go elsewhere.
			rt.observe(c, err)
			tried = append(tried, c)
			note = fmt.Sprintf("cluster %q unreachable; rerouted", c.Name)
			continue
		}
		rt.routedTotal.WithLabelValues(c.Name).Inc()
		w.Header().Set(headerRoutedTo, c.Name)
		rt.relay(w, r, c, resp, err)
		return true, nil
	}
}

// wrap answers the follow-up requests of routed statements (nextUri GETs
// and DELETEs, query info and cancel) from their cluster, and passes the
// rest to local.
func (rt *router) wrap(local http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := rt.lookup(pathQueryID(r.URL.Path)); c != nil {
			resp, err := rt.send(r, c, nil)
			rt.relay(w, r, c, resp, err)
			return
		}
		local.ServeHTTP(w, r)
	})
}

// pathQueryID is the query id in /v1/query/{id} and in Trino's statement
// URIs, /v1/statement/{queued|executing}[/partialCancel]/{id}/...
func pathQueryID(p string) string {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) < 3 || parts[0] != "v1" {
		return ""
	}
	switch parts[1] {
	case "query":
		return parts[2]
	case "statement":
		for _, s := range parts[2:] {
			if s != "queued" && s != "executing" && s != "partialCancel" {
				return s
			}
		}
	}
	return ""
}

func (rt *router) lookup(id string) *cluster {
	if id == "" {
		return nil
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if q := rt.routed[id]; q != nil {
		return q.c
	}
	return nil
}

// remember maps a query id to its cluster until it has been idle for the
// time a query may be; a finished one is kept as long as the gateway keeps
// its own, for retries of its last document.
func (rt *router) remember(id string, c *cluster, done bool) {
	keep := rt.abandonAfter
	if done {
		keep = finishedRetention
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.routed[id] = &routedQuery{c: c, expires: time.Now().Add(keep)}
}

func (rt *router) reap(now time.Time) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for id, q := range rt.routed {
		if now.After(q.expires) {
			delete(rt.routed, id)
		}
	}
}

// Request headers not forwarded: hop-by-hop ones, the ones the transport
// sets, and Accept-Encoding, so bodies come back plain for rewriting.
var unforwarded = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Content-Length", "Accept-Encoding", headerRoutingGroup,
}

// send forwards r to c, with body as the request body when not nil.
func (rt *router) send(r *http.Request, c *cluster, body []byte) (*http.Response, error) {
	target := c.origin + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if !slices.Contains(unforwarded, k) {
			req.Header[k] = slices.Clone(vs)
		}
	}
	if c.User != "" {
		req.SetBasicAuth(c.User, c.Password)
	}
	return rt.client.Do(req)
}

// Response headers not relayed: hop-by-hop ones and the body's length,
// which the rewrite changes.
var unrelayed = []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade", "Content-Length"}

// relay answers the client with the cluster's response, its URIs rewritten
// to the gateway's.
func (rt *router) relay(w http.ResponseWriter, r *http.Request, c *cluster, resp *http.Response, err error) {
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		rt.logger.Warn("routed request failed", "cluster", c.Name, "method", r.Method, "path", r.URL.Path, "err", err)
		// 502 makes Trino clients retry the request.
		http.Error(w, fmt.Sprintf("routing cluster %s: %v", c.Name, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		if r.Context().Err() == nil {
			http.Error(w, fmt.Sprintf("routing cluster %s: read response: %v", c.Name, err), http.StatusBadGateway)
		}
		return
	}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if doc, id, done, ok := rewriteURIs(body, baseURL(r)); ok {
			body = doc
			rt.remember(id, c, done)
		}
	}
	if r.Method == http.MethodDelete && resp.StatusCode < 300 {
		if id := pathQueryID(r.URL.Path); id != "" {
			rt.remember(id, c, true)
		}
	}
	for k, vs := range resp.Header {
		if !slices.Contains(unrelayed, k) {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// rewriteURIs points a QueryResults document's URIs at base, keeping their
// paths, so the client's next requests come to the gateway. ok is false
// for a body that is not a document.
func rewriteURIs(body []byte, base string) (out []byte, id string, done, ok bool) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil || json.Unmarshal(doc["id"], &id) != nil || id == "" {
		return nil, "", false, false
	}
	str := func(s string) json.RawMessage {
		b, _ := json.Marshal(s)
		return b
	}
	_, hasNext := doc["nextUri"]
	for _, key := range []string{"nextUri", "partialCancelUri"} {
		var uri string
		if json.Unmarshal(doc[key], &uri) != nil || uri == "" {
			continue
		}
		u, err := url.Parse(uri)
		if err != nil {
			return nil, "", false, false
		}
		rel := u.EscapedPath()
		if u.RawQuery != "" {
			rel += "?" + u.RawQuery
		}
		doc[key] = str(base + rel)
	}
	if _, has := doc["infoUri"]; has {
		doc["infoUri"] = str(base + "/v1/query/" + url.PathEscape(id))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(doc) != nil {
		return nil, "", false, false
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), id, !hasNext, true
}

// monitor probes every cluster each interval, and forgets routed queries
// that expired, until ctx ends.
func (rt *router) monitor(ctx context.Context) {
	rt.checkAll(ctx)
	t := time.NewTicker(time.Duration(rt.cfg.HealthCheck.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			rt.checkAll(ctx)
			rt.reap(now)
		}
	}
}

func (rt *router) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range rt.clusters {
		wg.Go(func() {
			err := rt.probe(ctx, c)
			if ctx.Err() == nil {
				rt.observe(c, err)
			}
		})
	}
	wg.Wait()
}

func (rt *router) probe(ctx context.Context, c *cluster) error {
	return ProbeCluster(ctx, rt.client, c.origin, c.User, c.Password, time.Duration(rt.cfg.HealthCheck.Timeout))
}

// ProbeCluster asks a Trino-protocol cluster's GET /v1/info, within
// timeout, whether it is up and done starting; with user set, as that user
// (basic auth).
func ProbeCluster(ctx context.Context, client *http.Client, origin, user, password string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin+"/v1/info", nil)
	if err != nil {
		return err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/info: HTTP %d", resp.StatusCode)
	}
	var info struct {
		Starting bool `json:"starting"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return fmt.Errorf("GET /v1/info: %w", err)
	}
	if info.Starting {
		return errors.New("GET /v1/info: the cluster is starting")
	}
	return nil
}

// observe counts a probe's outcome: failureThreshold failures in a row make
// the cluster unhealthy, one success healthy again.
func (rt *router) observe(c *cluster, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		if !c.healthy {
			rt.logger.Info("routing cluster is healthy again", "cluster", c.Name, "group", c.Group)
		}
		c.failures, c.healthy = 0, true
		rt.health.WithLabelValues(c.Name).Set(1)
		return
	}
	c.failures++
	if c.healthy && c.failures >= rt.cfg.HealthCheck.FailureThreshold {
		c.healthy = false
		rt.health.WithLabelValues(c.Name).Set(0)
		rt.logger.Warn("routing cluster is unhealthy; its statements go to another cluster of its group or the fallback group",
			"cluster", c.Name, "group", c.Group, "failures", c.failures, "fallback_group", rt.cfg.FallbackGroup, "err", err)
	}
}
