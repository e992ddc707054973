package imapd

import (
	"cmp"
	"slices"

	"github.com/petrelmail/petrel/internal/store"
)

// Sessions of one large mailbox share its listing with the listing cache
// (view_cache.go) instead of each holding a copy (issue 19: at 100,000
// messages a listing is 4 MB, and after a STORE 1:* each session and
// the cache held one). A session that changed many messages offers its
// copy to the cache once it is in step with the mailbox (publish);
// another session whose sync brings it to the state of the cache's
// listing tells its client the changes and then takes that listing
// instead of changing a copy of its own (adopt). A shared listing is
// never modified: view.own copies it first.

// publishMin is how many messages a view must have changed since it
// took its own copy before publish offers the copy: below it, the
// session keeps changing its copy in place (a shared listing would cost
// a new copy at its next change).
func publishMin(n int) int { return max(minCachedMailbox, n/16) }

// publish puts v's own listing into the listing cache when v holds
// exactly the mailbox's state at mb (just read by a sync that applied
// every change up to mb.HighestModSeq): no expunge left to report, the
// same number of messages, none changed after that modseq. The view
// then shares it and copies it again before its next change.
func (s *session) publish(v *view, mb *store.Mailbox) {
	if v.shared || v.changed < publishMin(len(v.msgs)) || len(v.gone) > 0 ||
		v.modSeq != mb.HighestModSeq || len(v.msgs) != mb.Messages || v.uidValidity != mb.UIDValidity {
		return
	}
	c := s.srv.views
	if ent := c.get(v.id); ent != nil && ent.uidValidity == v.uidValidity && ent.modSeq >= v.modSeq {
		return
	}
	for i := range v.msgs {
		if v.msgs[i].modSeq > v.modSeq {
			return // a change from a later page of the sync: not this state
		}
	}
	v.msgs = slices.Clip(v.msgs)
	c.put(&viewEntry{id: v.id, uidValidity: v.uidValidity, uidNext: mb.UIDNext, modSeq: v.modSeq,
		count: len(v.msgs), msgs: v.msgs})
	v.shared = true
	v.changed = 0
	c.published.Add(1)
}

// adoptable returns the cached listing that v becomes once the changes
// of ch (a fresh poll) are applied, or nil. That listing holds every
// change up to its modseq (the cache's rule) and the check here makes
// sure it holds nothing newer: the messages v knows, less those
// expunged, in the same order, each at v's modseq or a later one up to
// the listing's, then only messages above v's UIDs. The store's change
// list up to that modseq then names exactly the messages whose entry
// differs, so telling the client those changes brings it to the
// listing. Not with RFC 5267 UPDATE contexts (they are told per
// message in applyChanges).
func (s *session) adoptable(v *view, ch *store.Changes) *viewEntry {
	mb := &ch.Mailbox
	if len(v.updates) > 0 || v.modSeq >= mb.HighestModSeq || len(v.msgs) < minCachedMailbox {
		return nil
	}
	ent := s.srv.views.get(v.id)
	if ent == nil || ent.uidValidity != v.uidValidity || ent.uidValidity != mb.UIDValidity ||
		ent.modSeq != mb.HighestModSeq || ent.uidNext != mb.UIDNext || ent.count != mb.Messages ||
		len(ent.msgs) != ent.count || len(ent.msgs) == 0 || &ent.msgs[0] == &v.msgs[0] {
		return nil
	}
	gone := v.goneSorted()
	old, maxUID, h := v.msgs, v.maxUID(), ent.modSeq
	j, g, matched := 0, 0, 0
	for i := range old {
		m := &old[i]
		for g < len(gone) && gone[g] < m.uid {
			g++
		}
		if g < len(gone) && gone[g] == m.uid {
			matched++
			continue
		}
		if j == len(ent.msgs) {
			return nil
		}
		e := &ent.msgs[j]
		if e.uid != m.uid || e.modSeq < m.modSeq || e.modSeq > h {
			return nil
		}
		j++
	}
	if matched != len(gone) {
		return nil // adopt numbers the EXPUNGEs from old: every one must be in it
	}
	for ; j < len(ent.msgs); j++ {
		if e := &ent.msgs[j]; e.uid <= maxUID || e.modSeq <= v.modSeq || e.modSeq > h {
			return nil
		}
	}
	return ent
}

// goneSorted returns v.gone's UIDs in ascending order.
func (v *view) goneSorted() []uint32 {
	if len(v.gone) == 0 {
		return nil
	}
	uids := make([]uint32, 0, len(v.gone))
	for uid := range v.gone {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	return uids
}

// adopt is syncChanges' work when ent (adoptable) is the state ch brings
// v to: the same responses (EXPUNGE or VANISHED, FETCH FLAGS, EXISTS,
// RECENT), worked out from v's listing without changing it, and then v
// shares ent's listing. When a later page of changes cannot be read, v
// drops the messages it reported expunged and keeps its modseq, so the
// next sync reports the rest (a flag change told twice is harmless).
func (s *session) adopt(v *view, ch *store.Changes, ent *viewEntry) error {
	mb := ch.Mailbox
	old, maxUID := v.msgs, v.maxUID()
	// Every UID in v.gone is in old (poll records only known ones).
	removed := v.goneSorted()
	if len(removed) > 0 {
		s.srv.msgs.forget(v.bodiesOf(removed))
		seqs := make([]uint32, len(removed))
		k := 0
		for i := range old {
			if k < len(removed) && old[i].uid == removed[k] {
				seqs[k] = uint32(i + 1 - k) // RFC 9051 7.5.1: after the k before it
				k++
			}
		}
		if len(v.saved) > 0 {
			v.saved = removeUIDs(v.saved, removed) // RFC 5182 2.1
		}
		s.writeExpunged(removed, seqs)
		v.gone = nil
	}
	pager, paged := s.srv.opts.Store.(store.ChangePager)
	var err error
	for {
		for i := range ch.Changed {
			m := &ch.Changed[i]
			if m.UID > maxUID {
				continue // new: in ent, told by EXISTS below
			}
			q, found := slices.BinarySearchFunc(old, m.UID, func(vm viewMsg, u uint32) int { return cmp.Compare(vm.uid, u) })
			if !found || m.ModSeq <= old[q].modSeq {
				continue
			}
			r, isGone := slices.BinarySearch(removed, m.UID)
			if isGone {
				continue
			}
			if (!sameFlags(old[q].flagList(), m.Flags) || s.condstore) && !s.quietFlags {
				m.MailboxID = v.id
				s.writeFlagsFetch(uint32(q+1-r), *m)
			}
		}
		if !paged || len(ch.Changed) < changePage {
			break
		}
		last := ch.Changed[len(ch.Changed)-1]
		if ch, err = pager.ChangesPage(s.ctx, v.id, v.modSeq, store.ChangeKey{ModSeq: last.ModSeq, UID: last.UID}, changePage); err != nil {
			break
		}
	}
	if err != nil {
		if len(removed) > 0 {
			v.own()
			v.removeAll(removed)
		}
		return err
	}
	added := len(ent.msgs) - (len(old) - len(removed))
	for i := len(ent.msgs) - added; i < len(ent.msgs); i++ {
		s.noteKeywords(ent.msgs[i].flagList())
	}
	v.msgs, v.shared, v.changed = ent.msgs, true, 0
	s.srv.views.adopted.Add(1)
	if added > 0 {
		s.reportExists(v, &mb)
	}
	v.modSeq = max(v.modSeq, mb.HighestModSeq)
	if mb.UIDNext > v.uidNext {
		v.uidNext = mb.UIDNext
	}
	return nil
}
