package imapd

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// pipeConn is a trackedConn over one end of a net.Pipe.
type pipeConn struct {
	net.Conn
	ctx context.Context
}

func (c *pipeConn) Context() context.Context { return c.ctx }
func (c *pipeConn) Remote() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 1234)
}
func (c *pipeConn) Draining() bool        { return false }
func (c *pipeConn) ClaimUser(string) bool { return true }
func (c *pipeConn) SetBusy(bool)          {}
func (c *pipeConn) Linger(net.Conn)       {}
func (c *pipeConn) ReleaseUser()          {}

// runSession feeds input to one session over a pipe, after a login and a
// SELECT, and returns what the server wrote. The session must end by
// itself once the input is exhausted (its read times out).
func runSession(t testing.TB, srv *Server, input []byte) string {
	t.Helper()
	cli, sv := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sv.Close()
		newSession(srv, &pipeConn{Conn: sv, ctx: ctx}, srv.log).run()
	}()
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(bufio.NewReader(cli))
		out <- string(b)
	}()
	prefix := "p1 LOGIN " + quote(alice) + " " + quote(alicePass) + "\r\np2 SELECT INBOX\r\n"
	_ = cli.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(cli, prefix)
	_, _ = cli.Write(input)
	_, _ = io.WriteString(cli, "\r\nzz LOGOUT\r\n")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("session did not end; input %q", input)
	}
	cli.Close()
	return <-out
}

// FuzzSession throws arbitrary bytes at a logged-in session with a mailbox
// selected: it must never panic or hang, and every tagged command gets
// an answer or the session says BYE.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"a NOOP\r\n",
		"a LIST \"\" *\r\nb LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (% \"a*\") RETURN (STATUS (MESSAGES HIGHESTMODSEQ) CHILDREN)\r\n",
		"a APPEND INBOX (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" {5+}\r\nhello\r\n",
		"a APPEND INBOX {5}\r\nhello\r\n",
		"a STORE 1:* +FLAGS.SILENT (\\Deleted $x)\r\nb UID EXPUNGE 1:*\r\n",
		"a STORE 1 (UNCHANGEDSINCE 5) FLAGS \\Seen\r\n",
		"a COPY 1 Trash\r\nb UID MOVE 1:* Junk\r\nc EXPUNGE\r\n",
		"a SELECT INBOX (QRESYNC (1 2 1:9 (1:2 3:4)))\r\nb ENABLE QRESYNC CONDSTORE IMAP4rev2\r\n",
		"a CREATE \"x/y\" (USE (\\Archive))\r\nb RENAME x z\r\nc DELETE z/y\r\n",
		"a STATUS INBOX (MESSAGES UNSEEN SIZE)\r\nb ID (\"name\" {3+}\r\nabc)\r\n",
		"a IDLE\r\nDONE\r\n",
		"a FETCH 1:* (SAVEDATE EMAILID THREADID PREVIEW (LAZY))\r\nb FETCH 1 PREVIEW (LAZY)\r\n",
		"a SEARCH SAVEDBEFORE 1-Jan-2020 OLDER 5 YOUNGER 9 EMAILID E1 THREADID T1 SAVEDATESUPPORTED\r\n",
		"a STATUS INBOX (MAILBOXID SIZE RECENT)\r\nb CREATE x (USE (\\Junk \\Trash))\r\n",
		"a COMPRESS DEFLATE\r\n",
		"a NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge FlagChange)) (SUBTREE (x \"y\") (MailboxName SubscriptionChange))\r\nb NOTIFY NONE\r\n",
		"a AUTHENTICATE PLAIN\r\n*\r\n",
		"a GETQUOTAROOT INBOX\r\nb GETQUOTA \"\"\r\n",
		"{999999999+}\r\n",
		"a \"unterminated\r\n",
		"\r\n\r\n)(*%\r\n",
		"a UID FETCH 1:* (FLAGS)\r\nb SEARCH ALL\r\n",
		// issue 17: an unterminated over-long line is answered and closed
		"a LOGIN " + strings.Repeat("x", 5000),
		"a AUTHENTICATE PLAIN\r\n" + strings.Repeat("QUFB", 1500),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	st := openStore(f, dir)
	deliver(f, st, alice, "INBOX", testMessage("one"), testMessage("two"))
	srv := New(Options{
		NoTLS: true, Hostname: testHost, Auth: newFakeAuth(), Store: st,
		Logger:        slog.New(slog.DiscardHandler),
		IdleTimeout:   300 * time.Millisecond,
		MaxLineLength: 4096, MaxMessageSize: 1 << 16,
	})
	f.Fuzz(func(t *testing.T, input []byte) {
		out := runSession(t, srv, input)
		if !strings.HasPrefix(out, "* OK [CAPABILITY") {
			t.Fatalf("no greeting: %q", out)
		}
		if !strings.Contains(out, "p1 OK") {
			t.Fatalf("login failed: %q", out)
		}
		// After COMPRESS DEFLATE the rest, BYE included, is deflated
		// (and the fuzzed bytes after it are no DEFLATE stream).
		if !strings.Contains(out, "* BYE") && !strings.Contains(out, " OK DEFLATE active\r\n") {
			t.Fatalf("session ended without BYE: %q", out)
		}
	})
}
