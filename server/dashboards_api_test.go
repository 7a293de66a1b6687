package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duet-analytics/duet/api"
	"github.com/duet-analytics/duet/client"
	"github.com/duet-analytics/duet/dataset"
)

// TestConsoleAPI checks what the web console needs beyond the rest of the
// API, under authorization rules: who the user is and whether they are an
// admin, and saved dashboards, which any user may save over views they
// can read and only the owner or an admin may change.
func TestConsoleAPI(t *testing.T) {
	dir := t.TempDir()
	cfg := authzConfig(t, dir, filepath.Join(dir, "data"))
	srv := runServer(t, cfg)
	base := "http://" + srv.Addr()
	call := func(user, method, path string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.Header.Set("Authorization", "Bearer "+hs256Token(t, user, time.Hour))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	root, err := client.NewWithConfig(base, nil, client.Config{Credentials: client.Credentials{Token: hs256Token(t, "root", time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(root.CloseIdleConnections)
	cols := []dataset.Column{{Name: "ts", Type: dataset.Timestamp}, {Name: "carrier", Type: dataset.Varchar}, {Name: "delay", Type: dataset.Bigint}}
	if _, err := root.CreateDataset(t.Context(), api.Dataset{Name: "flights", TimeColumn: "ts", Columns: cols}); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]string{"delays": "SELECT carrier, sum(delay) AS total FROM flights GROUP BY carrier", "counts": "SELECT count(*) AS n FROM flights"} {
		if _, err := root.CreateView(t.Context(), api.ViewRequest{Name: name, SQL: q}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("whoami", func(t *testing.T) {
		for user, admin := range map[string]bool{"root": true, "alice": false} {
			status, body := call(user, http.MethodGet, "/v1/whoami", nil)
			var me api.WhoAmI
			if status != 200 || json.Unmarshal(body, &me) != nil || me != (api.WhoAmI{User: user, Admin: admin, Authenticated: true}) {
				t.Errorf("whoami as %s: %d %s", user, status, body)
			}
		}
		if status, _ := call("", http.MethodGet, "/v1/whoami", nil); status != 401 {
			t.Errorf("whoami without a token: %d, want 401", status)
		}
	})

	t.Run("console page", func(t *testing.T) {
		// With bearer tokens the page loads without one (it asks for it);
		// the API it calls does not.
		resp, err := http.Get(base + "/ui/views")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `id="signin"`) {
			t.Fatalf("GET /ui/views without a token: %d", resp.StatusCode)
		}
		if status, _ := call("", http.MethodGet, "/v1/dashboards", nil); status != 401 {
			t.Fatalf("GET /v1/dashboards without a token: %d, want 401", status)
		}
	})

	t.Run("dashboards", func(t *testing.T) {
		ops := api.Dashboard{Title: "Delays", Refresh: "2s", Charts: []api.DashboardChart{
			{View: "delays", Kind: api.ChartBar, X: "carrier", Y: []string{"total"}, Range: "7d", Filters: []string{"carrier!=ZZ"}},
			{View: "delays", Kind: api.ChartTable},
		}}
		status, body := call("alice", http.MethodPut, "/v1/dashboards/ops", ops)
		var got api.Dashboard
		if status != http.StatusCreated || json.Unmarshal(body, &got) != nil || got.Name != "ops" || got.Owner != "alice" || len(got.Charts) != 2 || got.Charts[0].Range != "7d" || got.CreatedAt == nil {
			t.Fatalf("PUT as alice: %d %s", status, body)
		}
		// Read by anyone signed in, exactly as saved.
		status, body = call("carol", http.MethodGet, "/v1/dashboards/ops", nil)
		var read api.Dashboard
		if status != 200 || json.Unmarshal(body, &read) != nil || read.Title != "Delays" || read.Refresh != "2s" || read.Charts[0].Filters[0] != "carrier!=ZZ" || read.Charts[1].Kind != "table" {
			t.Fatalf("GET as carol: %d %s", status, body)
		}
		// Replaced by its owner (200), not by another user, by an admin.
		ops.Title = "Delays by carrier"
		if status, body := call("alice", http.MethodPut, "/v1/dashboards/ops", ops); status != 200 {
			t.Fatalf("PUT again as alice: %d %s", status, body)
		}
		if status, body := call("bob", http.MethodPut, "/v1/dashboards/ops", ops); status != 403 || !strings.Contains(string(body), "only its owner or an admin") {
			t.Fatalf("PUT as bob over alice's: %d %s", status, body)
		}
		if status, body := call("bob", http.MethodDelete, "/v1/dashboards/ops", nil); status != 403 {
			t.Fatalf("DELETE as bob: %d %s", status, body)
		}
		ops.Title = "Delays (ops)"
		status, body = call("root", http.MethodPut, "/v1/dashboards/ops", ops)
		if status != 200 || json.Unmarshal(body, &got) != nil || got.Owner != "alice" || got.UpdatedBy != "root" || got.Title != "Delays (ops)" {
			t.Fatalf("PUT as root: %d %s", status, body)
		}
		// carol may read views.delays but not views.counts.
		if status, body := call("carol", http.MethodPut, "/v1/dashboards/carol", api.Dashboard{Charts: []api.DashboardChart{{View: "counts", Kind: "table"}}}); status != 403 || !strings.Contains(string(body), "cannot read view counts") {
			t.Fatalf("PUT a chart of an unreadable view: %d %s", status, body)
		}
		for name, c := range map[string]struct {
			path string
			doc  any
			want string
		}{
			"unknown view":   {"/v1/dashboards/x", api.Dashboard{Charts: []api.DashboardChart{{View: "nope", Kind: "table"}}}, `view "nope" not found`},
			"bad kind":       {"/v1/dashboards/x", api.Dashboard{Charts: []api.DashboardChart{{View: "delays", Kind: "pie"}}}, `kind "pie"`},
			"line without y": {"/v1/dashboards/x", api.Dashboard{Charts: []api.DashboardChart{{View: "delays", Kind: "line", X: "carrier"}}}, "needs x and at least one y"},
			"bad range":      {"/v1/dashboards/x", api.Dashboard{Charts: []api.DashboardChart{{View: "delays", Kind: "table", Range: "yesterday"}}}, `range "yesterday"`},
			"fast refresh":   {"/v1/dashboards/x", api.Dashboard{Refresh: "100ms"}, `refresh "100ms"`},
			"bad filter":     {"/v1/dashboards/x", api.Dashboard{Charts: []api.DashboardChart{{View: "delays", Kind: "table", Filters: []string{"carrier"}}}}, `filter "carrier"`},
			"name mismatch":  {"/v1/dashboards/x", api.Dashboard{Name: "y"}, `differs`},
			"bad name":       {"/v1/dashboards/-x", api.Dashboard{}, `dashboard name "-x"`},
			"unknown field":  {"/v1/dashboards/x", map[string]any{"chart": []any{}}, `unknown field`},
		} {
			status, body := call("alice", http.MethodPut, c.path, c.doc)
			var e api.Error
			if status != 400 || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, c.want) {
				t.Errorf("%s: %d %s, want 400 with %q", name, status, body, c.want)
			}
		}
		if status, body := call("bob", http.MethodPut, "/v1/dashboards/empty", api.Dashboard{}); status != 201 {
			t.Fatalf("PUT an empty dashboard as bob: %d %s", status, body)
		}
		status, body = call("carol", http.MethodGet, "/v1/dashboards", nil)
		var list api.DashboardList
		if status != 200 || json.Unmarshal(body, &list) != nil || len(list.Dashboards) != 2 || list.Dashboards[0].Name != "empty" || list.Dashboards[0].Charts == nil || list.Dashboards[1].Name != "ops" {
			t.Fatalf("GET /v1/dashboards: %d %s", status, body)
		}
		if status, body := call("alice", http.MethodDelete, "/v1/dashboards/ops", nil); status != 204 {
			t.Fatalf("DELETE as owner: %d %s", status, body)
		}
		if status, _ := call("alice", http.MethodGet, "/v1/dashboards/ops", nil); status != 404 {
			t.Fatalf("GET after delete: %d, want 404", status)
		}
		if status, _ := call("root", http.MethodDelete, "/v1/dashboards/ops", nil); status != 404 {
			t.Fatalf("DELETE of a deleted dashboard: %d, want 404", status)
		}
	})
}
