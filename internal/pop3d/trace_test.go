package pop3d

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/obs"
)

// TestTraceLogsDialogueRedacted: at LOG_LEVEL=TRACE the POP3 dialogue is
// logged line by line; PASS and AUTH data are redacted, RETR bodies
// summarised (issue 17).
func TestTraceLogsDialogueRedacted(t *testing.T) {
	var e *testEnv
	logs := &logBuffer{}
	e = start(t, true, func(o *Options) {
		o.Logger = slog.New(obs.NewRedactHandler(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: obs.LevelTrace})))
	})
	put(t, e.st, alice, "Subject: tracedsecretsubject\r\n\r\nconfidential line\r\n")
	c := e.dial()
	c.expect("USER "+alice, "+OK")
	c.expect("PASS "+alicePass, "+OK")
	c.expect("RETR 1", "+OK")
	c.multi()
	c.expect("QUIT", "+OK")

	c = e.dial()
	c.expect("AUTH PLAIN", "+ ")
	c.expect(plainIR("", bob, bobPass), "+OK")
	c.expect("STAT", "+OK")

	out := logs.String()
	for _, want := range []string{
		`dir=C line="USER ` + alice + `"`, `dir=C line="PASS REDACTED"`, `dir=C line="RETR 1"`,
		`line="[message data: 3 lines]"`, `dir=C line="AUTH PLAIN"`, `dir=C line=REDACTED`, `dir=C line=STAT`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	for _, secret := range []string{alicePass, bobPass, plainIR("", bob, bobPass), "tracedsecretsubject", "confidential"} {
		if strings.Contains(out, secret) {
			t.Errorf("trace shows %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", out)
	}
}
