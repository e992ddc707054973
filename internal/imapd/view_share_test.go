package imapd

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var fetchFlagsLine = regexp.MustCompile(`^\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\)`)

// parseFlagFetches parses "* n FETCH (UID u FLAGS (...))" lines (others are
// left out) into seq, UID and sorted flags.
func parseFlagFetches(lines []string) (seqs, uids []int, flags []string) {
	for _, l := range lines {
		m := fetchFlagsLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		q, _ := strconv.Atoi(m[1])
		u, _ := strconv.Atoi(m[2])
		f := strings.Fields(m[3])
		f = slices.DeleteFunc(f, func(s string) bool { return s == `\Recent` })
		slices.Sort(f)
		seqs, uids, flags = append(seqs, q), append(uids, u), append(flags, strings.Join(f, " "))
	}
	return
}

// expectStoreState checks that c's view (FETCH 1:* of UIDs and flags)
// is the store's mailbox: the same UIDs in order and the same flags.
func expectStoreState(t *testing.T, ts *testServer, c *client, who string) {
	t.Helper()
	seqs, uids, flags := parseFlagFetches(c.ok("FETCH 1:* (UID FLAGS)"))
	l := listOf(t, ts, alice, "INBOX")
	if len(uids) != len(l) {
		t.Fatalf("%s: %d messages, the store has %d", who, len(uids), len(l))
	}
	for i := range l {
		f := slices.Clone(l[i].Flags)
		slices.Sort(f)
		if seqs[i] != i+1 || uids[i] != int(l[i].UID) || flags[i] != strings.Join(f, " ") {
			t.Fatalf("%s: message %d is seq %d UID %d flags %q, the store has UID %d flags %q",
				who, i+1, seqs[i], uids[i], flags[i], l[i].UID, strings.Join(f, " "))
		}
	}
}

// Sessions of a large mailbox share one listing (view_share.go): the
// session that changed many messages publishes its copy to the listing
// cache and another session's sync adopts it. Over real sockets: a
// session never sees another's changes through a shared listing before
// its own sync tells its client (then every change is told, with the
// right sequence numbers), and a session changing a shared listing
// changes nobody else's.
func TestViewShareOverSockets(t *testing.T) {
	ts := startServer(t, nil)
	const n = 600
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = testMessage(fmt.Sprintf("share%d", i))
	}
	deliver(t, ts.st, alice, "INBOX", bodies...)
	a, b := ts.login(alice, alicePass), ts.login(alice, alicePass)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	vc := ts.srv.views

	// A changes every message and publishes its copy.
	a.ok(`STORE 1:* +FLAGS.SILENT (\Flagged)`)
	if got := vc.published.Load(); got != 1 {
		t.Fatalf("published %d listings after STORE 1:*, want 1", got)
	}
	// B's view still holds the old flags: its FETCH shows them, then its
	// sync (after the command) tells the change of every message.
	resp := b.ok("FETCH 1 (FLAGS)")
	if len(resp) == 0 || resp[0] != "* 1 FETCH (FLAGS ())" {
		t.Fatalf("B saw A's change before its sync: %q", resp[:min(2, len(resp))])
	}
	seqs, uids, flags := parseFlagFetches(resp)
	if len(seqs) != n {
		t.Fatalf("B's sync told %d flag changes, want %d", len(seqs), n)
	}
	for i := range seqs {
		if seqs[i] != i+1 || flags[i] != `\Flagged` {
			t.Fatalf("B told seq %d UID %d flags %q", seqs[i], uids[i], flags[i])
		}
	}
	if got := vc.adopted.Load(); got != 1 {
		t.Fatalf("adopted %d listings, want 1", got)
	}
	expectStoreState(t, ts, b, "B")

	// A third session's SELECT takes the published listing.
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	expectStoreState(t, ts, c, "C")

	// B changes one message of the listing A, C and the cache share:
	// each of them is told exactly that change at its next sync.
	b.ok(`STORE 5 -FLAGS.SILENT (\Flagged)`)
	for name, cl := range map[string]*client{"A": a, "C": c} {
		seqs, _, flags := parseFlagFetches(cl.ok("NOOP"))
		if len(seqs) != 1 || seqs[0] != 5 || flags[0] != "" {
			t.Fatalf("%s after B's STORE 5: seqs %v flags %q", name, seqs, flags)
		}
	}
	for name, cl := range map[string]*client{"A": a, "B": b, "C": c} {
		expectStoreState(t, ts, cl, name)
	}

	// Expunges, a flag change and a new message in one sync: A marks
	// 291 messages \Deleted (published, adopted by B), changes one more,
	// a message arrives, A expunges (published with the new message).
	a.ok(`STORE 10:300 +FLAGS.SILENT (\Deleted)`)
	b.ok("NOOP")
	adopted := vc.adopted.Load()
	a.ok(`STORE 400 +FLAGS.SILENT (\Answered)`)
	deliver(t, ts.st, alice, "INBOX", testMessage("late"))
	a.ok("EXPUNGE")
	if got := vc.published.Load(); got < 3 {
		t.Fatalf("published %d listings, want at least 3", got)
	}
	resp = b.ok("NOOP")
	if got := vc.adopted.Load(); got != adopted+1 {
		t.Fatalf("B's NOOP after the EXPUNGE did not adopt the listing (%d adoptions, were %d)", got, adopted)
	}
	var expunges, exists []string
	for _, l := range resp {
		if strings.HasSuffix(l, " EXPUNGE") {
			expunges = append(expunges, l)
		}
		if strings.HasSuffix(l, " EXISTS") {
			exists = append(exists, l)
		}
	}
	if len(expunges) != 291 || slices.IndexFunc(expunges, func(l string) bool { return l != "* 10 EXPUNGE" }) >= 0 {
		t.Fatalf("B's EXPUNGEs: %d, first %q", len(expunges), expunges[:min(1, len(expunges))])
	}
	seqs, _, flags = parseFlagFetches(resp)
	if len(seqs) != 1 || seqs[0] != 400-291 || flags[0] != `\Answered \Flagged` {
		t.Fatalf("B's flag changes after the EXPUNGEs: seqs %v flags %q", seqs, flags)
	}
	if want := fmt.Sprintf("* %d EXISTS", n-291+1); len(exists) != 1 || exists[0] != want {
		t.Fatalf("B's EXISTS: %q, want %q", exists, want)
	}
	for name, cl := range map[string]*client{"A": a, "B": b, "C": c} {
		cl.ok("NOOP")
		expectStoreState(t, ts, cl, name)
	}
}

// A session whose pending expunges cannot be told yet (FETCH, RFC 9051
// 7.4.1) keeps its own listing instead of adopting one without them.
func TestViewShareNotDuringFetch(t *testing.T) {
	ts := startServer(t, nil)
	bodies := make([]string, 400)
	for i := range bodies {
		bodies[i] = testMessage(fmt.Sprintf("nf%d", i))
	}
	deliver(t, ts.st, alice, "INBOX", bodies...)
	a, b := ts.login(alice, alicePass), ts.login(alice, alicePass)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	a.ok(`STORE 1:300 +FLAGS.SILENT (\Deleted)`)
	b.ok("NOOP")
	a.ok("EXPUNGE")
	adopted := ts.srv.views.adopted.Load()
	resp := b.ok("FETCH 1:* (UID)")
	for _, l := range resp {
		if strings.HasSuffix(l, " EXPUNGE") {
			t.Fatalf("EXPUNGE during FETCH: %q", l)
		}
	}
	if got := ts.srv.views.adopted.Load(); got != adopted {
		t.Fatal("B adopted a listing while expunges were pending")
	}
	if _, uids, _ := parseFlagFetches(b.ok("FETCH 1:* (UID FLAGS)")); len(uids) != 400 {
		t.Fatalf("B shows %d messages before the EXPUNGEs are told, want 400", len(uids))
	}
	b.ok("NOOP")
	expectStoreState(t, ts, b, "B")
}
