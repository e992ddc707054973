package dnsres

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Reverse DNS cache settings. Every SMTP connection looks up its client's
// PTR and forward-confirms the names (smtpd's Received header), and MX
// clients that send several messages reconnect for each one, so without a
// cache every message costs three queries. The standard resolver does not
// expose record TTLs, so answers are kept for a fixed time, short enough
// that a changed PTR shows within minutes: the name only ever goes into
// the Received header, where a stale one does no harm.
const (
	// CacheSize bounds the entries of each cache (addresses for PTR,
	// names for forward look-ups).
	CacheSize = 4096
	// CacheTTL is how long an answer is reused.
	CacheTTL = 5 * time.Minute
	// TXTCacheTTL is how long a TXT answer (SPF, DKIM key, DMARC policy)
	// is reused: a minute, so that a sender's changed or revoked record
	// counts within one.
	TXTCacheTTL = time.Minute
	// CacheNegativeTTL is how long "no such name / no record" is reused.
	// Temporary failures (timeouts, SERVFAIL) are never cached.
	CacheNegativeTTL = 30 * time.Second
)

// cache maps a key to the answer of one look-up, up to max entries.
// When it is full, expired entries go first, then arbitrary ones (Go's
// map order is random, so no address can keep others out).
type cache struct {
	mu        sync.Mutex
	max       int
	ttl, nttl time.Duration
	now       func() time.Time
	entries   map[string]cacheEntry
	nextSweep time.Time // a full sweep for expired entries runs at most this often
}

type cacheEntry struct {
	vals    []string
	err     error // nil, or an IsNotFound error
	expires time.Time
}

func newCache(max int, ttl, nttl time.Duration, now func() time.Time) *cache {
	return &cache{max: max, ttl: ttl, nttl: nttl, now: now, entries: map[string]cacheEntry{}}
}

// get returns a live entry (its vals are the caller's own copy).
func (c *cache) get(key string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return cacheEntry{}, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, key)
		return cacheEntry{}, false
	}
	e.vals = slices.Clone(e.vals)
	return e, true
}

// put stores an answer: a success for ttl, a not-found for nttl, and
// nothing for other errors (they may be gone on the next try).
func (c *cache) put(key string, vals []string, err error) {
	ttl := c.ttl
	switch {
	case err == nil:
	case IsNotFound(err):
		ttl = c.nttl
	default:
		return
	}
	if ttl <= 0 || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		if !t.Before(c.nextSweep) {
			for k, e := range c.entries {
				if !t.Before(e.expires) {
					delete(c.entries, k)
				}
			}
			c.nextSweep = t.Add(c.nttl)
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{vals: slices.Clone(vals), err: err, expires: t.Add(ttl)}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// addrKey normalises an IP address (an IPv4-mapped IPv6 address is the
// IPv4 one); ok is false for anything else, which is then not cached.
func addrKey(addr string) (string, bool) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", false
	}
	return a.Unmap().String(), true
}

// hostKey is a host name as the cache knows it: lower case, no final dot.
func hostKey(host string) string {
	return strings.ToLower(strings.TrimSuffix(host, "."))
}
