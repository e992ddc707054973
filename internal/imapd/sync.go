package imapd

import (
	"cmp"
	"slices"
	"time"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// sync asks the store what changed in the selected mailbox since the last
// sync and tells the client: EXPUNGE (or VANISHED with QRESYNC, RFC 7162
// 3.2.10) for messages expunged elsewhere, FETCH FLAGS for flag changes,
// EXISTS for new messages. With allowExpunge false (RFC 9051 7.4.1: during
// FETCH, STORE, SEARCH by sequence number) expunges are remembered in
// view.gone and reported by a later sync.
//
// The store is not asked when it can say nothing new (see skipPoll):
// RFC 9051 7 lets the server send updates when it chooses, so changes
// made through this process show at the next command, those of another
// node sharing the PostgreSQL database within PollInterval, as in IDLE.
func (s *session) sync(allowExpunge bool) error {
	return s.syncChanges(allowExpunge, false)
}

// syncNow is sync that always asks the store (IDLE's poll, UID EXPUNGE).
func (s *session) syncNow(allowExpunge bool) error {
	return s.syncChanges(allowExpunge, true)
}

func (s *session) syncChanges(allowExpunge, force bool) error {
	v := s.sel
	if v == nil {
		return nil
	}
	var ch *store.Changes
	if force || !s.skipPoll(v) {
		var err error
		if ch, err = s.poll(v); err != nil {
			return err
		}
	}
	if ch != nil && (allowExpunge || len(v.gone) == 0) {
		if ent := s.adoptable(v, ch); ent != nil {
			return s.adopt(v, ch, ent)
		}
	}
	if allowExpunge && len(v.gone) > 0 {
		uids := make([]uint32, 0, len(v.gone))
		for uid := range v.gone {
			uids = append(uids, uid)
		}
		slices.Sort(uids)
		s.reportExpunged(uids)
	}
	if ch != nil {
		if err := s.applyChanges(v, ch); err != nil {
			return err
		}
		s.publish(v, &ch.Mailbox)
	}
	if len(v.updPending) > 0 {
		return s.flushUpdates() // RFC 5267 4.3: with the FETCH and EXISTS
	}
	return nil
}

// changePage is how many changed messages a poll holds at a time when
// the store pages them (store.ChangePager): about 90 KB of MessageInfo,
// where another session's STORE 1:* on 100,000 messages listed at once
// was 9 MB and the peak of the whole IMAP load (issue 19).
const changePage = 1000

// skipPoll reports whether ChangesSince can be skipped: this process has
// made no change to the user's mailboxes since the last poll (the store's
// ChangeVersion is the same) and that poll is less than PollInterval old
// (changes by other nodes, which the counter does not see).
func (s *session) skipPoll(v *view) bool {
	vs := s.srv.versions
	if vs == nil || v.polledAt.IsZero() {
		return false
	}
	return vs.ChangeVersion(s.user) == v.polledVer && time.Since(v.polledAt) < s.srv.opts.PollInterval
}

// markPolled records the change counter and the time before a read of
// the mailbox's state (ChangesSince, or SELECT's listing): a change
// committed after them moves the counter, so skipPoll never hides it.
func (s *session) markPolled(v *view, ver uint64, at time.Time) {
	v.polledVer, v.polledAt = ver, at
}

// changeVersion is the store's counter for the user, 0 without one.
func (s *session) changeVersion() uint64 {
	if s.srv.versions == nil {
		return 0
	}
	return s.srv.versions.ChangeVersion(s.user)
}

// poll reads the changes after v.modSeq; expunged UIDs go to v.gone for
// the caller to report before applyChanges.
func (s *session) poll(v *view) (*store.Changes, error) {
	ver, at := s.changeVersion(), time.Now()
	var ch *store.Changes
	var err error
	if p, ok := s.srv.opts.Store.(store.ChangePager); ok {
		ch, err = p.ChangesPage(s.ctx, v.id, v.modSeq, store.ChangeKey{}, changePage)
	} else {
		ch, err = s.srv.opts.Store.ChangesSince(s.ctx, v.id, v.modSeq)
	}
	if err != nil {
		return nil, err
	}
	s.markPolled(v, ver, at)
	for _, uid := range ch.Expunged {
		if v.seqOf(uid) != 0 {
			if v.gone == nil {
				v.gone = make(map[uint32]bool)
			}
			v.gone[uid] = true
		}
	}
	return ch, nil
}

// applyChanges records ch's flag changes and new messages in v and
// writes FETCH FLAGS and EXISTS (after any EXPUNGE: the count is the
// client's after them). When ch is a full first page from a
// store.ChangePager, it reads the next pages itself, one at a time.
// v.modSeq moves to ch's HIGHESTMODSEQ only once every page is applied,
// so an error on the way leaves the rest for the next sync (changes
// applied twice are skipped by their modseq).
func (s *session) applyChanges(v *view, ch *store.Changes) error {
	mb := ch.Mailbox
	maxUID := v.maxUID()
	pager, paged := s.srv.opts.Store.(store.ChangePager)
	// New messages are appended once every page is read: pages come in
	// modseq order, the view is in UID order.
	var added []store.MessageInfo
	var err error
	for {
		added = s.applyChanged(v, ch.Changed, maxUID, added)
		if !paged || len(ch.Changed) < changePage {
			break
		}
		last := ch.Changed[len(ch.Changed)-1]
		if ch, err = pager.ChangesPage(s.ctx, v.id, v.modSeq, store.ChangeKey{ModSeq: last.ModSeq, UID: last.UID}, changePage); err != nil {
			break
		}
	}
	if len(added) > 0 {
		// By UID; a message changed between pages came twice: the later
		// copy (newer modseq) wins.
		slices.SortStableFunc(added, func(a, b store.MessageInfo) int { return cmp.Compare(a.UID, b.UID) })
		w := 0
		for i := range added {
			if w > 0 && added[w-1].UID == added[i].UID {
				w--
			}
			added[w] = added[i]
			w++
		}
		added = added[:w]
		for i := range added {
			s.noteKeywords(added[i].Flags)
		}
		v.appendMsgs(added)
		if len(v.updates) > 0 {
			for i := range added {
				v.noteChanged(added[i].UID)
			}
		}
		s.reportExists(v, &mb)
	}
	if err != nil {
		return err
	}
	v.modSeq = max(v.modSeq, mb.HighestModSeq)
	if mb.UIDNext > v.uidNext {
		v.uidNext = mb.UIDNext
	}
	return nil
}

// applyChanged records one list of changed messages in v: FETCH FLAGS
// for changes to messages the client knows; those above maxUID (the
// view's before the sync) are new and appended to added, for the
// caller.
func (s *session) applyChanged(v *view, changed []store.MessageInfo, maxUID uint32, added []store.MessageInfo) []store.MessageInfo {
	for _, m := range changed {
		if m.UID > maxUID {
			added = append(added, m)
			continue
		}
		q := v.seqOf(m.UID)
		if q == 0 || v.gone[m.UID] || m.ModSeq <= v.msgs[q-1].modSeq {
			continue // unknown, expunged, or already reported (own STORE)
		}
		old := v.msgs[q-1].flagList()
		v.update(m)
		v.noteChanged(m.UID)
		if (!sameFlags(old, m.Flags) || s.condstore) && !s.quietFlags {
			s.writeFlagsFetch(q, v.msg(q))
		}
	}
	return added
}

// reportExpunged removes uids from the view in one pass and writes one
// EXPUNGE per removed message, or one VANISHED with QRESYNC.
func (s *session) reportExpunged(uids []uint32) {
	if len(s.sel.updates) > 0 {
		s.updatesExpunged(uids) // RFC 5267 4.3.4: before the EXPUNGEs
	}
	bodies := s.sel.bodiesOf(uids)
	removed, seqs := s.sel.removeAll(uids)
	if len(removed) == 0 {
		return
	}
	s.srv.msgs.forget(bodies)
	if len(s.sel.saved) > 0 {
		s.sel.saved = removeUIDs(s.sel.saved, removed) // RFC 5182 2.1
	}
	s.writeExpunged(removed, seqs)
}

// writeExpunged writes one EXPUNGE per removed UID (ascending), with the
// sequence number seqs gives it, or one VANISHED with QRESYNC.
func (s *session) writeExpunged(removed, seqs []uint32) {
	if s.qresync {
		s.w.Untagged()
		s.w.Raw("VANISHED ")
		s.w.Raw(imapmsg.CompactUIDs(removed))
		s.w.CRLF()
		return
	}
	// Ascending UIDs, each with its number after the EXPUNGEs before it
	// (RFC 9051 7.5.1); removeAll computed them.
	for _, q := range seqs {
		s.w.Untagged()
		s.w.Uint(uint64(q))
		s.w.Raw(" EXPUNGE")
		s.w.CRLF()
	}
}

// writeFlagsFetch writes "* n FETCH (UID u FLAGS (...) [MODSEQ (m)])".
// UID is always there: QRESYNC requires it (RFC 7162 3.2.4) and it costs
// nothing.
func (s *session) writeFlagsFetch(seq uint32, m store.MessageInfo) {
	s.noteKeywords(m.Flags)
	s.w.Untagged()
	s.w.Uint(uint64(seq))
	s.w.Raw(" FETCH (UID ")
	s.w.Uint(uint64(m.UID))
	s.w.Raw(" FLAGS ")
	s.w.Flags(s.shownFlags(&m))
	if s.condstore {
		s.w.Raw(" MODSEQ (")
		s.w.Uint(m.ModSeq)
		s.w.Raw(")")
	}
	s.w.Raw(")")
	s.w.CRLF()
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !hasFlag(b, f) {
			return false
		}
	}
	return true
}

// applyFlags changes flags in the store and records the new flags and
// modseqs in the view, so that the next sync does not report them again.
// It writes nothing: the caller reports the changes (STORE's FETCH
// responses, or FLAGS inside a FETCH that set \Seen). u.MailboxID is
// filled in.
func (s *session) applyFlags(u *store.FlagUpdate) (*store.StoreResult, error) {
	u.MailboxID = s.sel.id
	res, err := s.srv.opts.Store.StoreFlags(s.ctx, u)
	if err != nil {
		return nil, err
	}
	v := s.sel
	for _, m := range res.Changed {
		v.update(m)
		v.noteChanged(m.UID)
	}
	// Up to date before the change and told all of it: the next sync
	// need not list these messages again (issue 19: after STORE 1:* it
	// listed all 100,000).
	if len(res.Changed) > 0 && res.PrevModSeq == v.modSeq {
		v.modSeq = res.Changed[0].ModSeq
	}
	return res, nil
}

// enableCondstore turns CONDSTORE on (RFC 7162 3.1: ENABLE, SELECT
// (CONDSTORE), or a CONDSTORE enabling command such as FETCH MODSEQ).
// Enabled by a command while a mailbox is selected, the client gets the
// HIGHESTMODSEQ it did not get at SELECT (RFC 7162 3.1.2).
func (s *session) enableCondstore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if s.sel != nil {
		s.w.Untagged()
		s.w.Raw("OK [HIGHESTMODSEQ ")
		s.w.Uint(s.sel.modSeq)
		s.w.Raw("] Highest")
		s.w.CRLF()
	}
}

// reportExists tells the client the view's new message count (EXISTS)
// and, in an IMAP4rev1 session, claims the new \Recent messages and
// tells their count (RECENT; IMAP4rev2 has none).
func (s *session) reportExists(v *view, mb *store.Mailbox) {
	s.w.Untagged()
	s.w.Uint(uint64(v.count()))
	s.w.Raw(" EXISTS")
	s.w.CRLF()
	if !s.rev2 {
		s.takeRecent(v, mb.RecentUID, v.maxUID()+1)
		s.w.Untagged()
		s.w.Uint(uint64(v.recentCount()))
		s.w.Raw(" RECENT")
		s.w.CRLF()
	}
}
