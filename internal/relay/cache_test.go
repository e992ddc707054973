package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Sequential messages to one server share one session (Postfix
// smtp_connection_cache_on_demand), and each still arrives whole, over
// TLS and logged in.
func TestCacheReusesSession(t *testing.T) {
	for _, tc := range []struct {
		name     string
		implicit bool
		lmtp     bool
	}{{"STARTTLS", false, false}, {"implicit TLS", true, false}, {"LMTP", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg, pool := sinktest.Cert(t, "127.0.0.1", "127.0.0.47")
			o := sinktest.Options{TLS: cfg, ImplicitTLS: tc.implicit, LMTP: tc.lmtp}
			var c *relay.Client
			if tc.lmtp {
				o.TLS = nil
				s := sinktest.Start(t, o)
				c = e.client(func(ro *relay.Options) {
					ro.Relays = relays{"lmtp.test": fmt.Sprintf("lmtp:[127.0.0.1]:%d", s.Port())}
				})
				checkReuse(t, c, s, "bob@lmtp.test", "", false)
				return
			}
			if tc.implicit {
				o.Users = map[string]string{relayUser: relayPass}
				s := fixedPortSink(t, "127.0.0.47", 465, o)
				c = relayHostClient(e, config.RelayTarget{Host: "127.0.0.47", Port: 465}, func(ro *relay.Options) { ro.RootCAs = pool })
				checkReuse(t, c, s, "bob@example.test", relayUser, true)
				return
			}
			o.Users = map[string]string{relayUser: relayPass}
			s := sinktest.Start(t, o)
			c = relayHostClient(e, config.RelayTarget{Host: "127.0.0.1", Port: s.Port()}, func(ro *relay.Options) { ro.RootCAs = pool })
			checkReuse(t, c, s, "bob@example.test", relayUser, true)
			checkNoSecret(t, e.logs.String())
		})
	}
}

func checkReuse(t *testing.T, c *relay.Client, s *sinktest.Sink, rcpt, user string, tls bool) {
	t.Helper()
	const n = 5
	for i := range n {
		m := msg(rcpt, strings.Replace(rcpt, "bob", "carol", 1))
		m.ID = fmt.Sprint("M", i)
		mustDeliver(t, c, m)
	}
	msgs := s.Messages()
	if len(msgs) != n {
		t.Fatalf("sink has %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if len(m.To) != 2 || m.Data == nil || m.TLS != tls || m.AuthUser != user {
			t.Errorf("message %d: to %v, %d bytes, TLS %v, user %q", i, m.To, len(m.Data), m.TLS, m.AuthUser)
		}
	}
	if got := s.Conns(); got != 1 {
		t.Errorf("sink saw %d connections for %d messages, want 1", got, n)
	}
	// Shutdown ends the idle session with QUIT.
	c.CloseIdleConnections()
	waitFor(t, "the idle session to close", func() bool { return s.Open() == 0 })
}

// A cached session the server closed is replaced by a new connection, and
// the message goes through without an error.
func TestCacheReplacesDroppedSession(t *testing.T) {
	e := newEnv(t)
	s := sinktest.Start(t, sinktest.Options{})
	c := e.client(func(o *relay.Options) { o.RelayHost = config.RelayTarget{Host: "127.0.0.1", Port: s.Port()} })
	mustDeliver(t, c, msg("bob@example.test"))
	waitFor(t, "one open session", func() bool { return s.Open() == 1 })
	s.DropConns()
	waitFor(t, "the server to close it", func() bool { return s.Open() == 0 })
	mustDeliver(t, c, msg("carol@example.test"))
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("sink has %d messages, want 2", n)
	}
	if n := s.Conns(); n != 2 {
		t.Errorf("sink saw %d connections, want 2 (the dropped one, then a new one)", n)
	}
	if !strings.Contains(e.logs.String(), "cached session unusable") {
		t.Errorf("log does not say the cached session was found dead:\n%s", e.logs.String())
	}
}

// A session is not reused past MaxUses messages, and closes after Idle.
func TestCacheLimits(t *testing.T) {
	e := newEnv(t)
	s := sinktest.Start(t, sinktest.Options{})
	c := e.client(func(o *relay.Options) {
		o.RelayHost = config.RelayTarget{Host: "127.0.0.1", Port: s.Port()}
		o.Cache = relay.CacheOptions{MaxUses: 2, Idle: 100 * time.Millisecond}
	})
	for range 5 {
		mustDeliver(t, c, msg("bob@example.test"))
	}
	if n := s.Conns(); n != 3 {
		t.Errorf("sink saw %d connections for 5 messages at 2 per session, want 3", n)
	}
	waitFor(t, "the idle session to expire", func() bool { return s.Open() == 0 })

	// Idle < 0 turns the cache off: one connection per message.
	e2 := newEnv(t)
	s2 := sinktest.Start(t, sinktest.Options{})
	c2 := e2.client(func(o *relay.Options) {
		o.RelayHost = config.RelayTarget{Host: "127.0.0.1", Port: s2.Port()}
		o.Cache.Idle = -1
	})
	for range 3 {
		mustDeliver(t, c2, msg("bob@example.test"))
	}
	if n := s2.Conns(); n != 3 {
		t.Errorf("without cache the sink saw %d connections for 3 messages, want 3", n)
	}
}

// After a transaction that did not end (every recipient refused), RSET
// clears it and the session carries the next message.
func TestCacheAfterRefusedRecipients(t *testing.T) {
	e := newEnv(t)
	s := sinktest.Start(t, sinktest.Options{})
	s.RcptReply("nobody@example.test", 550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	c := e.client(func(o *relay.Options) { o.RelayHost = config.RelayTarget{Host: "127.0.0.1", Port: s.Port()} })
	res, err := deliver(t, c, msg("nobody@example.test"))
	if err == nil && (len(res) != 1 || res[0].Err == nil) {
		t.Fatalf("refused recipient accepted: %+v", res)
	}
	mustDeliver(t, c, msg("bob@example.test"))
	msgs := s.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "bob@example.test" {
		t.Fatalf("sink messages %+v", msgs)
	}
	if n := s.Conns(); n != 1 {
		t.Errorf("sink saw %d connections, want 1", n)
	}
}

// NextHop names the destination the queue limits: RELAYHOST for every
// domain, else the domain's MX, a relay domain its transport.
func TestNextHop(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	direct := e.client(func(o *relay.Options) { o.Relays = relays{"relayed.test": "[10.0.0.1]:2525"} })
	viaRelay := e.client(func(o *relay.Options) {
		o.RelayHost = config.RelayTarget{Host: "smarthost.test", Port: 587}
		o.Relays = relays{"relayed.test": "[10.0.0.1]:2525"}
	})
	for _, tc := range []struct {
		c      *relay.Client
		domain string
		want   string
	}{
		{direct, "a.example", "smtp:a.example"},
		{direct, "B.Example", "smtp:b.example"},
		{direct, "relayed.test", "smtp:[10.0.0.1]:2525"},
		{viaRelay, "a.example", "smtp:[smarthost.test]:587"},
		{viaRelay, "b.example", "smtp:[smarthost.test]:587"},
		{viaRelay, "relayed.test", "smtp:[10.0.0.1]:2525"},
	} {
		if got := tc.c.NextHop(ctx, tc.domain); got != tc.want {
			t.Errorf("NextHop(%q) = %q, want %q", tc.domain, got, tc.want)
		}
	}
}

// A 421 to MAIL on a reused session (a per-session message limit) is
// retried once on a new connection before it counts.
func TestCache421OnReusedSession(t *testing.T) {
	e := newEnv(t)
	s := sinktest.Start(t, sinktest.Options{})
	c := e.client(func(o *relay.Options) { o.RelayHost = config.RelayTarget{Host: "127.0.0.1", Port: s.Port()} })
	mustDeliver(t, c, msg("bob@example.test"))
	s.MailReply(421, smtp.EnhancedCode{4, 7, 0}, "too many messages in this session")
	de := wholesale(t, c, msg("carol@example.test"))
	checkErr(t, "421 on a fresh session too", de, false, 421, "4.7.0")
	if n := s.Conns(); n != 2 {
		t.Errorf("sink saw %d connections, want 2 (the reused session, then a new one)", n)
	}
}
