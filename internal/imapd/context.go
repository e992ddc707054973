package imapd

import (
	"slices"
	"strconv"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// RFC 5267 CONTEXT=SEARCH and CONTEXT=SORT: RETURN (UPDATE) keeps the
// search program and its result; when the session tells the client of
// a change (FETCH FLAGS, EXISTS, EXPUNGE, in sync.go) it also tells
// which messages joined or left the result, in untagged ESEARCH
// responses with ADDTO and REMOVEFROM, until CANCELUPDATE or the
// mailbox is closed. Only the changed messages are tested again (RFC
// 5267 appendix B), and a session without contexts pays one length
// check per change.

// maxUpdates is how many UPDATE contexts a session may hold; one more is
// refused with NOUPDATE (RFC 5267 4.3.1 asks for at least one; Dovecot
// allows 10).
const maxUpdates = 10

// updateCtx is one UPDATE context.
type updateCtx struct {
	tag string
	uid bool // UID SEARCH / UID SORT: updates carry UIDs
	m   *msgCommands
	// key is the search program, resolved when the command ran: its
	// sequence numbers are UIDs by then (RFC 5267 4.3: sequence numbers
	// are evaluated when the command is received).
	key *imapmsg.SearchKey
	// res are the UIDs of the result, ascending.
	res []uint32
	// sort is SORT's criteria, nil for SEARCH; order is then the result
	// in sort order (res stays the same set, ascending).
	sort  []imapmsg.SortKey
	order []uint32
	// fts makes BODY and TEXT compare the indexed text as the search
	// did with FULL_TEXT_SEARCH on (every message is read: found is
	// nil); nil with it off.
	fts *ftsFilter
}

// hasUpdate reports whether tag names an UPDATE context of the view.
func (v *view) hasUpdate(tag string) bool {
	return slices.ContainsFunc(v.updates, func(u *updateCtx) bool { return u.tag == tag })
}

// addUpdate makes an UPDATE context for a search that found seqs
// (ascending), or says NOUPDATE when the session has too many (RFC 5267
// 4.3.1; the other return options were honoured).
func (s *session) addUpdate(c *command, m *msgCommands, key *imapmsg.SearchKey, seqs []uint32) *updateCtx {
	v := s.sel
	if len(v.updates) >= maxUpdates {
		s.w.Untagged()
		s.w.Raw("NO [NOUPDATE ")
		s.w.String(c.tag)
		s.w.Raw("] Too many update contexts")
		s.w.CRLF()
		return nil
	}
	seqKeysToUIDs(key, v)
	u := &updateCtx{tag: c.tag, uid: c.uid, m: m, key: key, res: v.uidsOf(seqs)}
	if s.srv.opts.FullTextSearch {
		var needles []string
		if textNeedles(key, &needles); len(needles) > 0 {
			u.fts = &ftsFilter{opt: imapmsg.TextOptions{Attachments: s.srv.opts.FullTextAttachments}}
		}
	}
	v.updates = append(v.updates, u)
	return u
}

// seqKeysToUIDs turns the (resolved) sequence-set keys of a search into
// the UID sets they named when the command ran: a seq range lo:hi is
// exactly the UIDs from lo's to hi's, new messages having larger UIDs.
func seqKeysToUIDs(k *imapmsg.SearchKey, v *view) {
	if k.Op == imapmsg.SearchSeq {
		var set imapmsg.NumSet
		n := v.count()
		for _, r := range k.Set {
			lo, hi := max(r.Start, 1), min(r.Stop, n)
			if lo <= hi {
				set = append(set, imapmsg.NumRange{Start: v.msgs[lo-1].uid, Stop: v.msgs[hi-1].uid})
			}
		}
		k.Op, k.Set = imapmsg.SearchUID, set
	}
	for i := range k.Sub {
		seqKeysToUIDs(&k.Sub[i], v)
	}
}

// noteChanged records that a message's flags changed or that it
// arrived, for the next flushUpdates.
func (v *view) noteChanged(uid uint32) {
	if len(v.updates) > 0 {
		v.updPending = append(v.updPending, uid)
	}
}

// flushUpdates tests the messages noted since the last flush against
// every UPDATE context and writes REMOVEFROM and ADDTO for those whose
// membership changed. Called after the EXISTS of new messages, so their
// sequence numbers are valid (RFC 5267 4.3.3).
func (s *session) flushUpdates() error {
	v := s.sel
	if len(v.updPending) == 0 {
		return nil
	}
	pending := sortUnique(v.updPending)
	v.updPending = nil
	if len(v.updates) == 0 {
		return nil
	}
	for _, u := range v.updates {
		var add, rem []uint32
		for _, uid := range pending {
			q := v.seqOf(uid)
			if q == 0 || v.isGone(uid) {
				continue // its EXPUNGE tells the context
			}
			match, err := u.matches(s, q)
			if err != nil && isExpungedBody(err) {
				continue
			}
			if err != nil {
				return err
			}
			_, was := slices.BinarySearch(u.res, uid)
			switch {
			case match && !was:
				add = append(add, uid)
			case !match && was:
				rem = append(rem, uid)
			}
		}
		if len(rem) > 0 {
			u.res = removeUIDs(u.res, rem)
			if u.sort != nil {
				s.writeSortRemove(u, rem)
			} else {
				s.writeUpdate(u, "REMOVEFROM", rem)
			}
		}
		if len(add) > 0 {
			u.res = mergeUIDs(u.res, add)
			if u.sort != nil {
				if err := s.writeSortAdd(u, add); err != nil {
					return err
				}
			} else {
				s.writeUpdate(u, "ADDTO", add)
			}
		}
	}
	return nil
}

// updatesExpunged writes REMOVEFROM for results about to be expunged,
// before the EXPUNGE responses, while the sequence numbers are still
// valid (RFC 5267 4.3.4).
func (s *session) updatesExpunged(uids []uint32) {
	if !slices.IsSorted(uids) {
		uids = slices.Clone(uids)
		slices.Sort(uids)
	}
	for _, u := range s.sel.updates {
		var rem []uint32
		for _, uid := range uids {
			if _, in := slices.BinarySearch(u.res, uid); in {
				rem = append(rem, uid)
			}
		}
		if len(rem) == 0 {
			continue
		}
		if u.sort != nil {
			s.writeSortRemove(u, rem)
		} else {
			s.writeUpdate(u, "REMOVEFROM", rem)
		}
		u.res = removeUIDs(u.res, rem)
	}
}

// matches tests the message with sequence number q against the
// context's program.
func (u *updateCtx) matches(s *session, q uint32) (bool, error) {
	info := s.sel.msg(q)
	sm := &searchMessage{m: u.m, s: s, seq: q, info: info, fts: u.fts}
	if u.key.ReadsSaveDate() {
		saved, err := s.srv.opts.Store.SaveDates(s.ctx, s.sel.id, info.UID, info.UID)
		if err != nil {
			return false, err
		}
		sm.saved = saved
	}
	ok, err := imapmsg.Match(u.key, sm)
	sm.close()
	return ok, err
}

// writeUpdate writes "* ESEARCH (TAG "t") [UID] ADDTO|REMOVEFROM (0 set)"
// for a SEARCH context: position 0 is mailbox order (RFC 5267 4.3.3).
func (s *session) writeUpdate(u *updateCtx, what string, uids []uint32) {
	nums := uids
	if !u.uid {
		nums = make([]uint32, len(uids))
		for i, uid := range uids {
			nums[i] = s.sel.seqOf(uid)
		}
	}
	s.writeUpdateHead(u, what)
	s.w.Raw(" (0 ")
	s.w.Raw(imapmsg.CompactUIDs(nums))
	s.w.Raw(")")
	s.w.CRLF()
}

func (s *session) writeUpdateHead(u *updateCtx, what string) {
	w := s.w
	w.Untagged()
	w.Raw("ESEARCH (TAG ")
	w.String(u.tag)
	w.Raw(")")
	if u.uid {
		w.Raw(" UID")
	}
	w.Byte(' ')
	w.Raw(what)
}

// mergeUIDs is the ascending union of two ascending lists.
func mergeUIDs(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// cmdCancelUpdate is CANCELUPDATE "tag"... (RFC 5267 4.3.5).
func cmdCancelUpdate(s *session, c *command) error {
	d := c.args
	var tags []string
	d.SP()
	for d.Err() == nil {
		tags = append(tags, d.String())
		if !d.Accept(' ') {
			break
		}
	}
	if err := d.End(); err != nil {
		return err
	}
	v := s.sel
	for _, t := range tags {
		if !v.hasUpdate(t) {
			return bad("Unknown tag " + t) // as Dovecot
		}
		v.updates = slices.DeleteFunc(v.updates, func(u *updateCtx) bool { return u.tag == t })
	}
	return ok("", "Updates cancelled")
}

// writeSortRemove writes REMOVEFROM for a SORT context: one position and
// number per message, each position counted after the removals before
// it (RFC 5267 4.3.4), and drops them from the order.
func (s *session) writeSortRemove(u *updateCtx, rem []uint32) {
	var b []byte
	kept := u.order[:0]
	gone := 0
	for i, uid := range u.order {
		if _, in := slices.BinarySearch(rem, uid); !in {
			kept = append(kept, uid)
			continue
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendUint(b, uint64(i+1-gone), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(s.updateNum(u, uid)), 10)
		gone++
	}
	u.order = kept
	if gone == 0 {
		return
	}
	s.writeUpdateHead(u, "REMOVEFROM")
	s.w.Raw(" (")
	s.w.Raw(string(b))
	s.w.Raw(")")
	s.w.CRLF()
}

// writeSortAdd places new results of a SORT context: the result is
// sorted again (headers come from the header cache) and each new message
// is inserted after the old result before it, so the old results keep
// their order (ties fall back to mailbox order, which changes do not
// alter).
func (s *session) writeSortAdd(u *updateCtx, add []uint32) error {
	v := s.sel
	seqs := make([]uint32, 0, len(u.order)+len(add))
	for _, uid := range u.res { // res already holds add
		if q := v.seqOf(uid); q != 0 {
			seqs = append(seqs, q)
		}
	}
	msgs, err := u.m.sortMessages(s, seqs, false, sortReadsHeader(u.sort))
	if err != nil {
		return err
	}
	slices.SortFunc(msgs, func(a, b *imapmsg.SortMessage) int { return imapmsg.CompareSort(u.sort, a, b) })
	var b []byte
	order := make([]uint32, 0, len(u.order)+len(add))
	p := 0 // next unread index of the old order
	for _, sm := range msgs {
		uid := v.msgs[sm.Seq-1].uid
		if _, isNew := slices.BinarySearch(add, uid); !isNew {
			for p < len(u.order) && u.order[p] != uid {
				order = append(order, u.order[p]) // kept though not sorted now (pending expunge)
				p++
			}
			if p < len(u.order) {
				order = append(order, uid)
				p++
			}
			continue
		}
		order = append(order, uid)
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendUint(b, uint64(len(order)), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(s.updateNum(u, uid)), 10)
	}
	order = append(order, u.order[p:]...)
	u.order = order
	if len(b) == 0 {
		return nil
	}
	s.writeUpdateHead(u, "ADDTO")
	s.w.Raw(" (")
	s.w.Raw(string(b))
	s.w.Raw(")")
	s.w.CRLF()
	return nil
}

// updateNum is how a context names a message: its UID or its sequence
// number.
func (s *session) updateNum(u *updateCtx, uid uint32) uint32 {
	if u.uid {
		return uid
	}
	return s.sel.seqOf(uid)
}

// sortReadsHeader reports whether sort criteria compare header fields.
func sortReadsHeader(keys []imapmsg.SortKey) bool {
	return slices.ContainsFunc(keys, func(k imapmsg.SortKey) bool {
		return k.By != imapmsg.SortArrival && k.By != imapmsg.SortSize
	})
}
