package smtpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestMaxRecipients(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.MaxRecipients = 2 })
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<bob@example.test>", 250, "2.0.0")
	if text := c.cmd("RCPT TO:<someone@relayed.test>", 452, "4.5.3"); text != "Too many recipients" {
		t.Errorf("reply %q", text)
	}
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	c.expect(250, "2.0.0")
	if got := e.deliv.delivered(); len(got) != 1 || len(got[0].env.Routes) != 2 {
		t.Fatalf("delivered %+v", got)
	}
}

func TestDefaultsApplied(t *testing.T) {
	s := New(Options{Role: RoleMX})
	o := s.opts
	if o.MaxRecipients != 1000 || o.MaxConnsPerIP != 50 || o.MaxConns != 2000 ||
		o.ReadTimeout != 5*time.Minute || o.WriteTimeout != 5*time.Minute ||
		o.MaxLineLength != 32768 || o.MaxMessageBytes != 50_000_000 {
		t.Errorf("defaults %+v", o)
	}
}

// Connections over MaxConnsPerIP get 421 4.7.0 and are closed; a freed
// slot can be used again.
func TestMaxConnsPerIP(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmissions} {
		t.Run(role.String(), func(t *testing.T) {
			e := startServer(t, role, func(o *Options) { o.MaxConnsPerIP = 2 })
			c1 := e.dial()
			e.dial()
			c3 := e.dialNoBanner()
			text := c3.expect(421, "4.7.0")
			if text != "Too many connections from your address, try again later" {
				t.Errorf("reply %q", text)
			}
			c3.expectClosed()
			if !strings.Contains(e.logs.String(), "connection refused") {
				t.Error("refusal not logged")
			}
			c1.cmd("QUIT", 221, "2.0.0")
			c1.expectClosed()
			waitFor(t, func() bool { return e.srv.connCount() == 1 })
			e.dial().cmd("NOOP", 250, "2.0.0")
		})
	}
}

// TestPerIPExempt: networks in PerIPExempt (loopback and RELAYNETS in
// Petrel, as Postfix exempts $mynetworks) are not held to MaxConnsPerIP.
func TestPerIPExempt(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) {
		o.MaxConnsPerIP = 2
		o.PerIPExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	for i := 0; i < 5; i++ {
		e.dial() // each one gets its 220 banner
	}
	e.dial().cmd("NOOP", 250, "2.0.0")
}

func TestMaxConns(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.MaxConns = 1 })
	e.dial()
	c := e.dialNoBanner()
	c.expect(421, "4.3.2")
	c.expectClosed()
}

func TestIdleClientDropped(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.ReadTimeout = 200 * time.Millisecond })
	c := e.dial()
	c.expect(421, "4.4.2") // go-smtp: "Idle timeout, bye bye"
	c.expectClosed()

	// Silent in the middle of DATA: dropped too, nothing delivered.
	c = e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write("Subject: half\r\n")
	if text := c.expect(421, "4.4.2"); !strings.Contains(text, "Timeout while receiving the message") {
		t.Errorf("reply %q", text)
	}
	c.expect(421, "4.4.2") // go-smtp's own, as it hangs up
	c.expectClosed()
	if got := e.deliv.delivered(); len(got) != 0 {
		t.Fatalf("delivered %d", len(got))
	}
}

// A slow but steady sender is not cut off: the DATA timeout applies per
// read, not to the whole message.
func TestDataTimeoutPerRead(t *testing.T) {
	// Wide margins: a loaded machine may stretch each pause well beyond
	// its nominal length, and the point is only that the sum exceeds the
	// timeout while each pause does not.
	e := startServer(t, RoleMX, func(o *Options) { o.ReadTimeout = 1500 * time.Millisecond })
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write("Subject: slow\r\n\r\n")
	for i := range 6 {
		time.Sleep(500 * time.Millisecond) // 3 s in all, twice the timeout
		c.write(fmt.Sprintf("line %d\r\n", i))
	}
	c.write(".\r\n")
	c.expect(250, "2.0.0")
}

func TestConnectionLogs(t *testing.T) {
	e := startServer(t, RoleSubmission, nil)
	c := e.dial()
	c.ehlo()
	c.cmd("QUIT", 221, "2.0.0")
	c.expectClosed()
	waitFor(t, func() bool { return strings.Contains(e.logs.String(), "msg=disconnect") })
	for l := range strings.Lines(e.logs.String()) {
		if !strings.Contains(l, "msg=connect") && !strings.Contains(l, "msg=disconnect") {
			continue
		}
		for _, want := range []string{"cid=", "proto=submission", "remote=127.0.0.1:"} {
			if !strings.Contains(l, want) {
				t.Errorf("log line %q lacks %q", l, want)
			}
		}
	}
}

// Each session's context ends with the session.
func TestSessionContextCancelled(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	e.router.mu.Lock()
	ctx := e.router.contexts[0]
	e.router.mu.Unlock()
	if ctx.Err() != nil {
		t.Fatal("context ended during the session")
	}
	c.starttls(e.cert.Client) // go-smtp logs the old session out
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session context not cancelled by STARTTLS")
	}
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	e.router.mu.Lock()
	ctx = e.router.contexts[1]
	e.router.mu.Unlock()
	c.conn.Close() // vanish without QUIT
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session context not cancelled on disconnect")
	}
}

func TestShutdown(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	e.deliv.entered = make(chan struct{}, 1)
	e.deliv.release = make(chan struct{})

	idle := e.dial()
	idle.ehlo()

	busy := e.dial()
	busy.ehlo()
	busy.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	busy.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	busy.cmd("DATA", 354, "")
	busy.write(simpleBody + ".\r\n")
	<-e.deliv.entered

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	// The idle session is asked to leave at once.
	idle.expect(421, "4.4.2")
	idle.expectClosed()
	// No new connections.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", e.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The message in flight is finished and answered.
	close(e.deliv.release)
	busy.expect(250, "2.0.0")
	busy.expect(421, "4.4.2")
	busy.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-e.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	e.done <- nil // for the cleanup's Serve check
	if got := e.deliv.delivered(); len(got) != 1 {
		t.Fatalf("delivered %d", len(got))
	}
}

// At the deadline, Shutdown cancels what is still running and closes.
func TestShutdownDeadline(t *testing.T) {
	e := startServer(t, RoleMX, nil)
	e.deliv.entered = make(chan struct{}, 1)
	e.deliv.release = make(chan struct{}) // never released
	c := e.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
	c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
	c.cmd("DATA", 354, "")
	c.write(simpleBody + ".\r\n")
	<-e.deliv.entered

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	e.deliv.mu.Lock()
	dctx := e.deliv.ctxs[0]
	e.deliv.mu.Unlock()
	select {
	case <-dctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver's context not cancelled")
	}
	// The session may still get its temporary-failure reply out before the
	// socket is closed; either way the client never sees 250.
	c.expectClosedAfterTempFail()
	if got := e.deliv.delivered(); len(got) != 0 {
		t.Fatalf("delivered %d", len(got))
	}
	waitFor(t, func() bool { return e.srv.connCount() == 0 })
}

// waitFor polls cond (for state changes on the server side that the
// client cannot observe directly).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestErrorLogLevels(t *testing.T) {
	race := "panic serving 127.0.0.1:59266: runtime error: invalid memory address or nil pointer dereference\n" +
		"goroutine 63910 [running]:\nruntime/debug.Stack()\n" +
		"github.com/emersion/go-smtp.(*Conn).handlePanic(0x2047b348ec60, {0x99d160, 0xd51710}, 0x2047a9367dc7?)\n" +
		"github.com/emersion/go-smtp.(*Conn).handleBdat.func1.1()\npanic({0x99d160?, 0xd51710?})\n" +
		"github.com/emersion/go-smtp.(*Conn).handleBdat.func1()\n"
	ours := race + "github.com/petrelmail/petrel/internal/smtpd.(*session).Data(0x1)\n"
	cases := []struct {
		msg, level string
	}{
		{race, "DEBUG"},
		{ours, "ERROR"},
		{"panic serving 1.2.3.4:5: boom", "ERROR"},
		{"error handling 1.2.3.4:5: tls: first record does not look like a TLS handshake", "DEBUG"},
	}
	for _, tc := range cases {
		var buf logBuffer
		errorLog{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}.Printf("%s", tc.msg)
		if !strings.Contains(buf.String(), "level="+tc.level) {
			t.Errorf("%q logged as %q, want %s", tc.msg[:30], buf.String(), tc.level)
		}
	}
}

// The refusals go-smtp v0.25.1 sends by itself get a log line each, as
// Petrel's own do (the abuse kit found them silent): an over-long command
// line, MAIL SIZE= over the limit, and the idle timeout (RFC 5321
// 4.5.3.2.7), the last also under TLS. A drain's forced timeout and a
// DATA timeout (logged by Data) are not logged as idle timeouts.
func TestGoSMTPRefusalsLogged(t *testing.T) {
	count := func(e *testEnv, subs ...string) int {
		n := 0
		for l := range strings.Lines(e.logs.String()) {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				n++
			}
		}
		return n
	}
	t.Run("line and size", func(t *testing.T) {
		e := startServer(t, RoleMX, func(o *Options) { o.MaxLineLength = 100 })
		c := e.dial()
		c.ehlo()
		c.cmd("MAIL FROM:<s@remote.test> SIZE=20000", 552, "5.3.4")
		c.send("MAIL FROM:<" + strings.Repeat("a", 200) + "@remote.test>")
		c.expect(500, "5.4.0")
		c.expectClosed()
		waitFor(t, func() bool { return count(e, "stage=command", "code=500", "max_line_length=100") == 1 })
		if n := count(e, "stage=size", "code=552", "message_size_limit=10000"); n != 1 {
			t.Errorf("%d SIZE refusal lines:\n%s", n, e.logs.String())
		}
	})
	for _, role := range []Role{RoleMX, RoleSubmissions} {
		t.Run("idle "+role.String(), func(t *testing.T) {
			e := startServer(t, role, func(o *Options) { o.ReadTimeout = 200 * time.Millisecond })
			c := e.dial()
			c.expect(421, "4.4.2")
			c.expectClosed()
			waitFor(t, func() bool { return count(e, "stage=command", "code=421", "timeout=200ms") == 1 })
		})
	}
	t.Run("data timeout and drain", func(t *testing.T) {
		e := startServer(t, RoleMX, func(o *Options) { o.ReadTimeout = 300 * time.Millisecond })
		c := e.dial()
		c.ehlo()
		c.cmd("MAIL FROM:<s@remote.test>", 250, "2.0.0")
		c.cmd("RCPT TO:<alice@example.test>", 250, "2.0.0")
		c.cmd("DATA", 354, "")
		c.expect(421, "4.4.2")
		c.expect(421, "4.4.2")
		c.expectClosed()
		idle := e.dial()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		idle.expect(421, "4.4.2")
		if err := <-e.done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		e.done <- nil
		if n := count(e, "stage=command", "code=421"); n != 0 {
			t.Errorf("%d idle-timeout lines for a DATA timeout and a drain:\n%s", n, e.logs.String())
		}
		if n := count(e, "stage=data"); n != 1 {
			t.Errorf("%d DATA timeout lines", n)
		}
	})
}

// A client that stalls in the middle of a command line: go-smtp runs the
// partial line (bufio.ReadLine drops the timeout when it has bytes), but
// the timeout is final, so the session ends right after that reply
// instead of waiting a second ReadTimeout (found by the abuse kit's long
// form, RFC 5321 4.5.3.2.7).
func TestIdleTimeoutMidLineIsFinal(t *testing.T) {
	e := startServer(t, RoleMX, func(o *Options) { o.ReadTimeout = 300 * time.Millisecond })
	c := e.dial()
	c.ehlo()
	c.write("MAIL FROM:<half")
	c.expect(501, "5.5.2") // go-smtp's reply to the partial line
	// The client wakes up: too late, its session has timed out.
	c.write("NOOP\r\n")
	c.expect(421, "4.4.2")
	c.expectClosed()
	if !strings.Contains(e.logs.String(), `reply="Idle timeout"`) {
		t.Errorf("timeout not logged:\n%s", e.logs.String())
	}
}
