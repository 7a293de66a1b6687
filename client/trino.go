package client

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"
)

// TrinoDSN is the data source name under which trino-go-client (driver
// "trino") reaches this server's SQL gateway as user, in catalog duet and
// schema views: http://user@host:port?catalog=duet&schema=views. It carries
// the client's Credentials: a token as accessToken, with which an empty user
// means the token's; a password, with which the user is Credentials.User
// (the driver sends one user for both).
func (c *Client) TrinoDSN(user string) string {
	q := url.Values{"catalog": {"duet"}, "schema": {"views"}}
	u := url.URL{Scheme: c.base.Scheme, Host: c.base.Host}
	cr := c.cfg.Credentials
	switch {
	case cr.Password != "":
		u.User = url.UserPassword(cr.User, cr.Password)
	case user != "":
		u.User = url.User(user)
	}
	if cr.Token != "" {
		q.Set("accessToken", cr.Token)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// CheckReachable dials the server once, so a command that talks to it
// through another client (trino-go-client retries refused connections for
// minutes) can fail fast with the same *UnreachableError as every method.
func (c *Client) CheckReachable(ctx context.Context) error {
	host := c.base.Host
	if c.base.Port() == "" {
		port := "80"
		if c.base.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(c.base.Hostname(), port)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("dial duet server at %s: %w", c.BaseURL(), ctx.Err())
		}
		return &UnreachableError{BaseURL: c.BaseURL(), Err: err}
	}
	return conn.Close()
}
