package imapd

import (
	"slices"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// RFC 5182 SEARCHRES: SEARCH RETURN (SAVE) keeps its result in the
// session's search result variable, which "$" names in FETCH, STORE,
// COPY, MOVE, UID EXPUNGE and SEARCH. The variable is the view's saved:
// UIDs, so an expunge only drops entries and a non-UID command maps them
// to the sequence numbers of the moment. Commands run one at a time in
// the order received, which is the ordering RFC 5182 2.3 asks of
// pipelined commands that use "$".

// savedSeqs are the sequence numbers of the saved messages the client
// still knows, ascending.
func (v *view) savedSeqs() []uint32 {
	out := make([]uint32, 0, len(v.saved))
	for _, uid := range v.saved {
		if q := v.seqOf(uid); q != 0 {
			out = append(out, q)
		}
	}
	return out
}

// savedNumSet is "$" as a UID set.
func (v *view) savedNumSet() numSet {
	set := numSet{}
	for _, r := range uidNumSet(v.saved) {
		set = append(set, numRange{lo: r.Start, hi: r.Stop})
	}
	return set
}

// fillSaved gives the "$" keys of a search their UIDs.
func (v *view) fillSaved(key *imapmsg.SearchKey) {
	if key.UsesSaved() {
		key.FillSaved(uidNumSet(v.saved))
	}
}

// saveResult sets "$" from a search's result: found are the matching
// sequence numbers ascending, ordered the same in the result's order
// (SORT's). RFC 5182 2.4: with MIN and/or MAX but neither ALL nor COUNT
// only those messages are saved, otherwise all of them.
func (v *view) saveResult(ret searchReturn, found, ordered []uint32) {
	if len(found) == 0 {
		v.saved = nil
		return
	}
	if (ret.min || ret.max) && !ret.all && !ret.count && !ret.partial {
		var uids []uint32
		if ret.min {
			uids = append(uids, v.msgs[ordered[0]-1].uid)
		}
		if ret.max {
			uids = append(uids, v.msgs[ordered[len(ordered)-1]-1].uid)
		}
		v.saved = sortUnique(uids)
		return
	}
	v.saved = v.uidsOf(found) // ascending, as found is
}

// uidNumSet is a search key's set for ascending UIDs: runs become ranges.
func uidNumSet(uids []uint32) imapmsg.NumSet {
	var set imapmsg.NumSet
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		set = append(set, imapmsg.NumRange{Start: uids[i], Stop: uids[j]})
		i = j + 1
	}
	return set
}

// removeUIDs drops the ascending UIDs gone from the ascending list a, in
// place.
func removeUIDs(a, gone []uint32) []uint32 {
	if !slices.IsSorted(gone) {
		gone = slices.Clone(gone)
		slices.Sort(gone)
	}
	return slices.DeleteFunc(a, func(u uint32) bool {
		_, found := slices.BinarySearch(gone, u)
		return found
	})
}

// partialOf is the window plo..phi (1-based) of a result list (RFC 5267
// 4.4), empty when it starts beyond the list.
func partialOf(ret searchReturn, list []uint32) []uint32 {
	lo := int(ret.plo) - 1
	if lo >= len(list) {
		return nil
	}
	return list[lo:min(int(ret.phi), len(list))]
}

// writePartial writes " PARTIAL (lo:hi set)", NIL for an empty set.
func (s *session) writePartial(ret searchReturn, set string) {
	w := s.w
	w.Raw(" PARTIAL (")
	w.Uint(uint64(ret.plo))
	w.Byte(':')
	w.Uint(uint64(ret.phi))
	w.Byte(' ')
	if set == "" {
		set = "NIL"
	}
	w.Raw(set)
	w.Byte(')')
}
