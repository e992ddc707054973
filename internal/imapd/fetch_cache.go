package imapd

import "github.com/petrelmail/petrel/internal/imapd/imapmsg"

// Bounds of the structure cache: entries, and bytes over all of them
// (structBytes estimates what a parsed structure holds).
const (
	defaultCacheEntries = 20000
	defaultCacheBytes   = 24 << 20
	// partOverhead is one parsed MIME part beyond its strings: the Part
	// struct, its slice and pointer targets, the allocator's rounding.
	partOverhead = 320
	// stringOverhead is one string or slice element beyond its bytes.
	stringOverhead = 16
)

// structCache keeps parsed message structures by body id, least recently
// used first out, charged by their estimated bytes. Bodies never change
// once stored, so an entry never goes stale; it ages out, or goes when a
// session sees its message expunged (msgCommands.forget).
type structCache struct{ c *lru[*imapmsg.Structure] }

func newStructCache(maxEntries int, maxBytes int64) *structCache {
	return &structCache{c: newLRU[*imapmsg.Structure](maxEntries, maxBytes)}
}

// get returns the cached structure of a body, or nil.
func (c *structCache) get(id int64) *imapmsg.Structure {
	st, _ := c.c.get(id)
	return st
}

// put caches st for a body, replacing a shallower one.
func (c *structCache) put(id int64, st *imapmsg.Structure) {
	c.c.put(id, st, structBytes(st))
}

func (c *structCache) len() int {
	n, _ := c.c.size()
	return n
}

// bytes returns the bytes charged over all entries.
func (c *structCache) bytes() int64 {
	_, b := c.c.size()
	return b
}

// structBytes estimates the memory a parsed structure holds.
func structBytes(st *imapmsg.Structure) int64 { return partBytes(st.Root) }

func partBytes(p *imapmsg.Part) int64 {
	n := int64(partOverhead + len(p.Type) + len(p.Subtype) + len(p.Encoding) + len(p.Disposition))
	for _, ps := range [][]imapmsg.Param{p.Params, p.DispParams} {
		for _, x := range ps {
			n += int64(2*stringOverhead + len(x.Name) + len(x.Value))
		}
	}
	for _, s := range []*string{p.ID, p.Description, p.MD5, p.Location} {
		if s != nil {
			n += int64(stringOverhead + len(*s))
		}
	}
	for _, l := range p.Language {
		n += int64(stringOverhead + len(l))
	}
	if p.Envelope != "" {
		n += int64(stringOverhead + len(p.Envelope))
	}
	for _, ch := range p.Children {
		n += partBytes(ch)
	}
	if p.Message != nil {
		n += partBytes(p.Message)
	}
	return n
}
