package imapd

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestBadCommands(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial()
	c.greeting()
	c.expect("FROB", "BAD Unknown command")
	c.expect("SELECT INBOX", "BAD Log in first")
	c.expect("LOGIN onlyone", "BAD Expected a space")
	c.expect(`LOGIN "a" "b" extra`, "BAD Unexpected characters")
	c.send("\r\n")
	if r := c.read(); !strings.HasPrefix(r, "* BAD") {
		t.Fatalf("empty line: %q", r)
	}
	// A refused command with a synchronizing literal: no continuation,
	// and the session stays in step.
	c.send("a1 FROB {5}\r\n")
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "BAD") {
		t.Fatalf("FROB literal: %q", tagged)
	}
	c.send("a2 LOGIN {3+}\r\nabc\r\n")
	if _, tagged := c.collect("a2"); !strings.HasPrefix(tagged, "BAD") {
		t.Fatalf("LOGIN one literal: %q", tagged)
	}
	// Pipelined commands are answered in order.
	c.send("p1 NOOP\r\np2 CAPABILITY\r\np3 NOOP\r\n")
	c.collect("p1")
	u, _ := c.collect("p2")
	mustHave(t, u, "* CAPABILITY ")
	c.collect("p3")
	// Enough nonsense ends the session.
	var last string
	for i := 0; i < maxBadCommands; i++ {
		c.send("x FROB\r\n")
		last = c.read()
		if strings.HasPrefix(last, "* BYE") {
			break
		}
	}
	if !strings.HasPrefix(last, "* BYE") {
		t.Fatalf("no BYE after %d bad commands: %q", maxBadCommands, last)
	}
}

func TestLineAndLiteralLimits(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.MaxLineLength = 1000 })
	c := ts.dial()
	c.greeting()
	c.send("a2 LOGIN {2000}\r\n")
	if _, tagged := c.collect("a2"); !strings.HasPrefix(tagged, "BAD literal of 2000 octets") {
		t.Fatalf("long literal: %q", tagged)
	}
	c.ok("NOOP")
	// A user name as a literal is fine.
	c.send("a3 LOGIN {18}\r\n")
	if r := c.read(); !strings.HasPrefix(r, "+ ") {
		t.Fatalf("continuation: %q", r)
	}
	c.send(alice + " " + quote(alicePass) + "\r\n")
	if _, tagged := c.collect("a3"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("literal login: %q", tagged)
	}
}

// TestOversizedLineAnswersAndCloses: a command line over the limit is
// answered (tagged BAD when the tag was read, then BYE) and the connection
// closed at once, without reading on until a CRLF that may never come
// (issue 17); also for an AUTHENTICATE response line and for a tag that is
// itself too long.
func TestOversizedLineAnswersAndCloses(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.MaxLineLength = 1000 })
	check := func(name string, c *client, want []string) {
		t.Helper()
		// The client never ends its line and keeps the connection open.
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, err := io.ReadAll(c.r)
		if err != nil {
			t.Fatalf("%s: the server did not close the connection: %v (got %q)", name, err, all)
		}
		for _, w := range want {
			if !strings.Contains(string(all), w) {
				t.Errorf("%s: response %q lacks %q", name, all, w)
			}
		}
	}

	c := ts.dial()
	c.greeting()
	c.send("a1 LOGIN " + strings.Repeat("x", 5000)) // no CRLF
	check("LOGIN", c, []string{"a1 BAD Command line too long", "* BYE Command line too long"})

	c = ts.dial()
	c.greeting()
	c.send(strings.Repeat("t", 3000))
	check("tag", c, []string{"* BAD", "* BYE Command line too long"})

	c = ts.dial()
	c.greeting()
	c.send("a3 AUTHENTICATE PLAIN\r\n")
	if r := c.read(); !strings.HasPrefix(r, "+") {
		t.Fatalf("AUTHENTICATE: %q", r)
	}
	c.send(strings.Repeat("QUFB", 1000))
	check("AUTHENTICATE", c, []string{"a3 BAD", "* BYE Command line too long"})
}

func TestConnectionLimits(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.MaxConnsPerIP = 2; o.MaxConnsPerUserIP = 1 })
	a := ts.login(alice, alicePass)
	b := ts.dial()
	b.greeting()
	// Mailu's mail_max_userip_connections: the second session of alice
	// from this address is refused (RFC 5530 LIMIT), bob's is not.
	b.expect("LOGIN "+quote(alice)+" "+quote(alicePass), "NO [LIMIT]")
	b.ok("LOGIN " + quote(bob) + " " + quote(bobPass))
	c := ts.dial()
	if r := c.read(); !strings.HasPrefix(r, "* BYE Too many connections") {
		t.Fatalf("third connection: %q", r)
	}
	a.expect("LOGOUT", "OK")
	// a's place is free once it is gone.
	for i := 0; ; i++ {
		d := ts.dial()
		r := d.read()
		if strings.HasPrefix(r, "* OK") {
			d.ok("LOGIN " + quote(alice) + " " + quote(alicePass))
			break
		}
		if i > 100 {
			t.Fatalf("no place after LOGOUT: %q", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAutologout(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) {
		// Long enough for a login on a loaded machine to finish first.
		o.IdleTimeout = time.Second
		o.LoginTimeout = time.Second
	})
	c := ts.login(alice, alicePass)
	if r := c.read(); !strings.HasPrefix(r, "* BYE Autologout") {
		t.Fatalf("timeout: %q", r)
	}
	c = ts.dial()
	c.greeting()
	if r := c.read(); !strings.HasPrefix(r, "* BYE Autologout") {
		t.Fatalf("login timeout: %q", r)
	}
	// IDLE keeps a live client: "* OK Still here" re-arms the timer.
	ts2 := startServer(t, func(_ *testServer, o *Options) {
		o.IdleTimeout = 1500 * time.Millisecond
		o.IdleNotifyInterval = 300 * time.Millisecond
	})
	c = ts2.login(alice, alicePass)
	c.send("i1 IDLE\r\n")
	c.read()
	for i := 0; i < 7; i++ { // 2.1 s in all, longer than the idle timeout
		if r := c.read(); r != "* OK Still here" {
			t.Fatalf("keepalive %d: %q", i, r)
		}
	}
	c.send("DONE\r\n")
	if _, tagged := c.collect("i1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("DONE: %q", tagged)
	}
}
