package imapd

import (
	"context"
	"strings"
	"testing"
	"time"
)

// notifyReady logs alice in on two sessions: c is the one under test,
// o another client making changes. Box2 and Box3 exist.
func notifyReady(t *testing.T) (ts *testServer, c, o *client) {
	t.Helper()
	ts = startServer(t, nil)
	c = ts.login(alice, alicePass)
	o = ts.login(alice, alicePass)
	o.ok("CREATE Box2")
	o.ok("CREATE Box3")
	return ts, c, o
}

// RFC 5465 5.2: new mail in a watched mailbox other than the selected
// one is a STATUS, sent between commands, without IDLE or NOOP.
func TestNotifyStatusOtherMailbox(t *testing.T) {
	ts, c, _ := notifyReady(t)
	c.ok("SELECT INBOX")
	c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (MAILBOXES (Box2 Box3) (MessageNew MessageExpunge))")
	deliver(t, ts.st, alice, "Box2", testMessage("one"))
	got := c.waitFor("* STATUS Box2 ", updateWait)
	if last := got[len(got)-1]; !strings.HasPrefix(last, "* STATUS Box2 (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ") {
		t.Fatalf("STATUS: %q", last)
	}
	// The selected mailbox: EXISTS, not STATUS.
	deliver(t, ts.st, alice, "INBOX", testMessage("two"))
	c.waitFor("* 1 EXISTS", updateWait)
	// A mailbox outside the filter says nothing; NOOP returns at once.
	deliver(t, ts.st, alice, "Sent", testMessage("three"))
	mustNotHave(t, c.ok("NOOP"), "* STATUS Sent")
}

// NOTIFY SET STATUS sends the watched mailboxes' STATUS before the
// tagged OK, with the items each event asks for (RFC 5465 3.1, 5.1-5.3).
func TestNotifySetStatus(t *testing.T) {
	ts, c, _ := notifyReady(t)
	deliver(t, ts.st, alice, "Box2", testMessage("one"))
	u := c.ok("NOTIFY SET STATUS (MAILBOXES Box2 (MessageExpunge))")
	mustHave(t, u, "* STATUS Box2 (MESSAGES 1)")
	u = c.ok("NOTIFY SET STATUS (MAILBOXES Box2 (MessageNew))")
	mustHave(t, u, "* STATUS Box2 (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ")
	u = c.ok("NOTIFY SET STATUS (MAILBOXES Box2 (FlagChange))")
	mustHave(t, u, "* STATUS Box2 (UIDVALIDITY ")
	if !strings.Contains(u[0], " HIGHESTMODSEQ ") {
		t.Errorf("FlagChange STATUS without HIGHESTMODSEQ: %q", u)
	}
	if u := c.ok("NOTIFY SET (MAILBOXES Box2 (MessageNew MessageExpunge FlagChange))"); len(u) != 0 {
		t.Errorf("NOTIFY SET without STATUS answered %q", u)
	}
	// PERSONAL covers every mailbox.
	u = c.ok("NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge))")
	for _, box := range []string{"INBOX", "Box2", "Box3", "Sent"} {
		mustHave(t, u, "* STATUS "+box+" (")
	}
}

// RFC 5465 5.4: CREATE, RENAME and DELETE by another client are LIST
// responses; RENAME carries OLDNAME, DELETE \NonExistent.
func TestNotifyMailboxName(t *testing.T) {
	_, c, o := notifyReady(t)
	c.ok("NOTIFY SET (PERSONAL (MailboxName))")
	o.ok("CREATE Fresh")
	c.waitFor(`* LIST (\HasNoChildren) "/" Fresh`, updateWait)
	o.ok("RENAME Fresh Renamed")
	c.waitFor(`* LIST () "/" Renamed ("OLDNAME" (Fresh))`, updateWait)
	o.ok("DELETE Renamed")
	c.waitFor(`* LIST (\NonExistent) "/" Renamed`, updateWait)
	// SUBTREE limits it to one part of the hierarchy.
	c.ok("NOTIFY SET (SUBTREE Box2 (MailboxName))")
	o.ok("CREATE Other")
	o.ok("CREATE Box2/Child")
	got := c.waitFor(`* LIST (\HasNoChildren) "/" Box2/Child`, updateWait)
	mustNotHave(t, got, `* LIST (\HasNoChildren) "/" Other`)
	// A new parent has children.
	c.ok("NOTIFY SET (PERSONAL (MailboxName))")
	o.ok("CREATE Top/Leaf")
	got = c.waitFor(`* LIST (\HasNoChildren) "/" Top/Leaf`, updateWait)
	got = append(got, c.ok("NOOP")...)
	mustHave(t, got, `* LIST (\HasChildren) "/" Top`)
	// The session's own changes are not told back (RFC 5465 5).
	mustNotHave(t, c.ok("CREATE Mine"), "* LIST")
	mustNotHave(t, c.ok("RENAME Mine Mine2"), "* LIST")
	c.ok("SUBSCRIBE Mine2")
	mustNotHave(t, c.ok("DELETE Mine2"), "* LIST")
	o.ok("CREATE Theirs")
	got = c.waitFor(`* LIST (\HasNoChildren) "/" Theirs`, updateWait)
	mustNotHave(t, got, `* LIST (\HasNoChildren) "/" Mine`)
	mustNotHave(t, got, `* LIST () "/" Mine2`)
	mustNotHave(t, got, `* LIST (\NonExistent) "/" Mine2`)
}

// RFC 5465 5.5: SUBSCRIBE and UNSUBSCRIBE elsewhere are LIST responses,
// \Subscribed after a subscribe.
func TestNotifySubscriptionChange(t *testing.T) {
	_, c, o := notifyReady(t)
	c.ok("NOTIFY SET (PERSONAL (SubscriptionChange))")
	o.ok("SUBSCRIBE Box2")
	c.waitFor(`* LIST (\Subscribed) "/" Box2`, updateWait)
	o.ok("UNSUBSCRIBE Box2")
	c.waitFor(`* LIST () "/" Box2`, updateWait)
	// A name that is no mailbox.
	o.ok("SUBSCRIBE Ghost")
	c.waitFor(`* LIST (\NonExistent \Subscribed) "/" Ghost`, updateWait)
}

// RFC 5465 5.1-5.3 on the selected mailbox: new mail is EXISTS and the
// FETCH MessageNew asked for, flag changes FETCH, expunges EXPUNGE, all
// between commands.
func TestNotifySelected(t *testing.T) {
	ts, c, o := notifyReady(t)
	c.ok("SELECT INBOX")
	c.ok("NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge FlagChange))")
	deliver(t, ts.st, alice, "INBOX", testMessage("hello"))
	c.waitFor("* 1 EXISTS", updateWait)
	got := c.waitFor("* 1 FETCH (UID 1 BODY[HEADER.FIELDS (Subject)] {", updateWait)
	if !strings.Contains(got[len(got)-1], "Subject: hello") {
		t.Errorf("MessageNew FETCH: %q", got)
	}
	o.ok("SELECT INBOX")
	o.ok(`STORE 1 +FLAGS (\Flagged)`)
	c.waitFor(`* 1 FETCH (UID 1 FLAGS (\Flagged`, updateWait)
	o.ok(`STORE 1 +FLAGS (\Deleted)`)
	o.ok("EXPUNGE")
	c.waitFor("* 1 EXPUNGE", updateWait)

	// Without FlagChange the flags stay quiet; new mail still shows.
	c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
	deliver(t, ts.st, alice, "INBOX", testMessage("two"))
	c.waitFor("* 1 EXISTS", updateWait)
	o.ok(`UID STORE 2 +FLAGS (\Answered)`)
	deliver(t, ts.st, alice, "INBOX", testMessage("three"))
	got = c.waitFor("* 2 EXISTS", updateWait)
	mustNotHave(t, got, "* 1 FETCH")
}

// SELECTED-DELAYED keeps expunges for a command that allows them (RFC
// 5465 6.1.2); new mail still comes at once.
func TestNotifySelectedDelayed(t *testing.T) {
	ts, c, o := notifyReady(t)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"))
	c.ok("SELECT INBOX")
	c.ok("NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))")
	o.ok("SELECT INBOX")
	o.ok(`STORE 1 +FLAGS (\Deleted)`)
	o.ok("EXPUNGE")
	deliver(t, ts.st, alice, "INBOX", testMessage("two"))
	got := c.waitFor("* 2 EXISTS", updateWait)
	mustNotHave(t, got, "* 1 EXPUNGE")
	mustNotHave(t, c.ok("FETCH 1 (FLAGS)"), "* 1 EXPUNGE")
	mustHave(t, c.ok("NOOP"), "* 1 EXPUNGE")
}

// NOTIFY NONE stops the notifications.
func TestNotifyNone(t *testing.T) {
	ts, c, _ := notifyReady(t)
	c.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
	deliver(t, ts.st, alice, "Box2", testMessage("one"))
	c.waitFor("* STATUS Box2 ", updateWait)
	c.ok("NOTIFY NONE")
	deliver(t, ts.st, alice, "Box2", testMessage("two"))
	// Nothing arrives: the next line read is STATUS's own answer.
	u := c.ok("STATUS Box3 (MESSAGES)")
	mustNotHave(t, u, "* STATUS Box2")
}

// During IDLE NOTIFY's events are what IDLE sends (RFC 5465 4).
func TestNotifyInIdle(t *testing.T) {
	ts, c, _ := notifyReady(t)
	c.ok("SELECT INBOX")
	c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (MAILBOXES Box2 (MessageNew MessageExpunge))")
	c.send("i1 IDLE\r\n")
	if r := c.read(); r != "+ idling" {
		t.Fatalf("IDLE: %q", r)
	}
	deliver(t, ts.st, alice, "Box2", testMessage("one"))
	c.waitFor("* STATUS Box2 (MESSAGES 1 ", updateWait)
	deliver(t, ts.st, alice, "INBOX", testMessage("two"))
	c.waitFor("* 1 EXISTS", updateWait)
	c.send("DONE\r\n")
	c.collect("i1")
}

// Wrong event groups are BAD (RFC 5465 5, 6.1); unsupported events NO
// [BADEVENT] with the supported list (RFC 5465 3.1).
func TestNotifyErrors(t *testing.T) {
	ts, c, _ := notifyReady(t)
	for _, cmd := range []string{
		"NOTIFY SET (SELECTED (MessageNew))",
		"NOTIFY SET (SELECTED (FlagChange))",
		"NOTIFY SET (SELECTED (MailboxName))",
		"NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))",
		"NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))",
		"NOTIFY SET (NOWHERE (MessageNew MessageExpunge))",
		"NOTIFY SET",
		"NOTIFY SOMETIMES",
		"NOTIFY SET (MAILBOXES (MessageNew MessageExpunge)",
	} {
		c.expect(cmd, "BAD")
	}
	c.expect("NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))", "NO [BADEVENT "+supportedEvents+"]")
	c.expect("NOTIFY SET (PERSONAL (MailboxMetadataChange))", "NO [BADEVENT")
	// A refused SET leaves no NOTIFY on.
	deliver(t, ts.st, alice, "Box2", testMessage("one"))
	mustNotHave(t, c.ok("NOOP"), "* STATUS")
}

// More changes at once than the session will send: NOTIFICATIONOVERFLOW
// and NOTIFY is off (RFC 5465 5.8).
func TestNotifyOverflow(t *testing.T) {
	ts, c, o := notifyReady(t)
	ts.srv.notifyMax = 2
	o.ok("CREATE Tree/a")
	o.ok("CREATE Tree/b")
	c.ok("NOTIFY SET (PERSONAL (MailboxName))")
	o.ok("RENAME Tree Moved") // three names change in one commit
	c.waitFor("* OK [NOTIFICATIONOVERFLOW]", updateWait)
	o.ok("CREATE Later")
	deliver(t, ts.st, alice, "Box2", testMessage("one"))
	mustNotHave(t, c.ok("NOOP"), "* LIST")
}

// An idle NOTIFY session asks the store nothing while nothing changes
// (issue 16), and a change costs one look.
func TestNotifyCostsNoQueries(t *testing.T) {
	const poll = 10 * time.Millisecond
	ts := startServer(t, func(_ *testServer, o *Options) { o.PollInterval = poll })
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MessageNew MessageExpunge MailboxName))")
	queriesStay(t, ts.st, 30*poll)
	if _, err := ts.st.CreateMailbox(context.Background(), alice, "New", ""); err != nil {
		t.Fatal(err)
	}
	c.waitFor(`* LIST (\HasNoChildren) "/" New`, updateWait)
}

// On PostgreSQL another node's delivery reaches a NOTIFY session on this
// node through LISTEN/NOTIFY.
func TestNotifyOtherNodePG(t *testing.T) {
	a, b, _ := pgNodes(t)
	ts := startServer(t, func(_ *testServer, o *Options) { o.Store = b })
	ts.st = b
	waitRealtime(t, b, true)
	c := ts.login(alice, alicePass)
	c.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName))")
	start := time.Now()
	deliver(t, a, alice, "INBOX", testMessage("one"))
	c.waitFor("* STATUS INBOX (MESSAGES 1 UIDNEXT 2 ", updateWait)
	t.Logf("node A's delivery reached NOTIFY on node B after %v", time.Since(start))
	if _, err := a.CreateMailbox(context.Background(), alice, "FromA", ""); err != nil {
		t.Fatal(err)
	}
	c.waitFor(`* LIST (\HasNoChildren) "/" FromA`, updateWait)
}
