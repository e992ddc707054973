// Package ratelimit is an in-memory moving-window rate limiter, the
// counterpart of the `limits` library's MovingWindowRateLimiter that Mailu
// keeps in redis (Mailu: limiter.py, configuration.py
// RATELIMIT_STORAGE_URL), plus the two helpers Mailu builds on it:
// distinct-member counting ("dedup-" keys) and exemptions ("exempt-" keys).
//
// Memory is bounded: expired entries are dropped as time moves on, and each
// table holds at most MaxKeys entries; at the cap the entry that was
// touched longest ago is evicted (its history is forgotten, so it starts
// again from zero). A PostgreSQL-backed implementation for several Petrel
// nodes can replace this one behind the consumer's interface (see
// internal/auth).
package ratelimit

import (
	"sync"
	"time"
)

// Rate is at most Count events in any moving window of length Per ("5/hour"
// is Rate{5, time.Hour}). A Rate with Count or Per <= 0 limits nothing.
type Rate struct {
	Count int
	Per   time.Duration
}

// Enabled reports whether the rate limits anything.
func (r Rate) Enabled() bool { return r.Count > 0 && r.Per > 0 }

// DefaultMaxKeys is the cap on tracked keys (and, separately, on tracked
// distinct members) when no MaxKeys option is given.
const DefaultMaxKeys = 65536

// Option tunes a Limiter or Exemptions.
type Option func(*options)

type options struct{ maxKeys int }

// MaxKeys caps the number of entries each table keeps (n >= 1).
func MaxKeys(n int) Option {
	return func(o *options) {
		if n >= 1 {
			o.maxKeys = n
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{maxKeys: DefaultMaxKeys}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Limiter is a moving-window limiter keyed by string. It is safe for
// concurrent use.
//
// Semantics follow `limits`' moving window: a hit at t counts while
// now-t <= Per, and a hit over the limit is refused and not recorded, so a
// key that keeps knocking still drains. Distinct members follow Mailu's
// redis dedup keys: a member counts once and is remembered while
// now-first < Per (a redis key with TTL Per).
type Limiter struct {
	mu      sync.Mutex
	rate    Rate
	now     func() time.Time
	maxKeys int
	windows lru[[]time.Time] // key -> recorded hits, oldest first; ordered by last hit
	members lru[struct{}]    // key+"\x00"+member; ordered by first sight
}

// New returns a limiter allowing rate. now is the clock (nil = time.Now).
func New(rate Rate, now func() time.Time, opts ...Option) *Limiter {
	if now == nil {
		now = time.Now
	}
	o := buildOptions(opts)
	return &Limiter{rate: rate, now: now, maxKeys: o.maxKeys,
		windows: newLRU[[]time.Time](), members: newLRU[struct{}]()}
}

// Rate returns the limiter's rate.
func (l *Limiter) Rate() Rate { return l.rate }

// sweep drops expired windows and members. Both lists are ordered by the
// time that decides expiry, so this only looks at what it removes.
func (l *Limiter) sweep(now time.Time) {
	for n := l.windows.oldest(); n != nil && now.Sub(n.at) > l.rate.Per; n = l.windows.oldest() {
		l.windows.remove(n)
	}
	for n := l.members.oldest(); n != nil && now.Sub(n.at) >= l.rate.Per; n = l.members.oldest() {
		l.members.remove(n)
	}
}

// Sweep drops every expired entry now. Each call of the other methods
// already does this lazily; Sweep is for an idle process that wants its
// memory back.
func (l *Limiter) Sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(l.now())
}

// count returns the live hits of key, pruning the expired ones.
func (l *Limiter) count(key string, now time.Time) int {
	n := l.windows.get(key)
	if n == nil {
		return 0
	}
	hits := n.val
	i := 0
	for i < len(hits) && now.Sub(hits[i]) > l.rate.Per {
		i++
	}
	if i > 0 {
		n.val = append(hits[:0], hits[i:]...)
	}
	return len(n.val)
}

// Count returns how many hits of key are in the current window.
func (l *Limiter) Count(key string) int {
	if !l.rate.Enabled() {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	return l.count(key, now)
}

// Test reports whether one more hit of key would be allowed (limits:
// MovingWindowRateLimiter.test).
func (l *Limiter) Test(key string) bool {
	if !l.rate.Enabled() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	return l.count(key, now) < l.rate.Count
}

// Hit records a hit of key if it is within the limit and reports whether
// it was (limits: MovingWindowRateLimiter.hit).
func (l *Limiter) Hit(key string) bool {
	if !l.rate.Enabled() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	return l.hit(key, now)
}

func (l *Limiter) hit(key string, now time.Time) bool {
	if l.count(key, now) >= l.rate.Count {
		return false
	}
	n := l.windows.get(key)
	if n == nil {
		if l.windows.len() >= l.maxKeys {
			l.windows.remove(l.windows.oldest())
		}
		n = l.windows.add(key, now, make([]time.Time, 0, min(l.rate.Count, 8)))
	}
	n.val = append(n.val, now)
	l.windows.touch(n, now)
	return true
}

// HitDistinct counts member once per window for key: the first time a
// member is seen it records a hit of key; while it is remembered, repeats
// record nothing. allowed reports whether key is within the limit (the new
// hit was accepted, or for a repeat, one more hit would be); isNew reports
// that member had not been seen. Mailu: limiter.py rate_limit_ip
// ("dedup-<net>-<username>") and rate_limit_user ("dedup2-<user>-<pw hash>").
// A disabled limiter remembers nothing and reports (true, true).
func (l *Limiter) HitDistinct(key, member string) (allowed, isNew bool) {
	if !l.rate.Enabled() {
		return true, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	mk := key + "\x00" + member
	if l.members.get(mk) != nil {
		return l.count(key, now) < l.rate.Count, false
	}
	if l.members.len() >= l.maxKeys {
		l.members.remove(l.members.oldest())
	}
	// Mailu sets the dedup key even when the hit is then refused.
	l.members.add(mk, now, struct{}{})
	return l.hit(key, now), true
}

// Seen reports whether member is remembered for key (HitDistinct would
// not count it again). A disabled limiter remembers nothing.
func (l *Limiter) Seen(key, member string) bool {
	if !l.rate.Enabled() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(l.now())
	return l.members.get(key+"\x00"+member) != nil
}

// Len returns the number of keys with live hits (after sweeping).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(l.now())
	return l.windows.len()
}

// Exemptions remembers keys that skip limiting until a deadline (Mailu:
// "exempt-<ip>" set for AUTH_RATELIMIT_EXEMPTION_LENGTH after a successful
// login). It is safe for concurrent use and holds at most MaxKeys entries;
// at the cap the entry exempted longest ago is dropped.
type Exemptions struct {
	mu      sync.Mutex
	now     func() time.Time
	maxKeys int
	entries lru[struct{}] // at = deadline; ordered by last Exempt call
}

// NewExemptions returns an empty store. now is the clock (nil = time.Now).
func NewExemptions(now func() time.Time, opts ...Option) *Exemptions {
	if now == nil {
		now = time.Now
	}
	o := buildOptions(opts)
	return &Exemptions{now: now, maxKeys: o.maxKeys, entries: newLRU[struct{}]()}
}

// sweep drops expired entries from the front. With one exemption length
// for every key (Petrel's case) the list is in deadline order; an entry
// with a shorter length behind a longer one is dropped once it reaches the
// front, and IsExempt never reports it meanwhile.
func (e *Exemptions) sweep(now time.Time) {
	for n := e.entries.oldest(); n != nil && !now.Before(n.at); n = e.entries.oldest() {
		e.entries.remove(n)
	}
}

// Exempt exempts key for d from now, replacing any earlier deadline (a
// redis EXPIRE, as Mailu's elastic expiry does). d <= 0 removes it.
func (e *Exemptions) Exempt(key string, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	e.sweep(now)
	n := e.entries.get(key)
	if d <= 0 {
		if n != nil {
			e.entries.remove(n)
		}
		return
	}
	if n != nil {
		e.entries.touch(n, now.Add(d))
		return
	}
	if e.entries.len() >= e.maxKeys {
		e.entries.remove(e.entries.oldest())
	}
	e.entries.add(key, now.Add(d), struct{}{})
}

// IsExempt reports whether key is exempt now.
func (e *Exemptions) IsExempt(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	e.sweep(now)
	n := e.entries.get(key)
	return n != nil && now.Before(n.at)
}

// Len returns the number of live exemptions (after sweeping).
func (e *Exemptions) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sweep(e.now())
	return e.entries.len()
}
