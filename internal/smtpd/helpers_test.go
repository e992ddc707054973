package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/obs"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/testutil"
)

const testHost = "mx.example.test"

// ---- fakes ----

type cred struct {
	password string
	user     *store.User
}

type port25Call struct {
	remote   netip.Addr
	username string
}

type fakeAuth struct {
	mu          sync.Mutex
	creds       map[string]cred
	rateLimited map[string]bool
	err         error // returned by Authenticate when set
	discard     bool  // keep no records (fuzzing)
	attempts    []auth.Attempt
	port25      []port25Call
}

func newFakeAuth() *fakeAuth {
	return &fakeAuth{creds: map[string]cred{}, rateLimited: map[string]bool{}}
}

func (f *fakeAuth) addUser(email, password string) *store.User {
	u := store.NewUser(strings.Split(email, "@")[0], strings.Split(email, "@")[1], 0, 80)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creds[email] = cred{password: password, user: &u}
	return &u
}

func (f *fakeAuth) Authenticate(ctx context.Context, a auth.Attempt) (*auth.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.discard {
		f.attempts = append(f.attempts, a)
	}
	if f.err != nil {
		return nil, f.err
	}
	if f.rateLimited[a.Username] {
		return nil, fmt.Errorf("fake: %s: %w", a.Username, auth.ErrRateLimited)
	}
	c, ok := f.creds[a.Username]
	if !ok || string(a.Password) != c.password {
		return nil, fmt.Errorf("fake: %s: %w", a.Username, auth.ErrBadCredentials)
	}
	return &auth.Result{User: c.user}, nil
}

func (f *fakeAuth) Port25Auth(ctx context.Context, remote netip.Addr, username string, log *slog.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.discard {
		f.port25 = append(f.port25, port25Call{remote, username})
	}
	log.Info("port 25 does not accept AUTH; use 465 or 587", "username", username)
}

func (f *fakeAuth) port25Calls() []port25Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]port25Call(nil), f.port25...)
}

type fakeRouter struct {
	mu          sync.Mutex
	localDoms   map[string]bool
	relayDoms   map[string]bool
	users       map[string]bool
	owners      map[string]string // sender -> owning login (aliases)
	resolveErr  error
	senderErr   error
	discard     bool // keep no records (fuzzing)
	contexts    []context.Context
	resolveSeen []string
}

func newFakeRouter() *fakeRouter {
	return &fakeRouter{
		localDoms: map[string]bool{"example.test": true},
		relayDoms: map[string]bool{"relayed.test": true},
		users:     map[string]bool{"alice@example.test": true, "bob@example.test": true},
		owners:    map[string]string{"sales@example.test": "alice@example.test"},
	}
}

func (f *fakeRouter) Resolve(ctx context.Context, rcpt string) (inbound.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.discard {
		f.contexts = append(f.contexts, ctx)
		f.resolveSeen = append(f.resolveSeen, rcpt)
	}
	if f.resolveErr != nil {
		return inbound.Route{}, f.resolveErr
	}
	addr, err := mailaddr.Normalize(rcpt)
	if err != nil {
		return inbound.Route{}, fmt.Errorf("fake: %w: %w", inbound.ErrBadAddress, err)
	}
	_, dom := mailaddr.Split(addr)
	switch {
	case f.relayDoms[dom]:
		return inbound.Route{Kind: inbound.RouteRelay, Rcpt: addr, Remote: []string{addr}}, nil
	case !f.localDoms[dom]:
		return inbound.Route{Kind: inbound.RouteForeign, Rcpt: addr, Remote: []string{addr}}, nil
	case f.users[addr]:
		return inbound.Route{Kind: inbound.RouteLocal, Rcpt: addr, Mailboxes: []string{addr}}, nil
	}
	return inbound.Route{}, fmt.Errorf("fake: %s: %w", addr, inbound.ErrUnknownRecipient)
}

func (f *fakeRouter) SenderAllowed(ctx context.Context, user *store.User, sender string, wildcard []string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.senderErr != nil {
		return false, f.senderErr
	}
	s := strings.ToLower(sender)
	for _, w := range wildcard {
		if w == user.Email {
			return true, nil
		}
	}
	return s == "" || s == user.Email || f.owners[s] == user.Email, nil
}

type delivered struct {
	env  inbound.Envelope
	body string
}

type fakeDeliverer struct {
	mu        sync.Mutex
	msgs      []delivered
	spools    []*fakeSpool
	err       error
	spoolErr  error
	discard   bool          // keep no records (fuzzing)
	entered   chan struct{} // closed-over signal: Deliver started (optional)
	release   chan struct{} // Deliver waits for it (optional)
	ctxs      []context.Context
	durableAt []time.Time
}

type fakeSpool struct {
	bytes.Buffer
	aborted bool
}

func (s *fakeSpool) Size() int64  { return int64(s.Len()) }
func (s *fakeSpool) Abort()       { s.aborted = true }
func (s *fakeSpool) Grow(n int64) { s.Buffer.Grow(int(n)) }

func (f *fakeDeliverer) NewSpool() (Spool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.spoolErr != nil {
		return nil, f.spoolErr
	}
	sp := &fakeSpool{}
	if !f.discard {
		f.spools = append(f.spools, sp)
	}
	return sp, nil
}

func (f *fakeDeliverer) Deliver(ctx context.Context, env *inbound.Envelope, sp Spool) error {
	f.mu.Lock()
	if !f.discard {
		f.ctxs = append(f.ctxs, ctx)
	}
	entered, release := f.entered, f.release
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return fmt.Errorf("fake deliver: %w", ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if !f.discard {
		f.msgs = append(f.msgs, delivered{env: *env, body: sp.(*fakeSpool).String()})
	}
	return nil
}

func (f *fakeDeliverer) delivered() []delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]delivered(nil), f.msgs...)
}

// fakeLimiter is a shared MESSAGE_RATELIMIT in miniature: Take holds a
// place, Settle counts it (sent) or gives it back; err fails every Take.
type fakeLimiter struct {
	mu       sync.Mutex
	limit    int
	err      error
	hits     map[string]int // sent messages
	held     map[string]int // places taken, not yet settled
	returned int            // places given back
}

func (f *fakeLimiter) Take(_ context.Context, key string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", false, f.err
	}
	if f.hits[key]+f.held[key] >= f.limit {
		return "", false, nil
	}
	if f.held == nil {
		f.held = map[string]int{}
	}
	f.held[key]++
	return "t", true, nil
}

func (f *fakeLimiter) Settle(_ context.Context, key, ticket string, sent bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ticket != "t" || f.held[key] == 0 {
		panic("Settle without a Take")
	}
	f.held[key]--
	if !sent {
		f.returned++
		return nil
	}
	if f.hits == nil {
		f.hits = map[string]int{}
	}
	f.hits[key]++
	return nil
}

// settled reports whether no place is held.
func (f *fakeLimiter) settled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.held {
		if n != 0 {
			return false
		}
	}
	return true
}

// logBuffer collects every log record as text.
type logBuffer = testutil.LogBuffer

// ---- TLS ----

type testCert = testutil.Cert

func newTestCert(t testing.TB) testCert { return testutil.NewCert(t, testHost) }

// ---- server under test ----

type testEnv struct {
	t      *testing.T
	srv    *Server
	addr   string
	auth   *fakeAuth
	router *fakeRouter
	deliv  *fakeDeliverer
	logs   *logBuffer
	cert   testCert
	done   chan error // Serve's result
}

// startServer runs a Server for role on 127.0.0.1 with fakes; mod may
// change the options first. The server is shut down at the end of the test.
func startServer(t *testing.T, role Role, mod func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{
		t:      t,
		auth:   newFakeAuth(),
		router: newFakeRouter(),
		deliv:  &fakeDeliverer{},
		logs:   &logBuffer{},
		cert:   newTestCert(t),
	}
	e.auth.addUser("alice@example.test", "alice-secret-pw")
	e.auth.addUser("bob@example.test", "bob-secret-pw")
	opts := Options{
		Role:            role,
		Hostname:        testHost,
		TLSConfig:       e.cert.Server,
		MaxMessageBytes: 10000,
		Auth:            e.auth,
		Router:          e.router,
		Deliverer:       e.deliv,
		Logger:          slog.New(obs.NewRedactHandler(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: obs.LevelTrace}))),
		ReadTimeout:     10 * time.Second,
		WriteTimeout:    10 * time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	e.srv = New(opts)
	e.addr, e.done = testutil.Serve(t, e.srv, 10*time.Second)
	return e
}

// ---- raw client ----

type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dial connects and reads the banner; implicit TLS for RoleSubmissions.
func (e *testEnv) dial() *client {
	e.t.Helper()
	c := e.dialNoBanner()
	c.expect(220, "")
	return c
}

func (e *testEnv) dialNoBanner() *client {
	e.t.Helper()
	var cfg *tls.Config
	if e.srv.opts.Role == RoleSubmissions {
		cfg = e.cert.Client
	}
	conn := testutil.Dial(e.t, e.addr, cfg)
	return &client{t: e.t, conn: conn, r: bufio.NewReader(conn)}
}

// dialRaw connects without TLS and without reading anything.
func (e *testEnv) dialRaw() *client {
	e.t.Helper()
	conn := testutil.Dial(e.t, e.addr, nil)
	return &client{t: e.t, conn: conn, r: bufio.NewReader(conn)}
}

// readReply reads one (possibly multi-line) reply.
func (c *client) readReply() (int, []string, error) {
	var lines []string
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, lines, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			return 0, lines, fmt.Errorf("short reply line %q", line)
		}
		lines = append(lines, line[4:])
		if line[3] == ' ' {
			var code int
			if _, err := fmt.Sscanf(line[:3], "%d", &code); err != nil {
				return 0, lines, err
			}
			return code, lines, nil
		}
	}
}

// expect reads a reply and checks its code and, if enh is not "", the
// enhanced code on its last line. It returns the last line's text after
// the enhanced code.
func (c *client) expect(code int, enh string) string {
	c.t.Helper()
	got, lines, err := c.readReply()
	if err != nil {
		c.t.Fatalf("reading reply (want %d %s): %v (got %q)", code, enh, err, lines)
	}
	last := lines[len(lines)-1]
	if got != code {
		c.t.Fatalf("reply %d %q, want %d %s", got, lines, code, enh)
	}
	if enh != "" {
		e, text, _ := strings.Cut(last, " ")
		if e != enh {
			c.t.Fatalf("reply %d %q: enhanced code %q, want %s", got, lines, e, enh)
		}
		return text
	}
	return last
}

func (c *client) send(line string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

func (c *client) write(raw string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(raw)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends line and expects code/enh; it returns the reply text.
func (c *client) cmd(line string, code int, enh string) string {
	c.t.Helper()
	c.send(line)
	return c.expect(code, enh)
}

// ehlo sends EHLO and returns the capability lines.
func (c *client) ehlo() []string {
	c.t.Helper()
	c.send("EHLO client.example.net")
	code, lines, err := c.readReply()
	if err != nil || code != 250 {
		c.t.Fatalf("EHLO: %d %q %v", code, lines, err)
	}
	return lines[1:]
}

func (c *client) starttls(cfg *tls.Config) {
	c.t.Helper()
	c.cmd("STARTTLS", 220, "2.0.0")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// expectClosed reads until EOF and fails if something else than EOF or a
// reset comes.
func (c *client) expectClosed() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	rest, err := c.r.ReadString('\n')
	if err == nil {
		c.t.Fatalf("connection still open, got %q", rest)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection not closed: %v", err)
	}
}

// expectClosedAfterTempFail accepts at most one 4xx reply before the
// connection closes (a race between the reply and the close).
func (c *client) expectClosedAfterTempFail() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	line, err := c.r.ReadString('\n')
	if err == nil {
		if !strings.HasPrefix(line, "4") {
			c.t.Fatalf("want the connection closed or a 4xx reply, got %q", line)
		}
		c.expectClosed()
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection not closed: %v", err)
	}
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// login authenticates with AUTH PLAIN.
func (c *client) login(user, pass string) {
	c.t.Helper()
	c.cmd("AUTH PLAIN "+plainIR(user, pass), 235, "2.0.0")
}

// sendMail runs one transaction with a DATA body (given without the final
// dot line) and returns the final reply text; it expects 250.
func (c *client) sendMail(from string, rcpts []string, body string) string {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", 250, "2.0.0")
	for _, r := range rcpts {
		c.cmd("RCPT TO:<"+r+">", 250, "2.0.0")
	}
	c.cmd("DATA", 354, "")
	c.write(body + ".\r\n")
	return c.expect(250, "2.0.0")
}

func hasCap(caps []string, name string) bool {
	for _, c := range caps {
		if c == name || strings.HasPrefix(c, name+" ") {
			return true
		}
	}
	return false
}
