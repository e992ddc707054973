package tests

import (
	"strings"
	"testing"
)

// TestTraceLevel: with LOG_LEVEL=TRACE the real binary logs the SMTP,
// IMAP and POP3 dialogues line by line, with the passwords redacted
// (issue 17).
func TestTraceLevel(t *testing.T) {
	s := withUsers(t, map[string]string{"LOG_LEVEL": "TRACE"})
	script := `
import imaplib, os, poplib, smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def hp(name):
    h, p = os.environ[name].split(":"); return h, int(p)
m = smtplib.SMTP_SSL(*hp("A465"), context=ctx)
m.login("alice@example.test", "Secret-Alice-1")
m.sendmail("alice@example.test", ["bob@example.test"], "Subject: traced\r\n\r\nconfidential words\r\n")
m.quit()
i = imaplib.IMAP4_SSL(*hp("A993"), ssl_context=ctx)
i.login("bob@example.test", "Secret-Bob-2")
i.select("INBOX")
i.fetch("1", "(BODY[])")
i.logout()
p = poplib.POP3_SSL(*hp("A995"), context=ctx)
p.user("bob@example.test"); p.pass_("Secret-Bob-2")
p.retr(1)
p.quit()
print("done")
`
	out, err := runPython(t, script, map[string]string{"A465": s.addr[465], "A993": s.addr[993], "A995": s.addr[995]})
	if err != nil || !strings.Contains(out, "done") {
		t.Fatalf("python: %v\n%s\n%s", err, out, s.logs())
	}
	s.waitLog(`line=QUIT`)
	logs := s.logs()
	for _, want := range []string{
		"level=TRACE msg=trace", "proto=submissions", "proto=imaps", "proto=pop3s",
		`dir=C line="AUTH PLAIN REDACTED"`, `LOGIN REDACTED"`, `dir=C line="PASS REDACTED"`,
		`dir=C line="[message data:`, `dir=S line="[message data:`, "octets of data]",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("TRACE log lacks %q", want)
		}
	}
	for _, secret := range []string{"Secret-Alice-1", "Secret-Bob-2", "confidential words"} {
		if strings.Contains(logs, secret) {
			t.Errorf("TRACE log shows %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}
