package imapd

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

type fakeSpace struct{ low atomic.Bool }

func (f *fakeSpace) Low() bool { return f.low.Load() }

// TestAppendBelowDiskReserve: below DISK_RESERVE APPEND gets NO
// [OVERQUOTA] (Dovecot's answer to a full disk) before the literal is
// sent, while EXPUNGE still works; with space again APPEND works (issue 17).
func TestAppendBelowDiskReserve(t *testing.T) {
	space := &fakeSpace{}
	ts := startServer(t, func(_ *testServer, o *Options) { o.Space = space })
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"))
	c := ts.login(alice, alicePass)
	msg := testMessage("draft")

	space.low.Store(true)
	c.send(fmt.Sprintf("a1 APPEND Drafts {%d}\r\n", len(msg)))
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "NO [OVERQUOTA]") {
		t.Fatalf("APPEND below the reserve: %q", tagged)
	}
	// A non-synchronizing literal is skipped, the session stays in step.
	c.send(fmt.Sprintf("a2 APPEND Drafts {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := c.collect("a2"); !strings.HasPrefix(tagged, "NO [OVERQUOTA]") {
		t.Fatalf("APPEND LITERAL+ below the reserve: %q", tagged)
	}
	c.ok("SELECT INBOX")
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if u := c.ok("EXPUNGE"); len(u) != 1 || u[0] != "* 1 EXPUNGE" {
		t.Fatalf("EXPUNGE below the reserve: %q", u)
	}

	space.low.Store(false)
	c.send(fmt.Sprintf("a3 APPEND Drafts {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := c.collect("a3"); !strings.HasPrefix(tagged, "OK [APPENDUID") {
		t.Fatalf("APPEND with space: %q", tagged)
	}
}
