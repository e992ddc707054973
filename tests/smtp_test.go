package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/relay/sinktest"
)

// withUsers starts a server with alice and bob in example.test.
func withUsers(t *testing.T, settings map[string]string) *server {
	t.Helper()
	s := newServer(t, settings)
	s.mustCLI("", "domain", "example.test")
	s.mustCLI("Secret-Alice-1\n", "user", "alice", "example.test", "-")
	s.mustCLI("Secret-Bob-2\n", "user", "bob", "example.test", "-")
	s.start()
	return s
}

func TestStartupLogExplainsEveryRole(t *testing.T) {
	s := withUsers(t, nil)
	for _, want := range []string{"add 587 to PORTS", "add 143 to PORTS", "add 110 to PORTS"} {
		if !s.waitLog(want) {
			t.Errorf("startup log lacks %q:\n%s", want, s.logs())
		}
	}
	if !s.waitLog(s.addr[465]) || !s.waitLog(s.addr[25]) {
		t.Errorf("startup log lacks the 25/465 addresses:\n%s", s.logs())
	}
}

func TestPort587IsRefusedByDefault(t *testing.T) {
	s := withUsers(t, nil)
	_, err := net.Dial("tcp", s.addr[587])
	if err == nil {
		t.Fatal("port 587 accepted a connection although PORTS does not list it")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("want connection refused on 587, got %v", err)
	}
}

func TestPort25NeverAuthenticates(t *testing.T) {
	s := withUsers(t, nil)
	d := dial(t, s.addr[25])
	d.expect("220 mail.example.test")
	ehlo := d.send("EHLO client.example.org", "250")
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("port 25 advertises AUTH: %q", ehlo)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice@example.test\x00Secret-Alice-1"))
	d.send("AUTH PLAIN "+plain, "502 5.5.1")
	// Credentials change nothing: relaying is still refused.
	d.send("MAIL FROM:<alice@example.test>", "250")
	d.send("RCPT TO:<someone@foreign.test>", "554 5.7.1")
	if !s.waitLog("465") {
		t.Errorf("log does not point the client at port 465:\n%s", s.logs())
	}
	if strings.Contains(s.logs(), "Secret-Alice-1") || strings.Contains(s.logs(), plain) {
		t.Fatal("the AUTH payload reached the log")
	}
}

// TestPythonSmtplib drives every role with Python's smtplib, an
// independent client.
func TestPythonSmtplib(t *testing.T) {
	sink := sinktest.Start(t, sinktest.Options{})
	s := withUsers(t, map[string]string{"PORTS": "25,465,587,993,995", "RELAYHOST": fmt.Sprintf("[127.0.0.1]:%d", sink.Port())})
	script := `
import os, smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
h25, p25 = os.environ["A25"].split(":")
h465, p465 = os.environ["A465"].split(":")
h587, p587 = os.environ["A587"].split(":")
msg = "Subject: hi\r\n\r\nhello from smtplib\r\n"

# port 25: server-to-server delivery to a local user, no AUTH
with smtplib.SMTP(h25, int(p25)) as c:
    c.ehlo("mx.example.org")
    assert not c.has_extn("auth"), "port 25 offers AUTH"
    code, _ = c.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABTZWNyZXQtQWxpY2UtMQ==")
    assert code == 502, code
    c.sendmail("someone@example.org", ["alice@example.test"], msg)
    print("25 ok")

# port 465: implicit TLS, full-address login, send locally and remotely
with smtplib.SMTP_SSL(h465, int(p465), context=ctx) as c:
    c.ehlo("laptop")
    assert c.has_extn("auth"), "465 does not offer AUTH"
    c.login("alice@example.test", "Secret-Alice-1")
    c.sendmail("alice@example.test", ["bob@example.test", "friend@remote.example"], msg)
    print("465 ok")

# a bare local part is refused like a wrong password
with smtplib.SMTP_SSL(h465, int(p465), context=ctx) as c:
    try:
        c.login("bob", "Secret-Bob-2")
        raise SystemExit("bare username accepted")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e.smtp_code
    print("bare ok")

# port 587: no AUTH before STARTTLS, then login works
with smtplib.SMTP(h587, int(p587)) as c:
    c.ehlo("laptop")
    assert not c.has_extn("auth"), "587 offers AUTH before STARTTLS"
    code, _ = c.docmd("AUTH", "PLAIN AGJvYkBleGFtcGxlLnRlc3QAU2VjcmV0LUJvYi0y")
    assert code == 530, code
    c.starttls(context=ctx)
    c.ehlo("laptop")
    c.login("bob@example.test", "Secret-Bob-2")
    c.sendmail("bob@example.test", ["alice@example.test"], msg)
    print("587 ok")
`
	out, err := runPython(t, script, map[string]string{"A25": s.addr[25], "A465": s.addr[465], "A587": s.addr[587]})
	if err != nil {
		t.Fatalf("smtplib: %v\n%s\nserver log:\n%s", err, out, s.logs())
	}
	for _, want := range []string{"25 ok", "465 ok", "bare ok", "587 ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("smtplib output lacks %q:\n%s", want, out)
		}
	}
	if !s.waitLog("not a full email address") {
		t.Errorf("log does not explain the bare username:\n%s", s.logs())
	}
	if strings.Contains(s.logs(), "Secret-Bob-2") {
		t.Fatal("a password reached the log")
	}
	if got := waitSink(t, sink, 1, s); got[0].To[0] != "friend@remote.example" {
		t.Errorf("relay host got a message for %v", got[0].To)
	}
	s.stopClean()
	if n := countMessages(t, s, "alice@example.test"); n != 2 {
		t.Errorf("alice has %d messages, want 2", n)
	}
	if n := countMessages(t, s, "bob@example.test"); n != 1 {
		t.Errorf("bob has %d messages, want 1", n)
	}
	if n := countQueue(t, s); n != 0 {
		t.Errorf("queue has %d entries, want 0 (friend@remote.example was relayed)", n)
	}
}

// TestSwaks uses swaks, another independent client, on 465 and 587.
func TestSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (.ci/run installs it)")
	}
	s := withUsers(t, map[string]string{"PORTS": "25,465,587"})
	host465, port465, _ := net.SplitHostPort(s.addr[465])
	host587, port587, _ := net.SplitHostPort(s.addr[587])
	host25, port25, _ := net.SplitHostPort(s.addr[25])
	cases := []struct {
		name string
		args []string
		want string
		fail bool
	}{
		{"465 tlsc login", []string{"--server", host465, "--port", port465, "--tlsc", "--auth", "LOGIN", "--auth-user", "alice@example.test", "--auth-password", "Secret-Alice-1", "--from", "alice@example.test", "--to", "bob@example.test"}, "250 2.0.0", false},
		{"465 plain", []string{"--server", host465, "--port", port465, "--tlsc", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "Secret-Alice-1", "--from", "alice@example.test", "--to", "bob@example.test"}, "250 2.0.0", false},
		{"587 starttls", []string{"--server", host587, "--port", port587, "--tls", "--auth", "PLAIN", "--auth-user", "bob@example.test", "--auth-password", "Secret-Bob-2", "--from", "bob@example.test", "--to", "alice@example.test"}, "250 2.0.0", false},
		{"465 wrong password", []string{"--server", host465, "--port", port465, "--tlsc", "--auth", "LOGIN", "--auth-user", "alice@example.test", "--auth-password", "secret-alice-1", "--from", "alice@example.test", "--to", "bob@example.test"}, "535 5.7.8", true},
		{"465 spoofed sender", []string{"--server", host465, "--port", port465, "--tlsc", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "Secret-Alice-1", "--from", "bob@example.test", "--to", "bob@example.test"}, "553 5.7.1", true},
		{"25 auth", []string{"--server", host25, "--port", port25, "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "Secret-Alice-1", "--from", "alice@example.test", "--to", "bob@example.test"}, "", true},
		{"25 relay", []string{"--server", host25, "--port", port25, "--from", "x@example.org", "--to", "y@foreign.test"}, "554 5.7.1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(swaks, append([]string{"--timeout", "20"}, c.args...)...).CombinedOutput()
			if (err != nil) != c.fail {
				t.Fatalf("swaks err=%v, want failure=%v\n%s", err, c.fail, out)
			}
			if c.want != "" && !strings.Contains(string(out), c.want) {
				t.Fatalf("swaks output lacks %q:\n%s", c.want, out)
			}
		})
	}
}

// TestKilledAfter250KeepsTheMessage crashes the server right after it
// answered 250 and finds every acknowledged message after the restart.
func TestKilledAfter250KeepsTheMessage(t *testing.T) {
	s := withUsers(t, nil)
	const n = 20
	for i := 0; i < n; i++ {
		d := dial(t, s.addr[25])
		d.expect("220")
		d.send("EHLO mx.example.org", "250")
		d.send("MAIL FROM:<sender@example.org>", "250")
		d.send("RCPT TO:<alice@example.test>", "250")
		d.send("DATA", "354")
		d.send(fmt.Sprintf("Subject: crash %d\r\n\r\nbody %d\r\n.", i, i), "250")
		d.conn.Close()
	}
	s.kill() // SIGKILL: no chance to flush anything
	if got := countMessages(t, s, "alice@example.test"); got != n {
		t.Fatalf("after kill -9: alice has %d messages, want %d", got, n)
	}
	s.start()
	d := dial(t, s.addr[25])
	d.expect("220")
	s.stopClean()
	if got := countMessages(t, s, "alice@example.test"); got != n {
		t.Fatalf("after restart: alice has %d messages, want %d", got, n)
	}
}

func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	s := withUsers(t, nil)
	if err := s.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs())
	}
}

func TestImplicitTLSOn465RefusesOldTLS(t *testing.T) {
	s := withUsers(t, nil)
	_, err := tls.Dial("tcp", s.addr[465], &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10})
	if err == nil {
		t.Fatal("465 accepted a TLS 1.1 handshake")
	}
	c, err := tls.Dial("tcp", s.addr[465], &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2+ handshake on 465: %v", err)
	}
	c.Close()
}

// TestAuthRateLimitAcrossPorts: AUTH on port 25 and failed logins on 465
// feed one IP limiter (Mailu limiter.py); once the network has failed with
// AUTH_RATELIMIT_IP distinct usernames, even the right password gets
// 451 4.3.2.
func TestAuthRateLimitAcrossPorts(t *testing.T) {
	s := withUsers(t, map[string]string{"AUTH_RATELIMIT_IP": "3/hour"})
	plain := func(user, pw string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pw))
	}
	// One AUTH attempt on port 25 counts.
	d := dial(t, s.addr[25])
	d.expect("220")
	d.send("EHLO mx.example.org", "250")
	d.send("AUTH PLAIN "+plain("alice@example.test", "Secret-Alice-1"), "502 5.5.1")
	d.conn.Close()
	// Two more distinct unknown usernames on 465 reach 3/hour.
	for _, u := range []string{"nobody1@example.test", "nobody2@example.test"} {
		c := dialTLS(t, s.addr[465])
		c.expect("220")
		c.send("EHLO laptop", "250")
		c.send("AUTH PLAIN "+plain(u, "whatever"), "535 5.7.8")
		c.conn.Close()
	}
	c := dialTLS(t, s.addr[465])
	c.expect("220")
	c.send("EHLO laptop", "250")
	c.send("AUTH PLAIN "+plain("alice@example.test", "Secret-Alice-1"), "451 4.3.2")
	if !s.waitLog("ratelimit") {
		t.Errorf("no rate-limit log line:\n%s", s.logs())
	}
}

func dialTLS(t *testing.T, addr string) *dialog {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &dialog{t: t, conn: c, r: bufio.NewReader(c)}
}

// TestKillDuringDeliveries crashes the server while eight clients are
// sending: every message that got 250 is stored exactly once, at most the
// messages in flight are extra, and the store opens cleanly afterwards.
func TestKillDuringDeliveries(t *testing.T) {
	s := withUsers(t, nil)
	const senders = 8
	acked := make(chan int, senders)
	stop := make(chan struct{})
	for g := 0; g < senders; g++ {
		go func(g int) {
			n := 0
			defer func() { acked <- n }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := sendOne(s.addr[25], fmt.Sprintf("g%d-%d", g, i)); err != nil {
					return // the server died under us
				}
				n++
			}
		}(g)
	}
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	close(stop)
	total := 0
	for g := 0; g < senders; g++ {
		total += <-acked
	}
	if total == 0 {
		t.Fatal("no message was acknowledged before the kill")
	}
	got := countMessages(t, s, "alice@example.test")
	if got < total || got > total+senders {
		t.Fatalf("acknowledged %d, stored %d (want between %d and %d)", total, got, total, total+senders)
	}
	t.Logf("acknowledged %d messages before kill -9, %d stored", total, got)
	s.start()
	s.stopClean()
	if again := countMessages(t, s, "alice@example.test"); again != got {
		t.Fatalf("after restart %d messages, before %d", again, got)
	}
}

// sendOne delivers one message to alice on port 25; nil means it got 250
// after DATA.
func sendOne(addr, id string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	read := func() string {
		var last string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return ""
			}
			last = line
			if len(line) < 4 || line[3] != '-' {
				return last
			}
		}
	}
	steps := []struct{ send, want string }{
		{"", "220"},
		{"EHLO mx.example.org", "250"},
		{"MAIL FROM:<load@example.org>", "250"},
		{"RCPT TO:<alice@example.test>", "250"},
		{"DATA", "354"},
		{"Subject: " + id + "\r\n\r\nbody " + id + "\r\n.", "250"},
	}
	for _, st := range steps {
		if st.send != "" {
			if _, err := io.WriteString(c, st.send+"\r\n"); err != nil {
				return err
			}
		}
		if got := read(); !strings.HasPrefix(got, st.want) {
			return fmt.Errorf("after %q: got %q, want %s", st.send, got, st.want)
		}
	}
	return nil
}
