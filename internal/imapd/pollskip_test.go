package imapd

import (
	"testing"
	"time"
)

// With an hour's PollInterval only the store's change counter can make a
// session ask the store again: a delivery through the same store must
// still show at the other session's next command, without any wait.
func TestSyncSeesSameNodeDeliveryAtOnce(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.PollInterval = time.Hour })
	deliver(t, ts.st, alice, "INBOX", testMessage("one"))
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	if u := c.ok("NOOP"); len(u) != 0 {
		t.Fatalf("NOOP with nothing new: %q", u)
	}
	deliver(t, ts.st, alice, "INBOX", testMessage("two"))
	mustHave(t, c.ok("NOOP"), "* 2 EXISTS")
	// After FETCH too (EXISTS is allowed there, RFC 9051 7.4.1).
	deliver(t, ts.st, alice, "INBOX", testMessage("three"))
	u := c.ok("UID FETCH 1 (FLAGS)")
	mustHave(t, u, "* 3 EXISTS")
	// Another session's STORE and EXPUNGE on this node.
	o := ts.login(alice, alicePass)
	o.ok("SELECT INBOX")
	o.ok(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	// UID 2 arrived while c had INBOX selected: \Recent to c.
	mustHave(t, c.ok("NOOP"), `* 2 FETCH (UID 2 FLAGS (\Flagged \Recent))`)
	o.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	o.ok("EXPUNGE")
	// Not during FETCH (RFC 9051 7.4.1), but at the next NOOP.
	mustNotHave(t, c.ok("FETCH 1 (FLAGS)"), "* 1 EXPUNGE")
	mustHave(t, c.ok("NOOP"), "* 1 EXPUNGE")
	if u := c.ok("NOOP"); len(u) != 0 {
		t.Fatalf("second NOOP: %q", u)
	}
}

// A second store over the same database is another node: its changes do
// not move this store's counter, so they show only once the last poll is
// PollInterval old.
func TestSyncSeesOtherNodeWithinPollInterval(t *testing.T) {
	const poll = 100 * time.Millisecond
	ts := startServer(t, func(_ *testServer, o *Options) { o.PollInterval = poll })
	deliver(t, ts.st, alice, "INBOX", testMessage("one"))
	other := reopenStore(t, ts)
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.ok("NOOP")
	deliver(t, other, alice, "INBOX", testMessage("two"))
	time.Sleep(poll) // the last poll is now at least PollInterval old
	mustHave(t, c.ok("NOOP"), "* 2 EXISTS")
	deliver(t, other, alice, "INBOX", testMessage("three"))
	time.Sleep(poll)
	mustHave(t, c.ok("UID FETCH 1 (FLAGS)"), "* 3 EXISTS")
}

// Within PollInterval and with no change on this node, the store is not
// asked: another node's delivery waits (here for ever), until a change on
// this node moves the counter.
func TestSyncSkipsPollWithoutLocalChange(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.PollInterval = time.Hour })
	deliver(t, ts.st, alice, "INBOX", testMessage("one"))
	other := reopenStore(t, ts)
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	deliver(t, other, alice, "INBOX", testMessage("two"))
	for range 3 {
		if u := c.ok("NOOP"); len(u) != 0 {
			t.Fatalf("NOOP polled the store: %q", u)
		}
	}
	deliver(t, ts.st, alice, "Sent", testMessage("local"))
	mustHave(t, c.ok("NOOP"), "* 2 EXISTS")
	// The session's own STORE moves the counter too.
	deliver(t, other, alice, "INBOX", testMessage("three"))
	mustHave(t, c.ok(`STORE 1 +FLAGS (\Flagged)`), "* 3 EXISTS")
}
