package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

const (
	testHost   = "mail.example.test"
	alice      = "alice@example.test"
	alicePass  = "alice secret pw" // spaces: RFC 1939 PASS takes the rest of the line
	bob        = "bob@example.test"
	bobPass    = "bob-pw"
	testDomain = "example.test"
)

// ---- TLS ----

type testCert = testutil.Cert

func newTestCert(t testing.TB) testCert { return testutil.NewCert(t, testHost) }

// ---- logs ----

type logBuffer = testutil.LogBuffer

// ---- fake auth ----

type fakeAuth = testutil.FakeAuth

func newFakeAuth() *fakeAuth {
	return testutil.NewFakeAuth(map[string]string{alice: alicePass, bob: bobPass})
}

// ---- store ----

func openStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	return testutil.OpenStore(t, t.TempDir(), testDomain, "alice", "bob")
}

func put(t testing.TB, st *sqlstore.Store, user string, bodies ...string) {
	t.Helper()
	var msgs []*store.NewMessage
	for i, b := range bodies {
		msgs = append(msgs, &store.NewMessage{ID: "t" + string(rune('a'+i)), Sender: "s@remote.test", Body: []byte(b),
			Targets: []store.MailboxTarget{{User: user}}})
	}
	if err := st.CommitMessages(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

func inboxOf(t testing.TB, st *sqlstore.Store, user string) []store.MessageInfo {
	t.Helper()
	l, err := st.ListMessages(context.Background(), user, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func usedQuota(t testing.TB, st *sqlstore.Store, user string) int64 {
	t.Helper()
	u, err := st.GetUser(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return u.QuotaBytesUsed
}

// ---- server under test ----

type testEnv struct {
	t    *testing.T
	srv  *Server
	addr string
	auth *fakeAuth
	st   *sqlstore.Store
	logs *logBuffer
	cert testCert
	done chan error
}

// start runs a server on 127.0.0.1 over a fresh store. implicit picks 995
// or 110; edit adjusts the options.
func start(t *testing.T, implicit bool, edit func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, auth: newFakeAuth(), st: openStore(t), logs: &logBuffer{}, cert: newTestCert(t)}
	opts := Options{
		Implicit:  implicit,
		TLSConfig: e.cert.Server,
		Hostname:  testHost,
		Auth:      e.auth,
		Store:     e.st,
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	e.srv = New(opts)
	e.addr, e.done = testutil.Serve(t, e.srv, 10*time.Second)
	return e
}

// ---- client ----

type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dial connects; on 995 with TLS. It reads the greeting.
func (e *testEnv) dial() *client {
	e.t.Helper()
	c := e.dialRaw()
	if g := c.line(); !strings.HasPrefix(g, "+OK POP3 "+testHost+" ready") {
		e.t.Fatalf("greeting %q", g)
	}
	return c
}

func (e *testEnv) dialRaw() *client {
	e.t.Helper()
	var cfg *tls.Config
	if e.srv.opts.Implicit {
		cfg = e.cert.Client
	}
	conn := testutil.Dial(e.t, e.addr, cfg)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: e.t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one line without CRLF; it fails the test on EOF.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// cmd sends a command and returns the status line.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

// expect sends a command and checks the status line's prefix.
func (c *client) expect(line, prefix string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("%s: got %q, want %q...", line, got, prefix)
	}
	return got
}

// multi reads a multi-line body up to ".", undoing byte-stuffing, and
// returns it with CRLF line ends (the raw wire bytes minus stuffing).
func (c *client) multi() []byte {
	c.t.Helper()
	var b bytes.Buffer
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("multi-line read: %v", err)
		}
		if !strings.HasSuffix(l, "\r\n") {
			c.t.Fatalf("multi-line without CRLF: %q", l)
		}
		if l == ".\r\n" {
			return b.Bytes()
		}
		if strings.HasPrefix(l, ".") {
			if !strings.HasPrefix(l, "..") {
				c.t.Fatalf("unstuffed line starting with a dot: %q", l)
			}
			l = l[1:]
		}
		b.WriteString(l)
	}
}

// lines reads a multi-line response as lines.
func (c *client) lines() []string {
	c.t.Helper()
	s := strings.TrimSuffix(string(c.multi()), "\r\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\r\n")
}

// login logs in with USER and PASS.
func (c *client) login(user, pass string) {
	c.t.Helper()
	c.expect("USER "+user, "+OK")
	c.expect("PASS "+pass, "+OK Logged in.")
}

// eof checks that the server has closed the connection.
func (c *client) eof() {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err == nil {
		c.t.Fatalf("connection still open, got %q", l)
	}
	if !errors.Is(err, io.EOF) && !isReset(err) {
		c.t.Fatalf("want EOF, got %v (%q)", err, l)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// starttls upgrades a 110 connection after STLS.
func (c *client) starttls(cfg *tls.Config) {
	c.t.Helper()
	c.expect("STLS", "+OK")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// normalize is what RETR must send for a stored body: CRLF line ends and
// a final CRLF.
func normalize(b string) string {
	var out strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteString("\r\n")
			continue
		}
		out.WriteByte(b[i])
	}
	s := out.String()
	switch {
	case s == "", strings.HasSuffix(s, "\r\n"):
	case strings.HasSuffix(s, "\r"):
		s += "\n"
	default:
		s += "\r\n"
	}
	return s
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var loopback = netip.MustParseAddr("127.0.0.1")
