package auth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
)

// DefaultCacheSize is how many users the credential cache remembers.
const DefaultCacheSize = 10000

// credCache remembers successful password checks so that repeated logins
// (IMAP clients reconnect all day) skip bcrypt (Mailu: models.py
// User._credential_cache). It never holds a cleartext: an entry is the
// full stored hash it was checked against and an HMAC-SHA256 of the
// password under a random per-process key. A password change changes the
// stored hash, which invalidates the entry. At the size cap the least
// recently used entry goes.
type credCache struct {
	mu    sync.Mutex
	key   [32]byte
	max   int
	order *list.List               // of *cacheEntry, most recent at the front
	byKey map[string]*list.Element // email -> element
}

type cacheEntry struct {
	email  string
	stored string
	mac    [sha256.Size]byte
}

// newCredCache returns a cache of size entries, or nil (no caching) for
// size < 0.
func newCredCache(size int) *credCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultCacheSize
	}
	c := &credCache{max: size, order: list.New(), byKey: make(map[string]*list.Element)}
	rand.Read(c.key[:]) // never fails (crypto/rand, Go >= 1.24)
	return c
}

func (c *credCache) mac(email, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(email))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// check reports whether password was verified against exactly stored.
func (c *credCache) check(email, stored, password string) bool {
	if c == nil {
		return false
	}
	mac := c.mac(email, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[email]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	if e.stored != stored {
		// The password changed (or was re-hashed elsewhere): forget it.
		c.order.Remove(el)
		delete(c.byKey, email)
		return false
	}
	if !hmac.Equal(e.mac[:], mac[:]) {
		return false
	}
	c.order.MoveToFront(el)
	return true
}

// put records that password matches stored for email.
func (c *credCache) put(email, stored, password string) {
	if c == nil {
		return
	}
	e := &cacheEntry{email: email, stored: stored, mac: c.mac(email, password)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[email]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	if c.order.Len() >= c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*cacheEntry).email)
	}
	c.byKey[email] = c.order.PushFront(e)
}

func (c *credCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
