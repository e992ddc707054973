package smtpd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/msgrate"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
)

// The real components satisfy smtpd's interfaces (the Deliverer through the
// adapter below, which is what internal/app needs).
var (
	_ Authenticator = (*auth.Authenticator)(nil)
	_ Router        = (*inbound.Router)(nil)
	_ Spool         = (*inbound.Spool)(nil)
	_ RateLimiter   = (*msgrate.Memory)(nil)
	_ RateLimiter   = (*msgrate.Shared)(nil)
	_ Deliverer     = appDeliverer{}
	_ Resolver      = (*net.Resolver)(nil)
)

// appDeliverer is the adapter internal/app writes: inbound.Deliverer's
// methods take and return the concrete *inbound.Spool.
type appDeliverer struct{ d *inbound.Deliverer }

func (a appDeliverer) NewSpool() (Spool, error) {
	sp, err := a.d.NewSpool()
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return sp, nil
}

func (a appDeliverer) Deliver(ctx context.Context, env *inbound.Envelope, sp Spool) error {
	isp, ok := sp.(*inbound.Spool)
	if !ok {
		return fmt.Errorf("app: spool %T is not from inbound.Deliverer.NewSpool", sp)
	}
	return a.d.Deliver(ctx, env, isp)
}

// memAccounts serves both auth.Users and inbound.Accounts from maps.
type memAccounts struct {
	mu      sync.Mutex
	domains map[string]bool
	users   map[string]*store.User
	aliases map[string]*store.Alias
}

func (m *memAccounts) GetDomain(ctx context.Context, name string) (*store.Domain, error) {
	if m.domains[name] {
		return &store.Domain{Name: name, MaxUsers: -1, MaxAliases: -1}, nil
	}
	return nil, store.ErrNotFound
}
func (m *memAccounts) GetAlternative(context.Context, string) (*store.Alternative, error) {
	return nil, store.ErrNotFound
}
func (m *memAccounts) GetRelay(context.Context, string) (*store.Relay, error) {
	return nil, store.ErrNotFound
}
func (m *memAccounts) GetUser(ctx context.Context, email string) (*store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.users[email]; ok {
		c := *u
		return &c, nil
	}
	return nil, store.ErrNotFound
}
func (m *memAccounts) GetAlias(ctx context.Context, email string) (*store.Alias, error) {
	if a, ok := m.aliases[email]; ok {
		return a, nil
	}
	return nil, store.ErrNotFound
}
func (m *memAccounts) ListWildcardAliases(context.Context, string) ([]store.Alias, error) {
	return nil, nil
}
func (m *memAccounts) ListTokens(context.Context, string) ([]store.Token, error) { return nil, nil }
func (m *memAccounts) SetPasswordHash(ctx context.Context, email, hash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[email].Password = hash
	return nil
}

// memMessages is inbound.MessageStore in memory.
type memMessages struct {
	mu   sync.Mutex
	msgs []*store.NewMessage
}

func (m *memMessages) CommitMessages(ctx context.Context, msgs []*store.NewMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msgs...)
	return nil
}

func (m *memMessages) all() []*store.NewMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*store.NewMessage(nil), m.msgs...)
}

// One submission and one MX dialogue through the real auth, inbound and
// ratelimit packages.
func TestWithRealComponents(t *testing.T) {
	hash, err := auth.HashPassword("Real-Pa55word", 4)
	if err != nil {
		t.Fatal(err)
	}
	alice := store.NewUser("alice", "example.test", 0, 80)
	alice.Password = hash
	acc := &memAccounts{
		domains: map[string]bool{"example.test": true},
		users:   map[string]*store.User{"alice@example.test": &alice},
		aliases: map[string]*store.Alias{"sales@example.test": {Email: "sales@example.test", Localpart: "sales",
			DomainName: "example.test", Destination: []string{"alice@example.test"}}},
	}
	msgs := &memMessages{}
	deliv := inbound.NewDeliverer(inbound.DelivererOptions{Store: msgs})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deliv.Start(ctx)
	t.Cleanup(func() { deliv.Close() })

	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	authn := auth.New(auth.Options{Users: acc, Rounds: 4, Logger: logger})
	router := inbound.NewRouter(inbound.RouterOptions{Accounts: acc, Delimiters: "+", Logger: logger})
	cert := newTestCert(t)

	serve := func(role Role, rate RateLimiter) string {
		s := New(Options{
			Role: role, Hostname: testHost, TLSConfig: cert.Server,
			Auth: authn, Router: router, Deliverer: appDeliverer{deliv},
			MessageRate: rate, Logger: logger,
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			if err := s.Shutdown(sctx); err != nil {
				t.Error(err)
			}
			<-done
		})
		return ln.Addr().String()
	}
	env := &testEnv{t: t, cert: cert}

	// Submission on 465.
	env.addr = serve(RoleSubmissions, msgrate.NewMemory(ratelimit.Rate{Count: 1, Per: time.Hour}, nil))
	env.srv = &Server{opts: Options{Role: RoleSubmissions}}
	c := env.dial()
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("alice@example.test", "wrong"), 535, "5.7.8")
	c.cmd("AUTH PLAIN "+plainIR("alice", "Real-Pa55word"), 535, "5.7.8") // Mailu: full address only
	c.cmd("AUTH LOGIN", 334, "")
	c.cmd(b64("alice@example.test"), 334, "")
	c.cmd(b64("Real-Pa55word"), 235, "2.0.0")
	c.cmd("MAIL FROM:<bob@example.test>", 553, "5.7.1")
	// RFC 5321 2.4: the remote local part is queued as given, the local
	// one is looked up without regard to case.
	c.sendMail("sales+x@example.test", []string{"Alice+Tag@Example.test", "CaseCheck.MiXeD@Foreign.Test"}, simpleBody)
	c.cmd("MAIL FROM:<alice@example.test>", 450, "4.2.1") // MESSAGE_RATELIMIT 1/hour
	got := msgs.all()
	if len(got) != 1 || got[0].Sender != "sales+x@example.test" || len(got[0].Targets) != 1 ||
		len(got[0].Remote) != 1 || got[0].Remote[0] != "CaseCheck.MiXeD@foreign.test" {
		t.Fatalf("committed %+v", got)
	}
	if !strings.HasPrefix(string(got[0].Body), "Return-Path: <sales+x@example.test>\r\nReceived: from client.example.net") {
		t.Errorf("body %q", got[0].Body)
	}

	// Port 25: AUTH refused and logged by the real Authenticator.
	env.addr = serve(RoleMX, nil)
	env.srv = &Server{opts: Options{Role: RoleMX}}
	m := env.dial()
	m.ehlo()
	m.cmd("AUTH PLAIN "+plainIR("alice@example.test", "Real-Pa55word"), 502, "5.5.1")
	m.cmd("MAIL FROM:<>", 250, "2.0.0")
	m.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1")
	m.cmd("RCPT TO:<x@foreign.test>", 554, "5.7.1")
	m.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	m.cmd("DATA", 354, "")
	m.write(simpleBody + ".\r\n")
	m.expect(250, "2.0.0")
	if n := len(msgs.all()); n != 2 {
		t.Fatalf("committed %d messages, want 2", n)
	}
	if !strings.Contains(logs.String(), "port 25 does not accept AUTH") {
		t.Errorf("no port-25 line from auth:\n%s", logs)
	}
	if strings.Contains(logs.String(), "Real-Pa55word") {
		t.Error("password in the log")
	}
}
