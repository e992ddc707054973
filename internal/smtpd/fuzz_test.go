package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/obs"
)

// panicCatcher is a slog handler that counts records about recovered
// panics (go-smtp recovers panics in command handlers and logs them) and
// keeps the last one's detail.
type panicCatcher struct {
	panics *atomic.Int64
	detail *atomic.Value
}

func (h panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (h panicCatcher) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		h.panics.Add(1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "detail" {
				h.detail.Store(a.Value.String())
			}
			return true
		})
	}
	return nil
}
func (h panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicCatcher) WithGroup(string) slog.Handler      { return h }

// FuzzSession feeds arbitrary bytes as a whole client dialogue to a real
// server on a loopback socket: port 25 when the first byte is even, plaintext
// submission (TLS_FLAVOR=notls) when odd. The server must greet, never
// panic, and always finish: answer and close once the client has sent
// everything and shut its side.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"\x00EHLO a\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"\x00EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<x@foreign.test>\r\nRCPT TO:<u%v@example.test>\r\nDATA\r\nhi\n.\nMAIL FROM:<e@x>\r\n.\r\n",
		"\x00EHLO a\r\nMAIL FROM:<s@remote.test> SIZE=99999999\r\nMAIL FROM:<s@remote.test> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<@a,@b:bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.test\r\nBDAT 5\r\nhello BDAT 2 LAST\r\n\r\n",
		"\x00EHLO a\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==\r\nAUTH LOGIN\r\nYWxpY2U=\r\nAUTH\r\nSTARTTLS\r\nRSET\r\nVRFY x\r\nNOOP\r\nHELP\r\n",
		"\x01EHLO a\r\nAUTH PLAIN\r\nAGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1zZWNyZXQtcHc=\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<friend@foreign.test>\r\nDATA\r\n..x\r\n.\r\n",
		"\x01EHLO a\r\nAUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0\r\nYWxpY2Utc2VjcmV0LXB3\r\nMAIL FROM:<bob@example.test>\r\nMAIL FROM:<sales@example.test>\r\nRCPT TO:<\"a@b\"@example.test>\r\nBDAT 0 LAST\r\n",
		"\x01EHLO a\r\nAUTH PLAIN %%%\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\nMAIL FROM:<x>\r\n",
		"\x00HELO\r\nEHLO\r\nMAIL\r\nRCPT TO:\r\nDATA x\r\nBDAT -1\r\nBDAT 99999999999\r\n",
		"\x00EHLO a\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n" + strings.Repeat("x", 3000) + "\r\n.\r\n",
		"\x00",
		"\x00EHLO a\r\nMAIL FROM:<s@remote.test>\r\n" + strings.Repeat("RCPT TO:<nobody@example.test>\r\n", 25) + "BDAT 3 LAST\r\nabc",
		"\x00EHLO a\r\n" + strings.Repeat("AUTH PLAIN AGEAYg==\r\nNOOP\r\nHELP\r\n", 12),
		// issue 17: CRLF dot CR inside DATA, AUTH without initial response
		// on 25, control characters in the EHLO name.
		"\x00EHLO a\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nhi\r\n.\rMAIL FROM:<e@x>\r\n.\r\n",
		"\x00EHLO a\r\nAUTH PLAIN\r\nSTARTTLS\r\nAUTH LOGIN\r\nNOOP\r\n",
		"\x00EHLO a\x00b\rc\r\nHELO x\x01y\r\nQUIT\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	var panics atomic.Int64
	var detail atomic.Value
	start := func(role Role, noTLS bool) (string, func()) {
		a := newFakeAuth()
		a.addUser("alice@example.test", "alice-secret-pw")
		a.discard = true
		r := newFakeRouter()
		r.discard = true
		s := New(Options{
			Role:            role,
			Hostname:        testHost,
			NoTLS:           noTLS,
			MaxMessageBytes: 4096,
			MaxConns:        -1,
			MaxConnsPerIP:   -1,
			MaxRecipients:   20,
			ReadTimeout:     5 * time.Second,
			WriteTimeout:    5 * time.Second,
			ErrorSleep:      time.Millisecond, // the error limits stay on, fast
			Auth:            a,
			Router:          r,
			Deliverer:       &fakeDeliverer{discard: true},
			MessageRate:     &fakeLimiter{limit: 1 << 30},
			Logger:          slog.New(panicCatcher{&panics, &detail}),
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		return ln.Addr().String(), func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
			<-done
		}
	}
	mxAddr, stopMX := start(RoleMX, false)
	subAddr, stopSub := start(RoleSubmission, true)
	f.Cleanup(stopMX)
	f.Cleanup(stopSub)

	f.Fuzz(func(t *testing.T, in []byte) {
		addr := mxAddr
		if len(in) > 0 && in[0]%2 == 1 {
			addr = subAddr
		}
		if len(in) > 0 {
			in = in[1:]
		}
		before := panics.Load()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			_, _ = conn.Write(in)
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("server neither answered nor closed; got %q", out)
		}
		if !bytes.HasPrefix(out, []byte("220 "+testHost+" ESMTP")) {
			t.Fatalf("no greeting: %q", out)
		}
		for line := range bytes.Lines(out) {
			if len(line) < 4 || !bytes.HasSuffix(line, []byte("\r\n")) || line[0] < '2' || line[0] > '5' {
				t.Fatalf("malformed reply line %q in %q", line, out)
			}
		}
		if panics.Load() != before {
			t.Fatalf("go-smtp recovered a panic: %v", detail.Load())
		}
	})
}

// FuzzTraceFilter feeds arbitrary client and server lines through the
// SMTP trace filter: it must never show what follows an AUTH mechanism,
// anything the client sends between AUTH and the final reply, or a line
// of message data.
func FuzzTraceFilter(f *testing.F) {
	f.Add("AUTH PLAIN c2VjcmV0\nNOOP", "334 \n235 ok")
	f.Add("AUTH LOGIN\nc2VjcmV0\nc2VjcmV0", "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n535 no")
	f.Add("DATA\nsecret body\n.\nBDAT 6 LAST", "354 go\n250 ok")
	f.Fuzz(func(t *testing.T, client, server string) {
		fl := &smtpTraceFilter{}
		clientLine := func(line string) {
			sasl, data := fl.sasl, fl.inData
			show, _ := fl.Line(true, line)
			verb, rest, _ := strings.Cut(line, " ")
			mech, ir, _ := strings.Cut(rest, " ")
			switch {
			case data:
				if show != "" && !strings.HasPrefix(show, "[message data:") {
					t.Fatalf("message line %q shown as %q", line, show)
				}
			case sasl:
				if show != obs.Redacted {
					t.Fatalf("SASL line %q shown as %q", line, show)
				}
			case strings.EqualFold(verb, "AUTH") && ir != "":
				if show != verb+" "+mech+" "+obs.Redacted {
					t.Fatalf("AUTH line %q shown as %q", line, show)
				}
			}
		}
		cl, sl := strings.Split(client, "\n"), strings.Split(server, "\n")
		for i := 0; i < len(cl) || i < len(sl); i++ {
			if i < len(cl) {
				clientLine(cl[i])
			}
			if i < len(sl) {
				fl.Line(false, sl[i])
			}
		}
	})
}
