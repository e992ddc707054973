package imapd

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// naiveExpunge is the reference: remove the UIDs one by one, in ascending
// order, each reported with its number at that moment (RFC 9051 7.5.1).
func naiveExpunge(uids []uint32, gone []uint32) (left []uint32, seqs []uint32) {
	left = slices.Clone(uids)
	for _, g := range gone {
		if i := slices.Index(left, g); i >= 0 {
			seqs = append(seqs, uint32(i+1))
			left = slices.Delete(left, i, i+1)
		}
	}
	return left, seqs
}

func TestRemoveAllMatchesOneByOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		n := rng.IntN(60)
		var uids []uint32
		u := uint32(0)
		for i := 0; i < n; i++ {
			u += 1 + uint32(rng.IntN(3))
			uids = append(uids, u)
		}
		// Some UIDs the view holds, some it does not, in any order.
		var gone []uint32
		for k := rng.IntN(n + 5); k > 0; k-- {
			gone = append(gone, uint32(rng.IntN(int(u)+3)))
		}
		v := &view{gone: map[uint32]bool{}, sets: newFlagSets()}
		var list []store.MessageInfo
		for _, x := range uids {
			list = append(list, store.MessageInfo{UID: x, Flags: []string{"f" + strconv.Itoa(int(x))}})
		}
		// Shared with a listing cache half of the time: the cached
		// listing must stay as it was.
		v.msgs = v.sets.compactAll(list)
		v.shared = round%2 == 0
		cached := v.msgs
		cachedCopy := slices.Clone(cached)
		for _, g := range gone {
			v.gone[g] = true
		}
		sorted := sortUnique(slices.Clone(gone))
		wantLeft, wantSeqs := naiveExpunge(uids, sorted)
		removed, seqs := v.removeAll(gone)
		if !slices.Equal(seqs, wantSeqs) {
			t.Fatalf("round %d: seqs %v, want %v (uids %v gone %v)", round, seqs, wantSeqs, uids, sorted)
		}
		var left []uint32
		for _, m := range v.msgs {
			left = append(left, m.uid)
			if m.flagList()[0] != "f"+strconv.Itoa(int(m.uid)) {
				t.Fatalf("round %d: UID %d has flags %v", round, m.uid, m.flagList())
			}
		}
		if round%2 == 0 && !slices.Equal(cached, cachedCopy) {
			t.Fatalf("round %d: the shared listing was modified", round)
		}
		if len(removed) > 0 && v.shared {
			t.Fatalf("round %d: the view still shares its changed listing", round)
		}
		if !slices.Equal(left, wantLeft) {
			t.Fatalf("round %d: left %v, want %v", round, left, wantLeft)
		}
		for _, r := range removed {
			if v.gone[r] {
				t.Fatalf("round %d: %d still pending in gone", round, r)
			}
		}
		if len(removed) != len(seqs) {
			t.Fatalf("round %d: %d removed, %d seqs", round, len(removed), len(seqs))
		}
	}
}

// expungeNumbers returns the numbers of "* n EXPUNGE" responses in order.
func expungeNumbers(t *testing.T, resps []string) []uint32 {
	t.Helper()
	var out []uint32
	for _, r := range resps {
		if f := strings.Fields(r); len(f) == 3 && f[2] == "EXPUNGE" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("bad EXPUNGE %q", r)
			}
			out = append(out, uint32(n))
		}
	}
	return out
}

// TestBatchedExpungeSessions checks the EXPUNGE numbers the expunging
// session and two other sessions get, with expunges by both interleaved
// and one session's report deferred (FETCH does not allow it).
func TestBatchedExpungeSessions(t *testing.T) {
	ts := startServer(t, nil)
	var bodies []string
	for i := 1; i <= 20; i++ {
		bodies = append(bodies, testMessage(fmt.Sprintf("m%d", i)))
	}
	deliver(t, ts.st, alice, "INBOX", bodies...)
	a := ts.login(alice, alicePass)
	b := ts.login(alice, alicePass)
	c := ts.login(alice, alicePass)
	for _, x := range []*client{a, b, c} {
		x.ok("SELECT INBOX")
	}
	uids := make([]uint32, 20)
	for i := range uids {
		uids[i] = uint32(i + 1)
	}

	// a deletes UIDs 2,3,4 (a run), 10 and 20 (the last).
	a.ok(`UID STORE 2:4,10,20 +FLAGS.SILENT (\Deleted)`)
	got := expungeNumbers(t, a.ok("EXPUNGE"))
	left, want := naiveExpunge(uids, []uint32{2, 3, 4, 10, 20})
	if !slices.Equal(got, want) {
		t.Fatalf("a's EXPUNGEs %v, want %v", got, want)
	}
	// b learns at its next command that allows it.
	if got := expungeNumbers(t, b.ok("NOOP")); !slices.Equal(got, want) {
		t.Fatalf("b's EXPUNGEs %v, want %v", got, want)
	}
	// c is in a FETCH: no EXPUNGE now (RFC 9051 7.4.1) ...
	if resps := c.ok("FETCH 1:* (FLAGS)"); len(expungeNumbers(t, resps)) != 0 {
		t.Fatalf("EXPUNGE during FETCH: %q", resps)
	}
	// ... and b expunges 1, 5 and 15 before c hears of either batch.
	b.ok(`UID STORE 1,5,15 +FLAGS.SILENT (\Deleted)`)
	got = expungeNumbers(t, b.ok("EXPUNGE"))
	left2, want2 := naiveExpunge(left, []uint32{1, 5, 15})
	if !slices.Equal(got, want2) {
		t.Fatalf("b's second EXPUNGEs %v, want %v", got, want2)
	}
	// c gets both batches in one ascending run from its 20 messages.
	_, wantC := naiveExpunge(uids, []uint32{1, 2, 3, 4, 5, 10, 15, 20})
	if got := expungeNumbers(t, c.ok("NOOP")); !slices.Equal(got, wantC) {
		t.Fatalf("c's EXPUNGEs %v, want %v", got, wantC)
	}
	// Every view now numbers the same 12 messages alike.
	for name, x := range map[string]*client{"a": a, "b": b, "c": c} {
		x.ok("NOOP") // a hears of b's expunges here
		resps := x.ok("FETCH 1:* (UID)")
		var want []string
		for i, u := range left2 {
			want = append(want, fmt.Sprintf("* %d FETCH (UID %d)", i+1, u))
		}
		if !slices.Equal(resps, want) {
			t.Fatalf("%s's view after the expunges: %q, want %q", name, resps, want)
		}
	}
	// QRESYNC sessions get one VANISHED with the same UIDs.
	d := ts.login(alice, alicePass)
	d.ok("ENABLE QRESYNC")
	d.ok("SELECT INBOX")
	a.ok(`UID STORE 6:9 +FLAGS.SILENT (\Deleted)`)
	a.ok("EXPUNGE")
	if resps := d.ok("NOOP"); !has(resps, "* VANISHED 6:9") {
		t.Fatalf("QRESYNC session: %q", resps)
	}
}
