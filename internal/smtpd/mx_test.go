package smtpd

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/inbound"
)

const simpleBody = "Subject: hi\r\n\r\nhello\r\n"

func TestMXBannerAndEHLO(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dialNoBanner()
	banner := c.expect(220, "")
	if !strings.HasPrefix(banner, testHost+" ESMTP") {
		t.Errorf("banner %q, want %q ESMTP ...", banner, testHost)
	}
	caps := c.ehlo()
	for _, want := range []string{"PIPELINING", "SIZE 10000", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING", "STARTTLS"} {
		if !hasCap(caps, want) {
			t.Errorf("EHLO lacks %q: %q", want, caps)
		}
	}
	if !hasCap(caps, "SIZE 10000") {
		t.Errorf("SIZE must carry MESSAGE_SIZE_LIMIT: %q", caps)
	}
	if hasCap(caps, "AUTH") {
		t.Errorf("port 25 advertises AUTH before STARTTLS: %q", caps)
	}
	c.starttls(e.cert.Client)
	caps = c.ehlo()
	if hasCap(caps, "AUTH") {
		t.Errorf("port 25 advertises AUTH after STARTTLS: %q", caps)
	}
	if hasCap(caps, "STARTTLS") {
		t.Errorf("STARTTLS advertised inside TLS: %q", caps)
	}
}

func TestMXWithoutCertificateHasNoSTARTTLS(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.TLSConfig = nil })
	c := e.dial()
	caps := c.ehlo()
	if hasCap(caps, "STARTTLS") || hasCap(caps, "AUTH") {
		t.Errorf("EHLO without a certificate: %q", caps)
	}
	c.cmd("STARTTLS", 502, "5.5.1")
}

func TestMXRefusesAUTH(t *testing.T) {
	type step struct {
		send string
		code int
	}
	cases := []struct {
		name     string
		steps    []step
		username string
	}{
		{"PLAIN with initial response", []step{{"AUTH PLAIN " + plainIR("alice@example.test", "pw"), 502}}, "alice@example.test"},
		// issue 17: no 334 that would read the next line as a username
		{"PLAIN without initial response", []step{{"AUTH PLAIN", 502}}, ""},
		{"LOGIN without initial response", []step{{"AUTH LOGIN", 502}}, ""},
		{"LOGIN with initial response", []step{{"AUTH LOGIN " + b64("dave@example.test"), 502}}, "dave@example.test"},
		{"lower-case mechanism", []step{{"auth plain " + plainIR("erin@example.test", "pw"), 502}}, "erin@example.test"},
		{"unknown mechanism", []step{{"AUTH CRAM-MD5", 502}}, ""},
		{"XOAUTH2 with payload", []step{{"AUTH XOAUTH2 " + b64("user=x\x01auth=Bearer y\x01\x01"), 502}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, RoleMX, nil)
			c := e.dial()
			c.ehlo()
			for i, s := range tc.steps {
				c.send(s.send)
				if s.code == 502 {
					text := c.expect(502, "5.5.1")
					if !strings.Contains(text, "port 25") || !strings.Contains(text, "465") {
						t.Errorf("reply %q does not tell the client to use 465", text)
					}
				} else {
					c.expect(s.code, "")
				}
				_ = i
			}
			calls := e.auth.port25Calls()
			if len(calls) != 1 {
				t.Fatalf("Port25Auth calls = %v, want 1", calls)
			}
			if calls[0].username != tc.username || calls[0].remote != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("Port25Auth(%v, %q), want (127.0.0.1, %q)", calls[0].remote, calls[0].username, tc.username)
			}
			if !strings.Contains(e.logs.String(), "port 25 does not accept AUTH") {
				t.Errorf("explaining log line missing:\n%s", e.logs)
			}
			// The session is unchanged: mail still flows, AUTH still not offered.
			c.sendMail("sender@remote.test", []string{"alice@example.test"}, simpleBody)
			if caps := c.ehlo(); hasCap(caps, "AUTH") {
				t.Errorf("AUTH offered after a refused AUTH: %q", caps)
			}
			if got := e.deliv.delivered(); len(got) != 1 || got[0].env.AuthUser != "" {
				t.Errorf("delivered %+v, want one unauthenticated message", got)
			}
		})
	}
}

func TestMXRefusesAUTHAfterSTARTTLS(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.ehlo()
	c.starttls(e.cert.Client)
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("alice@example.test", "alice-secret-pw"), 502, "5.5.1")
	if n := len(e.auth.port25Calls()); n != 1 {
		t.Errorf("Port25Auth calls = %d, want 1", n)
	}
	e.auth.mu.Lock()
	defer e.auth.mu.Unlock()
	if len(e.auth.attempts) != 0 {
		t.Errorf("port 25 verified a password: %+v", e.auth.attempts)
	}
}

// go-smtp v0.25.1 answers MAIL before HELO/EHLO itself, with 502 5.5.1
// (RFC 5321 would say 503); Petrel's policy never sees it.
func TestMXHeloRequired(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.cmd("MAIL FROM:<a@remote.test>", 502, "5.5.1")
	c.cmd("RCPT TO:<alice@example.test>", 502, "5.5.1")
	c.cmd("HELO client.example.net", 250, "2.0.0")
	c.cmd("MAIL FROM:<a@remote.test>", 250, "2.0.0")
}

func TestMXRecipients(t *testing.T) {
	cases := []struct {
		rcpt      string
		relayNets []netip.Prefix
		code      int
		enh       string
		text      string
		kind      inbound.RouteKind
	}{
		{rcpt: "alice@example.test", code: 250, enh: "2.0.0", kind: inbound.RouteLocal},
		{rcpt: "Alice@EXAMPLE.test", code: 250, enh: "2.0.0", kind: inbound.RouteLocal},
		{rcpt: "nobody@example.test", code: 550, enh: "5.1.1", text: "<nobody@example.test>: Recipient address rejected"},
		{rcpt: "someone@foreign.test", code: 554, enh: "5.7.1", text: "Relay access denied"},
		{rcpt: "someone@relayed.test", code: 250, enh: "2.0.0", kind: inbound.RouteRelay},
		{rcpt: "someone@foreign.test", relayNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, code: 250, enh: "2.0.0", kind: inbound.RouteForeign},
		{rcpt: "someone@foreign.test", relayNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, code: 554, enh: "5.7.1", text: "Relay access denied"},
	}
	for _, tc := range cases {
		t.Run(tc.rcpt, func(t *testing.T) {
			e := startServer(t, RoleMX, func(o *Options) { o.RelayNets = tc.relayNets })
			c := e.dial()
			c.ehlo()
			c.cmd("MAIL FROM:<sender@remote.test>", 250, "2.0.0")
			text := c.cmd("RCPT TO:<"+tc.rcpt+">", tc.code, tc.enh)
			if !strings.Contains(text, tc.text) {
				t.Errorf("reply %q lacks %q", text, tc.text)
			}
			if tc.code != 250 {
				c.cmd("DATA", 502, "5.5.1") // go-smtp: no accepted recipient
				return
			}
			c.cmd("DATA", 354, "")
			c.write(simpleBody + ".\r\n")
			c.expect(250, "2.0.0")
			got := e.deliv.delivered()
			if len(got) != 1 || len(got[0].env.Routes) != 1 || got[0].env.Routes[0].Kind != tc.kind {
				t.Fatalf("delivered %+v, want one route of kind %v", got, tc.kind)
			}
		})
	}
}

func TestMXRelayTricks(t *testing.T) {
	cases := []struct {
		name, rcpt string
		code       int
		enh, text  string
	}{
		{"percent hack", "user%other.example@example.test", 553, "5.1.3", "percent hack"},
		{"bang path", "other.example!user@example.test", 553, "5.1.3", "bang path"},
		{"quoted local part with @", `"user@foreign.test"@example.test`, 553, "5.1.3", "more than one @"},
		{"quoted local part with %", `"user%foreign.test"@example.test`, 553, "5.1.3", "percent hack"},
		{"double @", "user@foreign.test@example.test", 553, "5.1.3", "more than one @"},
		{"address literal", "user@[1.2.3.4]", 553, "5.1.3", "address literals"},
		{"IPv6 address literal", "user@[IPv6:2001:db8::1]", 553, "5.1.3", "address literals"},
		// The source route is ignored (RFC 5321 4.1.1.3): what is left
		// is a foreign recipient.
		{"source route to foreign", "@a.example,@b.example:user@foreign.test", 554, "5.7.1", "Relay access denied"},
		{"source route to local", "@foreign.test:alice@example.test", 250, "2.0.0", ""},
		{"no domain", "user", 501, "5.5.2", ""}, // go-smtp's parser
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, RoleMX, nil)
			c := e.dial()
			c.ehlo()
			c.cmd("MAIL FROM:<sender@remote.test>", 250, "2.0.0")
			text := c.cmd("RCPT TO:<"+tc.rcpt+">", tc.code, tc.enh)
			if !strings.Contains(text, tc.text) {
				t.Errorf("reply %q lacks %q", text, tc.text)
			}
		})
	}
}

func TestMXNullSender(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.ehlo()
	c.sendMail("", []string{"alice@example.test"}, simpleBody)
	got := e.deliv.delivered()
	if len(got) != 1 || got[0].env.Sender != "" {
		t.Fatalf("delivered %+v, want the null sender", got)
	}
}

func TestMXSenderChecks(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.ehlo()
	// Mailu: reject_non_fqdn_sender.
	text := c.cmd("MAIL FROM:<root@localhost>", 504, "5.5.2")
	if !strings.Contains(text, "need fully-qualified address") {
		t.Errorf("reply %q", text)
	}
	c.cmd("MAIL FROM:<a@b@remote.test>", 501, "5.1.7")
	// Routing characters are harmless in a sender.
	c.cmd("MAIL FROM:<list%bounce@remote.test>", 250, "2.0.0")
	c.cmd("RSET", 250, "2.0.0")
	c.sendMail("Some.One@Remote.TEST", []string{"alice@example.test"}, simpleBody)
	if got := e.deliv.delivered(); len(got) != 1 || got[0].env.Sender != "Some.One@remote.test" {
		t.Fatalf("delivered %+v, want sender Some.One@remote.test", got)
	}
}

func TestMXInboundTLSEnforce(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.InboundTLSEnforce = true })
	c := e.dial()
	c.ehlo()
	text := c.cmd("MAIL FROM:<sender@remote.test>", 530, "5.7.0")
	if text != "Must issue a STARTTLS command first" {
		t.Errorf("reply %q", text)
	}
	c.starttls(e.cert.Client)
	c.ehlo()
	c.sendMail("sender@remote.test", []string{"alice@example.test"}, simpleBody)
	if got := e.deliv.delivered(); len(got) != 1 {
		t.Fatalf("delivered %d, want 1", len(got))
	}
}

func TestDuplicateRecipientDeliveredOnce(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.ehlo()
	c.sendMail("s@remote.test", []string{"alice@example.test", "ALICE@example.test", "bob@example.test"}, simpleBody)
	got := e.deliv.delivered()
	if len(got) != 1 || len(got[0].env.Routes) != 2 {
		t.Fatalf("delivered %+v, want 2 routes", got)
	}
}

// TestEHLONameControlCharacters: NUL, bare CR and other control characters
// in the HELO/EHLO name are refused with 501 and never echoed back into the
// reply (issue 17); a clean EHLO afterwards works, on the first greeting
// and on a later one.
func TestEHLONameControlCharacters(t *testing.T) {
	for _, name := range []string{"a\x00b.example", "a\rb.example", "evil\x1b[31m.example", "x\x7f"} {
		for _, verb := range []string{"EHLO", "HELO"} {
			e := startServer(t, RoleMX, nil)
			c := e.dialRaw()
			c.expect(220, "")
			c.write(verb + " " + name + "\r\n")
			code, lines, err := c.readReply()
			if err != nil || code != 501 {
				t.Fatalf("%s %q: reply %d %q, %v; want 501", verb, name, code, lines, err)
			}
			for _, l := range lines {
				if strings.ContainsAny(l, "\x00\r\x1b\x7f") || strings.Contains(l, name) {
					t.Errorf("%s %q: reply echoes the name: %q", verb, name, l)
				}
			}
			c.ehlo()
			// A later EHLO with a bad name is refused too.
			c.write("EHLO " + name + "\r\n")
			if code, lines, _ := c.readReply(); code != 501 || strings.ContainsAny(strings.Join(lines, ""), "\x00\r\x1b\x7f") {
				t.Errorf("second EHLO %q: %d %q", name, code, lines)
			}
			c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
			if !strings.Contains(e.logs.String(), "stage=helo") {
				t.Errorf("no log line for the refused name:\n%s", e.logs)
			}
		}
	}
}
