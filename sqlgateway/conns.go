package sqlgateway

import (
	"database/sql"
	"sync"
)

// schemaConns keeps engine connections already switched to a session
// schema (USE), by schema, so the next statement in that schema skips the
// USE and, after it, the restore of the default: two engine statements of
// their own, 9% of the server's CPU for a dashboard query answered from a
// materialized view (BENCHMARKS.md). At most max per schema are kept; the
// rest are restored and go back to the engine's pool.
type schemaConns struct {
	mu     sync.Mutex
	max    int
	closed bool
	idle   map[string][]*sql.Conn
}

func newSchemaConns(max int) *schemaConns {
	return &schemaConns{max: max, idle: map[string][]*sql.Conn{}}
}

// take returns a kept connection in schema, or nil.
func (c *schemaConns) take(schema string) *sql.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	conns := c.idle[schema]
	if len(conns) == 0 {
		return nil
	}
	conn := conns[len(conns)-1]
	c.idle[schema] = conns[:len(conns)-1]
	return conn
}

// put keeps conn, whose schema is schema, and reports whether it did.
func (c *schemaConns) put(schema string, conn *sql.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[schema]) >= c.max {
		return false
	}
	c.idle[schema] = append(c.idle[schema], conn)
	return true
}

// close closes every kept connection and keeps none from now on.
func (c *schemaConns) close() {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = map[string][]*sql.Conn{}, true
	c.mu.Unlock()
	for _, conns := range idle {
		for _, conn := range conns {
			_ = conn.Close()
		}
	}
}
