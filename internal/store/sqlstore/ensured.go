package sqlstore

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// ensured remembers the users whose mailboxes EnsureMailboxes last found
// complete, so that a login does not read the user's mailbox list each
// time: every IMAP and POP3 login asks, and the read was 5 % of the
// server's CPU in bench/imap.sh's logins case. An entry goes when one of
// the user's mailboxes is deleted or renamed through this Store, when the
// user or any domain changes (OnConfigChange: here, or as the
// announcement arrives from another node), and after ensuredTTL. The
// time limit bounds what a deletion on another node costs: the special
// mailbox comes back at a login here once the entry is gone, not at the
// first login.
type ensured struct {
	now func() time.Time

	mu      sync.Mutex
	gen     uint64 // moves at every forget: a check that began before it is not kept
	entries map[string]ensuredEntry
}

type ensuredEntry struct {
	names []string // the mailboxes found, normalized
	at    time.Time
}

const (
	ensuredTTL = 30 * time.Second
	// maxEnsured bounds the map; past it the map starts again.
	maxEnsured = 100000
)

func newEnsured(now func() time.Time) *ensured {
	return &ensured{now: now, entries: map[string]ensuredEntry{}}
}

// has reports whether user was found with every mailbox of specs, less
// than ensuredTTL ago, and nothing was forgotten since. gen is to be
// passed to add after a check of the store.
func (e *ensured) has(user string, specs []store.MailboxSpec) (ok bool, gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, found := e.entries[strings.ToLower(user)]
	if !found || e.now().Sub(ent.at) >= ensuredTTL {
		return false, e.gen
	}
	for _, sp := range specs {
		if !slices.Contains(ent.names, mailboxName(sp.Name)) {
			return false, e.gen
		}
	}
	return true, e.gen
}

// add records that user has the mailboxes of specs, as a check of the
// store that began at gen found; nothing is kept if anything was
// forgotten meanwhile (the check may predate a deletion).
func (e *ensured) add(user string, specs []store.MailboxSpec, gen uint64) {
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = mailboxName(sp.Name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if gen != e.gen {
		return
	}
	if len(e.entries) >= maxEnsured {
		clear(e.entries)
	}
	e.entries[strings.ToLower(user)] = ensuredEntry{names: names, at: e.now()}
}

// forget drops user's entry.
func (e *ensured) forget(user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	delete(e.entries, strings.ToLower(user))
}

// forgetAll drops every entry.
func (e *ensured) forgetAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	clear(e.entries)
}

// configChanged is the OnConfigChange subscriber: a user's change (its
// deletion, for one) drops the user, a domain's or an unknown change
// drops all.
func (e *ensured) configChanged(topic, key string) {
	switch topic {
	case TopicUser:
		e.forget(key)
	case TopicDomain, "":
		e.forgetAll()
	}
}
