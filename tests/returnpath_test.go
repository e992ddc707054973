package tests

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// TestReturnPathAtLocalDelivery: a message delivered on port 25 starts
// with Return-Path holding the envelope sender (RFC 5321 4.4), and a
// Return-Path the sender wrote is gone (Mailu: Postfix drops it, Dovecot
// adds its own); the null sender is recorded as <>. Read back over IMAP.
func TestReturnPathAtLocalDelivery(t *testing.T) {
	s := withUsers(t, nil)
	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.example.org", "250")
	d.send("MAIL FROM:<bounces+x@example.org>", "250")
	d.send("RCPT TO:<alice@example.test>", "250")
	d.send("DATA", "354")
	d.send("Return-Path: <forged@evil.example>\r\nFrom: bob@example.org\r\nSubject: one\r\n\r\nhello\r\n.", "250")
	d.send("MAIL FROM:<>", "250")
	d.send("RCPT TO:<alice@example.test>", "250")
	d.send("DATA", "354")
	d.send("From: MAILER-DAEMON@example.org\r\nSubject: two\r\n\r\nbounce\r\n.", "250")
	d.send("QUIT", "221")

	script := `
import imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
m.select("INBOX")
for uid in (b"1", b"2"):
    typ, data = m.uid("FETCH", uid, "(BODY.PEEK[HEADER])")
    assert typ == "OK", typ
    print("MSG", uid.decode(), repr(data[0][1].decode()))
m.logout()
`
	out, err := runPython(t, script, map[string]string{"A993": s.addr[993]})
	if err != nil {
		t.Fatalf("imaplib: %v\n%s\n%s", err, out, s.logs())
	}
	var msgs []string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "MSG "); ok {
			msgs = append(msgs, rest)
		}
	}
	if len(msgs) != 2 {
		t.Fatalf("fetched %d messages, want 2:\n%s", len(msgs), out)
	}
	if !strings.HasPrefix(msgs[0], `1 'Return-Path: <bounces+x@example.org>\r\n`) {
		t.Errorf("first message does not start with the envelope sender's Return-Path: %s", msgs[0])
	}
	if strings.Contains(msgs[0], "forged@evil.example") || strings.Count(msgs[0], "Return-Path:") != 1 {
		t.Errorf("the sender's own Return-Path was kept: %s", msgs[0])
	}
	if !strings.HasPrefix(msgs[1], `2 'Return-Path: <>\r\n`) {
		t.Errorf("null sender not recorded as <>: %s", msgs[1])
	}
}

// TestReturnPathOnlyOnLocalCopies: one submission to a local and a remote
// recipient is stored once; the local copy carries Return-Path, the copy
// the relay sends does not (RFC 5321 4.4: an originating system should not
// send one), and its DKIM signature still verifies.
func TestReturnPathOnlyOnLocalCopies(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	s := withUsers(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	submit(t, s, "alice@example.test", "Secret-Alice-1", "alice@example.test", []string{"bob@example.test", "friend@remote.example"},
		"From: alice@example.test\r\nTo: bob@example.test, friend@remote.example\r\nSubject: both\r\n\r\nhi\r\n")
	got := waitSink(t, sink, 1, s)[0]
	if bytes.Contains(got.Data, []byte("Return-Path:")) {
		t.Errorf("the relayed copy carries a Return-Path:\n%s", got.Data)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: dkimLookup(t, s, "example.test")})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("DKIM verification: err=%v verifs=%+v", err, verifs)
	}
	script := `
import imaplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["A993"].split(":")
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login("bob@example.test", "Secret-Bob-2")
m.select("INBOX")
typ, data = m.uid("FETCH", "1", "(BODY.PEEK[HEADER])")
print("HDR", repr(data[0][1].decode()))
m.logout()
`
	out, err := runPython(t, script, map[string]string{"A993": s.addr[993]})
	if err != nil || !strings.Contains(out, `HDR 'Return-Path: <alice@example.test>\r\n`) {
		t.Fatalf("local copy: %v\n%s", err, out)
	}
}
