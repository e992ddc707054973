package ratelimit

import (
	"sync"
	"time"
)

// PruneGate spaces out the deletion of expired rows of limits kept in a
// shared store: Due says yes at most once per Every, to whichever caller
// asks first, so a busy node prunes now and then instead of with every
// hit (a failed prune simply waits for the next turn).
type PruneGate struct {
	Every time.Duration

	mu   sync.Mutex
	last time.Time
}

// Due reports whether the caller should prune now, and if so counts the
// turn as taken.
func (g *PruneGate) Due(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.last) < g.Every {
		return false
	}
	g.last = now
	return true
}
