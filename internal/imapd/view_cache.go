package imapd

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/petrelmail/petrel/internal/store"
)

// Bounds of the mailbox listing cache: bytes over all cached mailboxes
// (a viewMsg is viewMsgBytes: 8 MiB hold a 200,000-message listing), and
// the smallest mailbox worth caching (smaller ones list in well under a
// millisecond).
const (
	defaultViewCacheBytes = 8 << 20
	viewMsgBytes          = 40
	minCachedMailbox      = 256
)

// viewCache keeps the message listing (UIDs, flags, modseqs) of recently
// selected mailboxes, shared by every session of a Server, so that SELECT
// of a large mailbox need not list every message again. The database
// stays the truth: an entry is used only when the mailbox's UIDVALIDITY,
// HIGHESTMODSEQ, UIDNEXT and message count, read by SELECT anyway, are
// those the entry was made at; otherwise the changes since the entry's
// modseq (RFC 7162 CHANGEDSINCE, expunges included) are applied to it,
// and when they do not add up to the mailbox's message count it is
// listed afresh. Every change, on any node, bumps HIGHESTMODSEQ, so
// several nodes on one database stay correct.
//
// Sessions share the cached slice itself (view.shared): a view copies it
// only when it changes, so sessions that only read a large mailbox hold
// one listing between them.
type viewCache struct {
	c    *lru[*viewEntry]
	sets *flagSets // the flag lists of every listing and view
	// published and adopted count the listings sessions offered to the
	// cache and those they took from it in a sync (view_share.go).
	published, adopted atomic.Uint64
}

// viewEntry is one mailbox's listing as of a state of the mailbox. msgs
// is never modified once cached: views copy it before a change.
type viewEntry struct {
	id          int64
	uidValidity uint32
	uidNext     uint32
	modSeq      uint64 // every change up to this modseq is in msgs
	count       int
	msgs        []viewMsg
}

func newViewCache(maxBytes int64) *viewCache {
	return &viewCache{c: newLRU[*viewEntry](0, maxBytes), sets: newFlagSets()}
}

func (c *viewCache) get(id int64) *viewEntry {
	ent, _ := c.c.get(id)
	return ent
}

// put caches ent, replacing the mailbox's older entry, unless it is too
// small to be worth it or bigger than the whole bound (then the older
// entry goes too).
func (c *viewCache) put(ent *viewEntry) {
	if len(ent.msgs) < minCachedMailbox {
		c.c.remove(ent.id)
		return
	}
	c.c.put(ent.id, ent, viewMsgBytes*int64(len(ent.msgs)))
}

// size returns the number of cached mailboxes and their messages.
func (c *viewCache) size() (int, int) {
	n, b := c.c.size()
	return n, int(b / viewMsgBytes)
}

// listing returns the messages of mailbox mb (just read from the store)
// in UID order: from the cache when mb is unchanged since, with the
// changes since applied when it is not, or listed in full. The slice may
// be shared (the cache's): the caller must not modify it (view.own).
func (c *viewCache) listing(ctx context.Context, st Store, mb *store.Mailbox) ([]viewMsg, error) {
	ent := c.get(mb.ID)
	if ent != nil && ent.uidValidity == mb.UIDValidity {
		if ent.modSeq == mb.HighestModSeq && ent.uidNext == mb.UIDNext && ent.count == mb.Messages {
			return ent.msgs, nil
		}
		if ent.modSeq < mb.HighestModSeq {
			if msgs, ok, err := c.update(ctx, st, ent); err != nil || ok {
				return msgs, err
			}
		}
	}
	msgs, err := c.list(ctx, st, mb)
	if err != nil {
		return nil, err
	}
	// mb was read before the listing, so every change up to its
	// HIGHESTMODSEQ is in it (later ones may be too; applying them again
	// is harmless).
	c.put(&viewEntry{id: mb.ID, uidValidity: mb.UIDValidity, uidNext: mb.UIDNext,
		modSeq: mb.HighestModSeq, count: mb.Messages, msgs: msgs})
	return msgs, nil
}

// list reads mb's messages in compact form: streamed when the store can
// (no second list of 88-byte MessageInfos for a 100,000-message mailbox).
func (c *viewCache) list(ctx context.Context, st Store, mb *store.Mailbox) ([]viewMsg, error) {
	ms, ok := st.(store.MessageStreamer)
	if !ok {
		list, err := st.ListMessagesByID(ctx, mb.ID)
		if err != nil {
			return nil, err
		}
		return c.sets.compactAll(list), nil
	}
	msgs := make([]viewMsg, 0, mb.Messages)
	err := ms.EachMessageByID(ctx, mb.ID, func(m *store.MessageInfo) {
		msgs = append(msgs, c.sets.compact(m))
	})
	if err != nil {
		return nil, err
	}
	return slices.Clip(msgs), nil
}

// update applies the changes after ent.modSeq to a copy of ent's
// listing; ok is false when the result does not match the mailbox's
// message count (then the caller lists it afresh).
func (c *viewCache) update(ctx context.Context, st Store, ent *viewEntry) ([]viewMsg, bool, error) {
	ch, err := st.ChangesSince(ctx, ent.id, ent.modSeq)
	if err != nil {
		return nil, false, err
	}
	if ch.Mailbox.UIDValidity != ent.uidValidity {
		return nil, false, nil
	}
	msgs := c.applyChanges(ent.msgs, ch)
	if len(msgs) != ch.Mailbox.Messages {
		return nil, false, nil
	}
	c.put(&viewEntry{id: ent.id, uidValidity: ent.uidValidity, uidNext: ch.Mailbox.UIDNext,
		modSeq: ch.Mailbox.HighestModSeq, count: ch.Mailbox.Messages, msgs: msgs})
	return msgs, true, nil
}

// applyChanges returns a new listing: old without the expunged UIDs,
// changed messages replaced and new ones inserted, in UID order. Changes
// already in old change nothing.
func (c *viewCache) applyChanges(old []viewMsg, ch *store.Changes) []viewMsg {
	gone := make(map[uint32]bool, len(ch.Expunged))
	for _, u := range ch.Expunged {
		gone[u] = true
	}
	out := make([]viewMsg, 0, len(old)+len(ch.Changed))
	i, j := 0, 0
	for i < len(old) || j < len(ch.Changed) {
		var m viewMsg
		switch {
		case j == len(ch.Changed) || (i < len(old) && old[i].uid < ch.Changed[j].UID):
			m = old[i]
			i++
		case i == len(old) || ch.Changed[j].UID < old[i].uid:
			m = c.sets.compact(&ch.Changed[j])
			j++
		default: // the same UID: the change is newer
			m = c.sets.compact(&ch.Changed[j])
			i++
			j++
		}
		if !gone[m.uid] {
			out = append(out, m)
		}
	}
	return slices.Clip(out)
}
