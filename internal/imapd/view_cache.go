package imapd

import (
	"context"
	"slices"

	"github.com/petrelmail/petrel/internal/store"
)

// Bounds of the mailbox listing cache: messages over all cached
// mailboxes (a MessageInfo is about 100 bytes with its flags, so some
// 10 MB at most), and the smallest mailbox worth caching (smaller ones
// list in well under a millisecond).
const (
	defaultViewCacheMessages = 100000
	minCachedMailbox         = 256
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
type viewCache struct{ c *lru[*viewEntry] }

// viewEntry is one mailbox's listing as of a state of the mailbox. msgs
// is never modified once cached: sessions get copies.
type viewEntry struct {
	id          int64
	uidValidity uint32
	uidNext     uint32
	modSeq      uint64 // every change up to this modseq is in msgs
	count       int
	msgs        []store.MessageInfo
}

func newViewCache(maxMsgs int) *viewCache {
	return &viewCache{c: newLRU[*viewEntry](0, int64(maxMsgs))}
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
	c.c.put(ent.id, ent, int64(len(ent.msgs)))
}

// size returns the number of cached mailboxes and their messages.
func (c *viewCache) size() (int, int) {
	n, msgs := c.c.size()
	return n, int(msgs)
}

// listing returns the messages of mailbox mb (just read from the store)
// in UID order, as a slice the caller owns: from the cache when mb is
// unchanged since, with the changes since applied when it is not, or
// listed in full.
func (c *viewCache) listing(ctx context.Context, st Store, mb *store.Mailbox) ([]store.MessageInfo, error) {
	ent := c.get(mb.ID)
	if ent != nil && ent.uidValidity == mb.UIDValidity {
		if ent.modSeq == mb.HighestModSeq && ent.uidNext == mb.UIDNext && ent.count == mb.Messages {
			return slices.Clone(ent.msgs), nil
		}
		if ent.modSeq < mb.HighestModSeq {
			if msgs, ok, err := c.update(ctx, st, ent); err != nil || ok {
				return msgs, err
			}
		}
	}
	msgs, err := st.ListMessagesByID(ctx, mb.ID)
	if err != nil {
		return nil, err
	}
	// mb was read before the listing, so every change up to its
	// HIGHESTMODSEQ is in it (later ones may be too; applying them again
	// is harmless).
	c.put(&viewEntry{id: mb.ID, uidValidity: mb.UIDValidity, uidNext: mb.UIDNext,
		modSeq: mb.HighestModSeq, count: mb.Messages, msgs: slices.Clone(msgs)})
	return msgs, nil
}

// update applies the changes after ent.modSeq to a copy of ent's
// listing; ok is false when the result does not match the mailbox's
// message count (then the caller lists it afresh).
func (c *viewCache) update(ctx context.Context, st Store, ent *viewEntry) ([]store.MessageInfo, bool, error) {
	ch, err := st.ChangesSince(ctx, ent.id, ent.modSeq)
	if err != nil {
		return nil, false, err
	}
	if ch.Mailbox.UIDValidity != ent.uidValidity {
		return nil, false, nil
	}
	msgs := applyChanges(ent.msgs, ch)
	if len(msgs) != ch.Mailbox.Messages {
		return nil, false, nil
	}
	c.put(&viewEntry{id: ent.id, uidValidity: ent.uidValidity, uidNext: ch.Mailbox.UIDNext,
		modSeq: ch.Mailbox.HighestModSeq, count: ch.Mailbox.Messages, msgs: slices.Clone(msgs)})
	return msgs, true, nil
}

// applyChanges returns a new listing: old without the expunged UIDs,
// changed messages replaced and new ones inserted, in UID order. Changes
// already in old change nothing.
func applyChanges(old []store.MessageInfo, ch *store.Changes) []store.MessageInfo {
	gone := make(map[uint32]bool, len(ch.Expunged))
	for _, u := range ch.Expunged {
		gone[u] = true
	}
	out := make([]store.MessageInfo, 0, len(old)+len(ch.Changed))
	i, j := 0, 0
	for i < len(old) || j < len(ch.Changed) {
		var m store.MessageInfo
		switch {
		case j == len(ch.Changed) || (i < len(old) && old[i].UID < ch.Changed[j].UID):
			m = old[i]
			i++
		case i == len(old) || ch.Changed[j].UID < old[i].UID:
			m = ch.Changed[j]
			j++
		default: // the same UID: the change is newer
			m = ch.Changed[j]
			i++
			j++
		}
		if !gone[m.UID] {
			out = append(out, m)
		}
	}
	return out
}
