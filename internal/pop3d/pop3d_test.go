package pop3d

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

var (
	msg1 = "From: a@remote.test\r\nSubject: one\r\n\r\nfirst body\r\nline two\r\nline three\r\n"
	msg2 = "From: b@remote.test\r\nSubject: two\r\n\r\nsecond\r\n"
	msg3 = "Subject: three\r\n\r\n" + strings.Repeat("a line of the third message\r\n", 300) // a blob
)

func TestCommands(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1, msg2, msg3)
	c := e.dial()

	// AUTHORIZATION state.
	c.expect("CAPA", "+OK")
	capa := c.lines()
	for _, want := range []string{"TOP", "UIDL", "USER", "SASL PLAIN LOGIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION Petrel"} {
		if !slices.Contains(capa, want) {
			t.Errorf("CAPA before login lacks %q: %q", want, capa)
		}
	}
	if slices.Contains(capa, "STLS") {
		t.Errorf("995 offers STLS: %q", capa)
	}
	c.expect("STAT", "-ERR Log in first")
	c.expect("PASS x", "-ERR Send USER first")
	c.expect("APOP alice 0123", "-ERR APOP is not supported")
	c.login(alice, alicePass)
	if at := e.auth.Last(); at.Protocol != "pop3" || at.Port != 995 || at.Username != alice ||
		string(at.Password) != alicePass || at.Remote != loopback {
		t.Errorf("attempt %+v", at)
	}

	// TRANSACTION state.
	c.expect("CAPA", "+OK")
	capa = c.lines()
	if slices.Contains(capa, "USER") || slices.Contains(capa, "SASL PLAIN LOGIN") || !slices.Contains(capa, "UIDL") {
		t.Errorf("CAPA after login: %q", capa)
	}
	sizes := []int{len(msg1), len(msg2), len(msg3)}
	total := sizes[0] + sizes[1] + sizes[2]
	c.expect("STAT", fmt.Sprintf("+OK 3 %d", total))
	c.expect("LIST", "+OK 3 messages")
	if got := c.lines(); !slices.Equal(got, []string{"1 " + strconv.Itoa(sizes[0]), "2 " + strconv.Itoa(sizes[1]), "3 " + strconv.Itoa(sizes[2])}) {
		t.Errorf("LIST: %q", got)
	}
	c.expect("LIST 2", fmt.Sprintf("+OK 2 %d", sizes[1]))
	c.expect("UIDL", "+OK")
	uidl := c.lines()
	mb := inboxMailbox(t, e)
	for i, l := range uidl {
		want := fmt.Sprintf("%d %08X%08X", i+1, i+1, mb.UIDValidity)
		if l != want {
			t.Errorf("UIDL line %d: %q, want %q", i, l, want)
		}
	}
	if len(uidl) != 3 {
		t.Fatalf("UIDL: %q", uidl)
	}
	c.expect("UIDL 3", "+OK 3 "+strings.Fields(uidl[2])[1])
	for i, m := range []string{msg1, msg2, msg3} {
		c.expect(fmt.Sprintf("RETR %d", i+1), fmt.Sprintf("+OK %d octets", len(m)))
		if got := string(c.multi()); got != m {
			t.Errorf("RETR %d: %q", i+1, got)
		}
	}
	c.expect("TOP 1 0", "+OK")
	if got := string(c.multi()); got != "From: a@remote.test\r\nSubject: one\r\n\r\n" {
		t.Errorf("TOP 1 0: %q", got)
	}
	c.expect("TOP 1 2", "+OK")
	if got := string(c.multi()); got != "From: a@remote.test\r\nSubject: one\r\n\r\nfirst body\r\nline two\r\n" {
		t.Errorf("TOP 1 2: %q", got)
	}
	c.expect("TOP 2 99", "+OK")
	if got := string(c.multi()); got != msg2 {
		t.Errorf("TOP 2 99: %q", got)
	}
	c.expect("NOOP", "+OK")
	c.expect("top 1 1", "+OK") // commands are case-insensitive
	c.multi()

	c.expect("DELE 2", "+OK Message 2 marked for deletion")
	c.expect("DELE 2", "-ERR Message 2 is deleted")
	c.expect("RETR 2", "-ERR Message 2 is deleted")
	c.expect("LIST 2", "-ERR Message 2 is deleted")
	c.expect("TOP 2 1", "-ERR Message 2 is deleted")
	c.expect("STAT", fmt.Sprintf("+OK 2 %d", sizes[0]+sizes[2]))
	c.expect("LIST", "+OK 2 messages")
	if got := c.lines(); len(got) != 2 || !strings.HasPrefix(got[1], "3 ") {
		t.Errorf("LIST after DELE: %q", got)
	}
	c.expect("UIDL", "+OK")
	if got := c.lines(); len(got) != 2 || got[0] != uidl[0] || got[1] != uidl[2] {
		t.Errorf("UIDL after DELE: %q", got)
	}
	c.expect("RSET", "+OK 1 messages unmarked")
	c.expect("STAT", fmt.Sprintf("+OK 3 %d", total))

	// Bad arguments: clear -ERR, session goes on.
	for _, bad := range []struct{ cmd, want string }{
		{"LIST 0", "-ERR There is no such message"},
		{"LIST 4", "-ERR There is no such message"},
		{"LIST 99999999999999999999", "-ERR There is no such message"},
		{"LIST x", "-ERR Invalid message number"},
		{"LIST -1", "-ERR Invalid message number"},
		{"LIST +1", "-ERR Invalid message number"},
		{"LIST 1 2", "-ERR Too many arguments"},
		{"RETR", "-ERR Message number required"},
		{"RETR 1x", "-ERR Invalid message number"},
		{"TOP 1", "-ERR Use TOP message lines"},
		{"TOP 1 -1", "-ERR Invalid number of lines"},
		{"TOP 1 2 3", "-ERR Use TOP message lines"},
		{"DELE", "-ERR Message number required"},
		{"STAT 1", "-ERR STAT takes no arguments"},
		{"USER bob@example.test", "-ERR Already logged in"},
	} {
		c.expect(bad.cmd, bad.want)
	}
	c.expect("XYZZY", "-ERR Unknown command")
	c.expect("NOOP", "+OK") // still alive
	c.expect("QUIT", "+OK Logging out, 0 messages deleted.")
	c.eof()
	if n := len(inboxOf(t, e.st, alice)); n != 3 {
		t.Fatalf("%d messages after QUIT without DELE", n)
	}
}

func inboxMailbox(t *testing.T, e *testEnv) store.Mailbox {
	t.Helper()
	mbs, err := e.st.ListMailboxes(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mbs {
		if m.Name == "INBOX" {
			return m
		}
	}
	t.Fatal("no INBOX")
	return store.Mailbox{}
}

// TestByteStuffingRoundTrip: what RETR delivers, unstuffed, is the stored
// message with CRLF line ends, and LIST announces exactly its size.
func TestByteStuffingRoundTrip(t *testing.T) {
	e := start(t, true, nil)
	bodies := []string{
		"Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\n...three\r\n. \r\nend\r\n",
		".starts with a dot\r\n\r\n.\r\n",
		"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße, 日本語, \xff\xfe raw bytes\r\n.ünïcode\r\n",
		"Subject: long\r\n\r\n" + strings.Repeat("x", 20000) + "\r\n." + strings.Repeat("y", 9000) + "\r\n",
		"Subject: bare LF\n\nline one\n.dot line\nlast\n",
		"Subject: no final newline\r\n\r\nno end",
		"Subject: CR end\r\n\r\nends in CR\r",
		"Subject: mixed\r\n\r\na\nb\r\n\n.\n",
	}
	put(t, e.st, alice, bodies...)
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("LIST", "+OK")
	list := c.lines()
	var total int
	for i, b := range bodies {
		want := normalize(b)
		total += len(want)
		if list[i] != fmt.Sprintf("%d %d", i+1, len(want)) {
			t.Errorf("LIST line %q, want size %d", list[i], len(want))
		}
		c.expect(fmt.Sprintf("RETR %d", i+1), fmt.Sprintf("+OK %d octets", len(want)))
		if got := string(c.multi()); got != want {
			t.Errorf("RETR %d:\n got %q\nwant %q", i+1, trunc(got), trunc(want))
		}
	}
	c.expect("STAT", fmt.Sprintf("+OK %d %d", len(bodies), total))
	// TOP stuffs too, and counts body lines after the blank line.
	c.expect("TOP 1 2", "+OK")
	if got := string(c.multi()); got != "Subject: dots\r\n\r\n.\r\n..\r\n" {
		t.Errorf("TOP 1 2: %q", got)
	}
	c.expect("TOP 5 1", "+OK")
	if got := string(c.multi()); got != "Subject: bare LF\r\n\r\nline one\r\n" {
		t.Errorf("TOP 5 1: %q", got)
	}
	c.expect("QUIT", "+OK")
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:150] + "..." + s[len(s)-150:]
	}
	return s
}

func TestDeleQuitExpunges(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1, msg2, msg3)
	before := usedQuota(t, e.st, alice)
	if before != int64(len(msg1)+len(msg2)+len(msg3)) {
		t.Fatalf("quota_bytes_used %d before", before)
	}
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("UIDL 3", "+OK")
	c.expect("DELE 1", "+OK")
	c.expect("DELE 3", "+OK")
	c.expect("QUIT", "+OK Logging out, 2 messages deleted.")
	c.eof()
	left := inboxOf(t, e.st, alice)
	if len(left) != 1 || left[0].UID != 2 {
		t.Fatalf("left: %+v", left)
	}
	if q := usedQuota(t, e.st, alice); q != int64(len(msg2)) {
		t.Fatalf("quota_bytes_used %d after expunge, want %d", q, len(msg2))
	}
	eventually(t, "logout line", func() bool {
		return strings.Contains(e.logs.String(), "pop3 logout") && strings.Contains(e.logs.String(), "deleted=2")
	})

	// The survivor keeps its number 1 and its UIDL in a new session.
	c = e.dial()
	c.login(alice, alicePass)
	c.expect("UIDL", "+OK")
	mb := inboxMailbox(t, e)
	if got := c.lines(); len(got) != 1 || got[0] != fmt.Sprintf("1 %08X%08X", 2, mb.UIDValidity) {
		t.Fatalf("UIDL: %q", got)
	}
	c.expect("QUIT", "+OK")
}

func TestDeleWithoutQuitKeeps(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1, msg2)
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("DELE 1", "+OK")
	c.expect("DELE 2", "+OK")
	c.conn.Close() // RFC 1939 6: no QUIT, no UPDATE state
	eventually(t, "session end", func() bool { return strings.Contains(e.logs.String(), "pop3 logout") })
	if n := len(inboxOf(t, e.st, alice)); n != 2 {
		t.Fatalf("%d messages left, want 2", n)
	}
	if !strings.Contains(e.logs.String(), "kept_marked=2") || !strings.Contains(e.logs.String(), "reason=disconnect") {
		t.Errorf("logout line: %s", e.logs.String())
	}
}

func TestRsetBeforeQuit(t *testing.T) {
	e := start(t, false, func(o *Options) { o.NoTLS, o.TLSConfig = true, nil })
	put(t, e.st, alice, msg1, msg2)
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("DELE 1", "+OK")
	c.expect("RSET", "+OK 1 messages unmarked, maildrop has 2 messages")
	c.expect("DELE 2", "+OK")
	c.expect("QUIT", "+OK Logging out, 1 messages deleted.")
	left := inboxOf(t, e.st, alice)
	if len(left) != 1 || left[0].UID != 1 {
		t.Fatalf("left: %+v", left)
	}
}

// TestSnapshot: a message delivered during a session shows up in the next
// one only (RFC 1939 5).
func TestSnapshot(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1)
	c := e.dial()
	c.login(alice, alicePass)
	put(t, e.st, alice, msg2)
	c.expect("STAT", fmt.Sprintf("+OK 1 %d", len(msg1)))
	c.expect("RETR 2", "-ERR There is no such message")
	c.expect("DELE 1", "+OK")
	c.expect("QUIT", "+OK Logging out, 1 messages deleted.")
	c = e.dial()
	c.login(alice, alicePass)
	c.expect("STAT", fmt.Sprintf("+OK 1 %d", len(msg2)))
	c.expect("QUIT", "+OK")
}

// TestEmptyNewUser: a user who never got mail gets an empty maildrop
// (and the default mailboxes).
func TestEmptyNewUser(t *testing.T) {
	e := start(t, true, nil)
	c := e.dial()
	c.login(bob, bobPass)
	c.expect("STAT", "+OK 0 0")
	c.expect("LIST", "+OK 0 messages")
	if got := c.lines(); len(got) != 0 {
		t.Fatalf("LIST: %q", got)
	}
	c.expect("RETR 1", "-ERR There is no such message")
	c.expect("QUIT", "+OK")
	mbs, err := e.st.ListMailboxes(context.Background(), bob)
	if err != nil || len(mbs) != len(store.DefaultMailboxes) {
		t.Fatalf("bob's mailboxes: %v %v", mbs, err)
	}
}

// TestExpungedElsewhere: a message removed by another session after the
// snapshot gets a clear -ERR once its body is gone (the store releases
// bodies in the background; until then RETR still returns it), and QUIT
// still works.
func TestExpungedElsewhere(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1, msg2)
	c := e.dial()
	c.login(alice, alicePass)
	first := inboxOf(t, e.st, alice)[0]
	if err := e.st.ExpungeMessages(context.Background(), alice, "INBOX", []uint32{1}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := e.st.OpenBody(context.Background(), first.BodyID)
		if err == nil {
			r.Close()
		}
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("body of the expunged message still there 20 s later: %v", err)
		}
	}
	c.expect("STAT", fmt.Sprintf("+OK 2 %d", len(msg1)+len(msg2))) // its stored size still counts
	c.expect("RETR 1", "-ERR Message 1 was deleted by another session")
	c.expect("RETR 2", "+OK")
	c.multi()
	c.expect("DELE 1", "+OK")
	c.expect("QUIT", "+OK Logging out, 1 messages deleted.")
	if n := len(inboxOf(t, e.st, alice)); n != 1 {
		t.Fatalf("%d left", n)
	}
}

func TestSTLS(t *testing.T) {
	e := start(t, false, nil)
	put(t, e.st, alice, msg1)
	c := e.dial()
	c.expect("CAPA", "+OK")
	capa := c.lines()
	if !slices.Contains(capa, "STLS") || slices.Contains(capa, "USER") || slices.Contains(capa, "SASL PLAIN LOGIN") {
		t.Fatalf("CAPA before STLS: %q", capa)
	}
	c.expect("USER "+alice, "-ERR Authentication canceled. Use STLS first")
	c.expect("PASS "+alicePass, "-ERR Authentication canceled. Use STLS first")
	c.expect("AUTH PLAIN "+plainIR("", alice, alicePass), "-ERR Authentication canceled. Use STLS first")
	c.expect("AUTH", "-ERR Authentication canceled. Use STLS first")
	c.expect("STLS x", "-ERR STLS takes no arguments")
	if n := len(e.auth.Attempts()); n != 0 {
		t.Fatalf("%d attempts reached the auth core before TLS", n)
	}
	c.starttls(e.cert.Client)
	c.expect("CAPA", "+OK")
	capa = c.lines()
	if slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") || !slices.Contains(capa, "SASL PLAIN LOGIN") {
		t.Fatalf("CAPA after STLS: %q", capa)
	}
	c.expect("STLS", "-ERR TLS is already active")
	c.login(alice, alicePass)
	if at := e.auth.Last(); at.Port != 110 || at.Protocol != "pop3" {
		t.Errorf("attempt %+v", at)
	}
	c.expect("RETR 1", "+OK")
	if got := string(c.multi()); got != msg1 {
		t.Errorf("RETR over STLS: %q", got)
	}
	c.expect("QUIT", "+OK")
}

// TestSTLSInjection: plaintext pipelined after STLS is dropped, not run
// inside TLS (CVE-2011-0411).
func TestSTLSInjection(t *testing.T) {
	e := start(t, false, nil)
	c := e.dial()
	c.send("STLS\r\nCAPA")
	c.line() // +OK Begin TLS
	tc := tlsClient(t, c, e)
	tc.expect("NOOP", "-ERR Log in first") // the answer to NOOP, not to the injected CAPA
	if !strings.Contains(e.logs.String(), "plaintext after STLS discarded") {
		t.Errorf("no log of the discarded bytes")
	}
}

func tlsClient(t *testing.T, c *client, e *testEnv) *client {
	t.Helper()
	tc := tlsHandshake(t, c.conn, e)
	return &client{t: t, conn: tc, r: newReader(tc)}
}

func TestNoTLSPlaintextLogin(t *testing.T) {
	e := start(t, false, func(o *Options) { o.NoTLS, o.TLSConfig = true, nil })
	put(t, e.st, alice, msg1)
	c := e.dial()
	c.expect("CAPA", "+OK")
	capa := c.lines()
	if slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") {
		t.Fatalf("CAPA with NoTLS: %q", capa)
	}
	c.expect("STLS", "-ERR STLS is not available")
	c.login(alice, alicePass)
	c.expect("STAT", "+OK 1 ")
	c.expect("QUIT", "+OK")
}

func TestServeRefusesUnusableOptions(t *testing.T) {
	a, st := newFakeAuth(), openStore(t)
	for name, o := range map[string]Options{
		"995 without certificate":       {Implicit: true, Hostname: testHost, Auth: a, Store: st},
		"110 without certificate":       {Hostname: testHost, Auth: a, Store: st},
		"no hostname":                   {NoTLS: true, Auth: a, Store: st},
		"no store":                      {NoTLS: true, Hostname: testHost, Auth: a},
		"no authenticator":              {NoTLS: true, Hostname: testHost, Store: st},
		"995 without certificate notls": {Implicit: true, NoTLS: true, Hostname: testHost, Auth: a, Store: st},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := New(o).Serve(ln); err == nil || !strings.HasPrefix(err.Error(), "pop3d: ") {
			t.Errorf("%s: Serve = %v", name, err)
		}
		ln.Close()
	}
}

func TestAuthFailureReplies(t *testing.T) {
	e := start(t, true, nil)
	c := e.dial()
	c.expect("USER "+alice, "+OK")
	c.expect("PASS wrong", "-ERR [AUTH] Authentication failed")
	e.auth.SetFail(auth.ErrRateLimited)
	c.expect("USER "+alice, "+OK")
	c.expect("PASS "+alicePass, "-ERR [LOGIN-DELAY] Retry later")
	e.auth.SetFail(fmt.Errorf("database down"))
	c.expect("AUTH PLAIN "+plainIR("", alice, alicePass), "-ERR [SYS/TEMP] ")
	c.eof() // three failures: the server hangs up
	if strings.Contains(e.logs.String(), alicePass) || strings.Contains(e.logs.String(), plainIR("", alice, alicePass)) {
		t.Errorf("a password reached the log:\n%s", e.logs.String())
	}

	// A fresh connection may log in again.
	e.auth.SetFail(nil)
	c = e.dial()
	c.login(alice, alicePass)
	c.expect("QUIT", "+OK")
}

func TestIdleTimeout(t *testing.T) {
	e := start(t, true, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	put(t, e.st, alice, msg1)
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("DELE 1", "+OK")
	if got := c.line(); got != "-ERR Disconnected for inactivity." {
		t.Fatalf("after idling: %q", got)
	}
	c.eof()
	if n := len(inboxOf(t, e.st, alice)); n != 1 {
		t.Fatalf("a timed-out session deleted messages: %d left", n)
	}
	eventually(t, "logout", func() bool { return strings.Contains(e.logs.String(), "reason=timeout") })

	// Before login too.
	c = e.dial()
	if got := c.line(); got != "-ERR Disconnected for inactivity." {
		t.Fatalf("idle before login: %q", got)
	}
	c.eof()
}

func TestPerIPLimit(t *testing.T) {
	e := start(t, true, func(o *Options) { o.MaxConnsPerIP = 2 })
	a, b := e.dial(), e.dial()
	c := e.dialRaw()
	if got := c.line(); got != "-ERR [SYS/TEMP] Too many connections from your address, try again later" {
		t.Fatalf("third connection: %q", got)
	}
	c.eof()
	a.expect("QUIT", "+OK")
	a.eof()
	eventually(t, "a free slot", func() bool { return e.srv.connCount() < 2 })
	d := e.dial()
	d.expect("NOOP", "-ERR Log in first")
	b.expect("NOOP", "-ERR Log in first")
}

func TestPerUserIPLimit(t *testing.T) {
	e := start(t, true, func(o *Options) { o.MaxConnsPerUserIP = 1 })
	a := e.dial()
	a.login(alice, alicePass)
	b := e.dial()
	b.expect("USER "+alice, "+OK")
	b.expect("PASS "+alicePass, "-ERR [IN-USE] ")
	b.login(bob, bobPass) // another user is fine
	a.expect("QUIT", "+OK")
	a.eof()
	eventually(t, "alice's slot freed", func() bool {
		c := e.dial()
		defer c.conn.Close()
		c.expect("USER "+alice, "+OK")
		ok := strings.HasPrefix(c.cmd("PASS "+alicePass), "+OK")
		return ok
	})
}

func TestLineLimits(t *testing.T) {
	e := start(t, true, func(o *Options) { o.MaxLineLength = 512 })
	c := e.dial()
	for i := 0; i < maxBadCommands-1; i++ {
		c.expect("FOO", "-ERR Unknown command")
	}
	c.expect("FOO", "-ERR Too many bad commands")
	c.eof()
}

// TestOversizedLineAnswersAndCloses: a line over the limit gets -ERR and
// the connection is closed at once, without reading on until a line end
// that may never come (issue 17); also for a SASL response line.
func TestOversizedLineAnswersAndCloses(t *testing.T) {
	e := start(t, true, func(o *Options) { o.MaxLineLength = 512 })
	check := func(name string, c *client) {
		t.Helper()
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if l := c.line(); !strings.HasPrefix(l, "-ERR") || !strings.Contains(l, "too long") {
			t.Errorf("%s: reply %q, want -ERR ... too long", name, l)
		}
		c.eof()
	}
	c := e.dial()
	// No line end. The server may hang up before all of it is sent: the
	// write's error does not matter, the reply does.
	_, _ = io.WriteString(c.conn, strings.Repeat("A", 5000))
	check("command", c)

	c = e.dial()
	c.expect("AUTH PLAIN", "+ ")
	_, _ = io.WriteString(c.conn, strings.Repeat("QUFB", 2000))
	check("SASL response", c)
	if !strings.Contains(e.logs.String(), "line too long") {
		t.Errorf("no log line:\n%s", e.logs)
	}
}

func TestShutdownDrains(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1)
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("DELE 1", "+OK")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.line(); got != "-ERR [SYS/TEMP] Server shutting down, try again later" {
		t.Fatalf("at shutdown: %q", got)
	}
	c.eof()
	if n := len(inboxOf(t, e.st, alice)); n != 1 {
		t.Fatalf("shutdown expunged: %d left", n)
	}
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// TestShutdownTimeout: a client that never reads cannot hold Shutdown
// past its context.
func TestShutdownTimeout(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, strings.Repeat("Subject: big\r\n", 1)+"\r\n"+strings.Repeat("0123456789abcdef\r\n", 400000))
	c := e.dial()
	c.login(alice, alicePass)
	c.send("RETR 1") // 7 MB the client never reads
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil while a session was stuck writing")
	}
	if n := e.srv.connCount(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
}

func TestLogLines(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1, msg2)
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("RETR 1", "+OK")
	c.multi()
	c.expect("RETR 2", "+OK")
	c.multi()
	c.expect("DELE 1", "+OK")
	c.expect("QUIT", "+OK")
	c.eof()
	eventually(t, "logout", func() bool { return strings.Contains(e.logs.String(), "pop3 logout") })
	logs := e.logs.String()
	login := regexp.MustCompile(`msg="pop3 login".* cid=\S+ proto=pop3s remote=127\.0\.0\.1:\d+ user=alice@example\.test.*messages=2`)
	logout := regexp.MustCompile(`msg="pop3 logout".* user=alice@example\.test reason=quit messages=2 retrieved=2 deleted=1 kept_marked=0`)
	if !login.MatchString(logs) || !logout.MatchString(logs) {
		t.Errorf("login/logout lines missing:\n%s", logs)
	}
	if strings.Count(logs, "pop3 login") != 1 || strings.Count(logs, "pop3 logout") != 1 {
		t.Errorf("want one login and one logout line:\n%s", logs)
	}
	if strings.Contains(logs, alicePass) {
		t.Errorf("the password reached the log")
	}
}

// TestPipelining: commands sent in one write are answered in order (RFC
// 2449 6.6).
func TestPipelining(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1, msg2)
	c := e.dial()
	c.send("USER " + alice + "\r\nPASS " + alicePass + "\r\nSTAT\r\nLIST\r\nRETR 2\r\nDELE 1\r\nNOOP\r\nQUIT")
	for _, want := range []string{"+OK", "+OK Logged in.", fmt.Sprintf("+OK 2 %d", len(msg1)+len(msg2)), "+OK 2 messages"} {
		if got := c.line(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	c.lines()
	if got := c.line(); got != fmt.Sprintf("+OK %d octets", len(msg2)) {
		t.Fatalf("RETR: %q", got)
	}
	if got := string(c.multi()); got != msg2 {
		t.Fatalf("RETR body %q", got)
	}
	for _, want := range []string{"+OK Message 1 marked", "+OK", "+OK Logging out, 1 messages deleted."} {
		if got := c.line(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	c.eof()
}
