package msgauth

import (
	"sync"
	"time"
)

// SPF results are cached briefly per (client address, HELO name,
// sender): the same sender through the same server (a mailing list, a
// provider's outbound host) is checked once per spfCacheTTL instead of
// once per message (with every DNS answer cached, the two SPF checks were
// about 45,000 of a verification's 930,000 instructions, and 45 of its
// 212 allocations). The TTL is shorter than dnsres's TXT cache, so
// a result is never older than the records would be anyway. Temporary
// errors are not kept.
const (
	spfCacheTTL = 30 * time.Second
	spfCacheMax = 4096 // when full, emptied (a cheap, rare reset)
)

type spfCache struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[string]spfEntry
}

type spfEntry struct {
	o  Outcome
	at time.Time
}

func newSPFCache(now func() time.Time) *spfCache {
	return &spfCache{now: now, entries: map[string]spfEntry{}}
}

func spfKey(ip, helo, sender string) string { return ip + "\x00" + helo + "\x00" + sender }

func (c *spfCache) get(key string) (Outcome, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.Sub(e.at) >= spfCacheTTL || now.Before(e.at) {
		return Outcome{}, false
	}
	return e.o, true
}

func (c *spfCache) put(key string, o Outcome) {
	if o.Result == TempError {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= spfCacheMax {
		clear(c.entries)
	}
	c.entries[key] = spfEntry{o: o, at: now}
}
