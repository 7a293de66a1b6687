package serving

import (
	"container/list"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// ResultCache keeps encoded answers of the rows API, least recently used
// first out beyond a bound in bytes. An entry's key names the state it was
// computed on (batch version and speed offsets), so an entry can never be
// served for another state: a new state simply misses. Entries of a view's
// older states are dropped as soon as one of its newer states is stored.
type ResultCache struct {
	max     int64
	metrics *cacheMetrics
	flight  singleflight.Group

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *cacheEntry, most recently used first
	byKey map[ResultKey]*list.Element
	// state is the newest state stored per view.
	state map[string]string
}

// ResultKey identifies one answer: the view, the state it reflects and
// the normalized request (its format included).
type ResultKey struct {
	View, State, Request string
}

// Answer is one encoded answer.
type Answer struct {
	Body []byte
	// Truncated says more rows matched than the answer holds.
	Truncated bool
}

type cacheEntry struct {
	key ResultKey
	ans Answer
}

// entryOverhead approximates an entry's bookkeeping beyond its body.
const entryOverhead = 256

// NewResultCache returns a cache of at most maxBytes (0 disables it: every
// lookup misses, nothing is kept). reg may be nil.
func NewResultCache(maxBytes int64, reg prometheus.Registerer) *ResultCache {
	return &ResultCache{
		max: maxBytes, metrics: newCacheMetrics(reg),
		lru: list.New(), byKey: map[ResultKey]*list.Element{}, state: map[string]string{},
	}
}

// Get returns the answer stored under k.
func (c *ResultCache) Get(k ResultKey) (Answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		c.metrics.misses.Inc()
		return Answer{}, false
	}
	c.metrics.hits.Inc()
	c.lru.MoveToFront(el)
	return el.Value.(*cacheEntry).ans, true
}

// Put stores ans under k, whose state must be the view's state as read on
// both sides of computing ans. An answer larger than a quarter of the bound
// is not kept.
func (c *ResultCache) Put(k ResultKey, ans Answer) {
	n := int64(len(ans.Body)) + entryOverhead
	if c.max <= 0 || n > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state[k.View] != k.State {
		c.dropView(k.View)
		c.state[k.View] = k.State
	}
	if el, ok := c.byKey[k]; ok {
		c.remove(el)
	}
	c.byKey[k] = c.lru.PushFront(&cacheEntry{key: k, ans: ans})
	c.size += n
	for c.size > c.max {
		c.remove(c.lru.Back())
		c.metrics.evictions.Inc()
	}
	c.metrics.bytes.Set(float64(c.size))
	c.metrics.entries.Set(float64(c.lru.Len()))
}

// Do runs compute once for concurrent callers of the same key (a poll of
// many dashboards after a change), who all get its result.
func (c *ResultCache) Do(k ResultKey, compute func() (any, error)) (any, error) {
	v, err, _ := c.flight.Do(k.View+"\x00"+k.State+"\x00"+k.Request, compute)
	return v, err
}

// dropView removes every entry of view; called with mu held.
func (c *ResultCache) dropView(view string) {
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*cacheEntry).key.View == view {
			c.remove(el)
		}
		el = next
	}
}

func (c *ResultCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.byKey, e.key)
	c.size -= int64(len(e.ans.Body)) + entryOverhead
	c.metrics.bytes.Set(float64(c.size))
	c.metrics.entries.Set(float64(c.lru.Len()))
}

type cacheMetrics struct {
	hits, misses, evictions prometheus.Counter
	bytes, entries          prometheus.Gauge
}

func newCacheMetrics(reg prometheus.Registerer) *cacheMetrics {
	m := &cacheMetrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_serving_result_cache_hits_total", Help: "Rows API answers served from the result cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_serving_result_cache_misses_total", Help: "Rows API answers the result cache did not hold, so a query ran.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "duet_serving_result_cache_evictions_total", Help: "Answers evicted from the result cache to stay within its bound.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "duet_serving_result_cache_bytes", Help: "Bytes the result cache holds.",
		}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "duet_serving_result_cache_entries", Help: "Answers the result cache holds.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.misses, m.evictions, m.bytes, m.entries)
	}
	return m
}
