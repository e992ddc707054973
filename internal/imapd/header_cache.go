package imapd

import "github.com/petrelmail/petrel/internal/imapd/imapmsg"

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
// entry never goes stale; it ages out, or goes when a session sees its
// message expunged (msgCommands.forget). It is shared by every session
// of a Server; the bytes handed out must not be modified.
type headerCache struct{ c *lru[*headerEntry] }

type headerEntry struct {
	header []byte             // [0, st.Root.BodyOffset) of the body
	st     *imapmsg.Structure // shallow: the root's header fields only
}

func (e *headerEntry) cost() int64 { return 2*int64(len(e.header)) + headerEntryOverhead }

func newHeaderCache(maxBytes int64) *headerCache {
	return &headerCache{c: newLRU[*headerEntry](0, maxBytes)}
}

// get returns the cached header block and shallow structure of a body,
// or nils.
func (c *headerCache) get(id int64) ([]byte, *imapmsg.Structure) {
	ent, ok := c.c.get(id)
	if !ok {
		return nil, nil
	}
	return ent.header, ent.st
}

// put caches the header block of a body; st is the body's structure
// (shallow or full), of which only the root's header fields are kept.
// header must be exactly the root's header (len == st.Root.BodyOffset).
func (c *headerCache) put(id int64, header []byte, st *imapmsg.Structure) {
	if len(header) > maxCachedHeader || int64(len(header)) != st.Root.BodyOffset {
		return
	}
	ent := &headerEntry{header: header, st: st.HeaderOnly()}
	c.c.put(id, ent, ent.cost())
}

// size returns the number of entries and the bytes they are charged.
func (c *headerCache) size() (int, int64) { return c.c.size() }
