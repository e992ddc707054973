package smtpd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/mailaddr"
	"github.com/petrelmail/petrel/internal/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestDataDelivered(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.NewMsgID = func() string { return "MSGID0001" } })
	c := e.dial()
	c.ehlo()
	body := "Subject: dots\r\n\r\n..leading dot\r\nline\r\n"
	text := c.sendMail("s@remote.test", []string{"alice@example.test"}, body)
	if text != "Ok: queued as MSGID0001" {
		t.Errorf("reply %q", text)
	}
	got := e.deliv.delivered()
	if len(got) != 1 {
		t.Fatalf("delivered %d", len(got))
	}
	if !strings.HasPrefix(got[0].body, "Received: from client.example.net ([127.0.0.1])\r\n") ||
		!strings.HasSuffix(got[0].body, "\r\nSubject: dots\r\n\r\n.leading dot\r\nline\r\n") {
		t.Errorf("body %q", got[0].body)
	}
	if got[0].env.ID != "MSGID0001" || got[0].env.ReceivedAt.IsZero() {
		t.Errorf("envelope %+v", got[0].env)
	}
	logs := e.logs.String()
	var line string
	for l := range strings.Lines(logs) {
		if strings.Contains(l, "msg=received") {
			line = l
		}
	}
	for _, want := range []string{"level=INFO", "msgid=MSGID0001", "from=s@remote.test", "rcpts=[alice@example.test]", "size=", "tls=false", "cid=", "proto=smtp", "remote=127.0.0.1:"} {
		if !strings.Contains(line, want) {
			t.Errorf("received log line %q lacks %q", line, want)
		}
	}
}

// The Received header (RFC 5321 4.4, RFC 3848) against golden files.
func TestReceivedHeaderGolden(t *testing.T) {
	fixed := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))
	cases := []struct {
		name  string
		role  Role
		tls   bool
		login bool
		rcpts []string
	}{
		{"mx-plain", RoleMX, false, false, []string{"alice@example.test"}},
		{"mx-starttls", RoleMX, true, false, []string{"alice@example.test"}},
		{"mx-two-rcpts", RoleMX, false, false, []string{"alice@example.test", "bob@example.test"}},
		{"submission-tls-auth", RoleSubmission, true, true, []string{"friend@foreign.test"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, tc.role, func(o *Options) {
				o.Now = func() time.Time { return fixed }
				o.NewMsgID = func() string { return "abcdefgh1234" }
			})
			c := e.dial()
			c.ehlo()
			if tc.tls {
				c.starttls(e.cert.Client)
				c.ehlo()
			}
			if tc.login {
				c.login("alice@example.test", "alice-secret-pw")
			}
			c.sendMail("alice@example.test", tc.rcpts, simpleBody)
			got := e.deliv.delivered()[0].body
			got = got[:strings.Index(got, "Subject: hi")]
			golden := filepath.Join("testdata", "received-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				_ = os.WriteFile(golden+".got", []byte(got), 0o644)
				t.Errorf("Received header differs from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestReceivedHeaderSanitisesHELO(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.cmd("EHLO evil(x);\rInjected:", 501, "5.5.2") // control characters: refused (issue 17)
	c.cmd("EHLO evil(x);<Injected:>", 250, "")
	c.sendMail("s@remote.test", []string{"alice@example.test"}, simpleBody)
	body := e.deliv.delivered()[0].body
	header := body[:strings.Index(body, "Subject:")]
	if strings.Contains(header, "\r\x49") || strings.Contains(header, "(x)") || strings.Contains(header, ";\r\nInjected") {
		t.Errorf("unsafe Received header %q", header)
	}
	if !strings.HasPrefix(header, "Received: from evil_x___Injected:_ ([127.0.0.1])") {
		t.Errorf("header %q", header)
	}
}

// Bare LF (and bare CR) are refused, which also defeats SMTP smuggling:
// the smuggled commands stay inside the refused body.
func TestDataBareLineEndings(t *testing.T) {
	cases := []struct {
		name, data string
		text       string
	}{
		{"bare LF in body", "Subject: x\r\n\r\nline\nnext\r\n.\r\n", "bare <LF>"},
		{"LF dot LF smuggling", "Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n", "bare <LF>"},
		{"CRLF dot LF smuggling", "Subject: x\r\n\r\nhi\r\n.\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n", "bare <LF>"},
		{"LF dot CRLF smuggling", "Subject: x\r\n\r\nhi\n.\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n", "bare <LF>"},
		{"CR dot CR smuggling", "Subject: x\r\n\r\nhi\r.\rMAIL FROM:<evil@remote.test>\r\n.\r\n", "bare <CR>"},
		{"bare LF in header", "Subject: x\nX: y\r\n\r\nbody\r\n.\r\n", "bare <LF>"},
		// issue 17: go-smtp used to drop the CR of "CRLF . CR x" and
		// so change the message silently; it is a bare CR like the others.
		{"CRLF dot CR smuggling", "Subject: x\r\n\r\nhi\r\n.\rMAIL FROM:<evil@remote.test>\r\n.\r\n", "bare <CR>"},
		{"CRLF dot CR CRLF", "Subject: x\r\n\r\nhi\r\n.\r\r\nmore\r\n.\r\n", "bare <CR>"},
		{"dot CR on the first line", ".\rSubject: x\r\n\r\nhi\r\n.\r\n", "bare <CR>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, RoleMX, nil)
			c := e.dial()
			c.ehlo()
			c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
			c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
			c.cmd("DATA", 354, "")
			c.write(tc.data)
			text := c.expect(550, "5.5.2")
			if !strings.Contains(text, tc.text) {
				t.Errorf("reply %q lacks %q", text, tc.text)
			}
			// Exactly one reply: the smuggled commands were never run.
			c.cmd("NOOP", 250, "2.0.0")
			if got := e.deliv.delivered(); len(got) != 0 {
				t.Fatalf("delivered %+v", got)
			}
			e.deliv.mu.Lock()
			for _, sp := range e.deliv.spools {
				if !sp.aborted {
					t.Error("spool not aborted")
				}
			}
			e.deliv.mu.Unlock()
			// The session goes on normally.
			c.sendMail("s@remote.test", []string{"alice@example.test"}, simpleBody)
		})
	}
}

func TestBDAT(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.NewMsgID = func() string { return "BDAT1" } })
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	part1 := "Subject: chunked\r\n"
	part2 := "\r\nbody\r\n"
	c.write(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	c.expect(250, "2.0.0")
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	if text := c.expect(250, "2.0.0"); text != "Ok: queued as BDAT1" {
		t.Errorf("reply %q", text)
	}
	got := e.deliv.delivered()
	if len(got) != 1 || !strings.HasSuffix(got[0].body, "\r\nSubject: chunked\r\n\r\nbody\r\n") {
		t.Fatalf("delivered %+v", got)
	}

	// Bare LF in a chunk: refused like in DATA.
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	bad := "Subject: x\r\n\r\nhi\n.\nsmuggled\r\n"
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(bad), bad))
	c.expect(550, "5.5.2")
	c.cmd("NOOP", 250, "2.0.0")
	if got := e.deliv.delivered(); len(got) != 1 {
		t.Fatalf("delivered %d, want still 1", len(got))
	}
}

func TestMessageSizeLimit(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.MaxMessageBytes = 1000 })
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test> SIZE=1001", 552, "5.3.4")
	c.cmd("MAIL FROM:<s@remote.test> SIZE=900", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz\r\n", 40)
	c.write(big + ".\r\n")
	text := c.expect(552, "5.3.4")
	if !strings.Contains(text, "maximum message size") {
		t.Errorf("reply %q", text)
	}
	if got := e.deliv.delivered(); len(got) != 0 {
		t.Fatalf("delivered %d", len(got))
	}
	c.cmd("NOOP", 250, "2.0.0")

	// BDAT over the limit.
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(big), big))
	c.expect(552, "5.3.4")
	c.cmd("NOOP", 250, "2.0.0")
	if got := e.deliv.delivered(); len(got) != 0 {
		t.Fatalf("delivered %d", len(got))
	}
}

// Lines over RFC 5322's 998 characters pass (as in Postfix); a line over
// MaxLineLength is refused with a reply that names that limit, not 998
// (the abuse kit found the old text quoting 998 while 1,500 passed).
func TestDataLineTooLong(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.MaxLineLength = 2000 })
	c := e.dial()
	c.ehlo()
	c.sendMail("s@remote.test", []string{"alice@example.test"}, "Subject: x\r\n\r\n"+strings.Repeat("y", 1500)+"\r\n")
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write("Subject: x\r\n\r\n" + strings.Repeat("x", 3000) + "\r\n.\r\n")
	if text := c.expect(500, "5.5.2"); text != "Line too long; lines must be at most 2000 bytes" {
		t.Errorf("reply %q", text)
	}
	c.expect(500, "5.4.0") // go-smtp then hangs up: the line limit poisons the stream
	c.expectClosed()
	if got := e.deliv.delivered(); len(got) != 1 {
		t.Fatalf("delivered %d, want only the message with the 1,500-byte line", len(got))
	}
}

func TestCommandLineTooLong(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.MaxLineLength = 100 })
	c := e.dial()
	c.send("EHLO " + strings.Repeat("a", 200))
	c.expect(500, "5.4.0")
	c.expectClosed()
}

func TestDeliverErrors(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		code     int
		enh      string
		text     string
		logLevel string
	}{
		{"quota", fmt.Errorf("inbound: deliver x: alice: %w", store.ErrQuotaExceeded), 552, "5.2.2", "Mailbox full", "INFO"},
		{"database", errors.New("sqlstore: disk I/O error at /data/main.db"), 451, "4.3.0", "Temporary local problem, try again later", "WARN"},
		{"context", fmt.Errorf("inbound: gave up: %w", context.DeadlineExceeded), 451, "4.3.0", "Temporary local problem, try again later", "WARN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, RoleMX, nil)
			e.deliv.err = tc.err
			c := e.dial()
			c.ehlo()
			c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
			c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
			c.cmd("DATA", 354, "")
			c.write(simpleBody + ".\r\n")
			text := c.expect(tc.code, tc.enh)
			if !strings.Contains(text, tc.text) || strings.Contains(text, "/data") {
				t.Errorf("reply %q", text)
			}
			if !strings.Contains(e.logs.String(), "level="+tc.logLevel+" msg=failed") ||
				!strings.Contains(e.logs.String(), tc.err.Error()) {
				t.Errorf("log lacks the detail at %s:\n%s", tc.logLevel, e.logs)
			}
			if strings.Contains(e.logs.String(), "msg=received") {
				t.Error("a failed delivery was logged as received")
			}
		})
	}
}

func TestResolveAndSpoolErrors(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	e.router.resolveErr = errors.New("sqlstore: database is locked")
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	if text := c.cmd("RCPT TO:<alice@example.test>", 451, "4.3.0"); strings.Contains(text, "locked") {
		t.Errorf("detail leaked: %q", text)
	}
	e.router.mu.Lock()
	e.router.resolveErr = nil
	e.router.mu.Unlock()
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	e.deliv.mu.Lock()
	e.deliv.spoolErr = errors.New("no space left on device")
	e.deliv.mu.Unlock()
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	c.expect(451, "4.3.0")
	c.cmd("NOOP", 250, "2.0.0")
}

// 250 comes only after Deliver returned nil: the fake blocks Deliver until
// the test has checked that no reply arrived.
func TestQueuedOnlyAfterDurable(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	e.deliv.entered = make(chan struct{}, 1)
	e.deliv.release = make(chan struct{})
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	<-e.deliv.entered
	// Deliver is running and has not returned: nothing may be readable.
	_ = c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if b, err := c.r.Peek(1); err == nil {
		t.Fatalf("reply before the message was durable: %q", b)
	}
	c.r.Reset(c.conn) // clear the deadline error
	close(e.deliv.release)
	c.expect(250, "2.0.0")
}

func TestReplyFor(t *testing.T) {
	own := &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "mine"}
	cases := []struct {
		err  error
		code int
		enh  smtp.EnhancedCode
	}{
		{fmt.Errorf("x: %w", inbound.ErrUnknownRecipient), 550, smtp.EnhancedCode{5, 1, 1}},
		{fmt.Errorf("x: %w", inbound.ErrBadAddress), 553, smtp.EnhancedCode{5, 1, 3}},
		{fmt.Errorf("x: %w", store.ErrQuotaExceeded), 552, smtp.EnhancedCode{5, 2, 2}},
		{fmt.Errorf("x: %w", auth.ErrBadCredentials), 535, smtp.EnhancedCode{5, 7, 8}},
		{fmt.Errorf("x: %w", auth.ErrRateLimited), 451, smtp.EnhancedCode{4, 3, 2}},
		{fmt.Errorf("x: %w", mailaddr.ErrPercentHack), 553, smtp.EnhancedCode{5, 1, 3}},
		{fmt.Errorf("x: %w", mailaddr.ErrAddressLiteral), 553, smtp.EnhancedCode{5, 1, 3}},
		{smtp.ErrDataTooLarge, 552, smtp.EnhancedCode{5, 3, 4}},
		{errBareLF, 550, smtp.EnhancedCode{5, 5, 2}},
		{errBareCR, 550, smtp.EnhancedCode{5, 5, 2}},
		{smtp.ErrTooLongLine, 500, smtp.EnhancedCode{5, 5, 2}},
		{fmt.Errorf("wrapped: %w", own), 553, smtp.EnhancedCode{5, 7, 1}},
		{context.Canceled, 451, smtp.EnhancedCode{4, 3, 0}},
		{fmt.Errorf("q: %w", context.DeadlineExceeded), 451, smtp.EnhancedCode{4, 3, 0}},
		{store.ErrNotFound, 451, smtp.EnhancedCode{4, 3, 0}},
		{io.ErrUnexpectedEOF, 451, smtp.EnhancedCode{4, 3, 0}},
		{errors.New("secret internal detail"), 451, smtp.EnhancedCode{4, 3, 0}},
	}
	for _, tc := range cases {
		r := replyFor(tc.err)
		if r.Code != tc.code || r.EnhancedCode != tc.enh {
			t.Errorf("replyFor(%v) = %d %v, want %d %v", tc.err, r.Code, r.EnhancedCode, tc.code, tc.enh)
		}
		if strings.Contains(r.Message, "secret") || strings.Contains(r.Message, "x:") {
			t.Errorf("replyFor(%v) leaks the error: %q", tc.err, r.Message)
		}
	}
	if replyFor(nil) != nil {
		t.Error("replyFor(nil) != nil")
	}
}

func TestBodyReaderChunkBoundaries(t *testing.T) {
	// CR at the end of one read and LF at the start of the next is fine.
	b := &bodyReader{r: &oneByteReader{s: "a\r\nb\r\n"}}
	out, err := io.ReadAll(b)
	if err != nil || string(out) != "a\r\nb\r\n" {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	b = &bodyReader{r: &oneByteReader{s: "a\r"}}
	if _, err := io.ReadAll(b); !errors.Is(err, errBareCR) {
		t.Fatalf("trailing CR: %v", err)
	}
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}
