package imapd

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// view is the selected mailbox as this session has told the client about
// it: the sequence numbers are positions in msgs (seq n is msgs[n-1]),
// and they change only when the session reports EXISTS or EXPUNGE.
type view struct {
	id          int64
	name        string // as stored (UTF-8)
	readOnly    bool   // EXAMINE, or SELECT of a mailbox the user may not change
	uidValidity uint32
	uidNext     uint32 // the last UIDNEXT the session knows (the store's)

	// msgs is one entry per message the client knows, in UID order, with
	// the flags and modseq last reported (or the client was given at
	// SELECT). While shared is set it is the mailbox listing cache's
	// slice, shared with other sessions: own copies it before a change.
	msgs   []viewMsg
	shared bool
	// changed counts the messages changed, added or removed in msgs
	// since the view took its own copy: a sync that ends with many of
	// them offers the copy to the listing cache (sync.go publish).
	changed int
	// sets interns the flag lists of msgs (the Server's).
	sets *flagSets
	// modSeq is the mailbox's HIGHESTMODSEQ at the last sync: the next
	// sync asks the store for changes after it.
	modSeq uint64
	// gone holds UIDs expunged by others whose EXPUNGE could not be sent
	// yet (RFC 9051 7.4.1: not during FETCH, STORE, SEARCH by sequence
	// number). They keep their sequence numbers until reported; FETCH
	// may still show their flags, and their bodies may be gone.
	gone map[uint32]bool
	// polledVer and polledAt are the store's change counter and the time
	// just before the last read of the mailbox's state (sync.go
	// skipPoll); a zero polledAt means never.
	polledVer uint64
	polledAt  time.Time
	// keywords are the keywords the last FLAGS response named, by their
	// lower-case form; a new one makes the session send FLAGS again.
	keywords map[string]string
	// recent are the UID ranges [from, to) that are \Recent in this
	// session (IMAP4rev1, RFC 3501 2.3.2): claimed at SELECT and as new
	// messages arrive.
	recent [][2]uint32

	// saved is RFC 5182's search result variable ("$"): ascending UIDs,
	// so an expunge needs no renumbering; empty at SELECT.
	saved []uint32
	// updates are the RFC 5267 UPDATE contexts (context.go); nil for
	// almost every session, which then pays nothing for them.
	updates []*updateCtx
	// updPending are UIDs whose flags changed or that arrived since the
	// updates were last told (only kept while there are updates).
	updPending []uint32
}

// addRecent makes UIDs from..to-1 \Recent in the session.
func (v *view) addRecent(from, to uint32) {
	if from >= to {
		return
	}
	if n := len(v.recent); n > 0 && v.recent[n-1][1] == from {
		v.recent[n-1][1] = to
		return
	}
	v.recent = append(v.recent, [2]uint32{from, to})
}

// isRecent reports whether uid is \Recent in the session. The ranges
// are ascending and disjoint (each claim starts where the store's last
// one ended), so a binary search.
func (v *view) isRecent(uid uint32) bool {
	i := sort.Search(len(v.recent), func(i int) bool { return v.recent[i][1] > uid })
	return i < len(v.recent) && uid >= v.recent[i][0]
}

// recentCount is the number of messages the client knows that are
// \Recent in the session (the RECENT response). On the way it drops the
// ranges left without a message the client knows and joins ranges with
// none between them: a message only ever enters the view above its
// largest UID, so no UID below it can come back. Without that, a
// long session beside busy writers kept one range per claim, and every
// EXISTS and FETCH walked them all (3.5 % of Petrel's CPU under
// imaptest's stress load with persistent sessions).
func (v *view) recentCount() int {
	n, kept, prevHi := 0, v.recent[:0], -1
	for _, r := range v.recent {
		lo, hi := v.firstAtOrAbove(r[0]), v.firstAtOrAbove(r[1])
		if lo == hi {
			continue
		}
		n += hi - lo
		if lo == prevHi {
			kept[len(kept)-1][1] = r[1]
		} else {
			kept = append(kept, r)
		}
		prevHi = hi
	}
	v.recent = kept
	return n
}

// firstAtOrAbove is the index in msgs of the first UID >= uid.
func (v *view) firstAtOrAbove(uid uint32) int {
	i, _ := slices.BinarySearchFunc(v.msgs, uid, func(m viewMsg, u uint32) int {
		return cmp.Compare(m.uid, u)
	})
	return i
}

// count is the number of messages the client knows (EXISTS).
func (v *view) count() uint32 { return uint32(len(v.msgs)) }

// maxUID is the largest UID the client knows, 0 in an empty mailbox.
func (v *view) maxUID() uint32 {
	if len(v.msgs) == 0 {
		return 0
	}
	return v.msgs[len(v.msgs)-1].uid
}

// seqOf returns the sequence number of uid, or 0 if the client does not
// know such a message.
func (v *view) seqOf(uid uint32) uint32 {
	i, found := slices.BinarySearchFunc(v.msgs, uid, func(m viewMsg, u uint32) int {
		return cmp.Compare(m.uid, u)
	})
	if !found {
		return 0
	}
	return uint32(i + 1)
}

// bodiesOf returns the body ids of the messages with the given UIDs
// that the view holds.
func (v *view) bodiesOf(uids []uint32) []int64 {
	var bodies []int64
	for _, uid := range uids {
		if q := v.seqOf(uid); q != 0 {
			bodies = append(bodies, v.msgs[q-1].body)
		}
	}
	return bodies
}

// msg returns the message with sequence number seq (1-based). Its Flags
// are shared: they must not be modified.
func (v *view) msg(seq uint32) store.MessageInfo { return v.msgs[seq-1].info(v.id) }

// own gives the view its own copy of msgs before a change.
func (v *view) own() {
	if v.shared {
		v.msgs = slices.Clone(v.msgs)
		v.shared = false
		v.changed = 0
	}
}

// appendMsgs adds messages (UIDs above the view's) at the end.
func (v *view) appendMsgs(list []store.MessageInfo) {
	v.own()
	v.msgs = slices.Grow(v.msgs, len(list))
	for i := range list {
		v.msgs = append(v.msgs, v.sets.compact(&list[i]))
	}
	v.changed += len(list)
}

// isGone reports whether the message was expunged elsewhere and its
// EXPUNGE is still pending.
func (v *view) isGone(uid uint32) bool { return v.gone[uid] }

// resolve turns a sequence set (uid=false) or a UID set (uid=true) into
// the sequence numbers of the messages it names, ascending and without
// duplicates. "*" is the last message (RFC 9051 6.4.8: a UID range
// with "*" includes the last message even when the range starts above
// it, so "UID FETCH 9999:*" names the last message). Numbers beyond the
// mailbox are left out; ok is false for a sequence number that does not
// exist (RFC 9051 9: that is a BAD for a sequence set).
func (v *view) resolve(set numSet, uid bool) (seqs []uint32, ok bool) {
	if set.isSaved() {
		return v.savedSeqs(), true
	}
	n := v.count()
	if n == 0 {
		if uid {
			return nil, true
		}
		// RFC 9051 9: "*" or any number in an empty mailbox is an
		// invalid sequence number.
		return nil, len(set) == 0
	}
	ok = true
	star := n
	if uid {
		star = v.maxUID()
	}
	// Ranges of sequence numbers, merged before expanding so that a set
	// like "1:*,1:*,..." costs no more than "1:*".
	spans := make([]numRange, 0, len(set))
	for _, r := range set {
		lo, hi := r.lo, r.hi
		if lo == 0 {
			lo = star
		}
		if hi == 0 {
			hi = star
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if uid {
			// The messages with lo <= UID <= hi.
			i := sort.Search(len(v.msgs), func(i int) bool { return v.msgs[i].uid >= lo })
			j := sort.Search(len(v.msgs), func(i int) bool { return v.msgs[i].uid > hi })
			if i >= j {
				continue
			}
			lo, hi = uint32(i+1), uint32(j)
		} else if hi > n {
			ok = false
			hi = n
			if lo > hi {
				continue
			}
		}
		spans = append(spans, numRange{lo, hi})
	}
	slices.SortFunc(spans, func(a, b numRange) int { return cmp.Compare(a.lo, b.lo) })
	var out []uint32
	var next uint32 = 1 // the smallest number not yet emitted
	for _, sp := range spans {
		for q := max(sp.lo, next); q <= sp.hi; q++ {
			out = append(out, q)
		}
		next = max(next, sp.hi+1)
	}
	return out, ok
}

// uidsOf returns the UIDs of sequence numbers.
func (v *view) uidsOf(seqs []uint32) []uint32 {
	out := make([]uint32, len(seqs))
	for i, q := range seqs {
		out[i] = v.msgs[q-1].uid
	}
	return out
}

// update records new flags and modseq of a message the client knows
// (after STORE, or before reporting a change); false if the UID is not in
// the view.
func (v *view) update(m store.MessageInfo) bool {
	q := v.seqOf(m.UID)
	if q == 0 {
		return false
	}
	v.own()
	v.msgs[q-1].flags = v.sets.intern(m.Flags)
	v.msgs[q-1].modSeq = m.ModSeq
	v.changed++
	return true
}

// removeAll drops uids from the view in one pass and returns, for each
// message it removed (ascending UID), the sequence number its untagged
// EXPUNGE must carry: each EXPUNGE renumbers the messages after it (RFC
// 9051 7.5.1), so the k-th removal in ascending order is reported with
// its original position minus the k-1 removed before it. The cost is
// O(n + k) for the whole batch instead of a shift of the list per UID.
// UIDs the view does not hold are skipped.
func (v *view) removeAll(uids []uint32) (removed, seqs []uint32) {
	if len(uids) == 0 || len(v.msgs) == 0 {
		return nil, nil
	}
	if !slices.IsSorted(uids) {
		uids = slices.Clone(uids)
		slices.Sort(uids)
	}
	// Messages before the first removed UID stay where they are.
	start, _ := slices.BinarySearchFunc(v.msgs, uids[0], func(m viewMsg, u uint32) int {
		return cmp.Compare(m.uid, u)
	})
	if start == len(v.msgs) {
		return nil, nil
	}
	// A shared listing is not copied whole and then compacted: the
	// view's own copy is built without the removed messages, at its size.
	src, dst := v.msgs, v.msgs[:start]
	inPlace := !v.shared
	if !inPlace {
		dst = make([]viewMsg, start, len(src)-min(len(uids), len(src)-start))
		copy(dst, src[:start])
		v.shared = false
		v.changed = 0
	}
	j := 0
	for i := start; i < len(src); i++ {
		uid := src[i].uid
		for j < len(uids) && uids[j] < uid {
			j++
		}
		if j < len(uids) && uids[j] == uid {
			removed = append(removed, uid)
			seqs = append(seqs, uint32(i+1-(len(removed)-1)))
			delete(v.gone, uid)
			j++
			continue
		}
		dst = append(dst, src[i])
	}
	if inPlace {
		clear(src[len(dst):]) // in place: drop the flag lists of the removed tail
	}
	v.msgs = slices.Clip(dst)
	v.changed += len(removed)
	return removed, seqs
}

// sortUnique sorts s and drops duplicates.
func sortUnique(s []uint32) []uint32 {
	slices.Sort(s)
	return slices.Compact(s)
}
