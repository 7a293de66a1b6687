package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/internal/testsvc"
)

// browserWait bounds every wait for the page: a guard against a hung test,
// not a timing assertion.
const browserWait = 60 * time.Second

// browser is a headless Chromium driving the console through chromedp.
type browser struct {
	t   *testing.T
	ctx context.Context
	// credentials answer the server's Basic challenge, as a user typing
	// them into the browser's prompt would; nil cancels the prompt.
	mu          sync.Mutex
	credentials *[2]string
	jsErrors    []string
}

// newBrowser starts Debian's Chromium, headless, with a fresh profile.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	bin := testsvc.Chromium(t)
	// Not t.TempDir: Chromium's helper processes may still write into the
	// profile for a moment after the browser is gone, which fails its
	// removal; this one is removed once they are done.
	profile, err := os.MkdirTemp("", "duet-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1400, 1000),
	}, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			err := os.RemoveAll(profile)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Logf("browser profile %s left behind: %v", profile, err)
				break
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.jsErrors) > 0 {
			t.Errorf("the console threw JavaScript errors:\n%s", strings.Join(b.jsErrors, "\n"))
		}
	})
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.mu.Lock()
			b.jsErrors = append(b.jsErrors, e.ExceptionDetails.Error())
			b.mu.Unlock()
		case *fetch.EventRequestPaused:
			go b.do(fetch.ContinueRequest(e.RequestID))
		case *fetch.EventAuthRequired:
			b.mu.Lock()
			resp := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
			if b.credentials != nil {
				resp = &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: b.credentials[0], Password: b.credentials[1]}
			}
			b.mu.Unlock()
			go b.do(fetch.ContinueWithAuth(e.RequestID, resp))
		}
	})
	// Start the browser now, without a timeout (one would end it).
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", bin, err)
	}
	return b
}

// do runs one protocol command from an event listener's goroutine.
func (b *browser) do(a chromedp.Action) {
	c := chromedp.FromContext(b.ctx)
	if c == nil || c.Target == nil {
		return
	}
	_ = a.Do(cdp.WithExecutor(b.ctx, c.Target))
}

// answerBasicAuth makes the browser handle the server's Basic challenges:
// with the credentials when set, else by cancelling the prompt.
func (b *browser) answerBasicAuth(user, password string) {
	b.mu.Lock()
	if user == "" {
		b.credentials = nil
	} else {
		b.credentials = &[2]string{user, password}
	}
	b.mu.Unlock()
	b.run("intercept auth challenges", fetch.Enable().WithHandleAuthRequests(true))
}

func (b *browser) run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v\npage:\n%s", what, err, b.pageText())
	}
}

// wait polls a JavaScript expression until it is truthy.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	var res any
	if err := chromedp.Run(ctx, chromedp.Poll(expr, &res, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("browser: no %s within %s (%s): %v\npage:\n%s", what, browserWait, expr, err, b.pageText())
	}
}

func (b *browser) eval(expr string, res any) {
	b.t.Helper()
	b.run("evaluate "+expr, chromedp.Evaluate(expr, res))
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	var s string
	_ = chromedp.Run(ctx, chromedp.Evaluate(`document.body ? document.body.innerText : ''`, &s))
	return s
}

// open goes to a console URL and waits for its page to render.
func (b *browser) open(url, page string) {
	b.t.Helper()
	b.run("open "+url, chromedp.Navigate(url))
	b.wait("page "+page, fmt.Sprintf(`document.querySelector('#page[data-page=%q]') !== null`, page))
}

// fill sets a form field as typing would, firing input and change.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	v, _ := json.Marshal(value)
	b.wait("field "+sel, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false;
		el.value = %s; el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, sel, v))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.run("click "+sel, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible))
}

// text is the text of the first element matching sel ("" when none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel), &s)
	return s
}

// shot saves a screenshot of the whole page as a test artifact.
func (b *browser) shot(name string) {
	b.t.Helper()
	var png []byte
	b.run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	dir := os.Getenv("DUET_TEST_ARTIFACTS")
	if dir == "" {
		dir = "artifacts" // e2e/artifacts, ignored by git
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(dir, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// tableRows reads the cells of the rows of a table.
func (b *browser) tableRows(sel string) [][]string {
	b.t.Helper()
	var rows [][]string
	b.eval(fmt.Sprintf(`[...document.querySelectorAll(%q)].map(tr => [...tr.cells].map(td => td.textContent))`, sel+" tbody tr"), &rows)
	return rows
}

// consoleFixture is a server with a dataset of trips from the last minutes
// and a built view over them, fares per hour and zone.
func consoleFixture(t *testing.T) (*proc, func(n int, zone string)) {
	t.Helper()
	p := startServer(t, t.TempDir())
	mustDuet(t, p, "", strings.Fields("dataset create trips --time-column ts --column ts:timestamp --column fare:double --column zone:varchar")...)
	ingest := func(n int, zone string) {
		var b strings.Builder
		now := time.Now().UTC()
		for i := range n {
			z := zone
			if z == "" {
				z = fmt.Sprintf("z%d", i%3)
			}
			fmt.Fprintf(&b, `{"ts":%q,"fare":%d,"zone":%q}`+"\n", now.Add(-time.Duration(i%50)*time.Second).Format("2006-01-02 15:04:05"), i%17, z)
		}
		mustDuet(t, p, b.String(), "ingest", "--dataset", "trips", "-")
	}
	ingest(90, "")
	mustDuet(t, p, "", "view", "create", "fares",
		"--sql", "SELECT date_trunc('hour', ts) AS hour, zone, count(*) AS n, sum(fare) AS total FROM trips GROUP BY 1, 2")
	buildView(t, p, "fares")
	return p, ingest
}

// TestConsole drives every page of the web console in a real Chromium: the
// views with their freshness, a rebuild and a rollback; a query, its rows,
// an error and a cancel; a running job followed and killed; a dashboard
// that updates by itself after new events are ingested.
func TestConsole(t *testing.T) {
	p, ingest := consoleFixture(t)
	b := newBrowser(t)
	ctx := ctxT(t)
	db := trinoDB(t, p)

	t.Run("views", func(t *testing.T) {
		b.t = t
		b.open(p.base+"/ui", "views") // redirected to /ui/, the views page
		b.wait("the view listed at version 1", `(() => { const r = document.querySelector('#views-table tr[data-view="fares"]'); return r && r.cells[2].textContent === 'v1'; })()`)
		// Freshness follows ingest: the records the version does not cover.
		ingest(7, "z0")
		b.wait("a speed lag of 7 records", `(document.querySelector('#views-table tr[data-view="fares"] td[data-lag-records]') || {}).dataset?.lagRecords === '7'`)
		b.click(`#views-table tr[data-view="fares"] a`)
		b.wait("version history", `document.querySelector('#versions-table tr[data-version="1"]') !== null`)
		b.click("#rebuild")
		b.wait("the queued build", `document.querySelector('#build-queued a') !== null`)
		id := b.text("#build-queued a")
		if j := waitJob(t, p, id); j.State != api.JobSucceeded {
			t.Fatalf("build %s queued from the console: %s %s", id, j.State, j.Error)
		}
		b.open(p.base+"/ui/views/fares", "views")
		b.wait("version 2, current", `(document.querySelector('#versions-table tr[data-version="2"]') || {}).textContent?.includes('(current)')`)
		b.shot("views")
		// Roll back: a first click arms the button, the second rolls back.
		b.click(`button[data-rollback="1"]`)
		b.click(`button[data-rollback="1"]`)
		b.wait("the rollback's notice", `(document.querySelector('#view-action-result') || {}).textContent?.includes('now serves version 1')`)
		v, err := p.client.GetView(ctx, "fares")
		if err != nil || v.Batch == nil || v.Batch.Version != 1 {
			t.Fatalf("after the console's rollback the view serves %+v, %v; want version 1", v.Batch, err)
		}
	})

	t.Run("query", func(t *testing.T) {
		b.t = t
		b.open(p.base+"/ui/query", "query")
		const q = "SELECT zone, sum(n) AS n, sum(total) AS total FROM views.fares GROUP BY zone ORDER BY zone"
		b.fill("#sql", q)
		b.click("#run")
		b.wait("the finished query", `(document.querySelector('#query-status') || {}).textContent?.includes('FINISHED')`)
		want := queryRows(t, db, q)
		got := b.tableRows("#query-results table")
		if len(got) != len(want) || len(want) != 3 {
			t.Fatalf("console shows %v, gateway answers %v", got, want)
		}
		for i := range want {
			for j := range want[i] {
				if fmt.Sprint(want[i][j]) != got[i][j] {
					t.Fatalf("row %d col %d: console shows %q, gateway answers %v", i, j, got[i][j], want[i][j])
				}
			}
		}
		b.click("#tab-chart")
		b.wait("the result's chart", `document.querySelectorAll('#query-chart svg rect, #query-chart svg polyline').length > 0`)
		b.shot("query")
		b.click("#tab-table")

		// An error shows its name and message.
		b.fill("#sql", "SELECT no_such_column FROM views.fares")
		b.click("#run")
		b.wait("the error", `document.querySelector('#query-error .name') !== null`)
		if name, msg := b.text("#query-error .name"), b.text("#query-error"); name == "" || !strings.Contains(msg, "no_such_column") {
			t.Fatalf("error shown as %q: %q", name, msg)
		}
		b.shot("query-error")

		// Cancel a query that would run for hours.
		b.fill("#sql", longQuery)
		b.click("#run")
		b.wait("the running query", `(document.querySelector('#query-status') || {}).textContent?.includes('RUNNING')`)
		b.click("#cancel")
		b.wait("the cancelled query", `(document.querySelector('#query-status') || {}).textContent?.includes('CANCELED')`)
		status := b.text("#query-status")
		qid := status[strings.LastIndex(status, " ")+1:]
		deadline := time.Now().Add(30 * time.Second)
		for {
			rows := queryRows(t, db, fmt.Sprintf("SELECT state FROM system.queries WHERE query_id = '%s'", strings.ReplaceAll(qid, "'", "")))
			if len(rows) == 1 && rows[0][0] != "RUNNING" && rows[0][0] != "QUEUED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("query %s still %v on the server 30s after the console cancelled it", qid, rows)
			}
			time.Sleep(50 * time.Millisecond)
		}
		var history int
		b.eval(`document.querySelectorAll('#query-history li').length`, &history)
		if history != 3 {
			t.Fatalf("query history holds %d queries, want 3", history)
		}
	})

	t.Run("jobs", func(t *testing.T) {
		b.t = t
		j := mustPostJob(t, p, api.JobRequest{Kind: api.JobKindSQL, SQL: longQuery})
		runningExecutor(t, p, j.ID, "")
		b.open(p.base+"/ui/jobs", "jobs")
		row := fmt.Sprintf(`document.querySelector('#jobs-table tr[data-job=%q]')`, j.ID)
		b.wait("the running job listed", row+` !== null`)
		b.fill("#filter-state", "succeeded")
		b.wait("the running job filtered out", row+` === null`)
		b.fill("#filter-state", "running")
		b.wait("the running job listed again", row+` !== null`)
		b.shot("jobs")
		b.click(fmt.Sprintf(`#jobs-table tr[data-job=%q] a`, j.ID))
		b.wait("the job's progress", `document.querySelector('#job-progress') !== null`)
		b.wait("the job's log", `(document.querySelector('#job-log') || {}).textContent?.includes('writing the result')`)
		b.shot("job")
		b.click("#kill")
		b.wait("the killed job", `(document.querySelector('#job-state') || {}).textContent === 'killed'`)
		if got := waitJob(t, p, j.ID); got.State != api.JobKilled {
			t.Fatalf("job killed from the console is %s", got.State)
		}
	})

	// Needs GET /v1/views/{name}/rows (the read API).
	t.Run("dashboards", func(t *testing.T) {
		b.t = t
		b.open(p.base+"/ui/dashboards", "dashboards")
		b.wait("the view to chart", `document.querySelector('#chart-view option[value="fares"]') !== null`)
		b.fill("#chart-view", "fares")
		b.wait("the columns guessed", `document.querySelector('#chart-x').value === 'hour' && document.querySelector('#chart-y').value === 'n'`)
		b.fill("#chart-range", "24h")
		b.fill("#chart-kind", "table")
		b.fill("#chart-group-by", "zone")
		b.fill("#chart-x", "")
		b.fill("#chart-y", "")
		b.click("#add-chart")
		b.fill("#chart-kind", "line")
		b.fill("#chart-group-by", "hour,zone")
		b.fill("#chart-x", "hour")
		b.fill("#chart-y", "n")
		b.fill("#chart-series", "zone")
		b.click("#add-chart")
		b.fill("#dashboard-name", "ops")
		b.fill("#dashboard-title", "Trips by zone")
		b.click("#save-dashboard")
		b.wait("the saved dashboard", `location.pathname === '/ui/dashboards/ops' && document.querySelectorAll('.chart-card').length === 2`)
		d, err := getDashboard(p, "ops")
		if err != nil || len(d.Charts) != 2 || d.Charts[0].Kind != "table" || d.Charts[1].Series != "zone" || d.Title != "Trips by zone" {
			t.Fatalf("saved dashboard = %+v, %v", d, err)
		}
		table := `.chart-card[data-kind="table"]`
		b.wait("the table chart drawn", `(document.querySelector('`+table+`') || {}).dataset?.draws >= 1`)
		b.wait("the line chart drawn", `document.querySelector('.chart-card[data-kind="line"] svg polyline') !== null`)
		// Nothing changes: the polls answer 304 and nothing is redrawn.
		b.wait("unchanged answers", `Number(document.querySelector('`+table+`').dataset.notModified) >= 2`)
		var draws string
		b.eval(`document.querySelector('`+table+`').dataset.draws`, &draws)
		zoneN := func() map[string]string {
			out := map[string]string{}
			for _, r := range b.tableRows(table + " table") {
				out[r[0]] = r[1]
			}
			return out
		}
		before := zoneN()
		want := queryRows(t, db, "SELECT zone, sum(n) FROM views.fares GROUP BY zone ORDER BY zone")
		for _, r := range want {
			if before[fmt.Sprint(r[0])] != fmt.Sprint(r[1]) {
				t.Fatalf("dashboard table %v, gateway %v", before, want)
			}
		}
		b.shot("dashboards")
		// New events show up by themselves.
		ingest(5, "z0")
		z0 := want[0][1].(int64) + 5
		b.wait("the dashboard updated after ingest", fmt.Sprintf(`[...document.querySelectorAll('%s table tbody tr')].some(tr => tr.cells[0].textContent === 'z0' && tr.cells[1].textContent === '%d')`, table, z0))
		var after string
		b.eval(`document.querySelector('`+table+`').dataset.draws`, &after)
		if after == draws {
			t.Fatalf("draws stayed %s after new events", after)
		}
		b.shot("dashboard-updated")
	})
}

func getDashboard(p *proc, name string) (api.Dashboard, error) {
	var d api.Dashboard
	resp, err := http.Get(p.base + "/v1/dashboards/" + name)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return d, fmt.Errorf("GET /v1/dashboards/%s: %s", name, resp.Status)
	}
	return d, json.NewDecoder(resp.Body).Decode(&d)
}

// TestConsoleAuth checks that the console honours the gateway's
// authentication: with passwords it loads only after the browser answers
// the Basic challenge; with bearer tokens its page loads, asks for a token,
// and sends it with every call, queries included.
func TestConsoleAuth(t *testing.T) {
	dir := t.TempDir()
	cert, key := consoleCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "passwords")
	secretFile := filepath.Join(dir, "jwt-secret")
	const secret = "duet-console-test-secret-of-at-least-32-bytes"
	for name, content := range map[string]string{pwFile: "alice:" + string(hash) + "\n", secretFile: secret + "\n"} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, chromedp.IgnoreCertErrors)

	t.Run("password", func(t *testing.T) {
		b.t = t
		p := startServer(t, filepath.Join(dir, "pw"), "--tls-cert", cert, "--tls-key", key, "--auth-password-file", pwFile)
		base := strings.Replace(p.base, "http://", "https://", 1)
		insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		for _, c := range []struct {
			user, password string
			status         int
		}{{"", "", 401}, {"alice", "wrong", 401}, {"alice", "alice-secret", 200}} {
			req, _ := http.NewRequest(http.MethodGet, base+"/ui/", nil)
			if c.user != "" {
				req.SetBasicAuth(c.user, c.password)
			}
			resp, err := insecure.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("GET /ui/ as %q: %d, want %d", c.user, resp.StatusCode, c.status)
			}
		}
		// The user cancels the browser's prompt: no console.
		b.answerBasicAuth("", "")
		b.run("open the console without credentials", chromedp.Navigate(base+"/ui/"))
		b.wait("the refusal", `document.body.innerText.includes('authentication required')`)
		var hasPage bool
		b.eval(`document.querySelector('#page') !== null`, &hasPage)
		if hasPage {
			t.Fatal("the console loaded without credentials")
		}
		b.shot("auth-refused")
		// The user types them into the prompt.
		b.answerBasicAuth("alice", "alice-secret")
		b.open(base+"/ui/views", "views")
		b.wait("the signed-in user", `(document.querySelector('#who-user') || {}).textContent === 'alice'`)
		b.wait("the views page's answer", `document.querySelector('#views-list p, #views-table') !== null`)
		b.shot("auth-password")
	})

	t.Run("token", func(t *testing.T) {
		b.t = t
		b.answerBasicAuth("", "")
		p := startServer(t, filepath.Join(dir, "jwt"), "--auth-jwt-secret-file", secretFile)
		if resp, err := http.Get(p.base + "/v1/views"); err != nil || resp.StatusCode != 401 {
			t.Fatalf("GET /v1/views without a token: %v %v, want 401", resp, err)
		}
		b.run("open the console", chromedp.Navigate(p.base+"/ui/query"))
		b.wait("the sign-in form", `document.querySelector('#signin') && !document.querySelector('#signin').hidden`)
		b.shot("auth-signin")
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		b.fill("#signin-token", tok)
		b.click("#signin-form button")
		b.wait("the signed-in user", `(document.querySelector('#who-user') || {}).textContent === 'bob'`)
		b.wait("the query page", `document.querySelector('#page[data-page="query"] #sql') !== null`)
		b.fill("#sql", "SELECT 41 + 1 AS answer")
		b.click("#run")
		b.wait("the query's row", `(document.querySelector('#query-results tbody td') || {}).textContent === '42'`)
		rows := queryRowsAs(t, p, tok, "SELECT \"user\", source FROM system.queries WHERE sql = 'SELECT 41 + 1 AS answer'")
		if len(rows) != 1 || rows[0][0] != "bob" || rows[0][1] != "duet-console" {
			t.Fatalf("system.queries records the console's query as %v, want bob from duet-console", rows)
		}
	})
}

// queryRowsAs runs SQL through the Trino protocol with a bearer token and
// returns its rows as text.
func queryRowsAs(t *testing.T, p *proc, token, sql string) [][]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.base+"/v1/statement", strings.NewReader(sql))
	req.Header.Set("Authorization", "Bearer "+token)
	var out [][]string
	for {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			NextURI string  `json:"nextUri"`
			Data    [][]any `json:"data"`
			Error   *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if doc.Error != nil {
			t.Fatalf("%s: %s", sql, doc.Error.Message)
		}
		for _, r := range doc.Data {
			row := make([]string, len(r))
			for i, v := range r {
				row[i] = fmt.Sprint(v)
			}
			out = append(out, row)
		}
		if doc.NextURI == "" {
			return out
		}
		req, _ = http.NewRequest(http.MethodGet, doc.NextURI, nil)
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

// consoleCert writes a self-signed certificate for 127.0.0.1.
func consoleCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "duet console test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}
