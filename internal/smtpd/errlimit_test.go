package smtpd

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// tinySleep keeps the soft-limit delay present but short in tests.
const tinySleep = time.Millisecond

// expectTooManyErrors reads Postfix's 421 and then the close.
func (c *client) expectTooManyErrors() {
	c.t.Helper()
	if text := c.expect(421, "4.7.0"); text != testHost+" Error: too many errors" {
		c.t.Fatalf("421 text %q", text)
	}
	c.expectClosed()
}

// TestHardErrorLimit: the 20th error (Postfix's default
// smtpd_hard_error_limit) is answered, then 421 4.7.0 and the connection is
// closed, on every role, plaintext and TLS alike.
func TestHardErrorLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		role  Role
		setup func(e *testEnv, c *client)
	}{
		{"25 plaintext", RoleMX, func(e *testEnv, c *client) {
			c.ehlo()
			c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
		}},
		{"25 after STARTTLS", RoleMX, func(e *testEnv, c *client) {
			c.ehlo()
			c.starttls(e.cert.Client)
			c.ehlo()
			c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
		}},
		{"465", RoleSubmissions, func(e *testEnv, c *client) {
			c.ehlo()
			c.login("alice@example.test", "alice-secret-pw")
			c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
		}},
		{"587", RoleSubmission, func(e *testEnv, c *client) {
			c.ehlo()
			c.starttls(e.cert.Client)
			c.ehlo()
			c.login("alice@example.test", "alice-secret-pw")
			c.cmd("MAIL FROM:<alice@example.test>", 250, "2.0.0")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, tc.role, func(o *Options) { o.ErrorSleep = tinySleep })
			c := e.dial()
			tc.setup(e, c)
			for i := 1; i <= DefaultHardErrorLimit; i++ {
				c.cmd(fmt.Sprintf("RCPT TO:<nobody%d@example.test>", i), 550, "5.1.1")
			}
			c.expectTooManyErrors()
			waitFor(t, func() bool { return e.srv.connCount() == 0 })
			logs := e.logs.String()
			if !strings.Contains(logs, "session ended: too many errors") || !strings.Contains(logs, "errors=20") ||
				!strings.Contains(logs, "remote=127.0.0.1") || !strings.Contains(logs, "proto="+tc.role.String()) {
				t.Errorf("no log line for the cut session:\n%s", logs)
			}
		})
	}
}

// TestGoSMTPRepliesCount: on plaintext, go-smtp's own refusals (RCPT
// before MAIL, a bad MAIL argument, HELP) count like Petrel's.
func TestGoSMTPRepliesCount(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.HardErrorLimit = 4; o.ErrorSleep = tinySleep })
	c := e.dial()
	c.ehlo()
	c.cmd("RCPT TO:<alice@example.test>", 502, "5.5.1")
	c.cmd("MAIL FROM:no-brackets", 501, "5.5.2")
	c.cmd("HELP", 502, "5.5.1")
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1")
	c.expectTooManyErrors()
}

// TestSoftErrorLimitDelays: from the soft limit on, every reply waits at
// least ErrorSleep (Postfix smtpd_error_sleep_time), successes included.
func TestSoftErrorLimitDelays(t *testing.T) {
	const sleep = 30 * time.Millisecond
	e := startServer(t, RoleMX, func(o *Options) {
		o.SoftErrorLimit = 2
		o.ErrorSleep = sleep
	})
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<nobody1@example.test>", 550, "5.1.1")
	c.cmd("RCPT TO:<nobody2@example.test>", 550, "5.1.1")
	for _, st := range []struct {
		line string
		code int
		enh  string
	}{
		{"RCPT TO:<nobody3@example.test>", 550, "5.1.1"}, // Petrel's refusal
		{"RCPT TO:<alice@example.test>", 250, "2.0.0"},   // Petrel's success
		{"VRFY alice", 252, "2.5.0"},                     // go-smtp's reply (plaintext)
		{"FOO", 501, "5.5.2"},                            // go-smtp's refusal (unparsable command)
	} {
		start := time.Now()
		c.cmd(st.line, st.code, st.enh)
		if d := time.Since(start); d < sleep {
			t.Errorf("%s answered after %v, want at least %v over the soft limit", st.line, d, sleep)
		}
	}
	// A delivered message forgives: no more delay is asked for, and the
	// session goes on.
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	c.expect(250, "2.0.0")
	if got := len(e.deliv.delivered()); got != 1 {
		t.Fatalf("%d messages delivered", got)
	}
}

// TestJunkCommandLimit: NOOP, RSET, VRFY and EHLO beyond the junk limit
// each count as an error (Postfix: junk_cmds++ > smtpd_junk_command_limit).
func TestJunkCommandLimit(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) {
		o.JunkCommandLimit = 5
		o.HardErrorLimit = 3
		o.ErrorSleep = tinySleep
	})
	c := e.dial()
	c.ehlo()                                                                   // junk 1
	for _, cmd := range []string{"NOOP", "RSET", "VRFY bob", "NOOP", "NOOP"} { // junk 2-6: free
		c.send(cmd)
		if code, lines, err := c.readReply(); err != nil || code/100 != 2 {
			t.Fatalf("%s: %d %q %v", cmd, code, lines, err)
		}
	}
	c.cmd("NOOP", 250, "2.0.0") // error 1
	c.cmd("RSET", 250, "2.0.0") // error 2
	c.cmd("NOOP", 250, "2.0.0") // error 3: the hard limit
	c.expectTooManyErrors()
}

// TestRecipientOvershoot: the first RecipientOvershootLimit 452s of a
// transaction are free; later ones are errors.
func TestRecipientOvershoot(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) {
		o.MaxRecipients = 2
		o.RecipientOvershootLimit = 3
		o.HardErrorLimit = 2
		o.ErrorSleep = tinySleep
	})
	c := e.dial()
	c.ehlo()
	// A transaction that overshoots within the limit delivers, twice.
	for round := 0; round < 2; round++ {
		c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
		c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
		c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
		for i := 0; i < 3; i++ {
			c.cmd(fmt.Sprintf("RCPT TO:<r%d@relayed.test>", i), 452, "4.5.3")
		}
		c.cmd("DATA", 354, "")
		c.write(simpleBody + ".\r\n")
		c.expect(250, "2.0.0")
	}
	// Beyond the overshoot limit, each 452 is an error.
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
	for i := 0; i < 4; i++ {
		c.cmd(fmt.Sprintf("RCPT TO:<r%d@relayed.test>", i), 452, "4.5.3") // the 4th: error 1
	}
	c.cmd("RCPT TO:<r9@relayed.test>", 452, "4.5.3") // error 2
	c.expectTooManyErrors()
	if got := len(e.deliv.delivered()); got != 2 {
		t.Errorf("%d messages delivered, want 2", got)
	}
}

// TestDeliveryForgivesErrors: a client that delivers between its errors is
// never cut (Postfix resets error_count when a message is accepted).
func TestDeliveryForgivesErrors(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.HardErrorLimit = 4; o.ErrorSleep = tinySleep })
	c := e.dial()
	c.ehlo()
	for round := 0; round < 5; round++ {
		c.cmd("MAIL FROM:<list@remote.test>", 250, "2.0.0")
		for i := 0; i < 3; i++ {
			c.cmd(fmt.Sprintf("RCPT TO:<gone%d@example.test>", i), 550, "5.1.1")
		}
		c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
		c.cmd("DATA", 354, "")
		c.write(simpleBody + ".\r\n")
		c.expect(250, "2.0.0")
	}
	c.cmd("QUIT", 221, "2.0.0")
	if got := len(e.deliv.delivered()); got != 5 {
		t.Errorf("%d messages delivered, want 5", got)
	}
	if strings.Contains(e.logs.String(), "too many errors") {
		t.Error("a delivering client was cut")
	}
}

// TestErrorLimitInData: the hard limit reached by a DATA refusal: the
// refusal is sent, then the 421 (go-smtp calls Reset after the reply).
func TestErrorLimitInData(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.HardErrorLimit = 2; o.ErrorSleep = tinySleep })
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write("Subject: big\r\n\r\n" + strings.Repeat("x", 20000) + "\r\n.\r\n")
	c.expect(552, "5.3.4")
	c.expectTooManyErrors()
}

// TestAuthOn25CountsAsError: AUTH on port 25 keeps Mailu's 502 5.5.1 and
// counts as an error; the cut is logged without the AUTH payload.
func TestAuthOn25CountsAsError(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.HardErrorLimit = 3; o.ErrorSleep = tinySleep })
	c := e.dial()
	c.ehlo()
	payload := plainIR("alice@example.test", "alice-secret-pw")
	for i := 0; i < 3; i++ {
		c.cmd("AUTH PLAIN "+payload, 502, "5.5.1")
	}
	c.expectTooManyErrors()
	if n := len(e.auth.port25Calls()); n != 3 {
		t.Errorf("%d port-25 AUTH attempts recorded, want 3", n)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "session ended: too many errors") || !strings.Contains(logs, "stage=auth") {
		t.Errorf("no log line for the cut:\n%s", logs)
	}
	if strings.Contains(logs, payload) || strings.Contains(logs, "alice-secret-pw") {
		t.Error("the AUTH payload reached the log")
	}
}

// TestAuthOn25WithoutInitialResponse: AUTH on port 25 without an initial
// response gets 502 5.5.1 at once, never a 334 that would take the
// client's next command (a STARTTLS, say) for a username (issue 17).
func TestAuthOn25WithoutInitialResponse(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.ehlo()
	for _, mech := range []string{"PLAIN", "LOGIN", "plain", "CRAM-MD5"} {
		c.cmd("AUTH "+mech, 502, "5.5.1")
	}
	// The next line is a command again, not SASL data.
	c.cmd("NOOP", 250, "2.0.0")
	calls := e.auth.port25Calls()
	if len(calls) != 4 {
		t.Fatalf("%d port-25 AUTH attempts recorded, want 4: %+v", len(calls), calls)
	}
	for _, call := range calls {
		if call.username != "" {
			t.Errorf("username %q recorded for an AUTH without initial response", call.username)
		}
	}
}

// TestErrorLimitsOff: negative limits switch the hard limit off.
func TestErrorLimitsOff(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.HardErrorLimit = -1; o.SoftErrorLimit = -1 })
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	for i := 0; i < DefaultHardErrorLimit+5; i++ {
		c.cmd(fmt.Sprintf("RCPT TO:<nobody%d@example.test>", i), 550, "5.1.1")
	}
	c.cmd("QUIT", 221, "2.0.0")
}

func TestGoSMTPReplyClasses(t *testing.T) {
	for _, tc := range []struct {
		line        string
		junk, final bool
	}{
		{"250 2.0.0 I have successfully done nothing\r\n", true, false},
		{"250 2.0.0 Session reset\r\n", true, false},
		{"252 2.5.0 Cannot VRFY user, but will accept message\r\n", true, false},
		{"250-Hello client.example.net\r\n", true, false},
		{"250 Hello client.example.net\r\n", true, false},
		{"250 2.0.0 OK: queued as X\r\n", false, false},
		{"250-PIPELINING\r\n", false, false},
		{"421 4.4.2 Idle timeout, bye bye\r\n", false, true},
		{"500 5.5.1 Too many errors. Quiting now\r\n", false, true},
		{"500 5.4.0 Too long line, closing connection\r\n", false, true},
		{"502 5.5.1 Missing MAIL FROM command.\r\n", false, false},
	} {
		if got := isGoSMTPJunk([]byte(tc.line)); got != tc.junk {
			t.Errorf("isGoSMTPJunk(%q) = %v", tc.line, got)
		}
		if got := isGoSMTPFinal([]byte(tc.line)); got != tc.final {
			t.Errorf("isGoSMTPFinal(%q) = %v", tc.line, got)
		}
	}
}

// TestHardErrorLimitPipelined: a client that pipelines (RFC 2920) far more
// commands than the limit still reads every reply up to the 421, then a
// clean close rather than a reset that would swallow them.
func TestHardErrorLimitPipelined(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.ErrorSleep = tinySleep })
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&b, "RCPT TO:<nobody%d@example.test>\r\n", i)
	}
	go func() { _, _ = c.conn.Write([]byte(b.String())) }() // may fail once the server hangs up
	for i := 1; i <= DefaultHardErrorLimit; i++ {
		c.expect(550, "5.1.1")
	}
	if text := c.expect(421, "4.7.0"); text != testHost+" Error: too many errors" {
		t.Fatalf("421 text %q", text)
	}
	if rest, err := c.r.ReadString('\n'); err != io.EOF {
		t.Fatalf("after the 421: %q %v, want a clean end of stream (FIN, not a reset)", rest, err)
	}
}
