package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
)

// fakeUsers is an in-memory Users (plus UpdateToken).
type fakeUsers struct {
	mu       sync.Mutex
	users    map[string]store.User
	tokens   map[string][]store.Token
	sets     int // SetPasswordHash calls
	setErr   error
	getErr   error
	updated  []store.Token
	getCalls int
}

func newFakeUsers() *fakeUsers {
	return &fakeUsers{users: map[string]store.User{}, tokens: map[string][]store.Token{}}
}

func (f *fakeUsers) add(email, hash string, mod func(*store.User)) {
	local, domain, _ := strings.Cut(email, "@")
	u := store.NewUser(local, domain, 0, 80)
	u.Password = hash
	if mod != nil {
		mod(&u)
	}
	f.mu.Lock()
	f.users[email] = u
	f.mu.Unlock()
}

func (f *fakeUsers) GetUser(_ context.Context, email string) (*store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getCalls++
	if f.getErr != nil {
		return nil, f.getErr
	}
	u, ok := f.users[email]
	if !ok {
		return nil, fmt.Errorf("user %q: %w", email, store.ErrNotFound)
	}
	return &u, nil
}

func (f *fakeUsers) ListTokens(_ context.Context, email string) ([]store.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.Token(nil), f.tokens[email]...), nil
}

func (f *fakeUsers) SetPasswordHash(_ context.Context, email, hash string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	if f.setErr != nil {
		return f.setErr
	}
	u := f.users[email]
	u.Password = hash
	f.users[email] = u
	return nil
}

func (f *fakeUsers) UpdateToken(_ context.Context, t *store.Token) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updated = append(f.updated, *t)
	ts := f.tokens[t.UserEmail]
	for i := range ts {
		if ts[i].ID == t.ID {
			ts[i] = *t
		}
	}
	return nil
}

func (f *fakeUsers) hashOf(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[email].Password
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuf collects JSON log records.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func (l *logBuf) reset() {
	l.mu.Lock()
	l.buf.Reset()
	l.mu.Unlock()
}

// warns returns the WARN records.
func (l *logBuf) warns(t *testing.T) []map[string]any {
	var w []map[string]any
	for _, r := range l.records(t) {
		if r["level"] == "WARN" {
			w = append(w, r)
		}
	}
	return w
}

const (
	alicePW  = "Alice's s3cret pässword"
	aliceTok = "0123456789abcdef0123456789abcdef"
)

type env struct {
	a     *Authenticator
	users *fakeUsers
	clock *fakeClock
	logs  *logBuf
	calls *int // verify calls
}

// newEnv builds an Authenticator over a fake store with alice (bcrypt_sha256
// at the configured cost) and a token for her.
func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	users := newFakeUsers()
	h, err := HashPassword(alicePW, 4)
	if err != nil {
		t.Fatal(err)
	}
	users.add("alice@example.com", h, nil)
	th, _ := HashToken(aliceTok)
	users.tokens["alice@example.com"] = []store.Token{{ID: 7, UserEmail: "alice@example.com", Password: th}}
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	logs := &logBuf{}
	o := Options{
		Users:  users,
		Rounds: 4,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    clock.now,
	}
	if mod != nil {
		mod(&o)
	}
	a := New(o)
	calls := new(int)
	var mu sync.Mutex
	a.verify = func(hash, pw string) (bool, error) {
		mu.Lock()
		*calls++
		mu.Unlock()
		return verifyPassword(hash, pw)
	}
	return &env{a: a, users: users, clock: clock, logs: logs, calls: calls}
}

func (e *env) try(user, pw, proto string, port int, ip string) (*Result, error) {
	return e.a.Authenticate(context.Background(), Attempt{
		Username: user, Password: Secret(pw), Protocol: proto, Port: port,
		Remote: netip.MustParseAddr(ip),
	})
}

// TestReasons: every refusal maps to the right error and logs exactly one
// WARN line with the right reason; successes log none.
func TestReasons(t *testing.T) {
	type tc struct {
		name    string
		opts    func(*Options)
		setup   func(*env)
		user    string
		pw      string
		proto   string
		ip      string
		wantErr error
		reason  string // "" = success
		token   bool
	}
	cases := []tc{
		{name: "password ok", user: "alice@example.com", pw: alicePW, proto: "imap"},
		{name: "case and IDNA normalised", user: "Alice@EXAMPLE.COM", pw: alicePW, proto: "smtp"},
		{name: "bad password", user: "alice@example.com", pw: "wrong", proto: "smtp", wantErr: ErrBadCredentials, reason: ReasonBadAuth},
		{name: "empty password", user: "alice@example.com", pw: "", proto: "smtp", wantErr: ErrBadCredentials, reason: ReasonBadAuth},
		{name: "bare local part", user: "alice", pw: alicePW, proto: "imap", wantErr: ErrNotFullAddress, reason: ReasonNotFullAddress},
		{name: "bare local part, no such user", user: "nobody", pw: alicePW, proto: "pop3", wantErr: ErrNotFullAddress, reason: ReasonNotFullAddress},
		{name: "unknown user", user: "bob@example.com", pw: alicePW, proto: "imap", wantErr: ErrBadCredentials, reason: ReasonUnknownUser},
		{name: "unparsable address", user: "a@b@c", pw: alicePW, proto: "imap", wantErr: ErrBadCredentials, reason: ReasonUnknownUser},
		{name: "disabled", user: "alice@example.com", pw: alicePW, proto: "smtp",
			setup: func(e *env) {
				e.users.add("alice@example.com", e.users.hashOf("alice@example.com"), func(u *store.User) { u.Enabled = false })
			},
			wantErr: ErrBadCredentials, reason: ReasonDisabled},
		{name: "imap off", user: "alice@example.com", pw: alicePW, proto: "imap",
			setup: func(e *env) {
				e.users.add("alice@example.com", e.users.hashOf("alice@example.com"), func(u *store.User) { u.EnableIMAP = false })
			},
			wantErr: ErrBadCredentials, reason: ReasonProtocolDisabled},
		{name: "imap off, smtp fine", user: "alice@example.com", pw: alicePW, proto: "smtp",
			setup: func(e *env) {
				e.users.add("alice@example.com", e.users.hashOf("alice@example.com"), func(u *store.User) { u.EnableIMAP = false })
			}},
		{name: "pop off", user: "alice@example.com", pw: alicePW, proto: "pop3",
			setup: func(e *env) {
				e.users.add("alice@example.com", e.users.hashOf("alice@example.com"), func(u *store.User) { u.EnablePOP = false })
			},
			wantErr: ErrBadCredentials, reason: ReasonProtocolDisabled},
		{name: "token ok", user: "alice@example.com", pw: aliceTok, proto: "imap", token: true},
		{name: "token from a foreign IP", user: "alice@example.com", pw: aliceTok, proto: "imap",
			setup:   func(e *env) { e.users.tokens["alice@example.com"][0].IP = []string{"10.0.0.0/8"} },
			wantErr: ErrBadCredentials, reason: ReasonTokenIP},
		{name: "token from its CIDR", user: "alice@example.com", pw: aliceTok, proto: "imap", ip: "10.1.2.3",
			setup: func(e *env) { e.users.tokens["alice@example.com"][0].IP = []string{"192.0.2.1", "10.0.0.0/8"} }, token: true},
		{name: "token from its single IP (v4-mapped client)", user: "alice@example.com", pw: aliceTok, proto: "imap", ip: "::ffff:192.0.2.1",
			setup: func(e *env) { e.users.tokens["alice@example.com"][0].IP = []string{"192.0.2.1"} }, token: true},
		{name: "require tokens: password refused", opts: func(o *Options) { o.RequireTokens = true },
			user: "alice@example.com", pw: alicePW, proto: "smtp", wantErr: ErrBadCredentials, reason: ReasonRequireTokens},
		{name: "require tokens: web password ok", opts: func(o *Options) { o.RequireTokens = true },
			user: "alice@example.com", pw: alicePW, proto: "web"},
		{name: "require tokens: token ok", opts: func(o *Options) { o.RequireTokens = true },
			user: "alice@example.com", pw: aliceTok, proto: "smtp", token: true},
		{name: "rate limited", opts: func(o *Options) { o.IPLimit = ratelimit.Rate{Count: 1, Per: time.Hour} },
			setup: func(e *env) { e.try("x@example.com", "x", "smtp", 465, "203.0.113.50") },
			user:  "alice@example.com", pw: alicePW, proto: "smtp", wantErr: ErrRateLimited, reason: ReasonRateLimit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.opts)
			if c.setup != nil {
				c.setup(e)
			}
			e.logs.reset()
			ip := c.ip
			if ip == "" {
				ip = "203.0.113.9"
			}
			res, err := e.try(c.user, c.pw, c.proto, 993, ip)
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			// Only a bare local part gets the format hint; it stays a
			// credentials failure for callers that know no better.
			if errors.Is(err, ErrNotFullAddress) != (c.reason == ReasonNotFullAddress) || (err != nil && errors.Is(err, ErrNotFullAddress) && !errors.Is(err, ErrBadCredentials)) {
				t.Fatalf("err = %v: format hint for reason %q", err, c.reason)
			}
			warns := e.logs.warns(t)
			if c.reason == "" {
				if res == nil || res.User.Email != "alice@example.com" || res.ViaToken != c.token {
					t.Fatalf("result %+v, want alice, token=%v", res, c.token)
				}
				if len(warns) != 0 {
					t.Fatalf("success logged WARN: %v", warns)
				}
				return
			}
			if res != nil {
				t.Fatal("refusal returned a result")
			}
			if len(warns) != 1 {
				t.Fatalf("%d WARN lines, want 1: %s", len(warns), e.logs.String())
			}
			w := warns[0]
			if w["reason"] != c.reason || w["protocol"] != c.proto || w["port"] != float64(993) || w["remote"] != netip.MustParseAddr(ip).Unmap().String() {
				t.Fatalf("WARN attrs %v, want reason %s", w, c.reason)
			}
			wantMsg := fmt.Sprintf("/%s/993 from: %s: failed: %s", c.proto, netip.MustParseAddr(ip).Unmap(), c.reason)
			if msg, _ := w["msg"].(string); !strings.HasPrefix(msg, "Login attempt for: ") || !strings.HasSuffix(msg, wantMsg) {
				t.Fatalf("message %q, want suffix %q", msg, wantMsg)
			}
			if c.reason == ReasonNotFullAddress && w["user"] != c.user {
				t.Fatalf("user attr %v", w["user"])
			}
			if hint, _ := w["hint"].(string); c.reason == ReasonNotFullAddress && !strings.Contains(hint, "full email address") {
				t.Fatalf("hint %q does not tell the admin the username must be a full address", hint)
			}
		})
	}
}

// TestIPLimitOrdering: Mailu's default 5/hour counts distinct usernames
// per /24; the sixth gets ErrRateLimited even with the right password.
func TestIPLimitOrdering(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 5 {
		// Different hosts of one /24, distinct usernames.
		if _, err := e.try(fmt.Sprintf("u%d@example.com", i), "x", "imap", 993, fmt.Sprintf("198.51.100.%d", i+1)); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	calls := *e.calls
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.100.200"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right password from a limited /24: %v, want ErrRateLimited", err)
	}
	if *e.calls != calls {
		t.Fatal("the password was checked although the IP limit comes first")
	}
	if !e.a.IPRateLimited(context.Background(), netip.MustParseAddr("198.51.100.7")) {
		t.Fatal("IPRateLimited false for the limited /24")
	}
	// Another /24 is not affected.
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.101.1"); err != nil {
		t.Fatalf("neighbouring /24: %v", err)
	}
	// An app token skips the IP check (Mailu: tokens are not rate-limited).
	if _, err := e.try("alice@example.com", aliceTok, "imap", 993, "198.51.100.201"); err != nil {
		t.Fatalf("token from the limited /24: %v", err)
	}
	// The window drains after an hour.
	e.clock.add(time.Hour + time.Second)
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.100.202"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestIPLimitSameUsername: repeating one bad username counts once (Mailu
// dedup-<net>-<username>; issue #3607).
func TestIPLimitSameUsername(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 20 {
		if _, err := e.try("Typo@Example.com", fmt.Sprintf("pw%d", i), "smtp", 465, "192.0.2.10"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := e.try("alice@example.com", alicePW, "smtp", 465, "192.0.2.10"); err != nil {
		t.Fatalf("after 20 tries of one username: %v", err)
	}
	// Bare local parts count against the IP too.
	e2 := newEnv(t, func(o *Options) { o.IPLimit = ratelimit.Rate{Count: 2, Per: time.Hour} })
	e2.try("a", "x", "smtp", 465, "192.0.2.10")
	e2.try("b", "x", "smtp", 465, "192.0.2.10")
	if _, err := e2.try("alice@example.com", alicePW, "smtp", 465, "192.0.2.10"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("bare usernames did not count: %v", err)
	}
}

// TestUserLimit: distinct wrong passwords count against the account; once
// its budget is spent, even the right password is refused from networks
// the account has not logged in from (guessing spread over many networks
// stays bounded; limits.go).
func TestUserLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UserLimit = ratelimit.Rate{Count: 3, Per: 24 * time.Hour} })
	ip := func(i int) string { return fmt.Sprintf("10.%d.0.1", i) } // new /24 each time: no IP limit
	// One wrong password repeated counts once.
	for i := range 5 {
		e.try("alice@example.com", "same wrong", "imap", 993, ip(i))
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, ip(10)); err != nil {
		t.Fatalf("after one repeated wrong password: %v", err)
	}
	// The success exempted ip(10) only; use fresh IPs.
	e.try("alice@example.com", "wrong 2", "imap", 993, ip(11))
	e.try("alice@example.com", "wrong 3", "imap", 993, ip(12))
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, ip(13)); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right password over the user limit: %v, want ErrRateLimited", err)
	}
	// Tokens are not user-limited.
	if _, err := e.try("alice@example.com", aliceTok, "imap", 993, ip(14)); err != nil {
		t.Fatalf("token over the user limit: %v", err)
	}
	// Each wrong password for an existing user also counted once against its /24.
	e3 := newEnv(t, func(o *Options) { o.IPLimit = ratelimit.Rate{Count: 1, Per: time.Hour} })
	e3.try("alice@example.com", "w1", "imap", 993, "192.0.2.1")
	if _, err := e3.try("alice@example.com", alicePW, "imap", 993, "192.0.2.2"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("wrong password did not count against the network: %v", err)
	}
	// A day later the user window has drained.
	e.clock.add(24*time.Hour + time.Second)
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, ip(15)); err != nil {
		t.Fatalf("after the user window: %v", err)
	}
}

// TestExemptionAfterSuccess: a successful login exempts that IP (not its
// network) for ExemptionLength; port 25 grants nothing.
func TestExemptionAfterSuccess(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.IPLimit = ratelimit.Rate{Count: 2, Per: time.Hour}
		o.ExemptionLength = 2 * time.Hour
	})
	if _, err := e.try("alice@example.com", alicePW, "smtp", 25, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	e.try("a@example.com", "x", "imap", 993, "192.0.2.1")
	e.try("b@example.com", "x", "imap", 993, "192.0.2.1")
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("port 25 success exempted the IP: %v", err)
	}

	e = newEnv(t, func(o *Options) {
		o.IPLimit = ratelimit.Rate{Count: 2, Per: time.Hour}
		o.ExemptionLength = 2 * time.Hour
	})
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e.try(fmt.Sprintf("u%d@example.com", i), "x", "imap", 993, "192.0.2.1")
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); err != nil {
		t.Fatalf("exempt IP limited: %v", err)
	}
	// The exempt IP's failures were not counted, so its neighbours are fine.
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.2"); err != nil {
		t.Fatalf("neighbour limited by an exempt IP's failures: %v", err)
	}
	// Both successes renewed their exemptions; let them all lapse. The
	// network stays proven for alice (KnownNetworkTTL), so the network
	// limit does not stop her, but it stops anyone else there.
	e.clock.add(2*time.Hour + time.Second)
	e.try("a@example.com", "x", "imap", 993, "192.0.2.1")
	e.try("b@example.com", "x", "imap", 993, "192.0.2.1")
	if _, err := e.try("c@example.com", "x", "imap", 993, "192.0.2.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("exemption did not lapse: %v", err)
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); err != nil {
		t.Fatalf("alice from her proven network: %v", err)
	}
	// Without the exemption her own wrong passwords count again.
	e.clock.add(2*time.Hour + time.Second)
	for i := range 10 {
		e.try("alice@example.com", fmt.Sprintf("wrong %d", i), "imap", 993, "192.0.2.1")
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("lapsed exemption still exempts: %v", err)
	}
}

// TestConfiguredExemptions: AUTH_RATELIMIT_EXEMPTION networks are never
// limited and never counted.
func TestConfiguredExemptions(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.IPLimit = ratelimit.Rate{Count: 1, Per: time.Hour}
		o.UserLimit = ratelimit.Rate{Count: 1, Per: time.Hour}
		o.Exemptions = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	})
	for i := range 5 {
		e.try(fmt.Sprintf("u%d@example.com", i), "x", "imap", 993, "192.0.2.1")
		e.try("alice@example.com", fmt.Sprintf("wrong%d", i), "imap", 993, "2001:db8::1")
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); err != nil {
		t.Fatalf("exempt v4 network limited: %v", err)
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "2001:db8::2"); err != nil {
		t.Fatalf("exempt v6 network limited: %v", err)
	}
	// Outside, one failure is enough (Count 1).
	e.try("z@example.com", "x", "imap", 993, "198.51.100.1")
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "198.51.100.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("non-exempt network: %v", err)
	}
}

func TestIPv6Mask(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IPLimit = ratelimit.Rate{Count: 1, Per: time.Hour} })
	e.try("z@example.com", "x", "imap", 993, "2001:db8:1:2::1")
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "2001:db8:1:ffff::9"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("same /48: %v", err)
	}
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "2001:db8:2::1"); err != nil {
		t.Fatalf("other /48: %v", err)
	}
}

// TestLegacyTokenUpgraded: a legacy $5$ token works and is re-hashed.
func TestLegacyTokenUpgraded(t *testing.T) {
	e := newEnv(t, nil)
	var legacy string
	for _, v := range loadVectors(t) {
		if v.Scheme == "token_sha256_crypt" && v.Password == aliceTok {
			legacy = v.Hash
		}
	}
	if legacy == "" {
		t.Fatal("no legacy token vector")
	}
	e.users.tokens["alice@example.com"] = []store.Token{{ID: 3, UserEmail: "alice@example.com", Password: legacy}}
	res, err := e.try("alice@example.com", aliceTok, "smtp", 465, "192.0.2.1")
	if err != nil || !res.ViaToken {
		t.Fatalf("legacy token: %v %+v", err, res)
	}
	if len(e.users.updated) != 1 || !strings.HasPrefix(e.users.updated[0].Password, "$pbkdf2-sha256$1$") {
		t.Fatalf("legacy token not upgraded: %+v", e.users.updated)
	}
	if ok, leg := VerifyToken(e.users.tokens["alice@example.com"][0].Password, aliceTok); !ok || leg {
		t.Fatal("upgraded token hash does not verify")
	}
}

// TestRehashOnce: an outdated scheme is replaced once by bcrypt_sha256 at
// the configured cost, and Mailu can read the new hash.
func TestRehashOnce(t *testing.T) {
	e := newEnv(t, nil)
	var old string
	for _, v := range loadVectors(t) {
		if v.Scheme == "sha512_crypt" && v.Password == "password" && strings.HasPrefix(v.Hash, "$6$rounds=1000$") {
			old = v.Hash
		}
	}
	e.users.add("bob@example.com", "{SHA512-CRYPT}"+old, nil)
	for range 3 {
		if _, err := e.try("bob@example.com", "password", "imap", 993, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	if e.users.sets != 1 {
		t.Fatalf("SetPasswordHash called %d times, want 1", e.users.sets)
	}
	nh := e.users.hashOf("bob@example.com")
	if !strings.HasPrefix(nh, "$bcrypt-sha256$v=2,t=2b,r=4$") || NeedsRehash(nh, 4) {
		t.Fatalf("new hash %q", nh)
	}
	if ok, _, _ := VerifyPassword(nh, "password"); !ok {
		t.Fatal("re-hashed password does not verify")
	}
	// A failing store does not fail the login and is retried next time.
	e.users.add("carol@example.com", old, nil)
	e.users.setErr = errors.New("disk full")
	for range 2 {
		if _, err := e.try("carol@example.com", "password", "imap", 993, "192.0.2.1"); err != nil {
			t.Fatalf("login failed because the re-hash failed: %v", err)
		}
	}
	if e.users.sets != 3 {
		t.Fatalf("SetPasswordHash calls %d, want 3 (retried)", e.users.sets)
	}
	if !strings.Contains(e.logs.String(), "password re-hash failed") {
		t.Fatal("re-hash failure not logged")
	}
}

// TestCredentialCache: repeated logins skip the hash; a changed stored
// hash invalidates the entry; a wrong password still goes to the hash.
func TestCredentialCache(t *testing.T) {
	e := newEnv(t, nil)
	for range 5 {
		if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	if *e.calls != 1 {
		t.Fatalf("verify ran %d times for 5 logins, want 1", *e.calls)
	}
	if _, err := e.try("alice@example.com", "wrong", "imap", 993, "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password with a cached entry: %v", err)
	}
	if *e.calls != 2 {
		t.Fatalf("wrong password did not reach the hash (%d calls)", *e.calls)
	}
	// Password change to a new hash: the cached old password must fail.
	nh, _ := HashPassword("new password", 4)
	e.users.add("alice@example.com", nh, nil)
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after a change: %v", err)
	}
	if _, err := e.try("alice@example.com", "new password", "imap", 993, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	calls := *e.calls
	// Same password re-hashed (new salt): entry invalid, one more verify.
	nh2, _ := HashPassword("new password", 4)
	e.users.add("alice@example.com", nh2, nil)
	e.try("alice@example.com", "new password", "imap", 993, "192.0.2.1")
	e.try("alice@example.com", "new password", "imap", 993, "192.0.2.1")
	if *e.calls != calls+1 {
		t.Fatalf("verify calls %d, want %d", *e.calls, calls+1)
	}
	// Disabled cache: every login verifies.
	d := newEnv(t, func(o *Options) { o.CacheSize = -1 })
	d.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1")
	d.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1")
	if *d.calls != 2 {
		t.Fatalf("disabled cache: %d verify calls", *d.calls)
	}
}

// TestPasswordNeverLogged captures every log line of many outcomes.
func TestPasswordNeverLogged(t *testing.T) {
	const secret = "Hunter2-Ünïcode-Sëcret"
	const tok = "fedcba9876543210fedcba9876543210"
	for _, format := range []string{"json", "text"} {
		var buf logBuf
		var h slog.Handler = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
		if format == "text" {
			h = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
		}
		e := newEnv(t, func(o *Options) {
			o.Logger = slog.New(h)
			o.IPLimit = ratelimit.Rate{Count: 3, Per: time.Hour}
		})
		hs, _ := HashPassword(secret, 4)
		e.users.add("dave@example.com", hs, nil)
		th, _ := HashToken(tok)
		e.users.tokens["dave@example.com"] = []store.Token{{ID: 1, UserEmail: "dave@example.com", Password: th, IP: []string{"10.0.0.0/8"}}}
		e.users.add("erin@example.com", "garbage-hash", nil)
		for _, pw := range []string{secret, tok, secret + "x", tok[:31] + "0"} {
			for _, u := range []string{"dave@example.com", "dave", "nobody@example.com", "erin@example.com"} {
				e.try(u, pw, "smtp", 465, "192.0.2.1")
			}
		}
		e.a.Port25Auth(context.Background(), netip.MustParseAddr("192.0.2.1"), "dave@example.com", nil)
		at := Attempt{Username: "dave@example.com", Password: secret}
		e.a.log.Info("attempt", "attempt", at, "pw", at.Password, "wrapped", struct{ A Attempt }{at},
			"fmt", fmt.Sprintf("%v %+v %#v %s", at, at, at, at.Password))
		out := buf.String()
		if !strings.Contains(out, "Login attempt for: dave@example.com/smtp/465") {
			t.Fatalf("%s: expected log lines missing:\n%s", format, out)
		}
		for _, s := range []string{secret, tok, "Hunter2", "fedcba98"} {
			if strings.Contains(out, s) {
				t.Fatalf("%s: log contains %q:\n%s", format, s, out)
			}
		}
	}
}

func TestPort25Auth(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IPLimit = ratelimit.Rate{Count: 3, Per: time.Hour} })
	ip := netip.MustParseAddr("192.0.2.77")
	for range 3 {
		if e.a.IPRateLimited(context.Background(), ip) {
			t.Fatal("limited too early")
		}
		e.a.Port25Auth(context.Background(), ip, "alice@example.com", nil)
	}
	if !e.a.IPRateLimited(context.Background(), ip) {
		t.Fatal("port 25 AUTH attempts were not counted")
	}
	warns := e.logs.warns(t)
	if len(warns) != 3 {
		t.Fatalf("%d WARN lines, want 3", len(warns))
	}
	msg := warns[0]["msg"].(string)
	if msg != "Login attempt for: alice@example.com/smtp/25 from: 192.0.2.77: failed: "+Port25Message || warns[0]["reason"] != ReasonPort25 {
		t.Fatalf("port 25 line: %v", warns[0])
	}
	// The connection's logger wins over the Authenticator's.
	var own logBuf
	e.a.Port25Auth(context.Background(), ip, "x\r\ny", slog.New(slog.NewJSONHandler(&own, nil)))
	if !strings.Contains(own.String(), `x\\r\\ny`) {
		t.Fatalf("connection logger not used or username not escaped: %s", own.String())
	}
}

func TestStoreErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.users.getErr = errors.New("database is locked")
	_, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1")
	if err == nil || errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrRateLimited) {
		t.Fatalf("store failure returned %v", err)
	}
	if len(e.logs.warns(t)) != 0 {
		t.Fatal("store failure logged a fail2ban WARN line")
	}
}

func TestAttemptLoggerUsed(t *testing.T) {
	e := newEnv(t, nil)
	var own logBuf
	e.a.Authenticate(context.Background(), Attempt{Username: "alice@example.com", Password: "bad", Protocol: "imap",
		Port: 993, Remote: netip.MustParseAddr("192.0.2.1"), Log: slog.New(slog.NewJSONHandler(&own, nil))})
	if !strings.Contains(own.String(), "failed: badauth") || strings.Contains(e.logs.String(), "badauth") {
		t.Fatalf("attempt logger not used: own=%q shared=%q", own.String(), e.logs.String())
	}
}

// TestConcurrentLogins is for -race.
func TestConcurrentLogins(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				pw := alicePW
				if j%2 == 1 {
					pw = "wrong"
				}
				e.try("alice@example.com", pw, "imap", 993, fmt.Sprintf("10.0.%d.1", i))
			}
		}()
	}
	wg.Wait()
}

var _ AuthenticateFunc = (&Authenticator{}).Authenticate
