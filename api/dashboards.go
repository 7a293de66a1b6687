package api

import "time"

// Chart kinds of a dashboard chart.
const (
	ChartLine  = "line"
	ChartBar   = "bar"
	ChartTable = "table"
)

// Dashboard is a saved dashboard of the web console (GET and PUT
// /v1/dashboards/{name}): charts over views, each polling
// GET /v1/views/{view}/rows.
type Dashboard struct {
	Name   string           `json:"name"`
	Title  string           `json:"title,omitempty"`
	Charts []DashboardChart `json:"charts"`
	// Refresh is how often the charts poll, as a duration such as "1s"
	// (the default) or "10s".
	Refresh string `json:"refresh,omitempty"`
	// Owner created the dashboard; UpdatedBy saved this document. Both are
	// set by the server, which ignores them in a PUT.
	Owner     string     `json:"owner,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// DashboardChart is one chart: what it asks GET /v1/views/{view}/rows for,
// and how it draws the answer.
type DashboardChart struct {
	Title string `json:"title,omitempty"`
	View  string `json:"view"`
	// Range is how far back from now the chart reaches on the view's time
	// key, as a duration such as "15m", "1h", "24h" or "7d"; "" is all time.
	Range string `json:"range,omitempty"`
	// Kind is line, bar or table.
	Kind string `json:"kind"`
	// X is the column along the x axis, Y the measures drawn, Series the
	// column whose values become one line or bar group each.
	X      string   `json:"x,omitempty"`
	Y      []string `json:"y,omitempty"`
	Series string   `json:"series,omitempty"`
	// GroupBy is the rows API's group_by: the keys kept, the others rolled up.
	GroupBy []string `json:"group_by,omitempty"`
	// Filters are the rows API's filter parameters, such as "origin=ATL".
	Filters []string `json:"filters,omitempty"`
	Limit   int      `json:"limit,omitempty"`
}

// DashboardList is the answer of GET /v1/dashboards.
type DashboardList struct {
	Dashboards []Dashboard `json:"dashboards"`
}

// WhoAmI is the answer of GET /v1/whoami: the authenticated user (the
// claimed one, from X-Duet-User, when the server authenticates no one) and
// what the console may offer them.
type WhoAmI struct {
	User string `json:"user"`
	// Admin: the user may build and roll back views and run and kill jobs.
	Admin bool `json:"admin"`
	// Authenticated: the server checked who the user is.
	Authenticated bool `json:"authenticated"`
}
