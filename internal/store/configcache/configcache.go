// Package configcache keeps, for a few seconds, the answers to the
// configuration look-ups the mail paths make again and again, found or
// not found, so that they do not ask the store each time: the domain
// look-ups of every inbound message (is this a local domain, an
// alternative name of one, a relay domain) and the user of every login.
// The app drops answers whenever the store announces a change of them,
// here or on another node (OnConfigChange): one user's, or all of them;
// the time limit only bounds how long a missed announcement can last.
package configcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Store is the part of store.Accounts the cache stands in front of.
type Store interface {
	GetDomain(ctx context.Context, name string) (*store.Domain, error)
	GetAlternative(ctx context.Context, name string) (*store.Alternative, error)
	GetRelay(ctx context.Context, name string) (*store.Relay, error)
	GetUser(ctx context.Context, email string) (*store.User, error)
}

// DefaultTTL is how long an answer is kept.
const DefaultTTL = 5 * time.Second

// maxNames bounds each table: past it the table starts again (lots of
// foreign sender domains, or logins as unknown users, must not grow it
// without limit).
const maxNames = 10000

// Cache answers GetDomain, GetAlternative, GetRelay and GetUser from
// memory when it can. Errors other than store.ErrNotFound are never kept.
type Cache struct {
	s   Store
	ttl time.Duration
	now func() time.Time

	mu           sync.Mutex
	gen          uint64 // moves at every Forget
	domains      table[store.Domain]
	alternatives table[store.Alternative]
	relays       table[store.Relay]
	users        table[store.User] // by address, as asked
}

type table[T any] map[string]entry[T]

type entry[T any] struct {
	v       *T // nil: not found
	expires time.Time
}

// New returns a cache in front of s keeping answers for ttl (0:
// DefaultTTL).
func New(s Store, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Cache{s: s, ttl: ttl, now: time.Now,
		domains: table[store.Domain]{}, alternatives: table[store.Alternative]{}, relays: table[store.Relay]{},
		users: table[store.User]{}}
}

// Forget drops every answer.
func (c *Cache) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.domains)
	clear(c.alternatives)
	clear(c.relays)
	clear(c.users)
}

// ForgetUser drops the answer for one user: its address as the store
// announces it (lower case, as stored and as logins ask).
func (c *Cache) ForgetUser(email string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.users, email)
}

func (c *Cache) GetDomain(ctx context.Context, name string) (*store.Domain, error) {
	return lookup(c, c.domains, "domain", name, func() (*store.Domain, error) { return c.s.GetDomain(ctx, name) })
}

func (c *Cache) GetAlternative(ctx context.Context, name string) (*store.Alternative, error) {
	return lookup(c, c.alternatives, "alternative", name, func() (*store.Alternative, error) { return c.s.GetAlternative(ctx, name) })
}

func (c *Cache) GetRelay(ctx context.Context, name string) (*store.Relay, error) {
	return lookup(c, c.relays, "relay", name, func() (*store.Relay, error) { return c.s.GetRelay(ctx, name) })
}

// GetUser answers for a user; the copy it returns shares the user's
// lists (ForwardDestination), which callers only read.
func (c *Cache) GetUser(ctx context.Context, email string) (*store.User, error) {
	return lookup(c, c.users, "user", email, func() (*store.User, error) { return c.s.GetUser(ctx, email) })
}

// lookup answers from t while the answer is fresh, else asks fetch and
// keeps what it says, unless a Forget came in the meantime (the answer
// may predate the change). Callers get their own copy.
func lookup[T any](c *Cache, t table[T], what, name string, fetch func() (*T, error)) (*T, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := t[name]
	gen := c.gen
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		v, err := fetch()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		e = entry[T]{v: v, expires: now.Add(c.ttl)}
		if err != nil {
			e.v = nil
		}
		c.mu.Lock()
		if c.gen == gen {
			if len(t) >= maxNames {
				clear(t)
			}
			t[name] = e
		}
		c.mu.Unlock()
	}
	if e.v == nil {
		return nil, fmt.Errorf("configcache: %s %q: %w", what, name, store.ErrNotFound)
	}
	v := *e.v
	return &v, nil
}
