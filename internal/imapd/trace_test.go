package imapd

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/obs"
)

// TestTraceLogsDialogueRedacted: at LOG_LEVEL=TRACE the IMAP dialogue is
// logged line by line, both ways; LOGIN and AUTHENTICATE are redacted
// (arguments, literals and SASL lines) and message literals are counted,
// never logged (issue 17).
func TestTraceLogsDialogueRedacted(t *testing.T) {
	ts := startServer(t, func(ts *testServer, o *Options) {
		o.Logger = slog.New(obs.NewRedactHandler(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: obs.LevelTrace})))
	})
	c := ts.dial()
	c.greeting()
	// LOGIN with the password in a literal.
	c.send(fmt.Sprintf("a1 LOGIN %s {%d}\r\n", quote(alice), len(alicePass)))
	if r := c.read(); !strings.HasPrefix(r, "+") {
		t.Fatalf("continuation: %q", r)
	}
	c.send(alicePass + "\r\n")
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("LOGIN: %q", tagged)
	}
	msg := testMessage("tracedsecretsubject")
	c.send(fmt.Sprintf("a2 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := c.collect("a2"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("APPEND: %q", tagged)
	}
	c.ok("SELECT INBOX")
	c.ok("FETCH 1 BODY[]")
	c.ok("LOGOUT")

	// AUTHENTICATE PLAIN with a continuation line.
	c = ts.dial()
	c.greeting()
	c.send("b1 AUTHENTICATE PLAIN\r\n")
	if r := c.read(); !strings.HasPrefix(r, "+") {
		t.Fatalf("AUTHENTICATE: %q", r)
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + alicePass))
	c.send(ir + "\r\n")
	if _, tagged := c.collect("b1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("AUTHENTICATE: %q", tagged)
	}
	c.ok("NOOP")

	logs := ts.logs.String()
	for _, want := range []string{
		`msg=trace`, `dir=C line="a1 LOGIN REDACTED"`, `dir=C line=REDACTED`, `dir=S line="+ Ready for literal"`,
		fmt.Sprintf(`dir=C line="a2 APPEND INBOX {%d+}"`, len(msg)), fmt.Sprintf(`line="[%d octets of data]"`, len(msg)),
		`dir=S line="* 1 FETCH (BODY[] {`, `dir=C line="b1 AUTHENTICATE PLAIN"`, `dir=C line="A001 NOOP"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	for _, secret := range []string{alicePass, ir, "tracedsecretsubject", "Hello"} {
		if strings.Contains(logs, secret) {
			t.Errorf("trace shows %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}
