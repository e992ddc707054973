package smtpd

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/inbound"
)

func TestSubmissionsImplicitTLS(t *testing.T) {
	e := startServer(t, RoleSubmissions, nil)
	c := e.dialNoBanner() // a TLS client: the handshake comes first
	if !strings.HasPrefix(c.expect(220, ""), testHost+" ESMTP") {
		t.Error("banner")
	}
	caps := c.ehlo()
	if !hasCap(caps, "AUTH PLAIN LOGIN") {
		t.Errorf("465 EHLO lacks AUTH PLAIN LOGIN: %q", caps)
	}
	if hasCap(caps, "STARTTLS") {
		t.Errorf("465 offers STARTTLS: %q", caps)
	}
	c.login("alice@example.test", "alice-secret-pw")
	c.sendMail("alice@example.test", []string{"friend@foreign.test"}, simpleBody)
	got := e.deliv.delivered()
	if len(got) != 1 || got[0].env.AuthUser != "alice@example.test" || got[0].env.Routes[0].Kind != inbound.RouteForeign {
		t.Fatalf("delivered %+v", got)
	}
	if !strings.Contains(got[0].body, "with ESMTPSA id") {
		t.Errorf("Received header does not say ESMTPSA:\n%s", got[0].body)
	}
}

func TestSubmissionsRefusesPlaintext(t *testing.T) {
	e := startServer(t, RoleSubmissions, nil)
	conn := e.dialRaw()
	// A plaintext client gets no SMTP banner: the server waits for a
	// TLS ClientHello and drops the connection on garbage.
	conn.write("EHLO client.example.net\r\n")
	conn.expectClosed()
}

func TestSubmissionWithoutCertificateFails(t *testing.T) {
	for _, role := range []Role{RoleSubmissions, RoleSubmission} {
		s := New(Options{Role: role, Hostname: testHost, Auth: newFakeAuth(), Router: newFakeRouter(), Deliverer: &fakeDeliverer{}})
		err := s.Serve(nil)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprint(role.Port())) {
			t.Errorf("%v: Serve without TLSConfig = %v", role, err)
		}
	}
}

func TestTransactionOrder(t *testing.T) {
	e := startServer(t, RoleSubmissions, nil)
	c := e.dial()
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
	c.cmd("MAIL FROM:<sales@example.test>", 503, "5.5.1") // RFC 5321 4.1.4
	c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	c.expect(250, "2.0.0")
	if got := e.deliv.delivered(); len(got) != 1 || got[0].env.Sender != "alice@example.test" {
		t.Fatalf("delivered %+v", got)
	}

	m := startServer(t, RoleMX, nil).dial()
	m.ehlo()
	m.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	m.cmd("AUTH PLAIN "+plainIR("alice@example.test", "x"), 503, "5.5.1") // RFC 4954 4
	m.cmd("RSET", 250, "2.0.0")
	m.cmd("AUTH PLAIN "+plainIR("alice@example.test", "x"), 502, "5.5.1")
}

func TestSubmissionSTARTTLSBeforeAUTH(t *testing.T) {
	e := startServer(t, RoleSubmission, nil)
	c := e.dial()
	caps := c.ehlo()
	if !hasCap(caps, "STARTTLS") {
		t.Errorf("587 lacks STARTTLS: %q", caps)
	}
	if hasCap(caps, "AUTH") {
		t.Errorf("587 offers AUTH before STARTTLS: %q", caps)
	}
	for _, cmd := range []string{"AUTH PLAIN " + plainIR("alice@example.test", "alice-secret-pw"), "AUTH LOGIN", "AUTH PLAIN"} {
		if text := c.cmd(cmd, 530, "5.7.0"); text != "Must issue a STARTTLS command first" {
			t.Errorf("%s: %q", cmd, text)
		}
	}
	c.cmd("MAIL FROM:<alice@example.test>", 530, "5.7.0")
	e.auth.mu.Lock()
	n := len(e.auth.attempts)
	e.auth.mu.Unlock()
	if n != 0 {
		t.Fatalf("a password was checked in plaintext")
	}
	c.starttls(e.cert.Client)
	caps = c.ehlo()
	if !hasCap(caps, "AUTH PLAIN LOGIN") {
		t.Errorf("587 after STARTTLS lacks AUTH: %q", caps)
	}
	c.login("alice@example.test", "alice-secret-pw")
	c.sendMail("alice@example.test", []string{"bob@example.test"}, simpleBody)
}

func TestSubmissionNoTLSMode(t *testing.T) {
	e := startServer(t, RoleSubmission, func(o *Options) { o.TLSConfig = nil; o.NoTLS = true })
	c := e.dial()
	caps := c.ehlo()
	if hasCap(caps, "STARTTLS") || !hasCap(caps, "AUTH PLAIN LOGIN") {
		t.Errorf("notls 587 EHLO: %q", caps)
	}
	c.login("alice@example.test", "alice-secret-pw")
	c.sendMail("alice@example.test", []string{"bob@example.test"}, simpleBody)
	got := e.deliv.delivered()
	if len(got) != 1 || !strings.Contains(got[0].body, "with ESMTPA id") {
		t.Fatalf("delivered %+v, want ESMTPA", got)
	}
}

func TestSubmissionAUTH(t *testing.T) {
	type step struct {
		send string
		code int
		enh  string
		text string
	}
	alice := "alice@example.test"
	pw := "alice-secret-pw"
	cases := []struct {
		name  string
		steps []step
		authd bool
	}{
		{"PLAIN with initial response", []step{{"AUTH PLAIN " + plainIR(alice, pw), 235, "2.0.0", ""}}, true},
		{"PLAIN without initial response", []step{{"AUTH PLAIN", 334, "", ""}, {plainIR(alice, pw), 235, "2.0.0", ""}}, true},
		{"PLAIN with equal authzid", []step{{"AUTH PLAIN " + b64(alice+"\x00"+alice+"\x00"+pw), 235, "2.0.0", ""}}, true},
		{"LOGIN without initial response", []step{{"AUTH LOGIN", 334, "", ""}, {b64(alice), 334, "", ""}, {b64(pw), 235, "2.0.0", ""}}, true},
		{"LOGIN with initial response", []step{{"AUTH LOGIN " + b64(alice), 334, "", ""}, {b64(pw), 235, "2.0.0", ""}}, true},
		{"lower-case mechanism", []step{{"auth plain " + plainIR(alice, pw), 235, "2.0.0", ""}}, true},
		{"wrong password", []step{{"AUTH PLAIN " + plainIR(alice, "nope"), 535, "5.7.8", "Authentication credentials invalid"}}, false},
		{"bare local part", []step{{"AUTH PLAIN " + plainIR("alice", pw), 535, "5.7.8", "Authentication credentials invalid"}}, false},
		{"LOGIN wrong password", []step{{"AUTH LOGIN", 334, "", ""}, {b64(alice), 334, "", ""}, {b64("nope"), 535, "5.7.8", ""}}, false},
		{"other authzid", []step{{"AUTH PLAIN " + b64("bob@example.test\x00"+alice+"\x00"+pw), 535, "5.7.8", ""}}, false},
		{"PLAIN without NULs", []step{{"AUTH PLAIN " + b64("alice"), 501, "5.5.2", "Malformed AUTH response"}}, false},
		{"unknown mechanism", []step{{"AUTH CRAM-MD5", 504, "5.5.4", "use PLAIN or LOGIN"}}, false},
		// go-smtp v0.25.1 decodes base64 itself and answers 454 4.7.0
		// (RFC 4954 wants 501 5.5.2); see reply.go.
		{"malformed base64", []step{{"AUTH PLAIN %%%notbase64", 454, "4.7.0", ""}}, false},
		{"malformed base64 continuation", []step{{"AUTH LOGIN", 334, "", ""}, {"%%%", 454, "4.7.0", ""}}, false},
		{"cancelled", []step{{"AUTH LOGIN", 334, "", ""}, {"*", 501, "5.0.0", ""}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, RoleSubmissions, nil)
			c := e.dial()
			c.ehlo()
			for _, s := range tc.steps {
				text := c.cmd(s.send, s.code, s.enh)
				if !strings.Contains(text, s.text) {
					t.Errorf("%s: reply %q lacks %q", s.send, text, s.text)
				}
			}
			if tc.authd {
				c.cmd("AUTH PLAIN "+plainIR(alice, pw), 503, "5.5.1") // RFC 4954 4: one AUTH per session
				c.sendMail(alice, []string{"bob@example.test"}, simpleBody)
				if got := e.deliv.delivered(); len(got) != 1 || got[0].env.AuthUser != alice {
					t.Fatalf("delivered %+v", got)
				}
			} else {
				c.cmd("MAIL FROM:<"+alice+">", 530, "5.7.0")
			}
			if strings.Contains(e.logs.String(), pw) {
				t.Errorf("the password reached the log:\n%s", e.logs)
			}
		})
	}
}

func TestSubmissionAUTHRateLimitedAndLocalProblem(t *testing.T) {
	e := startServer(t, RoleSubmissions, nil)
	e.auth.rateLimited["alice@example.test"] = true
	c := e.dial()
	c.ehlo()
	text := c.cmd("AUTH PLAIN "+plainIR("alice@example.test", "alice-secret-pw"), 451, "4.3.2")
	if text != "Temporary authentication failure (rate-limit)" {
		t.Errorf("reply %q", text)
	}
	e.auth.mu.Lock()
	e.auth.err = errors.New("db: connection refused at 10.0.0.7:5432")
	a := e.auth.attempts[0]
	e.auth.mu.Unlock()
	if a.Protocol != "smtp" || a.Port != 465 || a.Remote != netip.MustParseAddr("127.0.0.1") || a.Log == nil {
		t.Errorf("attempt %+v", a)
	}
	text = c.cmd("AUTH PLAIN "+plainIR("bob@example.test", "bob-secret-pw"), 451, "4.3.0")
	if strings.Contains(text, "10.0.0.7") {
		t.Errorf("internal detail leaked to the client: %q", text)
	}
	if !strings.Contains(e.logs.String(), "10.0.0.7") {
		t.Errorf("internal detail missing from the log")
	}
}

// The password and the AUTH payload never reach the log, at any level,
// whether the login succeeds or fails.
func TestAUTHNeverLogged(t *testing.T) {
	e := startServer(t, RoleSubmissions, nil)
	e.auth.addUser("carol@example.test", "Carol-Pa55word-xyz")
	secrets := []string{"Carol-Pa55word-xyz", "Wrong-Pa55word-abc"}
	payloads := []string{
		plainIR("carol@example.test", "Wrong-Pa55word-abc"),
		b64("Wrong-Pa55word-abc"),
		plainIR("carol@example.test", "Carol-Pa55word-xyz"),
	}
	c := e.dial()
	c.ehlo()
	c.cmd("AUTH PLAIN "+payloads[0], 535, "5.7.8")
	c.cmd("AUTH LOGIN", 334, "")
	c.cmd(b64("carol@example.test"), 334, "")
	c.cmd(payloads[1], 535, "5.7.8")
	c.cmd("AUTH PLAIN "+payloads[2], 235, "2.0.0")
	c.cmd("QUIT", 221, "2.0.0")

	// And on port 25, where AUTH is refused.
	mx := startServer(t, RoleMX, func(o *Options) { o.Logger = e.srv.opts.Logger })
	m := mx.dial()
	m.ehlo()
	m.cmd("AUTH PLAIN "+payloads[2], 502, "5.5.1")
	m.cmd("QUIT", 221, "2.0.0")

	logs := e.logs.String()
	for _, s := range append(secrets, payloads...) {
		if strings.Contains(logs, s) {
			t.Errorf("log contains %q:\n%s", s, logs)
		}
	}
	if !strings.Contains(logs, "carol@example.test") {
		t.Errorf("the username should be logged:\n%s", logs)
	}
}

func TestSubmissionMailPolicy(t *testing.T) {
	e := startServer(t, RoleSubmissions, func(o *Options) { o.WildcardSenders = []string{"bob@example.test"} })
	c := e.dial()
	c.ehlo()
	if text := c.cmd("MAIL FROM:<alice@example.test>", 530, "5.7.0"); text != "Authentication required" {
		t.Errorf("MAIL before AUTH: %q", text)
	}
	c.login("alice@example.test", "alice-secret-pw")
	text := c.cmd("MAIL FROM:<bob@example.test>", 553, "5.7.1")
	if text != "Sender address rejected: not owned by user alice@example.test" {
		t.Errorf("reply %q", text)
	}
	c.cmd("MAIL FROM:<sales@example.test>", 250, "2.0.0") // an alias of alice
	c.cmd("RSET", 250, "2.0.0")
	c.cmd("MAIL FROM:<>", 250, "2.0.0")
	c.cmd("RSET", 250, "2.0.0")

	// WILDCARD_SENDERS: bob may send as anyone.
	b := e.dial()
	b.ehlo()
	b.login("bob@example.test", "bob-secret-pw")
	b.sendMail("ceo@example.test", []string{"x@foreign.test"}, simpleBody)

	e.router.mu.Lock()
	e.router.senderErr = errors.New("db gone")
	e.router.mu.Unlock()
	c.cmd("MAIL FROM:<alice@example.test>", 451, "4.3.0")
}

func TestSubmissionRecipients(t *testing.T) {
	e := startServer(t, RoleSubmissions, nil)
	c := e.dial()
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1")
	c.cmd("RCPT TO:<friend@foreign.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<user%other@example.test>", 553, "5.1.3")
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	c.expect(250, "2.0.0")
	got := e.deliv.delivered()
	if len(got) != 1 {
		t.Fatalf("delivered %d", len(got))
	}
	env := got[0].env
	if env.Sender != "alice@example.test" || env.AuthUser != "alice@example.test" || len(env.Routes) != 2 ||
		env.Routes[0].Kind != inbound.RouteLocal || env.Routes[1].Kind != inbound.RouteForeign {
		t.Fatalf("envelope %+v", env)
	}
	if strings.Contains(got[0].body, "\tfor <") {
		t.Errorf("Received names a recipient of a multi-recipient message:\n%s", got[0].body)
	}
}

func TestMessageRateLimit(t *testing.T) {
	lim := &fakeLimiter{limit: 2}
	e := startServer(t, RoleSubmissions, func(o *Options) {
		o.MessageRate = lim
		o.MessageRateExemption = []string{"Bob@example.test"}
	})
	c := e.dial()
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	c.sendMail("alice@example.test", []string{"x@foreign.test"}, simpleBody)
	// A message that is not delivered is not counted.
	e.deliv.mu.Lock()
	e.deliv.err = errors.New("disk full")
	e.deliv.mu.Unlock()
	c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<x@foreign.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	c.expect(451, "4.3.0")
	e.deliv.mu.Lock()
	e.deliv.err = nil
	e.deliv.mu.Unlock()
	c.sendMail("alice@example.test", []string{"x@foreign.test"}, simpleBody)
	text := c.cmd("MAIL FROM:<alice@example.test>", 450, "4.2.1")
	if text != "You are sending too many emails too fast." {
		t.Errorf("reply %q", text)
	}

	// MESSAGE_RATELIMIT_EXEMPTION
	b := e.dial()
	b.ehlo()
	b.login("bob@example.test", "bob-secret-pw")
	for range 4 {
		b.sendMail("bob@example.test", []string{"x@foreign.test"}, simpleBody)
	}
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if lim.hits["alice@example.test"] != 2 || lim.hits["bob@example.test"] != 0 {
		t.Errorf("limiter hits %v", lim.hits)
	}
	if lim.returned != 1 {
		t.Errorf("places given back = %d, want 1 (the failed delivery)", lim.returned)
	}
}

// A place taken at MAIL is given back when the transaction ends without a
// message: RSET, and a client that disconnects.
func TestMessageRateGivenBack(t *testing.T) {
	lim := &fakeLimiter{limit: 1}
	e := startServer(t, RoleSubmissions, func(o *Options) { o.MessageRate = lim })
	c := e.dial()
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
	// The one place is held: a second session is refused meanwhile.
	d := e.dial()
	d.ehlo()
	d.login("alice@example.test", "alice-secret-pw")
	d.cmd("MAIL FROM:<alice@example.test>", 450, "4.2.1")
	c.cmd("RSET", 250, "2.0.0")
	d.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
	d.conn.Close() // mid-transaction
	deadline := time.Now().Add(5 * time.Second)
	for !lim.settled() {
		if time.Now().After(deadline) {
			t.Fatal("a disconnected session still holds its place")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.sendMail("alice@example.test", []string{"x@foreign.test"}, simpleBody)
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if lim.returned != 2 || lim.hits["alice@example.test"] != 1 {
		t.Errorf("returned %d, hits %v; want 2 and 1", lim.returned, lim.hits)
	}
}

// A limiter that fails (the shared store is down) refuses MAIL with a
// temporary error and a WARN line, and lets nothing through.
func TestMessageRateStoreError(t *testing.T) {
	lim := &fakeLimiter{limit: 10, err: errors.New("store unreachable")}
	e := startServer(t, RoleSubmissions, func(o *Options) { o.MessageRate = lim })
	c := e.dial()
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	c.cmd("MAIL FROM:<alice@example.test>", 451, "4.3.0")
	c.cmd("RCPT TO:<x@foreign.test>", 502, "5.5.1") // go-smtp: no MAIL yet
	if !strings.Contains(e.logs.String(), "store unreachable") || !strings.Contains(e.logs.String(), "level=WARN") {
		t.Errorf("no WARN line with the cause:\n%s", e.logs.String())
	}
	if n := len(e.deliv.delivered()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

// The auth.Attempt names the role's port (Mailu: Auth-Port).
func TestSubmissionAttemptPort(t *testing.T) {
	e := startServer(t, RoleSubmission, nil)
	c := e.dial()
	c.ehlo()
	c.starttls(e.cert.Client)
	c.ehlo()
	c.login("alice@example.test", "alice-secret-pw")
	e.auth.mu.Lock()
	defer e.auth.mu.Unlock()
	if a := e.auth.attempts[0]; a.Port != 587 || a.Username != "alice@example.test" {
		t.Errorf("attempt %+v", a)
	}
}
