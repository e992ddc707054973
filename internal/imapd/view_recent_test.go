package imapd

import (
	"math/rand/v2"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// TestViewRecentRanges drives a view the way a long IMAP4rev1 session
// beside busy writers sees it: new messages arrive above the largest UID,
// some of them claimed \Recent by this session and some by others, and
// messages are expunged. isRecent and recentCount must agree with a
// plain set of the session's recent UIDs after every step, and
// recentCount must keep the ranges from growing with the number of
// claims.
func TestViewRecentRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	v := &view{sets: newFlagSets()}
	mine := map[uint32]bool{} // UIDs this session claimed, expunged or not
	next := uint32(1)
	claims := 0
	for step := 0; step < 5000; step++ {
		// A few new messages; this session claims them or another does.
		n := 1 + rng.IntN(3)
		list := make([]store.MessageInfo, n)
		for i := range list {
			list[i] = store.MessageInfo{UID: next + uint32(i), Size: 10}
		}
		v.appendMsgs(list)
		if rng.IntN(2) == 0 {
			v.addRecent(next, next+uint32(n))
			claims++
			for u := next; u < next+uint32(n); u++ {
				mine[u] = true
			}
		}
		next += uint32(n) + uint32(rng.IntN(2)) // sometimes a UID that never shows (expunged before)
		// Expunges keep the mailbox around 50 messages.
		for v.count() > 50 {
			uid := v.msgs[rng.IntN(len(v.msgs))].uid
			v.removeAll([]uint32{uid})
		}

		want := 0
		for _, m := range v.msgs {
			if mine[m.uid] {
				want++
			}
			if v.isRecent(m.uid) != mine[m.uid] {
				t.Fatalf("step %d: isRecent(%d) = %v, want %v (ranges %v)", step, m.uid, !mine[m.uid], mine[m.uid], v.recent)
			}
		}
		if got := v.recentCount(); got != want {
			t.Fatalf("step %d: recentCount = %d, want %d", step, got, want)
		}
		// After the count, every range holds a message of the view, and
		// two ranges have one of the view between them.
		for i, r := range v.recent {
			lo, hi := v.firstAtOrAbove(r[0]), v.firstAtOrAbove(r[1])
			if lo == hi {
				t.Fatalf("step %d: range %v holds no message", step, r)
			}
			if i > 0 && v.firstAtOrAbove(v.recent[i-1][1]) == lo {
				t.Fatalf("step %d: ranges %v and %v not joined", step, v.recent[i-1], r)
			}
		}
	}
	if claims < 1000 || len(v.recent) > 50 {
		t.Fatalf("%d claims left %d ranges; want at most one per message of the view (50)", claims, len(v.recent))
	}
}
