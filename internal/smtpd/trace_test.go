package smtpd

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/obs"
)

// TestTraceLogsDialogueRedacted: at LOG_LEVEL=TRACE the dialogue is logged
// line by line with the connection id, both directions, also after TLS;
// AUTH payloads (initial responses and continuation lines) are redacted
// and message data is summarised, never logged (issue 17).
func TestTraceLogsDialogueRedacted(t *testing.T) {
	e := startServer(t, RoleSubmissions, nil)
	c := e.dial()
	c.ehlo()
	c.cmd("AUTH PLAIN "+plainIR("alice@example.test", "wrong-pw-1"), 535, "5.7.8")
	c.cmd("AUTH LOGIN", 334, "")
	c.cmd(b64("alice@example.test"), 334, "")
	c.cmd(b64("alice-secret-pw"), 235, "2.0.0")
	c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write("Subject: private\r\n\r\nconfidential body line\r\n.\r\n")
	c.expect(250, "2.0.0")
	c.cmd("QUIT", 221, "2.0.0")
	logs := e.logs.String()
	for _, want := range []string{
		`msg=trace`, `dir=C line="EHLO client.example.net"`, `dir=S line="250-Hello client.example.net"`,
		`dir=C line="AUTH PLAIN REDACTED"`, `dir=C line="AUTH LOGIN"`, `dir=C line=REDACTED`,
		`dir=C line="MAIL FROM:<alice@example.test>"`, `line="[message data: 3 lines, 44 octets]"`,
		`dir=S line="250 2.0.0 Ok: queued as`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	for _, secret := range []string{
		"wrong-pw-1", "alice-secret-pw", plainIR("alice@example.test", "wrong-pw-1"),
		b64("alice-secret-pw"), b64("alice@example.test"), "confidential", "Subject: private",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("trace shows %q", secret)
		}
	}
	if !strings.Contains(logs, "cid=") || strings.Count(logs, "msg=trace") < 15 {
		t.Errorf("trace lines without cid or too few:\n%s", logs)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}

// TestNoTraceBelowTRACE: at DEBUG nothing of the dialogue is logged.
func TestNoTraceBelowTRACE(t *testing.T) {
	logs := &logBuffer{}
	e := startServer(t, RoleMX, func(o *Options) {
		o.Logger = slog.New(obs.NewRedactHandler(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	})
	c := e.dial()
	c.ehlo()
	c.sendMail("s@remote.test", []string{"alice@example.test"}, simpleBody)
	if strings.Contains(logs.String(), "msg=trace") || !strings.Contains(logs.String(), "msg=received") {
		t.Errorf("logs at DEBUG:\n%s", logs)
	}
}
