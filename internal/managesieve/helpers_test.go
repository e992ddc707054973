package managesieve

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

const (
	testHost   = "mail.example.test"
	testDomain = "example.test"
	alice      = "alice@example.test"
	alicePass  = "alice secret pw"
	bob        = "bob@example.test"
	bobPass    = "bob-pw"
)

// fakeValidate stands in for internal/sieve.Check: a script with the
// word "bad" in it is refused with a line number.
func fakeValidate(script []byte) error {
	for i, l := range strings.Split(string(script), "\n") {
		if strings.Contains(l, "bad") {
			return errors.New("line " + strconv.Itoa(i+1) + ": unknown command \"bad\"")
		}
	}
	return nil
}

type testEnv struct {
	t    *testing.T
	srv  *Server
	addr string
	auth *testutil.FakeAuth
	st   *sqlstore.Store
	logs *testutil.LogBuffer
	cert testutil.Cert
}

// start runs a server on 127.0.0.1 over a fresh store; edit adjusts the
// options.
func start(t *testing.T, edit func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{
		t:    t,
		auth: testutil.NewFakeAuth(map[string]string{alice: alicePass, bob: bobPass}),
		st:   testutil.OpenStore(t, t.TempDir(), testDomain, "alice", "bob"),
		logs: &testutil.LogBuffer{},
		cert: testutil.NewCert(t, testHost),
	}
	opts := Options{
		TLSConfig:    e.cert.Server,
		Hostname:     testHost,
		Auth:         e.auth,
		Store:        e.st,
		Validate:     fakeValidate,
		Extensions:   []string{"fileinto", "vacation"},
		MaxRedirects: 4,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	e.srv = New(opts)
	e.addr, _ = testutil.Serve(t, e.srv, 10*time.Second)
	return e
}

// client speaks ManageSieve for the tests.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// response is what the server sent up to and including its status line.
type response struct {
	lines  []string // lines before the status, literals inlined as {n}+data
	items  [][]byte // every string or literal in those lines, in order
	status string   // the OK, NO or BYE line
}

func (e *testEnv) dialRaw() *client {
	e.t.Helper()
	conn := testutil.Dial(e.t, e.addr, nil)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: e.t, conn: conn, r: bufio.NewReader(conn)}
}

// dial connects and reads the greeting.
func (e *testEnv) dial() (*client, response) {
	e.t.Helper()
	c := e.dialRaw()
	g := c.read()
	if !strings.HasPrefix(g.status, "OK ") {
		e.t.Fatalf("greeting %+v", g)
	}
	return c, g
}

// login: STARTTLS, then AUTHENTICATE PLAIN.
func (e *testEnv) login(user, pass string) *client {
	e.t.Helper()
	c, _ := e.dial()
	c.starttls(e.cert.Client)
	c.expect(`AUTHENTICATE "PLAIN" "`+plain(user, pass)+`"`, "OK")
	return c
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

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

// read reads a response: lines (with literals) until OK, NO or BYE.
func (c *client) read() response {
	c.t.Helper()
	var r response
	for {
		l := c.line()
		if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") {
			r.status = l
			return r
		}
		full := l
		for {
			n, ok := trailingLiteral([]byte(l))
			if !ok {
				r.items = append(r.items, quotedItems(l)...)
				break
			}
			data := make([]byte, n)
			if _, err := io.ReadFull(c.r, data); err != nil {
				c.t.Fatalf("literal: %v", err)
			}
			r.items = append(r.items, data)
			l = c.line()
			full += string(data) + l
		}
		r.lines = append(r.lines, full)
	}
}

// quotedItems returns the quoted strings of a line, unescaped.
func quotedItems(l string) [][]byte {
	var out [][]byte
	for i := 0; i < len(l); i++ {
		if l[i] != '"' {
			continue
		}
		s, n, ok := parseQuoted([]byte(l[i:]))
		if !ok {
			return out
		}
		out = append(out, s)
		i += n - 1
	}
	return out
}

// cmd sends a command and reads the response.
func (c *client) cmd(s string) response {
	c.t.Helper()
	c.send(s)
	return c.read()
}

// expect sends a command and checks the status line's prefix.
func (c *client) expect(s, prefix string) response {
	c.t.Helper()
	r := c.cmd(s)
	if !strings.HasPrefix(r.status, prefix) {
		c.t.Fatalf("%s: got %q, want %q...", s, r.status, prefix)
	}
	return r
}

// literal is a client literal {n+} with its data.
func literal(data string) string {
	return "{" + strconv.Itoa(len(data)) + "+}\r\n" + data
}

func (c *client) starttls(cfg *tls.Config) response {
	c.t.Helper()
	c.expect("STARTTLS", "OK")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
	r := c.read() // RFC 5804 2.2: capabilities again
	if !strings.HasPrefix(r.status, "OK") {
		c.t.Fatalf("after STARTTLS: %+v", r)
	}
	return r
}

// eof checks that the server has closed the connection.
func (c *client) eof() {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err == nil {
		c.t.Fatalf("connection still open, got %q", l)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		c.t.Fatalf("want EOF, got %v (%q)", err, l)
	}
}

// capMap turns capability lines into name -> value.
func capMap(r response) map[string]string {
	m := map[string]string{}
	for _, l := range r.lines {
		items := quotedItems(l)
		switch len(items) {
		case 1:
			m[string(items[0])] = ""
		case 2:
			m[string(items[0])] = string(items[1])
		}
	}
	return m
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
