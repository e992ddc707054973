package imapd

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// updateWait bounds how long a test waits for an update that must come;
// the issue asks for "within a second", and a loaded CI machine gets
// slack beyond it. It guards against a hang, it does not time anything.
const updateWait = 10 * time.Second

func TestIdleSeesDelivery(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.PollInterval = time.Hour }) // Watch alone
	deliver(t, ts.st, alice, "INBOX", testMessage("one"))
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.send("i1 IDLE\r\n")
	if r := c.read(); r != "+ idling" {
		t.Fatalf("IDLE: %q", r)
	}
	start := time.Now()
	deliver(t, ts.st, alice, "INBOX", testMessage("two"))
	c.waitFor("* 2 EXISTS", updateWait)
	t.Logf("EXISTS %v after the commit", time.Since(start))
	c.send("DONE\r\n")
	if _, tagged := c.collect("i1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("DONE: %q", tagged)
	}
	// Something else than DONE is BAD.
	c.send("i2 IDLE\r\n")
	c.read()
	c.send("NOPE\r\n")
	if _, tagged := c.collect("i2"); !strings.HasPrefix(tagged, "BAD") {
		t.Fatalf("not DONE: %q", tagged)
	}
	// IDLE without a mailbox is allowed (RFC 9051 6.3.13).
	c.ok("UNSELECT")
	c.send("i3 IDLE\r\n")
	c.read()
	c.send("DONE\r\n")
	if _, tagged := c.collect("i3"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("IDLE unselected: %q", tagged)
	}
}

func TestIdlePollsOtherNodes(t *testing.T) {
	// A second store over the same database stands for another node: its
	// Watch notifications never reach this server, which is not realtime
	// (PostgreSQL with LISTEN down), so only polling can see the delivery.
	ts := startServer(t, func(ts *testServer, o *Options) {
		o.PollInterval = 50 * time.Millisecond
		o.Store = notRealtime{ts.st}
	})
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.send("i1 IDLE\r\n")
	c.read()
	other := reopenStore(t, ts)
	deliver(t, other, alice, "INBOX", testMessage("one"))
	c.waitFor("* 1 EXISTS", updateWait)
	c.send("DONE\r\n")
	c.collect("i1")
}

func TestTwoSessions(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"))
	a := ts.login(alice, alicePass)
	b := ts.login(alice, alicePass)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")

	// A flag change by a is seen by b at its next command...
	a.ok(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	u := b.ok("NOOP")
	if !slices.Equal(u, []string{`* 2 FETCH (UID 2 FLAGS (\Flagged))`}) {
		t.Fatalf("b after a's STORE: %q", u)
	}
	// ...and only once.
	if u := b.ok("NOOP"); len(u) != 0 {
		t.Fatalf("second NOOP: %q", u)
	}
	// Its own STORE is not reported again by the next sync.
	b.ok(`STORE 3 +FLAGS (\Seen)`)
	if u := b.ok("NOOP"); len(u) != 0 {
		t.Fatalf("NOOP after own STORE: %q", u)
	}
	// Message 3 arrived while a had the mailbox selected: \Recent to a.
	mustHave(t, a.ok("NOOP"), `* 3 FETCH (UID 3 FLAGS (\Seen \Recent))`)

	// An expunge by a reaches b in IDLE.
	b.send("i1 IDLE\r\n")
	b.read()
	a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	a.ok("EXPUNGE")
	got := b.waitFor("* 1 EXPUNGE", updateWait)
	if has(got, "* 3 EXPUNGE") {
		t.Fatalf("IDLE: %q", got)
	}
	b.send("DONE\r\n")
	b.collect("i1")

	// RFC 9051 7.4.1: no EXPUNGE after STORE by sequence number; it comes
	// with the next command that allows it, with the numbers the client
	// still has.
	a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	a.ok("EXPUNGE")
	u = b.ok(`STORE 2 +FLAGS (\Answered)`)
	mustNotHave(t, u, "* 1 EXPUNGE")
	mustHave(t, u, `* 2 FETCH (UID 3 FLAGS (\Seen \Answered))`)
	u = b.ok("NOOP")
	if !slices.Equal(u, []string{"* 1 EXPUNGE"}) {
		t.Fatalf("deferred EXPUNGE: %q", u)
	}
	// New messages arrive as EXISTS after any command.
	deliver(t, ts.st, alice, "INBOX", testMessage("four"))
	mustHave(t, b.ok(`STATUS Sent (MESSAGES)`), "* 2 EXISTS")
}

func TestQresyncSelect(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("1"), testMessage("2"), testMessage("3"), testMessage("4"), testMessage("5"))
	c := ts.login(alice, alicePass)
	c.expect("SELECT INBOX (QRESYNC (1 1))", "BAD") // not enabled
	c.ok("ENABLE QRESYNC")
	u := c.ok("SELECT INBOX")
	uv := uidValidityOf(t, u)
	ms := highestModSeqOf(t, u)
	c.ok("UNSELECT")

	// Another session changes flags of 2 and expunges 3 and 4.
	o := ts.login(alice, alicePass)
	o.ok("SELECT INBOX")
	o.ok(`STORE 2 +FLAGS.SILENT (\Seen)`)
	o.ok(`STORE 3:4 +FLAGS.SILENT (\Deleted)`)
	o.ok("EXPUNGE")
	deliver(t, ts.st, alice, "INBOX", testMessage("6"))

	u = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 1:5))", uv, ms))
	mustHave(t, u, "* 4 EXISTS")
	mustHave(t, u, "* VANISHED (EARLIER) 3:4")
	if !has(u, `* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (`) {
		t.Fatalf("QRESYNC FETCH: %q", u)
	}
	// known-uids 1:5 leave out the new message (UID 6, RFC 7162 3.2.5).
	mustNotHave(t, u, "* 4 FETCH")
	mustNotHave(t, u, "* 1 FETCH")
	// Without known-uids it is reported: its modseq is newer.
	u = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", uv, ms))
	if !has(u, `* 4 FETCH (UID 6 FLAGS () MODSEQ (`) || !has(u, "* VANISHED (EARLIER) 3:4") {
		t.Fatalf("QRESYNC new message: %q", u)
	}

	// Known UIDs limit VANISHED.
	u = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 4:5))", uv, ms))
	if !slices.Contains(u, "* VANISHED (EARLIER) 4") {
		t.Fatalf("known-uids: %q", u)
	}
	// A UIDVALIDITY mismatch gives a plain SELECT.
	u = c.ok(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", uv+1, ms))
	mustNotHave(t, u, "* VANISHED")
	if u[0] != "* OK [CLOSED] Previous mailbox closed" {
		t.Fatalf("CLOSED: %q", u)
	}
	// SELECT (CONDSTORE) enables CONDSTORE: MODSEQ in STORE's FETCH.
	d := ts.login(alice, alicePass)
	d.ok("SELECT INBOX (CONDSTORE)")
	u = d.ok(`STORE 1 +FLAGS (\Flagged)`)
	if len(u) != 1 || !regexp.MustCompile(`MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("STORE after SELECT (CONDSTORE): %q", u)
	}
}

func TestShutdownSaysBye(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	idle := ts.login(alice, alicePass)
	idle.ok("SELECT INBOX")
	idle.send("i1 IDLE\r\n")
	idle.read()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{c, idle} {
		if r := cl.read(); !strings.HasPrefix(r, "* BYE") {
			t.Fatalf("shutdown: %q", r)
		}
	}
}

// TestPagedChanges: another session's STORE on more messages than one
// page of changes (changePage), with new messages on later pages, reaches
// a session as one FETCH per changed message in order and one EXISTS,
// and is not reported again.
func TestPagedChanges(t *testing.T) {
	ts := startServer(t, nil)
	n := 2*changePage + changePage/2
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = testMessage(fmt.Sprintf("m%d", i))
	}
	deliver(t, ts.st, alice, "INBOX", bodies...)
	a := ts.login(alice, alicePass)
	b := ts.login(alice, alicePass)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	a.ok(`STORE 1:* +FLAGS.SILENT (\Flagged)`)
	// Two of them change again (a later modseq: a later page).
	a.ok(fmt.Sprintf(`STORE 10,%d +FLAGS.SILENT (\Seen)`, changePage+7))
	// New messages fill the rest of the last page and spill into another.
	extra := changePage
	deliver(t, ts.st, alice, "INBOX", bodies[:extra]...)

	u := b.ok("NOOP")
	// IMAP4rev1: the new messages are \Recent in the session that learns
	// of them first, and RECENT follows EXISTS (RFC 3501 7.3.2).
	if len(u) != n+2 || u[n+1] != fmt.Sprintf("* %d RECENT", extra) {
		t.Fatalf("NOOP after STORE 1:* of %d and %d new: %d responses (first %q, last %q)", n, extra, len(u), u[0], u[len(u)-1])
	}
	// One FETCH per message, with its final flags (in any order).
	seen := map[string]bool{}
	for _, r := range u[:n] {
		seen[r] = true
	}
	for i := 1; i <= n; i++ {
		want := fmt.Sprintf(`* %d FETCH (UID %d FLAGS (\Flagged))`, i, i)
		if i == 10 || i == changePage+7 {
			want = fmt.Sprintf(`* %d FETCH (UID %d FLAGS (\Flagged \Seen))`, i, i)
		}
		if !seen[want] {
			t.Fatalf("no %q among the %d FETCH responses", want, n)
		}
	}
	if want := fmt.Sprintf("* %d EXISTS", n+extra); u[n] != want {
		t.Fatalf("last response %q, want %q", u[n], want)
	}
	if u := b.ok("NOOP"); len(u) != 0 {
		t.Fatalf("second NOOP: %d responses, first %q", len(u), u[0])
	}
	// The new messages are in b's view, with their UIDs.
	u = b.ok(fmt.Sprintf("FETCH %d,%d (UID FLAGS)", n+1, n+extra))
	if !slices.Equal(u, []string{fmt.Sprintf("* %d FETCH (UID %d FLAGS (\\Recent))", n+1, n+1),
		fmt.Sprintf("* %d FETCH (UID %d FLAGS (\\Recent))", n+extra, n+extra)}) {
		t.Fatalf("new messages: %q", u)
	}
}
