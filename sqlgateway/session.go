package sqlgateway

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Request headers of the Trino protocol the gateway reads.
const (
	headerUser              = "X-Trino-User"
	headerSource            = "X-Trino-Source"
	headerCatalog           = "X-Trino-Catalog"
	headerSchema            = "X-Trino-Schema"
	headerTimeZone          = "X-Trino-Time-Zone"
	headerSession           = "X-Trino-Session"
	headerClientTags        = "X-Trino-Client-Tags"
	headerClientInfo        = "X-Trino-Client-Info"
	headerPreparedStatement = "X-Trino-Prepared-Statement"

	headerSetCatalog          = "X-Trino-Set-Catalog"
	headerSetSchema           = "X-Trino-Set-Schema"
	headerSetSession          = "X-Trino-Set-Session"
	headerClearSession        = "X-Trino-Clear-Session"
	headerAddedPrepare        = "X-Trino-Added-Prepare"
	headerDeallocatedPrepare  = "X-Trino-Deallocated-Prepare"
	headerStartedTransaction  = "X-Trino-Started-Transaction-Id"
	headerClearTransaction    = "X-Trino-Clear-Transaction-Id"
	sessionTimeZoneProperty   = "time_zone_id"
	sessionMaxRunTimeProperty = "query_max_run_time"
	defaultUser               = "anonymous"
)

// session is the client's session state, which travels entirely in the
// request headers: the gateway keeps none between statements.
type session struct {
	user       string
	source     string
	catalog    string
	schema     string
	clientTags []string
	clientInfo string
	zone       zone
	properties map[string]string
	prepared   map[string]string // name -> SQL
	// maxRunTime is the query_max_run_time session property, 0 when unset.
	maxRunTime time.Duration
}

// sessionFromRequest reads the session headers. It always returns a
// session; an invalid header also gives the error the statement fails with.
func sessionFromRequest(r *http.Request) (*session, *queryError) {
	h := r.Header
	s := &session{
		user:       strings.TrimSpace(h.Get(headerUser)),
		source:     h.Get(headerSource),
		catalog:    strings.TrimSpace(h.Get(headerCatalog)),
		schema:     strings.TrimSpace(h.Get(headerSchema)),
		clientInfo: h.Get(headerClientInfo),
		properties: map[string]string{},
		prepared:   map[string]string{},
		zone:       utcZone,
	}
	if s.user == "" {
		s.user = defaultUser
	}
	for _, v := range h.Values(headerClientTags) {
		for _, tag := range strings.Split(v, ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				s.clientTags = append(s.clientTags, tag)
			}
		}
	}
	for name, value := range headerPairs(h.Values(headerSession)) {
		s.properties[name] = value
	}
	for name, sql := range headerPairs(h.Values(headerPreparedStatement)) {
		s.prepared[name] = sql
	}
	zoneName := h.Get(headerTimeZone)
	if v, ok := s.properties[sessionTimeZoneProperty]; ok {
		zoneName = v
	}
	if zoneName != "" {
		z, err := resolveZone(zoneName)
		if err != nil {
			return s, newQueryError(errGenericUser, err.Error())
		}
		s.zone = z
	}
	if v, ok := s.properties[sessionMaxRunTimeProperty]; ok {
		d, err := parseTrinoDuration(v)
		if err != nil {
			return s, newQueryError(errGenericUser, fmt.Sprintf("session property %s: %v", sessionMaxRunTimeProperty, err))
		}
		s.maxRunTime = d
	}
	return s, nil
}

// headerPairs parses "name=urlencoded(value)" entries, comma-separated
// and/or in repeated headers.
func headerPairs(values []string) map[string]string {
	out := map[string]string{}
	for _, v := range values {
		for _, entry := range strings.Split(v, ",") {
			name, value, ok := strings.Cut(entry, "=")
			if !ok {
				continue
			}
			n, err1 := url.QueryUnescape(strings.TrimSpace(name))
			val, err2 := url.QueryUnescape(strings.TrimSpace(value))
			if err1 != nil || err2 != nil || n == "" {
				continue
			}
			out[n] = val
		}
	}
	return out
}

var offsetZone = regexp.MustCompile(`^([+-])(\d{2}):(\d{2})$`)

// resolveZone loads a time zone id as Trino accepts them: an IANA name,
// UTC, or a ±HH:MM offset.
func resolveZone(name string) (zone, error) {
	switch name {
	case "UTC", "Z", "GMT", "Etc/UTC", "UCT":
		return zone{name: name, loc: time.UTC}, nil
	case "", "Local":
		return zone{}, fmt.Errorf("time zone %q is not supported: use an IANA zone name such as Europe/Berlin or an offset such as +02:00", name)
	}
	if m := offsetZone.FindStringSubmatch(name); m != nil {
		hours, _ := strconv.Atoi(m[2])
		minutes, _ := strconv.Atoi(m[3])
		if hours > 14 || minutes > 59 {
			return zone{}, fmt.Errorf("time zone offset %q is out of range", name)
		}
		offset := hours*3600 + minutes*60
		if m[1] == "-" {
			offset = -offset
		}
		return zone{name: name, loc: time.FixedZone(name, offset)}, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return zone{}, fmt.Errorf("time zone %q is not supported: use an IANA zone name such as Europe/Berlin or an offset such as +02:00", name)
	}
	return zone{name: name, loc: loc}, nil
}

var trinoDuration = regexp.MustCompile(`^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$`)

// parseTrinoDuration parses Trino's duration syntax: "10m", "1.5h", "30s".
func parseTrinoDuration(s string) (time.Duration, error) {
	m := trinoDuration.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid duration %q: use a number and a unit, such as 30s, 10m or 1h", s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", s, err)
	}
	units := map[string]time.Duration{
		"ns": time.Nanosecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour,
	}
	unit, ok := units[m[2]]
	if !ok {
		return 0, fmt.Errorf("invalid duration %q: unit must be one of ns, us, ms, s, m, h, d", s)
	}
	return time.Duration(n * float64(unit)), nil
}
