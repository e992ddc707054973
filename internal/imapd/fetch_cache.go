package imapd

import (
	"container/list"
	"sync"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// Bounds of the structure cache: entries, and MIME parts over all of them
// (a part costs a few hundred bytes, so the default is some tens of MB at
// worst).
const (
	defaultCacheEntries = 20000
	defaultCacheParts   = 200000
)

// structCache keeps parsed message structures by body id, least recently
// used first out. Bodies never change once stored, so an entry never goes
// stale; it only ages out.
type structCache struct {
	mu         sync.Mutex
	maxEntries int
	maxParts   int
	parts      int
	ll         *list.List // of *cacheEntry, most recent at the front
	byID       map[int64]*list.Element
}

type cacheEntry struct {
	id    int64
	st    *imapmsg.Structure
	parts int
}

func newStructCache(maxEntries, maxParts int) *structCache {
	return &structCache{maxEntries: maxEntries, maxParts: maxParts, ll: list.New(), byID: make(map[int64]*list.Element)}
}

// get returns the cached structure of a body, or nil.
func (c *structCache) get(id int64) *imapmsg.Structure {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cacheEntry).st
}

// put caches st for a body, replacing a shallower one.
func (c *structCache) put(id int64, st *imapmsg.Structure) {
	n := countParts(st.Root)
	if n > c.maxParts {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[id]; ok {
		old := e.Value.(*cacheEntry)
		c.parts += n - old.parts
		old.st, old.parts = st, n
		c.ll.MoveToFront(e)
	} else {
		c.byID[id] = c.ll.PushFront(&cacheEntry{id: id, st: st, parts: n})
		c.parts += n
	}
	for c.ll.Len() > c.maxEntries || c.parts > c.maxParts {
		last := c.ll.Back()
		ent := last.Value.(*cacheEntry)
		c.ll.Remove(last)
		delete(c.byID, ent.id)
		c.parts -= ent.parts
	}
}

func (c *structCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
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
