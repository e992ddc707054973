package tests

import (
	"strings"
	"testing"
)

// TestConfigCheckSaysWhatIsServed: config-check lists as listening only
// what serve answers on (80, 443 and 4190 ManageSieve are served; 443 is
// not under TLS_FLAVOR=mail, and it says so).
func TestConfigCheckSaysWhatIsServed(t *testing.T) {
	s := newServer(t, nil)
	out := s.mustCLI("", "config-check")
	listening, _, _ := strings.Cut(out, "; off")
	listening, _, _ = strings.Cut(listening, "; enabled but not served")
	for _, want := range []string{"25/smtp on ", "80/http on ", "443/https on ", "465/submissions on ", "993/imaps on ", "995/pop3s on ", "4190/sieve on "} {
		if !strings.Contains(listening, want) {
			t.Errorf("config-check does not list %q as listening:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not served: 4190") {
		t.Errorf("config-check says 4190 is not served:\n%s", out)
	}

	// TLS_FLAVOR=mail: the web is plain HTTP on 80, 443 is not served.
	s = newServer(t, map[string]string{"TLS_FLAVOR": "mail"})
	out = s.mustCLI("", "config-check")
	if !strings.Contains(out, "443/https (TLS_FLAVOR=mail serves the web in plain HTTP") {
		t.Errorf("config-check with TLS_FLAVOR=mail does not say 443 is not served:\n%s", out)
	}
}

// TestBareUsernameGetsFormatHint: a username without @domain on 465, IMAP
// and POP3 gets a reply saying the username is the full email address,
// the same whether or not the local part exists, and the log says so.
func TestBareUsernameGetsFormatHint(t *testing.T) {
	s := newServer(t, map[string]string{"AUTH_RATELIMIT_IP": "1000/hour", "AUTH_RATELIMIT_USER": "1000/day"})
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.start()
	defer s.stop()

	script := `
import imaplib, poplib, smtplib, os, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def hp(k):
    h, p = os.environ[k].split(":")
    return h, int(p)
for user in ("alice", "ghost", "alice@example.test"):
    pw = "Secret-Alice-1" if user != "alice@example.test" else "wrong-password"
    s = smtplib.SMTP_SSL(*hp("A465"), context=ctx)
    try:
        s.login(user, pw)
        print("SMTP", user, "OK")
    except smtplib.SMTPAuthenticationError as e:
        print("SMTP", user, e.smtp_code, e.smtp_error.decode())
    s.close()
    m = imaplib.IMAP4_SSL(*hp("A993"), ssl_context=ctx)
    try:
        m.login(user, pw)
        print("IMAP", user, "OK")
    except imaplib.IMAP4.error as e:
        print("IMAP", user, e)
    m.shutdown()
    p = poplib.POP3_SSL(*hp("A995"), context=ctx)
    try:
        p.user(user)
        p.pass_(pw)
        print("POP3", user, "OK")
    except poplib.error_proto as e:
        print("POP3", user, e.args[0].decode())
    p.close()
`
	out, err := runPython(t, script, map[string]string{"A465": s.addr[465], "A993": s.addr[993], "A995": s.addr[995]})
	if err != nil {
		t.Fatalf("python: %v\n%s\n%s", err, out, s.logs())
	}
	t.Logf("replies:\n%s", out)
	replies := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) == 3 {
			replies[f[0]+" "+f[1]] = f[2]
		}
	}
	for _, proto := range []string{"SMTP", "IMAP", "POP3"} {
		bare, ghost, wrong := replies[proto+" alice"], replies[proto+" ghost"], replies[proto+" alice@example.test"]
		if !strings.Contains(bare, "the username is the full email address") {
			t.Errorf("%s: bare username got %q, want the full-address hint", proto, bare)
		}
		if bare != ghost {
			t.Errorf("%s: bare existing local part got %q, bare unknown one %q: the replies differ", proto, bare, ghost)
		}
		if wrong == "" || strings.Contains(wrong, "full email address") {
			t.Errorf("%s: a wrong password for a full address got %q: no format hint expected", proto, wrong)
		}
	}
	// smtplib tries PLAIN, then LOGIN: one line per attempt.
	for _, want := range []string{"alice/smtp/465", "ghost/smtp/465", "alice/imap/993", "ghost/imap/993", "alice/pop3/995", "ghost/pop3/995"} {
		if !strings.Contains(s.logs(), "Login attempt for: "+want+" from: 127.0.0.1: failed: not-full-address") {
			t.Errorf("no not-full-address log line for %s:\n%s", want, s.logs())
		}
	}
	if !strings.Contains(s.logs(), "the username is not a full email address") {
		t.Errorf("the log does not say the username must be the full address:\n%s", s.logs())
	}
}
