package tests

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"net/smtp"
	"strings"
	"testing"
)

// TestInitialAdminAndJSONLogs: INITIAL_ADMIN_* creates the first admin when
// serve starts (Mailu start.py), the admin can submit on 465 right away, and
// LOG_FORMAT=json gives one JSON object per line with the connection id.
func TestInitialAdminAndJSONLogs(t *testing.T) {
	s := newServer(t, map[string]string{
		"INITIAL_ADMIN_ACCOUNT": "boss",
		"INITIAL_ADMIN_DOMAIN":  "example.test",
		"INITIAL_ADMIN_PW":      "Initial-Pw-9",
		"LOG_FORMAT":            "json",
	})
	s.start()

	conn, err := tls.Dial("tcp", s.addr[465], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(smtp.PlainAuth("", "boss@example.test", "Initial-Pw-9", "mail.example.test")); err != nil {
		t.Fatalf("the initial admin cannot log in: %v\n%s", err, s.logs())
	}
	if err := c.Mail("boss@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("boss@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("Subject: hello\r\n\r\nfirst mail\r\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	_ = c.Quit()
	s.stopClean()

	if strings.Contains(s.logs(), "Initial-Pw-9") {
		t.Fatal("the initial admin password reached the log")
	}
	sawCID := false
	sc := bufio.NewScanner(strings.NewReader(s.logs()))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue // config warnings are printed before logging starts
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if rec["msg"] == "authenticated" && rec["cid"] != nil && rec["user"] == "boss@example.test" {
			sawCID = true
		}
	}
	if !sawCID {
		t.Errorf("no JSON 'authenticated' record with cid and user:\n%s", s.logs())
	}
	if n := countMessages(t, s, "boss@example.test"); n != 1 {
		t.Errorf("boss has %d messages, want 1", n)
	}
}

// TestDiagnoseExplainsPortsAndLogins runs `petrel diagnose` against a running
// server: it probes the ports and explains a bare username.
func TestDiagnoseExplainsPortsAndLogins(t *testing.T) {
	s := withUsers(t, nil)
	out, err := s.cli("", "diagnose", "alice@example.test")
	if err != nil {
		t.Fatalf("diagnose for a good login failed: %v\n%s", err, out)
	}
	for _, want := range []string{"reachable: 220 mail.example.test", "add 587 to PORTS", "No problems found", "may send as: alice@example.test", "autodiscover.<domain> point at mail.example.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnose output lacks %q:\n%s", want, out)
		}
	}
	out, err = s.cli("", "diagnose", "alice")
	if err == nil {
		t.Fatalf("diagnose accepted a bare username:\n%s", out)
	}
	if !strings.Contains(out, "not a full email address") || !strings.Contains(out, "alice@example.test") {
		t.Errorf("diagnose does not explain the bare username:\n%s", out)
	}
}
