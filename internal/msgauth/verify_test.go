package msgauth

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/dnsres"
	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
)

const (
	ourHost  = "mx.petrel.test"
	clientIP = "192.0.2.10"
)

func vMessage(from string) string {
	return "From: Alice <" + from + ">\r\n" +
		"To: bob@petrel.test\r\n" +
		"Subject: verification test\r\n" +
		"Date: Fri, 04 Dec 2026 18:00:00 +0000\r\n" +
		"Message-ID: <vt-1@sender.test>\r\n" +
		"\r\n" +
		"Hello Bob,\r\nthis is the body.\r\n"
}

// vSetup starts a DNS server with the client's forward-confirmed PTR and
// a DKIM key for sel._domainkey.sender.test; it returns the server and
// the signing key.
func vSetup(t *testing.T) (*dnstest.Server, crypto.Signer) {
	t.Helper()
	s := dnstest.New(t)
	s.Add(t,
		"10.2.0.192.in-addr.arpa. PTR mail.sender.test.",
		"mail.sender.test. A "+clientIP,
	)
	pem, err := os.ReadFile("testdata/pkcs1.key")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := PublicKeyRecord(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	addTXT(t, s, "sel._domainkey.sender.test.", rec)
	return s, key
}

// addTXT adds a TXT record, split into 255-byte strings.
func addTXT(t *testing.T, s *dnstest.Server, name, text string) {
	t.Helper()
	var parts []string
	for len(text) > 255 {
		parts = append(parts, text[:255])
		text = text[255:]
	}
	parts = append(parts, text)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: parts}
	s.Add(t, rr.String())
}

func newTestVerifier(s *dnstest.Server, pct int) *Verifier {
	return NewVerifier(VerifierOptions{
		Hostname:   ourHost,
		Resolver:   s.Resolver(),
		DNSTimeout: 3 * time.Second,
		Percent:    func() int { return pct },
	})
}

func goSign(t *testing.T, key crypto.Signer, domain, msg string) string {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: "sel", Signer: key,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// pySign signs msg with Debian's python3-dkim, the independent signer.
func pySign(t *testing.T, domain, msg string) string {
	t.Helper()
	if !havePythonDKIM() {
		t.Skip("/usr/bin/python3 cannot import dkim (Debian python3-dkim)")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "msg.eml")
	if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	const script = `
import sys, dkim
msg = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
sig = dkim.sign(msg, b"sel", sys.argv[3].encode(), key,
    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
sys.stdout.buffer.write(sig + msg)
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, p, "testdata/pkcs1.key", domain).Output()
	if err != nil {
		t.Fatalf("python3-dkim sign: %v", err)
	}
	return strings.ReplaceAll(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n", "\r\n")
}

func verify(t *testing.T, v *Verifier, sess Session, msg string) *Result {
	t.Helper()
	if !sess.RemoteIP.IsValid() {
		sess.RemoteIP = netip.MustParseAddr(clientIP)
	}
	r, err := v.Verify(t.Context(), sess, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	// The header must parse with an independent parser, with our id.
	hdr := r.Header(sess.RemoteIP.String())
	id, _, err := authres.Parse(strings.TrimSuffix(strings.TrimPrefix(hdr, "Authentication-Results: "), "\r\n"))
	if err != nil || id != ourHost {
		t.Fatalf("header %q: id %q, %v", hdr, id, err)
	}
	return r
}

func TestSPFOutcomes(t *testing.T) {
	s, _ := vSetup(t)
	s.Add(t,
		`pass.test. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`fail.test. TXT "v=spf1 ip4:198.51.100.1 -all"`,
		`soft.test. TXT "v=spf1 ~all"`,
		`neutral.test. TXT "v=spf1 ?all"`,
		`perm.test. TXT "v=spf1 bogus:mechanism -all"`,
		`two.test. TXT "v=spf1 -all"`, `two.test. TXT "v=spf1 +all"`,
		`norecord.test. TXT "just some text"`,
		`loop-a.test. TXT "v=spf1 include:loop-b.test -all"`,
		`loop-b.test. TXT "v=spf1 include:loop-a.test -all"`,
		`mx-pass.test. TXT "v=spf1 mx -all"`, "mx-pass.test. MX 10 mail.sender.test.",
	)
	// A chain of 11 includes: the 11th look-up passes RFC 7208 4.6.4's limit.
	for i := range 11 {
		s.Add(t, fmt.Sprintf(`chain%d.test. TXT "v=spf1 include:chain%d.test -all"`, i, i+1))
	}
	s.Add(t, `chain11.test. TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
	// Nine includes stay within the limit.
	s.Add(t, `nine.test. TXT "v=spf1 include:chain2.test -all"`)
	s.Fail("temp.test.", dns.TypeTXT, dns.RcodeServerFailure)
	v := newTestVerifier(s, 0)

	tests := []struct{ domain, want string }{
		{"pass.test", Pass},
		{"fail.test", Fail},
		{"soft.test", SoftFail},
		{"neutral.test", Neutral},
		{"nxdomain.test", None},
		{"norecord.test", None},
		{"temp.test", TempError},
		{"perm.test", PermError},
		{"two.test", PermError},
		{"loop-a.test", PermError},
		{"chain0.test", PermError},
		{"nine.test", Pass},
		{"mx-pass.test", Pass},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			r := verify(t, v, Session{Helo: "mail.sender.test", MailFrom: "bounce@" + tt.domain}, vMessage("a@x.test"))
			if r.SPF.Result != tt.want || r.SPF.Domain != tt.domain {
				t.Fatalf("spf = %+v, want %s", r.SPF, tt.want)
			}
			hdr := r.Header(clientIP)
			if !strings.Contains(hdr, "spf="+tt.want+" ") || !strings.Contains(hdr, "smtp.mailfrom="+tt.domain) {
				t.Fatalf("header lacks spf=%s: %s", tt.want, hdr)
			}
		})
	}
}

func TestSPFHeloAndNullSender(t *testing.T) {
	s, _ := vSetup(t)
	s.Add(t, `mail.sender.test. TXT "v=spf1 a -all"`, `pass.test. TXT "v=spf1 ip4:192.0.2.10 -all"`)
	v := newTestVerifier(s, 0)

	r := verify(t, v, Session{Helo: "mail.sender.test", MailFrom: "x@pass.test"}, vMessage("a@x.test"))
	if r.SPFHelo.Result != Pass || r.SPFHelo.Domain != "mail.sender.test" || r.SPF.Result != Pass {
		t.Fatalf("helo %+v mailfrom %+v", r.SPFHelo, r.SPF)
	}
	if !strings.Contains(r.Header(clientIP), "spf=pass smtp.helo=mail.sender.test") {
		t.Fatal(r.Header(clientIP))
	}
	// Null sender: the MAIL FROM identity is postmaster@HELO (RFC 7208 2.4).
	r = verify(t, v, Session{Helo: "mail.sender.test"}, vMessage("a@x.test"))
	if r.SPF.Result != Pass || r.SPF.Domain != "mail.sender.test" {
		t.Fatalf("null sender spf %+v", r.SPF)
	}
	// An address literal as HELO is not checked.
	r = verify(t, v, Session{Helo: "[192.0.2.10]", MailFrom: "x@pass.test"}, vMessage("a@x.test"))
	if r.SPFHelo.Result != "" || r.SPF.Result != Pass {
		t.Fatalf("literal helo %+v / %+v", r.SPFHelo, r.SPF)
	}
}

func TestDKIMOutcomes(t *testing.T) {
	s, key := vSetup(t)
	s.Add(t, `nokey._domainkey.sender.test. TXT "v=DKIM1; k=rsa; p="`)
	s.Fail("sel._domainkey.broken.test.", dns.TypeTXT, dns.RcodeServerFailure)
	v := newTestVerifier(s, 0)
	msg := vMessage("alice@sender.test")

	t.Run("go signer pass", func(t *testing.T) {
		r := verify(t, v, Session{Helo: "mail.sender.test"}, goSign(t, key, "sender.test", msg))
		if len(r.DKIM) != 1 || r.DKIM[0].Result != Pass || r.DKIM[0].Domain != "sender.test" {
			t.Fatalf("%+v", r.DKIM)
		}
		if !strings.Contains(r.Header(clientIP), "dkim=pass header.d=sender.test") {
			t.Fatal(r.Header(clientIP))
		}
	})
	t.Run("python3-dkim pass", func(t *testing.T) {
		r := verify(t, v, Session{Helo: "mail.sender.test"}, pySign(t, "sender.test", msg))
		if len(r.DKIM) != 1 || r.DKIM[0].Result != Pass {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("python3-dkim body changed fails", func(t *testing.T) {
		signed := strings.Replace(pySign(t, "sender.test", msg), "the body", "THE body", 1)
		r := verify(t, v, Session{Helo: "mail.sender.test"}, signed)
		if len(r.DKIM) != 1 || r.DKIM[0].Result != Fail {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("header changed fails", func(t *testing.T) {
		signed := strings.Replace(goSign(t, key, "sender.test", msg), "verification test", "verification TEST", 1)
		r := verify(t, v, Session{Helo: "mail.sender.test"}, signed)
		if r.DKIM[0].Result != Fail {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("unsigned is none", func(t *testing.T) {
		r := verify(t, v, Session{Helo: "mail.sender.test"}, msg)
		if len(r.DKIM) != 0 || r.DKIMSummary() != None || !strings.Contains(r.Header(clientIP), "dkim=none") {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("no key record is permerror", func(t *testing.T) {
		r := verify(t, v, Session{Helo: "mail.sender.test"}, goSign(t, key, "nokey.test", msg))
		if r.DKIM[0].Result != PermError {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("revoked key is permerror", func(t *testing.T) {
		signed := strings.Replace(goSign(t, key, "sender.test", msg), "s=sel;", "s=nokey;", 1)
		r := verify(t, v, Session{Helo: "mail.sender.test"}, signed)
		if r.DKIM[0].Result != PermError {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("malformed signature is permerror", func(t *testing.T) {
		r := verify(t, v, Session{Helo: "mail.sender.test"}, "DKIM-Signature: v=1; a=rsa-sha256; d=sender.test\r\n"+msg)
		if r.DKIM[0].Result != PermError {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("key look-up SERVFAIL is temperror", func(t *testing.T) {
		r := verify(t, v, Session{Helo: "mail.sender.test"}, goSign(t, key, "broken.test", msg))
		if r.DKIM[0].Result != TempError {
			t.Fatalf("%+v", r.DKIM)
		}
	})
	t.Run("signatures are capped", func(t *testing.T) {
		signed := msg
		for range 12 {
			signed = goSign(t, key, "sender.test", signed)
		}
		before := s.Queries()
		r := verify(t, v, Session{Helo: "mail.sender.test"}, signed)
		if len(r.DKIM) != DefaultMaxSignatures {
			t.Fatalf("%d results", len(r.DKIM))
		}
		if r.DKIMSummary() != Pass {
			t.Fatalf("%+v", r.DKIM)
		}
		if q := s.Queries() - before; q > int64(DefaultMaxSignatures)+10 {
			t.Fatalf("%d queries", q)
		}
	})
}

func TestDMARCOutcomes(t *testing.T) {
	s, key := vSetup(t)
	s.Add(t,
		`sender.test. TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
		`other.test. TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.reject.test. TXT "v=DMARC1; p=reject; sp=quarantine"`,
		`_dmarc.quar.test. TXT "v=DMARC1; p=quarantine"`,
		`_dmarc.none.test. TXT "v=DMARC1; p=none"`,
		`_dmarc.strict.test. TXT "v=DMARC1; p=reject; aspf=s; adkim=s"`,
		`_dmarc.pct.test. TXT "v=DMARC1; p=reject; pct=20"`,
		`_dmarc.bad.test. TXT "v=DMARC1; p=bogus"`,
		`bounce.strict.test. TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`bounce.reject.test. TXT "v=spf1 ip4:192.0.2.10 -all"`,
	)
	s.Fail("_dmarc.temp.test.", dns.TypeTXT, dns.RcodeServerFailure)
	s.Fail("temp-spf.test.", dns.TypeTXT, dns.RcodeServerFailure)
	s.Add(t, `_dmarc.temp-spf.test. TXT "v=DMARC1; p=reject"`)

	tests := []struct {
		name, from, mailFrom, signDomain string
		pct                              int
		want, policy, applied            string
	}{
		{"spf aligned pass", "a@sender.test", "b@sender.test", "", 0, Pass, "reject", ""},
		{"dkim aligned pass", "a@sender.test", "b@other.test", "sender.test", 0, Pass, "reject", ""},
		{"relaxed: subdomain spf aligns", "a@reject.test", "x@bounce.reject.test", "", 0, Pass, "reject", ""},
		{"strict: subdomain spf does not align", "a@strict.test", "x@bounce.strict.test", "", 0, Fail, "reject", "reject"},
		{"unaligned fails with p=reject", "a@sender.test", "b@other.test", "", 0, Fail, "reject", "reject"},
		{"foreign dkim does not align", "a@reject.test", "b@other.test", "sender.test", 0, Fail, "reject", "reject"},
		{"sp applies to a subdomain", "a@news.reject.test", "b@other.test", "", 0, Fail, "quarantine", "quarantine"},
		{"p=quarantine", "a@quar.test", "b@other.test", "", 0, Fail, "quarantine", "quarantine"},
		{"p=none", "a@none.test", "b@other.test", "", 0, Fail, "none", "none"},
		{"pct sampled in", "a@pct.test", "b@other.test", "", 10, Fail, "reject", "reject"},
		{"pct sampled out", "a@pct.test", "b@other.test", "", 50, Fail, "reject", "quarantine"},
		{"no record", "a@norecord.test", "b@other.test", "", 0, None, "", ""},
		{"record look-up temperror", "a@temp.test", "b@other.test", "", 0, TempError, "", ""},
		{"aligned spf temperror", "a@temp-spf.test", "b@temp-spf.test", "", 0, TempError, "reject", ""},
		{"bad record permerror", "a@bad.test", "b@other.test", "", 0, PermError, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(s, tt.pct)
			msg := vMessage(tt.from)
			if tt.signDomain != "" {
				msg = goSign(t, key, tt.signDomain, msg)
			}
			r := verify(t, v, Session{Helo: "mail.sender.test", MailFrom: tt.mailFrom}, msg)
			d := r.DMARC
			if d.Result != tt.want || d.Policy != tt.policy || d.Applied != tt.applied {
				t.Fatalf("dmarc = %+v, want %s policy %q applied %q (spf %+v)", d, tt.want, tt.policy, tt.applied, r.SPF)
			}
			if !strings.Contains(r.Header(clientIP), "dmarc="+tt.want+" ") {
				t.Fatal(r.Header(clientIP))
			}
		})
	}

	t.Run("two From domains is permerror", func(t *testing.T) {
		v := newTestVerifier(s, 0)
		msg := strings.Replace(vMessage("a@sender.test"), "From: Alice <a@sender.test>", "From: a@sender.test, b@other.test", 1)
		r := verify(t, v, Session{Helo: "mail.sender.test", MailFrom: "b@sender.test"}, msg)
		if r.DMARC.Result != PermError || len(r.FromAll) != 2 {
			t.Fatalf("%+v %v", r.DMARC, r.FromAll)
		}
	})
	t.Run("no From is none", func(t *testing.T) {
		v := newTestVerifier(s, 0)
		msg := strings.Replace(vMessage("a@sender.test"), "From: Alice <a@sender.test>\r\n", "", 1)
		r := verify(t, v, Session{Helo: "mail.sender.test", MailFrom: "b@sender.test"}, msg)
		if r.DMARC.Result != None || r.From != "" {
			t.Fatalf("%+v", r.DMARC)
		}
	})
}

func TestIPRev(t *testing.T) {
	s, _ := vSetup(t)
	s.Add(t, "11.2.0.192.in-addr.arpa. PTR liar.test.", "liar.test. A 198.51.100.7")
	s.Fail("12.2.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeServerFailure)
	v := newTestVerifier(s, 0)
	for ip, want := range map[string]string{"192.0.2.10": Pass, "192.0.2.11": Fail, "192.0.2.12": TempError, "192.0.2.13": Fail} {
		r := verify(t, v, Session{RemoteIP: netip.MustParseAddr(ip), Helo: "x.test"}, vMessage("a@x.test"))
		if r.IPRev.Result != want {
			t.Errorf("%s: iprev %+v, want %s", ip, r.IPRev, want)
		}
		if want == Pass && r.IPRev.Domain != "mail.sender.test" {
			t.Errorf("name %q", r.IPRev.Domain)
		}
	}
}

// A resolver that never answers costs the DNS budget, not more, and gives
// temperror everywhere.
func TestDeadResolverTempError(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // swallows queries, never answers
	s, key := vSetup(t)
	v := NewVerifier(VerifierOptions{Hostname: ourHost, Resolver: dnsres.New(pc.LocalAddr().String()), DNSTimeout: 1500 * time.Millisecond})
	start := time.Now()
	r, err := v.Verify(t.Context(), Session{RemoteIP: netip.MustParseAddr("192.0.2.99"), Helo: "mail.dead.test", MailFrom: "x@dead.test"},
		strings.NewReader(goSign(t, key, "dead.test", vMessage("a@dead.test"))))
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
	if r.SPF.Result != TempError || r.DKIM[0].Result != TempError || r.DMARC.Result != TempError || r.IPRev.Result != TempError {
		t.Fatalf("spf %+v dkim %+v dmarc %+v iprev %+v", r.SPF, r.DKIM, r.DMARC, r.IPRev)
	}
	_ = s
}

func TestForgedAuthResultsRemoved(t *testing.T) {
	msg := "Authentication-Results: mx.petrel.test; dkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: (comment) MX.Petrel.Test.;\r\n\tspf=pass smtp.mailfrom=bank.test\r\n" +
		"Authentication-Results: \"mx.petrel.test\" 1; dmarc=pass\r\n" +
		"Authentication-Results: mx.google.test; spf=pass smtp.mailfrom=sender.test\r\n" +
		"X-Other: mx.petrel.test\r\n" +
		vMessage("a@sender.test") +
		"Authentication-Results: mx.petrel.test; in the body, kept\r\n"
	var out bytes.Buffer
	n, err := CopyWithout(&out, strings.NewReader(msg), ClaimsUs(ourHost))
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if n != 3 || strings.Contains(got, "bank.test") || strings.Contains(got, "dmarc=pass") {
		t.Fatalf("dropped %d:\n%s", n, got)
	}
	for _, keep := range []string{"mx.google.test; spf=pass", "X-Other: mx.petrel.test\r\n", "in the body, kept", vMessage("a@sender.test")} {
		if !strings.Contains(got, keep) {
			t.Fatalf("lost %q:\n%s", keep, got)
		}
	}
	// LF-only input and a message that is all header.
	out.Reset()
	n, err = CopyWithout(&out, strings.NewReader("Authentication-Results: mx.petrel.test; x\nSubject: a\n"), ClaimsUs(ourHost))
	if err != nil || n != 1 || out.String() != "Subject: a\n" {
		t.Fatalf("%d %v %q", n, err, out.String())
	}
}

func TestAuthservID(t *testing.T) {
	for in, want := range map[string]string{
		"mx.petrel.test; spf=pass":          "mx.petrel.test",
		" (c (nested)) mx.petrel.test 1; x": "mx.petrel.test",
		`"quoted\"id"; none`:                `quoted"id`,
		"mx.petrel.test":                    "mx.petrel.test",
		"(unterminated":                     "",
		`"unterminated`:                     "",
		"":                                  "",
	} {
		if got := AuthservID(in); got != want {
			t.Errorf("AuthservID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"a.b.example.com": "example.com", "example.co.uk": "example.co.uk",
		"mail.example.co.uk": "example.co.uk", "co.uk": "co.uk", "Example.COM.": "example.com",
	} {
		if got := OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

// Long lines do not smuggle a forged header past the filter: neither one
// after a 100 KB field nor a 100 KB forged field itself.
func TestForgedAuthResultsAfterLongLines(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	msg := "X-Long: " + long + "\r\n\t" + long + "\r\n" +
		"Authentication-Results: mx.petrel.test; dkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: mx.petrel.test; reason=\"" + long + "\"\r\n\t" + long + "\r\n" +
		"Subject: kept\r\n\r\nbody " + long + "\r\n"
	var out bytes.Buffer
	n, err := CopyWithout(&out, strings.NewReader(msg), ClaimsUs(ourHost))
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Long: " + long + "\r\n\t" + long + "\r\nSubject: kept\r\n\r\nbody " + long + "\r\n"
	if n != 2 || out.String() != want {
		t.Fatalf("dropped %d, output %d bytes (want %d)", n, out.Len(), len(want))
	}
}

// BenchmarkVerify is the verification of one DKIM-signed 4 KiB message
// (SPF for MAIL FROM and HELO, DKIM, DMARC, iprev) with warm DNS caches.
func BenchmarkVerify(b *testing.B) {
	s := dnstest.New(b)
	s.Add(b, "10.2.0.192.in-addr.arpa. PTR mail.sender.test.", "mail.sender.test. A "+clientIP,
		`sender.test. TXT "v=spf1 ip4:192.0.2.0/24 -all"`, `mail.sender.test. TXT "v=spf1 a -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`)
	pem, err := os.ReadFile("testdata/pkcs1.key")
	if err != nil {
		b.Fatal(err)
	}
	key, err := ParsePrivateKey(pem)
	if err != nil {
		b.Fatal(err)
	}
	rec, _ := PublicKeyRecord(key.Public())
	var parts []string
	for len(rec) > 255 {
		parts, rec = append(parts, rec[:255]), rec[255:]
	}
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: "sel._domainkey.sender.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: append(parts, rec)}
	s.Add(b, rr.String())
	msg := vMessage("alice@sender.test") + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", 64)
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: key}); err != nil {
		b.Fatal(err)
	}
	v := NewVerifier(VerifierOptions{Hostname: ourHost, Resolver: s.Resolver()})
	sess := Session{RemoteIP: netip.MustParseAddr(clientIP), Helo: "mail.sender.test", MailFrom: "bounce@sender.test"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := v.Verify(context.Background(), sess, bytes.NewReader(signed.Bytes()))
		if err != nil || r.DMARC.Result != Pass || r.DKIMSummary() != Pass {
			b.Fatalf("%v %+v", err, r)
		}
		_ = r.Header(clientIP)
	}
}

// TestSplitField: the name without trailing blanks, the value unfolded
// and trimmed, for one-line and folded fields, CRLF or LF.
func TestSplitField(t *testing.T) {
	for _, c := range []struct{ raw, name, value string }{
		{"Subject: hello \r\n", "Subject", "hello"},
		{"Subject:hello", "Subject", "hello"},
		{"X-A \t: v\n", "X-A", "v"},
		{"Authentication-Results: mx.test;\r\n\tspf=pass\r\n", "Authentication-Results", "mx.test;\tspf=pass"},
		{"To: a,\n b\n", "To", "a, b"},
		{"Empty:\r\n", "Empty", ""},
		{"Odd: a\rb\r\r\n", "Odd", "a\rb"},
	} {
		name, value, ok := splitField([]byte(c.raw))
		if !ok || name != c.name || value != c.value {
			t.Errorf("splitField(%q) = %q, %q, %v; want %q, %q", c.raw, name, value, ok, c.name, c.value)
		}
	}
	if _, _, ok := splitField([]byte(": no name\r\n")); ok {
		t.Error("a field without a name split")
	}
}

// TestResultLacks: Verify's reading of the header tells a field name is
// absent only when the header was read whole and no field has the name,
// in any case and with blanks before the colon; HeaderHas agrees.
func TestResultLacks(t *testing.T) {
	s := dnstest.New(t)
	v := newTestVerifier(s, 100)
	sess := Session{RemoteIP: netip.MustParseAddr(clientIP), Helo: "mail.sender.test", MailFrom: "bounce@sender.test"}
	ar := ClaimsUs(ourHost)
	for _, c := range []struct {
		name, msg string
		lacks     bool
	}{
		{"none", vMessage("a@sender.test"), true},
		{"ours", "Authentication-Results: " + ourHost + "; spf=pass\r\n" + vMessage("a@sender.test"), false},
		{"foreign", "Authentication-Results: mx.other.test; spf=pass\r\n" + vMessage("a@sender.test"), false},
		{"case and blank", "authentication-RESULTS \t: " + ourHost + "; spf=pass\r\n" + vMessage("a@sender.test"), false},
		{"folded after", "X-A: 1\r\n Authentication-Results: x\r\n" + vMessage("a@sender.test"), true},
		{"in the body", vMessage("a@sender.test") + "Authentication-Results: " + ourHost + "; spf=pass\r\n", true},
		{"header too large", "X-Big: " + strings.Repeat("x", maxHeaderBytes) + "\r\nAuthentication-Results: " + ourHost + "; spf=pass\r\n\r\nbody\r\n", false},
	} {
		r, err := v.Verify(context.Background(), sess, strings.NewReader(c.msg))
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Lacks(ar); got != c.lacks {
			t.Errorf("%s: Lacks = %v, want %v", c.name, got, c.lacks)
		}
		has, err := HeaderHas(strings.NewReader(c.msg), ar)
		if err != nil {
			t.Fatal(err)
		}
		if r.Lacks(ar) && has {
			t.Errorf("%s: Lacks, but HeaderHas finds a field", c.name)
		}
	}
	if (&Result{}).Lacks(ar) {
		t.Error("a Result without a header read lacks everything")
	}
}
