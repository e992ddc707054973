package imapd

import (
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
)

func TestGreetingAndCapability(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial()
	g := c.greeting()
	for _, want := range []string{"[CAPABILITY IMAP4rev1 IMAP4rev2 ", "AUTH=PLAIN", "AUTH=LOGIN", "IDLE", "QRESYNC", "] Petrel ready"} {
		if !strings.Contains(g, want) {
			t.Errorf("greeting %q lacks %q", g, want)
		}
	}
	u := c.ok("CAPABILITY")
	mustHave(t, u, "* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ENABLE IDLE NAMESPACE UIDPLUS MOVE SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH UNSELECT QUOTA QUOTA=RES-STORAGE CONDSTORE QRESYNC ID CHILDREN")
	// NoTLS on 143: no STARTTLS without a certificate.
	if strings.Contains(u[0], "STARTTLS") || strings.Contains(u[0], "LOGINDISABLED") {
		t.Errorf("capabilities %q", u[0])
	}
	c.expect("LOGOUT", "OK")
}

func TestStartTLSAndLoginDisabled(t *testing.T) {
	ts := startServer(t, func(ts *testServer, o *Options) { o.NoTLS = false; o.TLSConfig = ts.cert.Server })
	c := ts.dial()
	g := c.greeting()
	if !strings.Contains(g, "STARTTLS") || !strings.Contains(g, "LOGINDISABLED") || strings.Contains(g, "AUTH=") {
		t.Fatalf("plaintext greeting %q", g)
	}
	c.expect("LOGIN "+quote(alice)+" "+quote(alicePass), "NO [PRIVACYREQUIRED] Use STARTTLS first")
	c.expect("AUTHENTICATE PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00"+alicePass)), "NO [PRIVACYREQUIRED]")
	c.expect("STARTTLS", "OK")
	tc := tls.Client(c.conn, ts.cert.Client)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = &client{t: t, conn: tc, r: newReader(tc)}
	u := c.ok("CAPABILITY")
	if strings.Contains(u[0], "STARTTLS") || strings.Contains(u[0], "LOGINDISABLED") || !strings.Contains(u[0], "AUTH=PLAIN") {
		t.Fatalf("capabilities after STARTTLS %q", u[0])
	}
	c.expect("STARTTLS", "BAD")
	_, tagged := c.cmd("LOGIN " + quote(alice) + " " + quote(alicePass))
	if !strings.HasPrefix(tagged, "OK [CAPABILITY IMAP4rev1") || strings.Contains(tagged, "AUTH=") {
		t.Fatalf("login: %q", tagged)
	}
	if at := ts.auth.Last(); at.Protocol != "imap" || at.Port != 143 || at.Username != alice {
		t.Fatalf("attempt %+v", at)
	}
}

func TestImplicitTLS(t *testing.T) {
	ts := startServer(t, func(ts *testServer, o *Options) {
		o.NoTLS, o.Implicit, o.TLSConfig = false, true, ts.cert.Server
	})
	c := ts.dialTLS()
	g := c.greeting()
	if strings.Contains(g, "STARTTLS") || !strings.Contains(g, "AUTH=PLAIN") {
		t.Fatalf("greeting %q", g)
	}
	c.ok("LOGIN " + quote(alice) + " " + quote(alicePass))
	if at := ts.auth.Last(); at.Port != 993 {
		t.Fatalf("port %d", at.Port)
	}
}

func TestAuthFailures(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial()
	c.greeting()
	c.expect("LOGIN "+quote(alice)+" wrong", "NO [AUTHENTICATIONFAILED] Authentication failed")
	ts.auth.SetFail(auth.ErrRateLimited)
	c.expect("LOGIN "+quote(alice)+" "+quote(alicePass), "NO [LIMIT] Temporary authentication failure (rate-limit)")
	ts.auth.SetFail(nil)
	// The third failure ends the session.
	_, tagged := c.cmd("LOGIN " + quote(bob) + " wrong")
	if !strings.HasPrefix(tagged, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("third failure: %q", tagged)
	}
	if r := c.read(); !strings.HasPrefix(r, "* BYE") {
		t.Fatalf("after three failures: %q", r)
	}
	if strings.Contains(ts.logs.String(), alicePass) {
		t.Fatal("password in the log")
	}
}

func TestAuthenticate(t *testing.T) {
	ts := startServer(t, nil)
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + alicePass))

	// SASL-IR.
	c := ts.dial()
	c.greeting()
	c.ok("AUTHENTICATE PLAIN " + plain)
	c.expect("LOGIN a b", "BAD")

	// PLAIN with a continuation.
	c = ts.dial()
	c.greeting()
	c.send("a1 AUTHENTICATE PLAIN\r\n")
	if r := c.read(); r != "+ " {
		t.Fatalf("challenge %q", r)
	}
	c.send(plain + "\r\n")
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("plain: %q", tagged)
	}

	// LOGIN.
	c = ts.dial()
	c.greeting()
	c.send("a1 AUTHENTICATE LOGIN\r\n")
	if r := c.read(); r != "+ "+base64.StdEncoding.EncodeToString([]byte("Username:")) {
		t.Fatalf("challenge %q", r)
	}
	c.send(base64.StdEncoding.EncodeToString([]byte(bob)) + "\r\n")
	c.read()
	c.send(base64.StdEncoding.EncodeToString([]byte(bobPass)) + "\r\n")
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("login: %q", tagged)
	}

	// Cancel, a bad mechanism, a wrong password.
	c = ts.dial()
	c.greeting()
	c.send("a1 AUTHENTICATE PLAIN\r\n")
	c.read()
	c.send("*\r\n")
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "BAD") {
		t.Fatalf("cancel: %q", tagged)
	}
	c.expect("AUTHENTICATE CRAM-MD5", "NO")
	c.expect("AUTHENTICATE PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00nope")), "NO [AUTHENTICATIONFAILED]")
	if strings.Contains(ts.logs.String(), plain) {
		t.Fatal("AUTH payload in the log")
	}
}
