package relay_test

import (
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/queue"
	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/tlspolicy"
)

// RFC 8689: REQUIRETLS and the "TLS-Required: No" header field.

const bodyTLSNo = "From: <alice@petrel.test>\r\nTo: <bob@dane.test>\r\nTLS-Required: No\r\nSubject: hi\r\n\r\nHello.\r\n"

func requireTLSMsg(rcpts ...string) *queue.Message {
	m := msg(rcpts...)
	m.RequireTLS = true
	return m
}

// tlsNoMsg is a message with "TLS-Required: No"; as the queue does, the
// relay learns it from TLSRequiredNo (its parsing is tested in queue).
func tlsNoMsg(rcpts ...string) *queue.Message {
	m := msg(rcpts...)
	m.Size = int64(len(bodyTLSNo))
	m.Body = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(bodyTLSNo)), nil }
	m.TLSRequiredNo = func() bool { return true }
	return m
}

func TestRequireTLSMTASTSEnforceDelivers(t *testing.T) {
	e := newSecEnv(t, "127.0.0.81")
	s := e.sink("127.0.0.81", sinktest.Options{TLS: e.ca.Issue(t, "mx1.dane.test"), REQUIRETLS: true}, false)
	e.policyServer(policyEnforce)
	mustDeliver(t, e.secClient(true), requireTLSMsg("bob@dane.test"))
	m := s.Messages()
	if len(m) != 1 || !m[0].TLS || !m[0].RequireTLS {
		t.Fatalf("sink messages %+v; want one over TLS with MAIL FROM REQUIRETLS passed on", m)
	}
	if !strings.Contains(e.logs.String(), `tls_rule="REQUIRETLS (RFC 8689): MTA-STS policy in enforce mode`) {
		t.Errorf("log does not say which rule applied:\n%s", e.logs)
	}
}

func TestRequireTLSDANEDelivers(t *testing.T) {
	e := newSecEnv(t, "127.0.0.82")
	cfg, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.82", sinktest.Options{TLS: cfg, REQUIRETLS: true}, false)
	e.tlsa(3, 1, cfg)
	e.dns.Secure("dane.test")
	mustDeliver(t, e.secClient(true), requireTLSMsg("bob@dane.test"))
	if m := s.Messages(); len(m) != 1 || !m[0].RequireTLS {
		t.Fatalf("sink messages %+v; want one with REQUIRETLS", m)
	}
	if !strings.Contains(e.logs.String(), "DANE, with a DNSSEC-signed MX answer") {
		t.Errorf("log does not say which rule applied:\n%s", e.logs)
	}
}

// A next hop that does not offer REQUIRETLS gets nothing: 5.7.30, final.
func TestRequireTLSNextHopWithoutSupport(t *testing.T) {
	e := newSecEnv(t, "127.0.0.83")
	s := e.sink("127.0.0.83", sinktest.Options{TLS: e.ca.Issue(t, "mx1.dane.test")}, false)
	e.policyServer(policyEnforce)
	de := wholesale(t, e.secClient(true), requireTLSMsg("bob@dane.test"))
	checkErr(t, "no REQUIRETLS at the next hop", de, true, 0, "5.7.30")
	if !strings.Contains(de.Message, "REQUIRETLS support required") || !strings.Contains(de.Message, "does not offer REQUIRETLS") {
		t.Errorf("error %q", de.Message)
	}
	if len(s.Messages()) != 0 {
		t.Error("delivered to a server without REQUIRETLS")
	}
}

// Without DANE or MTA-STS enforce there is nothing to validate the MX by:
// returned at once, no connection made.
func TestRequireTLSWithoutPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy string
		why    string
	}{
		{"none", "", "no DANE or MTA-STS policy"},
		{"testing", "version: STSv1\r\nmode: testing\r\nmx: mx1.dane.test\r\nmax_age: 600\r\n", "testing mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSecEnv(t, "127.0.0.84")
			s := e.sink("127.0.0.84", sinktest.Options{TLS: e.ca.Issue(t, "mx1.dane.test"), REQUIRETLS: true}, false)
			if tc.policy != "" {
				e.policyServer(tc.policy)
			}
			de := wholesale(t, e.secClient(true), requireTLSMsg("bob@dane.test"))
			checkErr(t, "no validation", de, true, 0, "5.7.30")
			if !strings.Contains(de.Message, tc.why) {
				t.Errorf("error %q does not say %q", de.Message, tc.why)
			}
			if s.Conns() != 0 {
				t.Errorf("%d connections to an MX that cannot be validated", s.Conns())
			}
			// The same message without REQUIRETLS goes through.
			mustDeliver(t, e.secClient(true), msg("bob@dane.test"))
		})
	}
}

// DANE through an unsigned MX answer (trusted with DEFER_ON_TLS_ERROR)
// is not enough for REQUIRETLS: the MX host itself is not validated.
func TestRequireTLSDANEInsecureMX(t *testing.T) {
	e := newSecEnv(t, "127.0.0.85")
	cfg, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.85", sinktest.Options{TLS: cfg, REQUIRETLS: true}, false)
	e.tlsa(3, 1, cfg)
	e.dns.Secure("_" + itoa(e.port) + "._tcp.mx1.dane.test")
	de := wholesale(t, e.secClient(true), requireTLSMsg("bob@dane.test"))
	checkErr(t, "insecure MX", de, true, 0, "5.7.30")
	if !strings.Contains(de.Message, "MX answer is not DNSSEC-signed") || s.Conns() != 0 {
		t.Errorf("error %q, %d connections", de.Message, s.Conns())
	}
}

// REQUIRETLS still defers (never downgrades) when the certificate fails.
func TestRequireTLSBadCertificateDefers(t *testing.T) {
	e := newSecEnv(t, "127.0.0.86")
	self, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.86", sinktest.Options{TLS: self, REQUIRETLS: true}, false)
	e.policyServer(policyEnforce)
	de := wholesale(t, e.secClient(true), requireTLSMsg("bob@dane.test"))
	checkErr(t, "bad certificate", de, false, 0, "4.7.5")
	if len(s.Messages()) != 0 || s.Conns() != 1 {
		t.Errorf("messages %d, connections %d; want 0, 1 (no plaintext retry)", len(s.Messages()), s.Conns())
	}
}

// Through RELAYHOST: a verified certificate and REQUIRETLS at the relay.
func TestRequireTLSRelayHost(t *testing.T) {
	e := newEnv(t)
	cfg, pool := sinktest.Cert(t, "smarthost.test")
	e.dns.Add(t, "smarthost.test. A 127.0.0.87")
	with := e.sink("127.0.0.87", sinktest.Options{TLS: cfg, REQUIRETLS: true}, true)
	without := e.sink("127.0.0.87", sinktest.Options{TLS: cfg}, true)
	plain := e.sink("127.0.0.87", sinktest.Options{}, true)
	client := func(s *sinktest.Sink, noVerify bool) *relay.Client {
		return e.client(func(o *relay.Options) {
			o.RelayHost = config.RelayTarget{Host: "smarthost.test", Port: s.Port()}
			o.RootCAs, o.RelayHostNoVerify = pool, noVerify
		})
	}
	mustDeliver(t, client(with, false), requireTLSMsg("bob@example.test"))
	if m := with.Messages(); len(m) != 1 || !m[0].RequireTLS || !m[0].TLS {
		t.Fatalf("relay messages %+v; want one over TLS with REQUIRETLS", m)
	}
	if !strings.Contains(e.logs.String(), `tls_rule="REQUIRETLS (RFC 8689): verified TLS to RELAYHOST`) {
		t.Errorf("log does not say which rule applied:\n%s", e.logs)
	}

	de := wholesale(t, client(without, false), requireTLSMsg("bob@example.test"))
	checkErr(t, "relay without REQUIRETLS", de, true, 0, "5.7.30")
	de = wholesale(t, client(plain, false), requireTLSMsg("bob@example.test"))
	checkErr(t, "relay without STARTTLS", de, true, 0, "5.7.30")
	de = wholesale(t, client(with, true), requireTLSMsg("bob@example.test"))
	checkErr(t, "RELAYHOST_TLS_VERIFY=false", de, true, 0, "5.7.30")
	if !strings.Contains(de.Message, "RELAYHOST_TLS_VERIFY=false") {
		t.Errorf("error %q does not name the setting", de.Message)
	}
	if len(without.Messages())+len(plain.Messages()) != 0 || len(with.Messages()) != 1 {
		t.Error("a REQUIRETLS message went through a relay that cannot carry it")
	}
	// Without REQUIRETLS, the relay without it carries the message.
	mustDeliver(t, client(without, false), msg("bob@example.test"))
}

// A relay domain's transport is not validated: REQUIRETLS mail is returned.
func TestRequireTLSRelayTransport(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{REQUIRETLS: true}, true)
	c := e.client(func(o *relay.Options) { o.Relays = relays{"relayed.test": "[127.0.0.1]:" + itoa(s.Port())} })
	de := wholesale(t, c, requireTLSMsg("bob@relayed.test"))
	checkErr(t, "relay transport", de, true, 0, "5.7.30")
	if s.Conns() != 0 {
		t.Error("connected to a transport for a REQUIRETLS message")
	}
}

// "TLS-Required: No": an MTA-STS enforce failure does not stop delivery,
// which still uses STARTTLS; the header goes on unchanged.
func TestTLSRequiredNoIgnoresPolicyFailures(t *testing.T) {
	e := newSecEnv(t, "127.0.0.88")
	self, _ := sinktest.Cert(t, "mx1.dane.test") // not from a trusted CA
	s := e.sink("127.0.0.88", sinktest.Options{TLS: self}, false)
	e.policyServer(policyEnforce)
	c := e.secClient(true)
	mustDeliver(t, c, tlsNoMsg("bob@dane.test"))
	m := s.Messages()
	if len(m) != 1 || !m[0].TLS || !m[0].HasHeader("TLS-Required: No") {
		t.Fatalf("sink messages %+v; want one over TLS with the header kept", m)
	}
	l := e.logs.String()
	if !strings.Contains(l, `tls_rule="TLS-Required: No"`) || !strings.Contains(l, "TLS-Required: No (RFC 8689 5): MTA-STS: policy 20261205 of dane.test in enforce mode not enforced") {
		t.Errorf("log does not say which rule applied:\n%s", l)
	}
	// The same message without the header is deferred.
	de := wholesale(t, c, msg("bob@dane.test"))
	checkErr(t, "without the header", de, false, 0, "4.7.5")
}

// An MX that the policy does not list, or a DANE mismatch, is used too.
func TestTLSRequiredNoRefusedHosts(t *testing.T) {
	t.Run("mx-not-listed", func(t *testing.T) {
		e := newSecEnv(t, "127.0.0.89")
		s := e.sink("127.0.0.89", sinktest.Options{TLS: e.ca.Issue(t, "mx1.dane.test")}, false)
		e.policyServer("version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 600\n")
		mustDeliver(t, e.secClient(true), tlsNoMsg("bob@dane.test"))
		if len(s.Messages()) != 1 {
			t.Fatal("not delivered")
		}
		if !strings.Contains(e.logs.String(), "delivering anyway (TLS-Required: No, RFC 8689 5)") {
			t.Errorf("log:\n%s", e.logs)
		}
	})
	t.Run("dane-mismatch", func(t *testing.T) {
		e := newSecEnv(t, "127.0.0.90")
		cfg, _ := sinktest.Cert(t, "mx1.dane.test")
		other, _ := sinktest.Cert(t, "mx1.dane.test")
		s := e.sink("127.0.0.90", sinktest.Options{TLS: cfg}, false)
		e.tlsa(3, 1, other)
		e.dns.Secure("dane.test")
		mustDeliver(t, e.secClient(true), tlsNoMsg("bob@dane.test"))
		if m := s.Messages(); len(m) != 1 || !m[0].TLS {
			t.Fatalf("sink messages %+v", m)
		}
	})
}

// With REQUIRETLS the header is ignored (RFC 8689 4.1).
func TestTLSRequiredNoIgnoredWithRequireTLS(t *testing.T) {
	e := newSecEnv(t, "127.0.0.91")
	self, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.91", sinktest.Options{TLS: self, REQUIRETLS: true}, false)
	e.policyServer(policyEnforce)
	m := tlsNoMsg("bob@dane.test")
	m.RequireTLS = true
	de := wholesale(t, e.secClient(true), m)
	checkErr(t, "REQUIRETLS with TLS-Required: No", de, false, 0, "4.7.5")
	if len(s.Messages()) != 0 {
		t.Error("the header overrode REQUIRETLS")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// OUTBOUND_TLS_LEVEL=encrypt is the admin's rule, not the recipient's:
// "TLS-Required: No" does not waive it.
func TestTLSRequiredNoKeepsEncryptLevel(t *testing.T) {
	e := newSecEnv(t, "127.0.0.92")
	s := e.sink("127.0.0.92", sinktest.Options{}, false) // no STARTTLS
	c := e.client(func(o *relay.Options) {
		o.TLSPolicy = tlspolicy.New(tlspolicy.Options{Resolver: e.dns.Resolver(), Store: e.store, Level: tlspolicy.LevelEncrypt, Logger: o.Logger})
	})
	de := wholesale(t, c, tlsNoMsg("bob@dane.test"))
	checkErr(t, "encrypt level", de, false, 0, "4.7.10")
	if len(s.Messages()) != 0 {
		t.Error("delivered in clear despite OUTBOUND_TLS_LEVEL=encrypt")
	}
}
