package imapd

import (
	"container/list"
	"sync"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// Bounds of the header cache: bytes over all entries (twice the header
// bytes, for the block and the envelope and MIME strings parsed from it,
// plus a fixed charge for the entry and structure), and the
// largest header block kept (a bigger one is read from the store each
// time, as before).
const (
	defaultHeaderCacheBytes = 32 << 20
	maxCachedHeader         = 64 << 10
	headerEntryOverhead     = 512
)

// headerCache keeps the raw header block of stored bodies with a shallow
// structure of it, least recently used first out, so that header
// sections (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT), ENVELOPE and
// SEARCH on header fields need no store read. Bodies never change once
// stored and their ids are never reused (AUTOINCREMENT / IDENTITY), so an
// entry never goes stale; it only ages out. It is shared by every session
// of a Server; the bytes handed out must not be modified.
type headerCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	ll       *list.List // of *headerEntry, most recent at the front
	byID     map[int64]*list.Element
}

type headerEntry struct {
	id     int64
	header []byte             // [0, st.Root.BodyOffset) of the body
	st     *imapmsg.Structure // shallow: the root's header fields only
}

func (e *headerEntry) cost() int64 { return 2*int64(len(e.header)) + headerEntryOverhead }

func newHeaderCache(maxBytes int64) *headerCache {
	return &headerCache{maxBytes: maxBytes, ll: list.New(), byID: make(map[int64]*list.Element)}
}

// get returns the cached header block and shallow structure of a body,
// or nils.
func (c *headerCache) get(id int64) ([]byte, *imapmsg.Structure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, nil
	}
	c.ll.MoveToFront(e)
	ent := e.Value.(*headerEntry)
	return ent.header, ent.st
}

// put caches the header block of a body; st is the body's structure
// (shallow or full), of which only the root's header fields are kept.
// header must be exactly the root's header (len == st.Root.BodyOffset).
func (c *headerCache) put(id int64, header []byte, st *imapmsg.Structure) {
	if len(header) > maxCachedHeader || int64(len(header)) != st.Root.BodyOffset {
		return
	}
	ent := &headerEntry{id: id, header: header, st: st.HeaderOnly()}
	if ent.cost() > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[id]; ok {
		c.ll.MoveToFront(e)
		return // the same immutable body: nothing to replace
	}
	c.byID[id] = c.ll.PushFront(ent)
	c.bytes += ent.cost()
	for c.bytes > c.maxBytes {
		last := c.ll.Back()
		old := last.Value.(*headerEntry)
		c.ll.Remove(last)
		delete(c.byID, old.id)
		c.bytes -= old.cost()
	}
}

// size returns the number of entries and the bytes they are charged.
func (c *headerCache) size() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len(), c.bytes
}
