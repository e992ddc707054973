package relay_test

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
	"github.com/petrelmail/petrel/internal/tlspolicy"
	"github.com/petrelmail/petrel/internal/tlspolicy/tlspolicytest"
)

// secEnv is a recipient domain dane.test with one MX host, a private CA
// and a TLS policy checker whose results land in a memory store.
type secEnv struct {
	*env
	ca    *tlspolicytest.CA
	store *tlspolicytest.MemStore
	ps    *tlspolicytest.PolicyServer
}

func newSecEnv(t *testing.T, ip string) *secEnv {
	e := &secEnv{env: newEnv(t), ca: tlspolicytest.NewCA(t, "Test CA"), store: tlspolicytest.NewMemStore()}
	e.dns.Add(t, "dane.test. MX 10 mx1.dane.test.", "mx1.dane.test. A "+ip)
	return e
}

// policyServer serves an MTA-STS policy for dane.test.
func (e *secEnv) policyServer(body string) {
	e.dns.Add(e.t, `_mta-sts.dane.test. TXT "v=STSv1; id=20261205"`)
	e.ps = tlspolicytest.NewPolicyServer(e.t, e.ca.Issue(e.t, "mta-sts.dane.test"), body)
}

func (e *secEnv) secClient(deferOnErr bool) *relay.Client {
	return e.client(func(o *relay.Options) {
		po := tlspolicy.Options{Resolver: e.dns.Resolver(), Store: e.store, DeferOnTLSError: deferOnErr,
			RootCAs: e.ca.Pool(), Logger: o.Logger}
		if e.ps != nil {
			po.Dial = e.ps.Dial
		}
		o.TLSPolicy = tlspolicy.New(po)
	})
}

func (e *secEnv) tlsa(usage, selector int, cfg *tls.Config) {
	name := fmt.Sprintf("_%d._tcp.mx1.dane.test.", e.port)
	e.dns.Add(e.t, tlspolicytest.TLSA(name, usage, selector, tlspolicytest.Leaf(cfg)))
}

// flush moves the checker's counted results to the store.
func flush(t *testing.T, c *relay.Client) {
	t.Helper()
	if err := c.TLSPolicy().Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

const policyEnforce = "version: STSv1\r\nmode: enforce\r\nmx: mx1.dane.test\r\nmax_age: 86400\r\n"

func TestDANEEEMatchDelivers(t *testing.T) {
	e := newSecEnv(t, "127.0.0.61")
	cfg, _ := sinktest.Cert(t, "some-other-name.test") // DANE-EE: no name check
	s := e.sink("127.0.0.61", sinktest.Options{TLS: cfg}, false)
	e.tlsa(3, 1, cfg)
	e.dns.Secure("dane.test")
	c := e.secClient(true)
	mustDeliver(t, c, msg("bob@dane.test"))
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("sink messages %+v; want one over TLS", m)
	}
	if !strings.Contains(e.logs.String(), "tls_policy=dane") {
		t.Errorf("log does not name the DANE policy:\n%s", e.logs)
	}
	flush(t, c)
	if !e.store.Has("dane.test tlsa success=1") {
		t.Errorf("TLS results %v; want one tlsa success", e.store.Results())
	}
}

func TestDANEEEMismatchDefers(t *testing.T) {
	e := newSecEnv(t, "127.0.0.62")
	cfg, _ := sinktest.Cert(t, "mx1.dane.test")
	other, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.62", sinktest.Options{TLS: cfg}, false)
	e.tlsa(3, 1, other) // published for another key
	e.dns.Secure("dane.test")
	c := e.secClient(true)
	_, err := deliver(t, c, msg("bob@dane.test"))
	de := asDE(t, err)
	checkErr(t, "DANE mismatch", de, false, 0, "4.7.5")
	if !strings.Contains(de.Message, "DANE") || !strings.Contains(de.Message, "does not match any TLSA record") {
		t.Errorf("error %q does not say why", de.Message)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("sink got %d messages despite the mismatch", n)
	}
	if !strings.Contains(e.logs.String(), "does not match any TLSA record") {
		t.Errorf("log does not say why:\n%s", e.logs)
	}
	flush(t, c)
	if !e.store.Has("dane.test tlsa validation-failure=1") {
		t.Errorf("TLS results %v; want one tlsa validation-failure", e.store.Results())
	}
	for _, r := range e.store.Raw() {
		if r.SendingIP != "127.0.0.1" || r.ReceivingIP != "127.0.0.62" || r.MXHost != "mx1.dane.test" || !strings.Contains(r.PolicyString, "3 1 1 ") {
			t.Errorf("result row %+v lacks the addresses, MX or policy", r)
		}
	}
}

// Without the AD bit the same wrong record is not trusted: opportunistic.
func TestDANEInsecureTLSAIgnored(t *testing.T) {
	e := newSecEnv(t, "127.0.0.63")
	cfg, _ := sinktest.Cert(t, "mx1.dane.test")
	other, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.63", sinktest.Options{TLS: cfg}, false)
	e.tlsa(3, 1, other)
	c := e.secClient(true)
	mustDeliver(t, c, msg("bob@dane.test"))
	if len(s.Messages()) != 1 {
		t.Fatal("not delivered")
	}
	if !strings.Contains(e.logs.String(), "tls_policy=may") {
		t.Errorf("log does not show the opportunistic policy:\n%s", e.logs)
	}
}

// DEFER_ON_TLS_ERROR=false is Postfix's insecure_mx_policy=may: secure
// TLSA records of a host found through an unsigned MX answer are ignored.
func TestDANEInsecureMXWithoutDefer(t *testing.T) {
	e := newSecEnv(t, "127.0.0.64")
	cfg, _ := sinktest.Cert(t, "mx1.dane.test")
	other, _ := sinktest.Cert(t, "mx1.dane.test")
	e.sink("127.0.0.64", sinktest.Options{TLS: cfg}, false)
	e.tlsa(3, 1, other)
	e.dns.Secure(fmt.Sprintf("_%d._tcp.mx1.dane.test", e.port)) // TLSA signed, MX not
	mustDeliver(t, e.secClient(false), msg("bob@dane.test"))
	// With DEFER_ON_TLS_ERROR (Mailu's default) they count.
	_, err := deliver(t, e.secClient(true), msg("bob@dane.test"))
	checkErr(t, "insecure MX, defer", asDE(t, err), false, 0, "4.7.5")
}

func TestDANETA(t *testing.T) {
	e := newSecEnv(t, "127.0.0.65")
	good := e.ca.Issue(t, "mx1.dane.test")
	s := e.sink("127.0.0.65", sinktest.Options{TLS: good}, false)
	name := fmt.Sprintf("_%d._tcp.mx1.dane.test.", e.port)
	e.dns.Add(t, tlspolicytest.TLSA(name, 2, 0, e.ca.Cert))
	e.dns.Secure("dane.test")
	mustDeliver(t, e.secClient(true), msg("bob@dane.test"))
	if len(s.Messages()) != 1 {
		t.Fatal("not delivered")
	}
}

// DANE-TA checks the name: a certificate from the right CA for another
// host is refused.
func TestDANETAWrongName(t *testing.T) {
	e := newSecEnv(t, "127.0.0.66")
	bad := e.ca.Issue(t, "elsewhere.test")
	s := e.sink("127.0.0.66", sinktest.Options{TLS: bad}, false)
	name := fmt.Sprintf("_%d._tcp.mx1.dane.test.", e.port)
	e.dns.Add(t, tlspolicytest.TLSA(name, 2, 1, e.ca.Cert))
	e.dns.Secure("dane.test")
	_, err := deliver(t, e.secClient(true), msg("bob@dane.test"))
	de := asDE(t, err)
	checkErr(t, "DANE-TA wrong name", de, false, 0, "4.7.5")
	if !strings.Contains(de.Message, "DANE-TA") {
		t.Errorf("error %q does not name DANE-TA", de.Message)
	}
	if len(s.Messages()) != 0 {
		t.Error("delivered despite the wrong name")
	}
}

// Usable TLSA records make STARTTLS mandatory.
func TestDANERequiresSTARTTLS(t *testing.T) {
	e := newSecEnv(t, "127.0.0.67")
	cfg, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.67", sinktest.Options{}, false) // no STARTTLS
	e.tlsa(3, 1, cfg)
	e.dns.Secure("dane.test")
	c := e.secClient(true)
	_, err := deliver(t, c, msg("bob@dane.test"))
	de := asDE(t, err)
	checkErr(t, "no STARTTLS", de, false, 0, "4.7.10")
	if !strings.Contains(de.Message, "does not offer STARTTLS") {
		t.Errorf("error %q does not say why", de.Message)
	}
	if len(s.Messages()) != 0 {
		t.Error("delivered in clear")
	}
	flush(t, c)
	if !e.store.Has("dane.test tlsa starttls-not-supported=1") {
		t.Errorf("TLS results %v", e.store.Results())
	}
}

// Malformed TLSA records (unusable parameters) are logged and mean
// "encrypt, do not verify" (RFC 7672 2.2); they never crash.
func TestDANEUnusableRecords(t *testing.T) {
	e := newSecEnv(t, "127.0.0.68")
	cfg, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.68", sinktest.Options{TLS: cfg}, false)
	name := fmt.Sprintf("_%d._tcp.mx1.dane.test.", e.port)
	e.dns.Add(t, name+" TLSA 1 1 1 "+strings.Repeat("ab", 32), // PKIX-EE: unusable for SMTP
		name+" TLSA 3 7 1 "+strings.Repeat("ab", 32), // unknown selector
		name+" TLSA 3 1 1 abcd")                      // SHA-256 of the wrong length
	e.dns.Secure("dane.test")
	mustDeliver(t, e.secClient(true), msg("bob@dane.test"))
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("messages %+v; want one over TLS", m)
	}
	if !strings.Contains(e.logs.String(), "unusable TLSA records") {
		t.Errorf("log does not mention the unusable records:\n%s", e.logs)
	}
}

func TestMTASTSEnforceGoodCertificate(t *testing.T) {
	e := newSecEnv(t, "127.0.0.69")
	s := e.sink("127.0.0.69", sinktest.Options{TLS: e.ca.Issue(t, "mx1.dane.test")}, false)
	e.policyServer(policyEnforce)
	c := e.secClient(true)
	mustDeliver(t, c, msg("bob@dane.test"))
	mustDeliver(t, c, msg("carol@dane.test"))
	if len(s.Messages()) != 2 {
		t.Fatal("not delivered")
	}
	if e.ps.Hits() != 1 {
		t.Errorf("policy fetched %d times; want once (cached)", e.ps.Hits())
	}
	if p, err := e.store.GetMTASTSPolicy(t.Context(), "dane.test"); err != nil || p.ID != "20261205" || !p.Expires.After(time.Now().Add(23*time.Hour)) {
		t.Errorf("cached policy %+v, %v", p, err)
	}
	flush(t, c)
	// One TLS session: the second message reused the first's connection.
	if !e.store.Has("dane.test sts success=1") {
		t.Errorf("TLS results %v", e.store.Results())
	}
}

func TestMTASTSEnforceBadCertificateDefers(t *testing.T) {
	e := newSecEnv(t, "127.0.0.70")
	self, _ := sinktest.Cert(t, "mx1.dane.test") // not from a trusted CA
	s := e.sink("127.0.0.70", sinktest.Options{TLS: self}, false)
	e.policyServer(policyEnforce)
	c := e.secClient(false) // enforce mode defers whatever DEFER_ON_TLS_ERROR says
	_, err := deliver(t, c, msg("bob@dane.test"))
	de := asDE(t, err)
	checkErr(t, "bad certificate", de, false, 0, "4.7.5")
	if !strings.Contains(de.Message, "MTA-STS") || !strings.Contains(de.Message, "certificate") {
		t.Errorf("error %q does not say why", de.Message)
	}
	if len(s.Messages()) != 0 {
		t.Error("delivered despite the bad certificate")
	}
	flush(t, c)
	if !e.store.Has("dane.test sts certificate-not-trusted=1") {
		t.Errorf("TLS results %v", e.store.Results())
	}
}

func TestMTASTSEnforceMXNotListed(t *testing.T) {
	e := newSecEnv(t, "127.0.0.71")
	s := e.sink("127.0.0.71", sinktest.Options{TLS: e.ca.Issue(t, "mx1.dane.test")}, false)
	e.policyServer("version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 600\n")
	_, err := deliver(t, e.secClient(true), msg("bob@dane.test"))
	de := asDE(t, err)
	checkErr(t, "MX not listed", de, false, 0, "4.7.5")
	if !strings.Contains(de.Message, "does not list MX host mx1.dane.test") {
		t.Errorf("error %q does not say why", de.Message)
	}
	if s.Conns() != 0 {
		t.Error("connected to an MX the policy does not list")
	}
}

// Testing mode delivers despite a bad certificate and reports it, unless
// DEFER_ON_TLS_ERROR (Mailu: strict_testing) enforces it.
func TestMTASTSTestingMode(t *testing.T) {
	e := newSecEnv(t, "127.0.0.72")
	self, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.72", sinktest.Options{TLS: self}, false)
	e.policyServer("version: STSv1\nmode: testing\nmx: mx1.dane.test\nmax_age: 600\n")
	c := e.secClient(false)
	mustDeliver(t, c, msg("bob@dane.test"))
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("messages %+v; want one over TLS", m)
	}
	flush(t, c)
	if !e.store.Has("dane.test sts certificate-not-trusted=1") || e.store.Has("dane.test sts success=1") {
		t.Errorf("TLS results %v; want the failure reported and no success", e.store.Results())
	}
	_, err := deliver(t, e.secClient(true), msg("bob@dane.test"))
	checkErr(t, "strict testing", asDE(t, err), false, 0, "4.7.5")
}

// DANE takes precedence over MTA-STS (RFC 8461 2): a certificate that
// matches its TLSA record but no WebPKI CA is fine.
func TestDANEBeforeMTASTS(t *testing.T) {
	e := newSecEnv(t, "127.0.0.73")
	self, _ := sinktest.Cert(t, "mx1.dane.test")
	s := e.sink("127.0.0.73", sinktest.Options{TLS: self}, false)
	e.policyServer(policyEnforce)
	e.tlsa(3, 1, self)
	e.dns.Secure("dane.test")
	mustDeliver(t, e.secClient(true), msg("bob@dane.test"))
	if len(s.Messages()) != 1 {
		t.Fatal("not delivered")
	}
}

// Malformed policies are refused with a log line, and the mail goes out
// as if there were none.
func TestMTASTSMalformedPolicy(t *testing.T) {
	for _, tc := range []struct{ name, body, ct string }{
		{"no mode", "version: STSv1\nmx: mx1.dane.test\nmax_age: 600\n", "text/plain"},
		{"bad mode", "version: STSv1\nmode: enforcing\nmx: mx1.dane.test\nmax_age: 600\n", "text/plain"},
		{"garbage", "\x00\x01<html>not a policy</html>", "text/plain"},
		{"html", policyEnforce, "text/html"},
		{"huge", "version: STSv1\nmode: enforce\nmx: mx1.dane.test\nmax_age: 600\n" + strings.Repeat("x: y\n", 20000), "text/plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSecEnv(t, "127.0.0.74")
			self, _ := sinktest.Cert(t, "mx1.dane.test")
			s := e.sink("127.0.0.74", sinktest.Options{TLS: self}, false)
			e.policyServer("")
			e.ps.Set(tc.body, tc.ct)
			c := e.secClient(true)
			mustDeliver(t, c, msg("bob@dane.test"))
			if len(s.Messages()) != 1 {
				t.Fatal("not delivered")
			}
			if !strings.Contains(e.logs.String(), "MTA-STS policy not usable") {
				t.Errorf("no log line about the refused policy:\n%s", e.logs)
			}
		})
	}
}
