package filter

import (
	"context"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// Classifier totals are read for every inbound message, to learn whether
// a recipient has trained a classifier at all (most have not); they change
// only when a user trains. A short cache saves that database query on
// every message (about a fifth of the built-in checks' CPU). The Learner
// forgets a user's entry when it trains them on this node; training on
// another node shows within totalsTTL.
const (
	totalsTTL = 30 * time.Second
	// totalsMax bounds the cache; when full it is emptied (a cheap,
	// rare reset instead of an eviction order).
	totalsMax = 10000
)

// JunkTotalsSource reads the users' trained message counts.
type JunkTotalsSource interface {
	JunkTotals(ctx context.Context, users []string) (map[string]store.JunkCounts, error)
}

// TotalsCache keeps the users' classifier totals for totalsTTL. It is
// safe for concurrent use.
type TotalsCache struct {
	src JunkTotalsSource
	now func() time.Time

	mu      sync.Mutex
	entries map[string]totalsEntry
}

type totalsEntry struct {
	counts store.JunkCounts
	at     time.Time
}

// NewTotalsCache returns a cache over src; now is time.Now when nil.
func NewTotalsCache(src JunkTotalsSource, now func() time.Time) *TotalsCache {
	if now == nil {
		now = time.Now
	}
	return &TotalsCache{src: src, now: now, entries: map[string]totalsEntry{}}
}

// JunkTotals returns the totals of users (users never trained are absent,
// as in the store), from the cache where fresh.
func (c *TotalsCache) JunkTotals(ctx context.Context, users []string) (map[string]store.JunkCounts, error) {
	now := c.now()
	out := make(map[string]store.JunkCounts, len(users))
	var miss []string
	c.mu.Lock()
	for _, u := range users {
		e, ok := c.entries[u]
		switch {
		case !ok || now.Sub(e.at) >= totalsTTL || now.Before(e.at):
			miss = append(miss, u)
		case e.counts != (store.JunkCounts{}):
			out[u] = e.counts
		}
	}
	c.mu.Unlock()
	if len(miss) == 0 {
		return out, nil
	}
	got, err := c.src.JunkTotals(ctx, miss)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.entries)+len(miss) > totalsMax {
		clear(c.entries)
	}
	for _, u := range miss {
		jc := got[u] // zero: never trained, remembered too
		c.entries[u] = totalsEntry{counts: jc, at: now}
		if jc != (store.JunkCounts{}) {
			out[u] = jc
		}
	}
	c.mu.Unlock()
	return out, nil
}

// Forget drops user's entry, so the next message reads the new totals.
func (c *TotalsCache) Forget(user string) {
	c.mu.Lock()
	delete(c.entries, user)
	c.mu.Unlock()
}
