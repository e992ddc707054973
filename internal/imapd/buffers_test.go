package imapd

import (
	"strings"
	"testing"
)

// TestSessionBuffersReturned: sessions that end while a goroutine of
// theirs waits on the connection (IDLE, NOTIFY) give their pooled
// buffers back only after it; the sessions after them, which take the
// same buffers, still read and write whole responses. Under -race a
// buffer handed on while the old reader still used it is a reported race.
func TestSessionBuffersReturned(t *testing.T) {
	t.Run("ended by the shutdown while waiting", func(t *testing.T) {
		ts, c, o := notifyReady(t)
		c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
		o.ok("SELECT INBOX")
		o.send("i1 IDLE\r\n")
		if r := o.read(); r != "+ idling" {
			t.Fatalf("IDLE: %q", r)
		}
		deliver(t, ts.st, alice, "INBOX", testMessage("one"))
		o.waitFor("* 1 EXISTS", updateWait)
		// The server's shutdown, at the subtest's end, ends both.
	})
	t.Run("ended by the client while waiting", func(t *testing.T) {
		ts, c, o := notifyReady(t)
		c.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
		o.ok("SELECT INBOX")
		o.send("i1 IDLE\r\n")
		o.read()
		c.conn.Close()
		o.conn.Close()
		// Later sessions on the same server.
		deliver(t, ts.st, alice, "INBOX", testMessage("two"))
		for range 4 {
			n := ts.login(alice, alicePass)
			n.ok("SELECT INBOX")
			lines := n.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
			if !strings.Contains(strings.Join(lines, "\n"), "Subject: two") {
				t.Fatalf("FETCH: %q", lines)
			}
			n.expect("LOGOUT", "OK")
		}
	})
}
