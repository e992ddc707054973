package relay_test

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/config"
	"github.com/petrelmail/petrel/internal/relay"
	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

const (
	relayUser = "petrel@relay.test"
	relayPass = "s3cret-Pa55"
)

// fixedPortSink starts a sink on ip:port, or skips the test when that port
// cannot be bound (not root, or taken).
func fixedPortSink(t *testing.T, ip string, port int, o sinktest.Options) *sinktest.Sink {
	t.Helper()
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot bind %s (needs root and a free port): %v", addr, err)
	}
	ln.Close()
	o.Addr = addr
	return sinktest.Start(t, o)
}

func relayHostClient(e *env, target config.RelayTarget, tweak func(*relay.Options)) *relay.Client {
	return e.client(func(o *relay.Options) {
		o.RelayHost = target
		o.RelayUser, o.RelayPassword = relayUser, relayPass
		if tweak != nil {
			tweak(o)
		}
	})
}

// checkNoSecret fails when the password, or any base64 form of an AUTH
// payload carrying it, reached the log.
func checkNoSecret(t *testing.T, logs string) {
	t.Helper()
	for _, secret := range []string{
		relayPass,
		base64.StdEncoding.EncodeToString([]byte(relayPass)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + relayUser + "\x00" + relayPass)),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the relay password (%q)", secret)
		}
	}
}

// Port 465 is implicit TLS; AUTH PLAIN is preferred when offered; the
// certificate is verified against RootCAs.
func TestRelayHostImplicitTLSAuthPlain(t *testing.T) {
	e := newEnv(t)
	cfg, pool := sinktest.Cert(t, "smarthost.test")
	s := fixedPortSink(t, "127.0.0.45", 465, sinktest.Options{
		TLS: cfg, ImplicitTLS: true, Users: map[string]string{relayUser: relayPass}})
	e.dns.Add(t, "smarthost.test. A 127.0.0.45")
	c := relayHostClient(e, config.RelayTarget{Host: "smarthost.test", Port: 465},
		func(o *relay.Options) { o.RootCAs = pool })
	mustDeliver(t, c, msg("bob@example.test", "carol@elsewhere.test"))
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("smarthost got %d messages, want 1 (both domains in one transaction)", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.AuthUser != relayUser || m.AuthMech != "PLAIN" {
		t.Errorf("smarthost saw TLS=%v user=%q mech=%q; want TLS, %s, PLAIN", m.TLS, m.AuthUser, m.AuthMech, relayUser)
	}
	if !slices.Equal(m.To, []string{"bob@example.test", "carol@elsewhere.test"}) {
		t.Errorf("recipients %q", m.To)
	}
	checkNoSecret(t, e.logs.String())
}

// Other ports use STARTTLS; AUTH LOGIN when the server offers only LOGIN.
func TestRelayHostSTARTTLSAuthLogin(t *testing.T) {
	e := newEnv(t)
	cfg, pool := sinktest.Cert(t, "smarthost.test")
	o := sinktest.Options{TLS: cfg, Users: map[string]string{relayUser: relayPass}, Mechanisms: []string{"LOGIN"}}
	// Port 587 as in real life when it can be bound; the client treats
	// every port but 465 alike, so a random port proves the same otherwise.
	var s *sinktest.Sink
	port := 587
	if ln, err := net.Listen("tcp", "127.0.0.46:587"); err == nil {
		ln.Close()
		o.Addr = "127.0.0.46:587"
	} else {
		o.Addr = "127.0.0.46:0"
	}
	s = sinktest.Start(t, o)
	port = s.Port()
	e.dns.Add(t, "smarthost.test. A 127.0.0.46")
	c := relayHostClient(e, config.RelayTarget{Host: "smarthost.test", Port: port},
		func(o *relay.Options) { o.RootCAs = pool })
	mustDeliver(t, c, msg("bob@example.test"))
	msgs := s.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != relayUser || msgs[0].AuthMech != "LOGIN" {
		t.Fatalf("smarthost messages %+v; want one over STARTTLS with AUTH LOGIN", msgs)
	}
	checkNoSecret(t, e.logs.String())
	if !strings.Contains(e.logs.String(), "tls_policy=verify") {
		t.Errorf("the attempt's log line does not name the RELAYHOST TLS policy:\n%s", e.logs)
	}
}

// A refused login defers the mail (Postfix smtp_sasl_auth_soft_bounce)
// and keeps the server's reply.
func TestRelayHostWrongPassword(t *testing.T) {
	e := newEnv(t)
	cfg, pool := sinktest.Cert(t, "smarthost.test")
	s := e.sink("127.0.0.47", sinktest.Options{TLS: cfg, Users: map[string]string{relayUser: "another password"}}, true)
	e.dns.Add(t, "smarthost.test. A 127.0.0.47")
	c := relayHostClient(e, config.RelayTarget{Host: "smarthost.test", Port: s.Port()},
		func(o *relay.Options) { o.RootCAs = pool })
	de := wholesale(t, c, msg("bob@example.test"))
	checkErr(t, "wrong password", de, false, 535, "5.7.8")
	if de.Remote != "smarthost.test" || !strings.Contains(de.Message, "refused the login of "+relayUser) {
		t.Errorf("error %+v", de)
	}
	if s.AuthFailures() != 1 || len(s.Messages()) != 0 {
		t.Errorf("auth failures %d, messages %d; want 1, 0", s.AuthFailures(), len(s.Messages()))
	}
	checkNoSecret(t, e.logs.String())
}

// The smarthost's certificate must verify: an untrusted one defers the
// mail, the password is never sent, and the error (the queue entry's last
// error) and the log line say how to fix it, naming both settings.
func TestRelayHostUntrustedCertificate(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		t.Run(fmt.Sprintf("implicit=%v", implicit), func(t *testing.T) {
			e := newEnv(t)
			cfg, _ := sinktest.Cert(t, "smarthost.test")
			o := sinktest.Options{TLS: cfg, Users: map[string]string{relayUser: relayPass}}
			var s *sinktest.Sink
			port := 0
			if implicit {
				o.ImplicitTLS = true
				s = fixedPortSink(t, "127.0.0.48", 465, o)
				port = 465
			} else {
				s = e.sink("127.0.0.48", o, true)
				port = s.Port()
			}
			e.dns.Add(t, "smarthost.test. A 127.0.0.48")
			c := relayHostClient(e, config.RelayTarget{Host: "smarthost.test", Port: port}, nil) // system roots
			de := wholesale(t, c, msg("bob@example.test"))
			checkErr(t, "untrusted certificate", de, false, 0, "4.7.5")
			for _, want := range []string{"certificate of RELAYHOST smarthost.test not verified", "x509:",
				"RELAYHOST_CA_FILE", "RELAYHOST_TLS_VERIFY=false"} {
				if !strings.Contains(de.Error(), want) {
					t.Errorf("error %q lacks %q", de.Error(), want)
				}
				if !strings.Contains(e.logs.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, e.logs)
				}
			}
			if s.AuthFailures() != 0 || len(s.Messages()) != 0 || s.Conns() != 1 {
				t.Errorf("conns %d, auth failures %d, messages %d; want 1, 0, 0 (no plaintext retry)",
					s.Conns(), s.AuthFailures(), len(s.Messages()))
			}
		})
	}
}

// A certificate for another name says so too.
func TestRelayHostCertificateNameMismatch(t *testing.T) {
	e := newEnv(t)
	cfg, pool := sinktest.Cert(t, "other.test")
	s := e.sink("127.0.0.48", sinktest.Options{TLS: cfg}, true)
	e.dns.Add(t, "smarthost.test. A 127.0.0.48")
	c := e.client(func(o *relay.Options) {
		o.RelayHost = config.RelayTarget{Host: "smarthost.test", Port: s.Port()}
		o.RootCAs = pool
	})
	de := wholesale(t, c, msg("bob@example.test"))
	checkErr(t, "name mismatch", de, false, 0, "4.7.5")
	if !strings.Contains(de.Message, "set RELAYHOST to a name the certificate is for") || !strings.Contains(de.Message, "other.test") {
		t.Errorf("error %q does not point at the name", de.Message)
	}
	if len(s.Messages()) != 0 {
		t.Error("delivered to a relay whose certificate is for another name")
	}
}

// writeCAFile writes the sink's self-signed certificate as a PEM file, as
// an admin would for RELAYHOST_CA_FILE.
func writeCAFile(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "relay-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Leaf.Raw})
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// RELAYHOST_CA_FILE: the self-signed relay is trusted and verified.
func TestRelayHostCAFile(t *testing.T) {
	e := newEnv(t)
	cfg, _ := sinktest.Cert(t, "smarthost.test")
	s := e.sink("127.0.0.48", sinktest.Options{TLS: cfg, Users: map[string]string{relayUser: relayPass}}, true)
	e.dns.Add(t, "smarthost.test. A 127.0.0.48")
	pool, err := config.LoadCAFile(writeCAFile(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	c := relayHostClient(e, config.RelayTarget{Host: "smarthost.test", Port: s.Port()},
		func(o *relay.Options) { o.RootCAs = pool })
	mustDeliver(t, c, msg("bob@example.test"))
	if m := s.Messages(); len(m) != 1 || !m[0].TLS || m[0].AuthUser != relayUser {
		t.Fatalf("smarthost messages %+v; want one over TLS, logged in", m)
	}
	if !strings.Contains(e.logs.String(), "tls_policy=verify") {
		t.Errorf("log does not name the policy:\n%s", e.logs)
	}
	checkNoSecret(t, e.logs.String())
}

// RELAYHOST_TLS_VERIFY=false: Mailu's behaviour, encrypted but unverified.
func TestRelayHostNoVerify(t *testing.T) {
	e := newEnv(t)
	cfg, _ := sinktest.Cert(t, "smarthost.test")
	s := e.sink("127.0.0.48", sinktest.Options{TLS: cfg, Users: map[string]string{relayUser: relayPass}}, true)
	e.dns.Add(t, "smarthost.test. A 127.0.0.48")
	c := relayHostClient(e, config.RelayTarget{Host: "smarthost.test", Port: s.Port()},
		func(o *relay.Options) { o.RelayHostNoVerify = true })
	mustDeliver(t, c, msg("bob@example.test"))
	if m := s.Messages(); len(m) != 1 || !m[0].TLS || m[0].AuthUser != relayUser {
		t.Fatalf("smarthost messages %+v; want one over TLS, logged in", m)
	}
	if !strings.Contains(e.logs.String(), "tls_policy=encrypt-unverified") || !strings.Contains(e.logs.String(), "RELAYHOST_TLS_VERIFY=false") {
		t.Errorf("log does not say the certificate went unverified:\n%s", e.logs)
	}
	checkNoSecret(t, e.logs.String())
}

// With RELAYUSER set, a smarthost without TLS never sees the password.
func TestRelayHostWithoutTLSKeepsPassword(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.49", sinktest.Options{}, true)
	c := relayHostClient(e, config.RelayTarget{Host: "127.0.0.49", Port: s.Port()}, nil)
	de := wholesale(t, c, msg("bob@example.test"))
	checkErr(t, "no TLS", de, false, 0, "4.7.10")
	if len(s.Messages()) != 0 {
		t.Error("mail went through an unauthenticated plaintext smarthost")
	}
}

// RELAYHOST without brackets looks up the smarthost's MX; without
// credentials, TLS is used when offered and mail flows without AUTH.
func TestRelayHostMXLookupNoAuth(t *testing.T) {
	e := newEnv(t)
	s := e.sink("127.0.0.1", sinktest.Options{}, true)
	e.dns.Add(t, "provider.test. MX 10 smtp.provider.test.", "smtp.provider.test. A 127.0.0.1")
	c := e.client(func(o *relay.Options) {
		o.RelayHost = config.RelayTarget{Host: "provider.test", Port: s.Port(), MX: true}
	})
	mustDeliver(t, c, msg("bob@example.test"))
	if got := s.Messages(); len(got) != 1 || got[0].AuthUser != "" {
		t.Errorf("smarthost messages %+v", got)
	}
}

// A relay domain's transport wins over RELAYHOST (Postfix transport_maps).
func TestRelayDomainBeatsRelayHost(t *testing.T) {
	e := newEnv(t)
	smarthost := e.sink("127.0.0.1", sinktest.Options{}, true)
	direct := e.sink("127.0.0.2", sinktest.Options{}, true)
	c := e.client(func(o *relay.Options) {
		o.RelayHost = config.RelayTarget{Host: "127.0.0.1", Port: smarthost.Port()}
		o.Relays = relays{"relayed.test": "[127.0.0.2]:" + strconv.Itoa(direct.Port())}
	})
	mustDeliver(t, c, msg("bob@relayed.test", "carol@example.test"))
	if m := direct.Messages(); len(m) != 1 || !slices.Equal(m[0].To, []string{"bob@relayed.test"}) {
		t.Errorf("relay transport got %+v", m)
	}
	if m := smarthost.Messages(); len(m) != 1 || !slices.Equal(m[0].To, []string{"carol@example.test"}) {
		t.Errorf("smarthost got %+v", m)
	}
}

func TestRelayTransports(t *testing.T) {
	e := newEnv(t)
	direct := e.sink("127.0.0.1", sinktest.Options{}, true)
	lmtp := e.sink("127.0.0.1", sinktest.Options{LMTP: true}, true)
	lmtp.DataReply("over@lists.test", 552, smtp.EnhancedCode{5, 2, 2}, "over quota")
	lmtp.DataReply("later@lists.test", 452, smtp.EnhancedCode{4, 2, 2}, "try later")
	mx := e.sink("127.0.0.2", sinktest.Options{}, false) // on the MX port
	e.dns.Add(t, "gateway.test. MX 10 in.gateway.test.", "in.gateway.test. A 127.0.0.2")
	c := e.client(func(o *relay.Options) {
		o.Relays = relays{
			"direct.test": "[127.0.0.1]:" + strconv.Itoa(direct.Port()),
			"lists.test":  "lmtp:127.0.0.1:" + strconv.Itoa(lmtp.Port()),
			"viamx.test":  "mx:gateway.test",
			"broken.test": "mx:[bad]",
		}
	})

	mustDeliver(t, c, msg("bob@direct.test"))
	if len(direct.Messages()) != 1 {
		t.Errorf("[host]:port transport: %d messages", len(direct.Messages()))
	}

	res, err := deliver(t, c, msg("ok@lists.test", "over@lists.test", "later@lists.test"))
	if err != nil {
		t.Fatalf("LMTP Deliver: %v", err)
	}
	if res[0].Err != nil || !strings.HasPrefix(res[0].Reply, "250 ") || res[0].Remote != "127.0.0.1" {
		t.Errorf("LMTP ok@: %v (remote %q, reply %q)", res[0].Err, res[0].Remote, res[0].Reply)
	}
	checkErr(t, "LMTP over quota", asDE(t, res[1].Err), true, 552, "5.2.2")
	checkErr(t, "LMTP try later", asDE(t, res[2].Err), false, 452, "4.2.2")
	if m := lmtp.Messages(); len(m) != 1 || !slices.Equal(m[0].To, []string{"ok@lists.test"}) || m[0].Helo != "mail.petrel.test" {
		t.Errorf("LMTP sink got %+v", m)
	}

	mustDeliver(t, c, msg("bob@viamx.test"))
	if len(mx.Messages()) != 1 {
		t.Errorf("mx:host transport: %d messages", len(mx.Messages()))
	}

	de := wholesale(t, c, msg("bob@broken.test"))
	checkErr(t, "invalid transport", de, false, 0, "4.3.5")
}
