package imapd

import "github.com/petrelmail/petrel/internal/imapd/imapmsg"

// Bounds of the structure cache: entries, and MIME parts over all of them
// (a part costs a few hundred bytes, so the default is some tens of MB at
// worst).
const (
	defaultCacheEntries = 20000
	defaultCacheParts   = 200000
)

// structCache keeps parsed message structures by body id, least recently
// used first out, charged by their MIME parts. Bodies never change once
// stored, so an entry never goes stale; it only ages out.
type structCache struct{ c *lru[*imapmsg.Structure] }

func newStructCache(maxEntries, maxParts int) *structCache {
	return &structCache{c: newLRU[*imapmsg.Structure](maxEntries, int64(maxParts))}
}

// get returns the cached structure of a body, or nil.
func (c *structCache) get(id int64) *imapmsg.Structure {
	st, _ := c.c.get(id)
	return st
}

// put caches st for a body, replacing a shallower one.
func (c *structCache) put(id int64, st *imapmsg.Structure) {
	c.c.put(id, st, int64(countParts(st.Root)))
}

func (c *structCache) len() int {
	n, _ := c.c.size()
	return n
}

// parts returns the MIME parts charged over all entries.
func (c *structCache) parts() int {
	_, p := c.c.size()
	return int(p)
}

func countParts(p *imapmsg.Part) int {
	n := 1
	for _, ch := range p.Children {
		n += countParts(ch)
	}
	if p.Message != nil {
		n += countParts(p.Message)
	}
	return n
}
