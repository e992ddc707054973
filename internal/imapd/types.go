package imapd

import (
	"strings"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// numRange is lo:hi of a sequence set; 0 stands for "*" (the largest
// number in use). normal keeps lo <= hi with "*" as the larger end,
// since "4:2" and "2:4" are the same (RFC 9051 9, seq-range).
type numRange struct{ lo, hi uint32 }

func (r numRange) normal() numRange {
	switch {
	case r.lo == 0 && r.hi != 0:
		return numRange{r.hi, 0}
	case r.hi != 0 && r.lo > r.hi:
		return numRange{r.hi, r.lo}
	}
	return r
}

// numSet is a sequence-set or uid-set as the client sent it.
type numSet []numRange

// savedSet is RFC 5182's "$" as the parser returns it: the range 0:1,
// which normal never produces ("*:1" becomes 1:*). view.resolve turns it
// into the saved result.
func savedSet() numSet { return numSet{{lo: 0, hi: 1}} }

// isSaved reports whether the set is "$".
func (s numSet) isSaved() bool { return len(s) == 1 && s[0] == numRange{lo: 0, hi: 1} }

// contains reports whether n is in the set, with star the value of "*"
// (the highest sequence number or UID in the mailbox).
func (s numSet) contains(n, star uint32) bool {
	for _, r := range s {
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
		if n >= lo && n <= hi {
			return true
		}
	}
	return false
}

// String formats the set as the client would send it.
func (s numSet) String() string {
	ms := make(imapmsg.NumSet, len(s))
	for i, r := range s {
		ms[i] = imapmsg.NumRange{Start: r.lo, Stop: r.hi}
	}
	return ms.String()
}

// System flags (RFC 9051 2.3.2) in their canonical spelling.
const (
	flagSeen     = `\Seen`
	flagAnswered = `\Answered`
	flagFlagged  = `\Flagged`
	flagDeleted  = `\Deleted`
	flagDraft    = `\Draft`
	flagRecent   = `\Recent`
)

// canonicalFlag spells a system flag the standard way ("\SEEN" ->
// "\Seen"); flags are case-insensitive (RFC 9051 2.3.2) and clients
// compare them as strings. Keywords are kept as sent.
func canonicalFlag(f string) string {
	for _, sf := range []string{flagSeen, flagAnswered, flagFlagged, flagDeleted, flagDraft, flagRecent} {
		if strings.EqualFold(f, sf) {
			return sf
		}
	}
	return f
}

// hasFlag reports whether flags holds f (case-insensitive).
func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}
