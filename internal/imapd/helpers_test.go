package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

const (
	testHost   = "mail.example.test"
	alice      = "alice@example.test"
	alicePass  = "alice secret pw"
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

func (ts *testServer) dbPath() (path, blobs string) {
	return filepath.Join(ts.dir, "main.db"), filepath.Join(ts.dir, "blobs")
}

func openStore(t testing.TB, dir string) *sqlstore.Store {
	t.Helper()
	return testutil.OpenStore(t, dir, testDomain, "alice", "bob")
}

var deliveryCounter atomic.Int64

// deliver commits messages to user's mailbox as local delivery does.
func deliver(t testing.TB, st *sqlstore.Store, user, mailbox string, bodies ...string) {
	t.Helper()
	var msgs []*store.NewMessage
	for _, b := range bodies {
		msgs = append(msgs, &store.NewMessage{
			ID:     fmt.Sprintf("t%d", deliveryCounter.Add(1)),
			Sender: "s@remote.test", ReceivedAt: time.Now(), Size: int64(len(b)), Body: []byte(b),
			Targets: []store.MailboxTarget{{User: user, Mailbox: mailbox}},
		})
	}
	if err := st.CommitMessages(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

func testMessage(subject string) string {
	return "From: Sender <s@remote.test>\r\nTo: alice@example.test\r\nSubject: " + subject +
		"\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <" + subject + "@remote.test>\r\n\r\nHello " + subject + "\r\n"
}

// ---- server ----

type testServer struct {
	t    testing.TB
	dir  string
	srv  *Server
	addr string
	st   *sqlstore.Store
	auth *fakeAuth
	cert testCert
	logs *logBuffer
	done chan error
}

// startServer runs a server on 127.0.0.1 with a real store. By default it
// is port 143 with NoTLS (plaintext logins), for brevity.
func startServer(t testing.TB, mod func(*testServer, *Options)) *testServer {
	t.Helper()
	dir := t.TempDir()
	ts := &testServer{t: t, dir: dir, st: openStore(t, dir), auth: newFakeAuth(), cert: newTestCert(t), logs: &logBuffer{}}
	opts := Options{
		NoTLS:        true,
		Hostname:     testHost,
		Auth:         ts.auth,
		Store:        ts.st,
		Logger:       slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PollInterval: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(ts, &opts)
	}
	ts.srv = New(opts)
	ts.addr, ts.done = testutil.Serve(t, ts.srv, 5*time.Second)
	return ts
}

// ---- raw client ----

// client is a tiny IMAP client: it sends lines and reads responses,
// literals included, and checks them.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func (ts *testServer) dial() *client {
	ts.t.Helper()
	conn := testutil.Dial(ts.t, ts.addr, nil)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: ts.t, conn: conn, r: bufio.NewReader(conn)}
}

// dialTLS connects to an implicit TLS server.
func (ts *testServer) dialTLS() *client {
	ts.t.Helper()
	conn := testutil.Dial(ts.t, ts.addr, ts.cert.Client)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := conn.(*tls.Conn).Handshake(); err != nil {
		ts.t.Fatal(err)
	}
	return &client{t: ts.t, conn: conn, r: bufio.NewReader(conn)}
}

// greeting reads the greeting and checks it is OK.
func (c *client) greeting() string {
	c.t.Helper()
	g := c.read()
	if !strings.HasPrefix(g, "* OK ") {
		c.t.Fatalf("greeting: %q", g)
	}
	return g
}

// login greets, logs in as user and returns the client.
func (ts *testServer) login(user, pass string) *client {
	ts.t.Helper()
	c := ts.dial()
	c.greeting()
	c.ok("LOGIN " + quote(user) + " " + quote(pass))
	return c
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// send writes raw bytes.
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read reads one response, with any literals in it, without the final
// CRLF.
func (c *client) read() string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (so far %q)", err, b.String()+line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		b.WriteString(line)
		n, ok := literalSuffix(line)
		if !ok {
			return b.String()
		}
		b.WriteString("\r\n")
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			c.t.Fatalf("read literal: %v", err)
		}
		b.Write(buf)
	}
}

func literalSuffix(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(line[i+1 : len(line)-1])
	return n, err == nil
}

// cmd sends a tagged command and returns the untagged responses and the
// tagged one (without the tag).
func (c *client) cmd(line string) (untagged []string, tagged string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("A%03d", c.n)
	// 30 s for each command, not for the whole session: a test of
	// thousands of messages under -race on a loaded machine takes longer
	// than that in all.
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.send(tag + " " + line + "\r\n")
	return c.collect(tag)
}

// collect reads responses until the one tagged tag.
func (c *client) collect(tag string) (untagged []string, tagged string) {
	c.t.Helper()
	for {
		r := c.read()
		if strings.HasPrefix(r, tag+" ") {
			return untagged, strings.TrimPrefix(r, tag+" ")
		}
		untagged = append(untagged, r)
	}
}

// ok runs a command that must succeed and returns its untagged responses.
func (c *client) ok(line string) []string {
	c.t.Helper()
	u, tagged := c.cmd(line)
	if !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", line, tagged, u)
	}
	return u
}

// expect runs a command and checks that the tagged response starts with
// want.
func (c *client) expect(line, want string) []string {
	c.t.Helper()
	u, tagged := c.cmd(line)
	if !strings.HasPrefix(tagged, want) {
		c.t.Fatalf("%s: got %q, want %q... (untagged %q)", line, tagged, want, u)
	}
	return u
}

// has reports whether some response starts with prefix.
func has(resps []string, prefix string) bool {
	for _, r := range resps {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

// mustHave fails unless some response starts with prefix.
func mustHave(t testing.TB, resps []string, prefix string) {
	t.Helper()
	if !has(resps, prefix) {
		t.Fatalf("no response starting with %q in %q", prefix, resps)
	}
}

// mustNotHave fails if some response starts with prefix.
func mustNotHave(t testing.TB, resps []string, prefix string) {
	t.Helper()
	if has(resps, prefix) {
		t.Fatalf("unexpected response starting with %q in %q", prefix, resps)
	}
}

// waitFor reads untagged responses (in IDLE) until one starts with
// prefix; the deadline only guards against a hung test.
func (c *client) waitFor(prefix string, within time.Duration) []string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	defer c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got []string
	for {
		r := c.read()
		got = append(got, r)
		if strings.HasPrefix(r, prefix) {
			return got
		}
	}
}

func newReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// listOf lists a mailbox's messages straight from the store.
func listOf(t testing.TB, ts *testServer, user, mailbox string) []store.MessageInfo {
	t.Helper()
	l, err := ts.st.ListMessages(context.Background(), user, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// readBody reads a stored body.
func readBody(t testing.TB, ts *testServer, id int64) string {
	t.Helper()
	rc, err := ts.st.OpenBody(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// reopenStore opens a second store over ts's database: another node.
func reopenStore(t testing.TB, ts *testServer) *sqlstore.Store {
	t.Helper()
	path, blobs := ts.dbPath()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Path: path, BlobDir: blobs, InlineMax: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type storeMessageInfo = store.MessageInfo
