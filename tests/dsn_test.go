package tests

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// inbox returns the bodies of user's INBOX messages.
func inbox(t *testing.T, s *server, user string) []string {
	t.Helper()
	st := openStore(t, s)
	defer st.Close()
	msgs, err := st.ListMessages(context.Background(), user, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		r, err := st.OpenBody(context.Background(), m.BodyID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		out = append(out, string(b))
	}
	return out
}

// TestDSNNotifySuccessSwaks: swaks (an independent client) submits on 465
// with NOTIFY=SUCCESS and ENVID; the local recipient gets the message and
// the sender a "delivered" notice naming the envelope id. swaks has no
// option for DSN parameters, so they ride on the addresses it writes
// into MAIL FROM:<...> and RCPT TO:<...>.
func TestDSNNotifySuccessSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (.ci/run installs it)")
	}
	s := withUsers(t, nil)
	host, port, _ := net.SplitHostPort(s.addr[465])
	out, err := exec.Command(swaks, "--timeout", "20", "--server", host, "--port", port, "--tlsc",
		"--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "Secret-Alice-1",
		"--from", "alice@example.test> ENVID=QQ314159",
		// swaks closes with ">": ORCPT, last, takes it into its address.
		"--to", "bob@example.test> NOTIFY=SUCCESS ORCPT=rfc822;Bob@Example.test",
		"--header", "Subject: tell me it arrived").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	for _, want := range []string{"250-DSN", "NOTIFY=SUCCESS", "250 2.0.0"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("swaks output lacks %q:\n%s", want, out)
		}
	}
	if !s.waitLog("success notice") {
		t.Fatalf("no success notice logged:\n%s", s.logs())
	}
	s.stopClean()
	if n := len(inbox(t, s, "bob@example.test")); n != 1 {
		t.Errorf("bob has %d messages, want 1", n)
	}
	got := inbox(t, s, "alice@example.test")
	if len(got) != 1 {
		t.Fatalf("alice has %d messages, want the notice", len(got))
	}
	for _, want := range []string{"Subject: Successful Mail Delivery Report", "Action: delivered", "Status: 2.0.0",
		"Final-Recipient: rfc822; bob@example.test", "Original-Recipient: rfc822; Bob@Example.test", "Original-Envelope-Id: QQ314159", "Subject: tell me it arrived"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("notice lacks %q:\n%s", want, got[0])
		}
	}
}

// TestDSNRetHeadersBounce: Python's smtplib submits two messages that
// RELAYHOST refuses, one with RET=HDRS and one with RET=FULL; the first
// bounce carries the headers only, the second the whole message, each
// with its ENVID and ORCPT. NOTIFY=NEVER gets no bounce at all.
func TestDSNRetHeadersBounce(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	for _, r := range []string{"hdrs@remote.example", "full@remote.example", "never@remote.example"} {
		sink.RcptReply(r, 550, gosmtp.EnhancedCode{5, 1, 1}, "no such user here")
	}
	s := withUsers(t, map[string]string{"RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	script := `
import os, smtplib, ssl
host, port = os.environ["A465"].rsplit(":", 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for ret, rcpt, notify in (("HDRS", "hdrs@remote.example", "FAILURE"), ("FULL", "full@remote.example", "FAILURE,DELAY"), ("HDRS", "never@remote.example", "NEVER")):
    with smtplib.SMTP_SSL(host, int(port), context=ctx) as c:
        c.login("alice@example.test", "Secret-Alice-1")
        assert c.has_extn("dsn"), "no DSN in EHLO"
        msg = "From: alice@example.test\r\nTo: %s\r\nSubject: doomed %s\r\n\r\nThe unique body text %s.\r\n" % (rcpt, ret, ret)
        c.sendmail("alice@example.test", [rcpt], msg, mail_options=["RET=" + ret, "ENVID=env-" + ret],
                   rcpt_options=["NOTIFY=" + notify, "ORCPT=rfc822;Orig+2B" + rcpt])
print("sent")
`
	out, err := runPython(t, script, map[string]string{"A465": s.addr[465]})
	if err != nil || !strings.Contains(out, "sent") {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	for i := 0; i < 3; i++ {
		if !s.waitLog("msg=bounced") {
			t.Fatalf("no bounce logged:\n%s", s.logs())
		}
	}
	if !s.waitLog("none (NOTIFY=NEVER)") {
		t.Fatalf("NOTIFY=NEVER not honoured in the log:\n%s", s.logs())
	}
	s.stopClean()
	got := inbox(t, s, "alice@example.test")
	if len(got) != 2 {
		t.Fatalf("alice has %d DSNs, want 2 (none for NOTIFY=NEVER)", len(got))
	}
	for _, dsn := range got {
		full := strings.Contains(dsn, "Subject: doomed FULL")
		ret := "HDRS"
		if full {
			ret = "FULL"
		}
		for _, want := range []string{"Action: failed", "Original-Envelope-Id: env-" + ret,
			"Original-Recipient: rfc822; Orig+"} {
			if !strings.Contains(dsn, want) {
				t.Errorf("RET=%s DSN lacks %q:\n%s", ret, want, dsn)
			}
		}
		hasBody := strings.Contains(dsn, "The unique body text")
		switch {
		case full && (!hasBody || !strings.Contains(dsn, "Content-Type: message/rfc822")):
			t.Errorf("RET=FULL DSN lacks the message:\n%s", dsn)
		case !full && (hasBody || !strings.Contains(dsn, "Content-Type: text/rfc822-headers")):
			t.Errorf("RET=HDRS DSN carries more than the headers:\n%s", dsn)
		}
	}
	if strings.Contains(strings.Join(got, ""), "never@remote.example") {
		t.Error("a DSN names the NOTIFY=NEVER recipient")
	}
}
