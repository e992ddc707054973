package tests

import (
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/petrelmail/petrel/internal/dnsres/dnstest"
	"github.com/petrelmail/petrel/internal/msgauth"
)

// The inbound authentication checks of port 25 against the real binary,
// with RESOLVER_ADDRESS pointing at a DNS server of the test's own.

// authWorld publishes: sender.test (SPF for 127.0.0.1, DKIM key
// sel._domainkey, p=reject), reject.test (p=reject, SPF -all), quar.test
// (p=quarantine, SPF -all). example.test, the local domain, publishes
// nothing.
func authWorld(t *testing.T) *dnstest.Server {
	t.Helper()
	s := dnstest.New(t)
	pem, err := os.ReadFile("../internal/msgauth/testdata/pkcs1.key")
	if err != nil {
		t.Fatal(err)
	}
	key, err := msgauth.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := msgauth.PublicKeyRecord(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for len(rec) > 255 {
		parts, rec = append(parts, rec[:255]), rec[255:]
	}
	parts = append(parts, rec)
	txt := &dns.TXT{Hdr: dns.RR_Header{Name: "sel._domainkey.sender.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: parts}
	s.Add(t, txt.String(),
		`sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
		`reject.test. TXT "v=spf1 -all"`,
		`_dmarc.reject.test. TXT "v=DMARC1; p=reject"`,
		`quar.test. TXT "v=spf1 -all"`,
		`_dmarc.quar.test. TXT "v=DMARC1; p=quarantine"`,
	)
	return s
}

func authServer(t *testing.T, resolver string, extra map[string]string) *server {
	settings := map[string]string{"RESOLVER_ADDRESS": resolver}
	for k, v := range extra {
		settings[k] = v
	}
	return withUsers(t, settings)
}

// deliver25 runs one port-25 transaction and returns the reply to the
// final dot.
func deliver25(t *testing.T, s *server, envFrom, msg string) string {
	t.Helper()
	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.sender.test", "250")
	d.send("MAIL FROM:<"+envFrom+">", "250")
	d.send("RCPT TO:<alice@example.test>", "250")
	d.send("DATA", "354")
	r := d.send(strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:]+".", "")
	d.send("QUIT", "221")
	return r
}

func authMsg(from, subject string) string {
	return "From: <" + from + ">\r\nTo: <alice@example.test>\r\nSubject: " + subject +
		"\r\nDate: Fri, 04 Dec 2026 18:00:00 +0000\r\nMessage-ID: <" + subject + "@sender.test>\r\n\r\nHello Alice.\r\n"
}

func TestInboundSpoofedLocalFromRefused(t *testing.T) {
	s := authServer(t, authWorld(t).Addr, nil)
	// The envelope is a stranger's; the From claims the local domain.
	r := deliver25(t, s, "someone@elsewhere.test", authMsg("ceo@example.test", "spoof"))
	if !strings.HasPrefix(r, "550 5.7.1 ") || !strings.Contains(r, "example.test") {
		t.Fatalf("spoofed local From: %q", r)
	}
	if !s.waitLog("action=reject") {
		t.Fatalf("no rejection logged:\n%s", s.logs())
	}
	// The same message from a foreign domain is delivered.
	if r := deliver25(t, s, "someone@elsewhere.test", authMsg("someone@elsewhere.test", "fine")); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("foreign From: %q", r)
	}
}

func TestInboundDMARCRejectDomain(t *testing.T) {
	s := authServer(t, authWorld(t).Addr, nil)
	r := deliver25(t, s, "bounce@reject.test", authMsg("boss@reject.test", "dmarcreject"))
	if !strings.HasPrefix(r, "550 5.7.1 ") || !strings.Contains(r, "DMARC policy of reject.test") {
		t.Fatalf("p=reject: %q", r)
	}
}

// p=quarantine: the message is accepted and marked for Junk (the log line
// says action=quarantine; filing into Junk is local delivery's part).
func TestInboundDMARCQuarantine(t *testing.T) {
	s := authServer(t, authWorld(t).Addr, nil)
	r := deliver25(t, s, "bounce@quar.test", authMsg("news@quar.test", "quarantined"))
	if !strings.HasPrefix(r, "250 ") {
		t.Fatalf("p=quarantine: %q", r)
	}
	if !s.waitLog("action=quarantine") || !s.waitLog("dmarc=fail") {
		t.Fatalf("log:\n%s", s.logs())
	}
}

// A message signed by an independent signer (Debian's python3-dkim)
// passes DKIM and, aligned, DMARC p=reject although its envelope sender's
// SPF fails; the stored copy carries our Authentication-Results and not
// the forged one.
func TestInboundPythonDKIMSignedPasses(t *testing.T) {
	if exec.Command("/usr/bin/python3", "-c", "import dkim").Run() != nil {
		t.Skip("/usr/bin/python3 cannot import dkim (Debian python3-dkim)")
	}
	s := authServer(t, authWorld(t).Addr, nil)
	msg := "Authentication-Results: mail.example.test; dkim=pass header.d=bank.test\r\n" + authMsg("alice@sender.test", "signed")
	p := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", "-c", `
import sys, dkim
msg = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
sys.stdout.buffer.write(dkim.sign(msg, b"sel", b"sender.test", key, include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + msg)
`, p, "../internal/msgauth/testdata/pkcs1.key").Output()
	if err != nil {
		t.Fatalf("dkim sign: %v", err)
	}
	signed := strings.ReplaceAll(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n", "\r\n")
	if r := deliver25(t, s, "bounces@reject.test", signed); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("signed message: %q\n%s", r, s.logs())
	}
	stored := fetchInbox(t, s)
	// Local delivery's Return-Path first (RFC 5321 4.4), then our results.
	if !strings.HasPrefix(stored, "Return-Path: <bounces@reject.test>\r\nAuthentication-Results: mail.example.test;") {
		t.Fatalf("stored message lacks Return-Path and our header on top:\n%s", stored)
	}
	for _, want := range []string{"dkim=pass", "header.d=sender.test", "dmarc=pass", "spf=fail"} {
		if !strings.Contains(stored, want) {
			t.Errorf("stored header lacks %q:\n%s", want, stored)
		}
	}
	if strings.Contains(stored, "bank.test") {
		t.Errorf("forged Authentication-Results kept:\n%s", stored)
	}
}

// A resolver that never answers costs INBOUND_DNS_TIMEOUT, then the
// message is delivered with temperror results.
func TestInboundDeadResolverDelivers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := authServer(t, pc.LocalAddr().String(), map[string]string{"INBOUND_DNS_TIMEOUT": "2s"})
	start := time.Now()
	r := deliver25(t, s, "x@sender.test", authMsg("alice@sender.test", "deadresolver"))
	if !strings.HasPrefix(r, "250 ") {
		t.Fatalf("dead resolver: %q\n%s", r, s.logs())
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("took %v", el)
	}
	if !s.waitLog("spf=temperror") || !s.waitLog("dmarc=temperror") {
		t.Fatalf("log:\n%s", s.logs())
	}
}

// fetchInbox returns the last message in alice's INBOX, read with imaplib.
func fetchInbox(t *testing.T, s *server) string {
	t.Helper()
	out, err := runPython(t, `
import imaplib, os, ssl, base64
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
typ, data = m.select("INBOX")
typ, data = m.fetch(data[0].decode(), "(BODY.PEEK[])")
print("BODY", base64.b64encode(data[0][1]).decode())
m.logout()
`, map[string]string{"A993": s.addr[993]})
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if b, ok := strings.CutPrefix(line, "BODY "); ok {
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b))
			if err != nil {
				t.Fatal(err)
			}
			return string(raw)
		}
	}
	t.Fatalf("no message fetched:\n%s", out)
	return ""
}
