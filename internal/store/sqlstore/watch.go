package sqlstore

import (
	"strings"
	"sync"
)

// hub wakes the IMAP sessions (IDLE, NOOP) of a user after a committed
// change to that user's mailboxes: this process's writes after their
// commit, other nodes' writes sharing a PostgreSQL database when their
// NOTIFY arrives (notify.go). Sessions poll ChangesSince only while
// Realtime is false (an engine or moment without LISTEN). The zero value
// is ready to use.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
	// vers counts notify calls per user (ChangeVersion). It keeps one
	// entry per user ever changed, like the mailboxes it stands for.
	vers map[string]uint64
	// epoch counts notifyAll calls; it is added to every user's count.
	epoch uint64
}

// watch subscribes to user's changes. The channel has room for one
// wake-up, so a burst of changes while the reader is busy becomes one
// pending signal and the writer never waits.
func (h *hub) watch(user string) (<-chan struct{}, func()) {
	key := strings.ToLower(user)
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[string]map[chan struct{}]struct{}{}
	}
	set := h.subs[key]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.subs[key] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			set := h.subs[key]
			delete(set, ch)
			if len(set) == 0 {
				delete(h.subs, key)
			}
		})
	}
	return ch, stop
}

// notify wakes every watcher of users without blocking.
func (h *hub) notify(users ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.vers == nil {
		h.vers = map[string]uint64{}
	}
	for _, u := range users {
		key := strings.ToLower(u)
		h.vers[key]++
		for ch := range h.subs[key] {
			select {
			case ch <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
	}
}

// notifyAll wakes every watcher and counts a change for every user
// (another node's change list did not fit, or the LISTEN connection was
// re-established and changes may have been missed).
func (h *hub) notifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	// Every user's counter moves, so no session skips its next poll.
	h.epoch++
}

// version is user's notify count.
func (h *hub) version(user string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vers[strings.ToLower(user)] + h.epoch
}

// watchers counts the subscriptions of user (tests check that stop
// really unsubscribes).
func (h *hub) watchers(user string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[strings.ToLower(user)])
}

// Watch returns a channel that receives after every committed change to
// user's mailboxes made through this Store (deliveries, APPEND, STORE,
// COPY/MOVE, expunges by IMAP or POP3, CREATE/DELETE/RENAME), and a
// function that stops watching (safe to call more than once; the channel
// is not closed). Sends never block: a reader that is busy finds one
// pending signal. On PostgreSQL, other nodes' changes are signalled when
// their NOTIFY arrives; changes while the LISTEN connection is down are
// not (Realtime is false then, and IMAP sessions poll ChangesSince).
func (s *Store) Watch(user string) (<-chan struct{}, func()) {
	return s.watchers.watch(user)
}

// ChangeVersion implements store.ChangeVersions: the number of committed
// changes to user's mailboxes made through this Store, counted where
// Watch is signalled (after the commit, before the writing call returns),
// plus other nodes' changes as their NOTIFY arrives.
func (s *Store) ChangeVersion(user string) uint64 {
	return s.watchers.version(user)
}
