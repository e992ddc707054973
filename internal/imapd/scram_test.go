package imapd

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/testutil"
)

// scramServer runs an implicit-TLS server with the real authenticator;
// alice has a password and its SCRAM credentials.
func scramServer(t *testing.T, implicit bool) *testServer {
	t.Helper()
	return startServer(t, func(ts *testServer, o *Options) {
		ctx := context.Background()
		h, _ := auth.HashPassword(alicePass, 4)
		c, err := auth.NewScramCredentials(alicePass, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.st.SetPasswordHash(ctx, alice, h); err != nil {
			t.Fatal(err)
		}
		if err := ts.st.SetScram(ctx, alice, h, c); err != nil {
			t.Fatal(err)
		}
		o.Auth = auth.New(auth.Options{Users: ts.st, Rounds: 4, Logger: o.Logger})
		o.NoTLS, o.Implicit, o.TLSConfig = false, implicit, ts.cert.Server
	})
}

// scramIMAP runs AUTHENTICATE mech (with SASL-IR) and returns the tagged
// response.
func scramIMAP(t *testing.T, c *client, mech string, sc *testutil.ScramClient) string {
	t.Helper()
	c.n++
	tag := "S" + strings.Repeat("x", c.n)
	c.send(tag + " AUTHENTICATE " + mech + " " + base64.StdEncoding.EncodeToString(sc.First()) + "\r\n")
	r := c.read()
	if !strings.HasPrefix(r, "+ ") {
		return strings.TrimPrefix(r, tag+" ")
	}
	sf, _ := base64.StdEncoding.DecodeString(r[2:])
	fin, err := sc.Final(sf)
	if err != nil {
		t.Fatal(err)
	}
	c.send(base64.StdEncoding.EncodeToString(fin) + "\r\n")
	r = c.read()
	if !strings.HasPrefix(r, "+ ") {
		return strings.TrimPrefix(r, tag+" ")
	}
	v, _ := base64.StdEncoding.DecodeString(r[2:])
	if err := sc.Verify(v); err != nil {
		t.Fatal(err)
	}
	c.send("\r\n")
	_, tagged := c.collect(tag)
	return tagged
}

func TestScramIMAP(t *testing.T) {
	ts := scramServer(t, true)
	c := ts.dialTLS()
	if g := c.greeting(); !strings.Contains(g, "AUTH=SCRAM-SHA-256-PLUS AUTH=SCRAM-SHA-256") {
		t.Fatalf("greeting %q", g)
	}
	if r := scramIMAP(t, c, "SCRAM-SHA-256", &testutil.ScramClient{User: alice, Password: "wrong"}); !strings.HasPrefix(r, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("wrong password: %q", r)
	}
	wrongCB := make([]byte, 32)
	sc := &testutil.ScramClient{User: alice, Password: alicePass, CBFlag: "p=tls-exporter", CBData: wrongCB}
	if r := scramIMAP(t, c, "SCRAM-SHA-256-PLUS", sc); !strings.HasPrefix(r, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("wrong binding: %q", r)
	}
	cb := testutil.ScramTLSExporter(c.conn.(*tls.Conn).ConnectionState())
	sc = &testutil.ScramClient{User: alice, Password: alicePass, CBFlag: "p=tls-exporter", CBData: cb}
	if r := scramIMAP(t, c, "SCRAM-SHA-256-PLUS", sc); !strings.HasPrefix(r, "OK") {
		t.Fatalf("SCRAM-SHA-256-PLUS: %q", r)
	}
	c.ok("SELECT INBOX")
	logs := ts.logs.String()
	if !strings.Contains(logs, "failed: channel-binding") || !strings.Contains(logs, "success: scram-sha-256-plus") {
		t.Fatalf("log lines missing:\n%s", logs)
	}
	if strings.Contains(logs, alicePass) {
		t.Fatal("the password reached the log")
	}

	// Without SASL-IR, and plain SCRAM-SHA-256.
	c = ts.dialTLS()
	c.greeting()
	c.send("N1 AUTHENTICATE SCRAM-SHA-256\r\n")
	if r := c.read(); r != "+ " {
		t.Fatalf("empty challenge: %q", r)
	}
	sc = &testutil.ScramClient{User: alice, Password: alicePass}
	c.send(base64.StdEncoding.EncodeToString(sc.First()) + "\r\n")
	r := c.read()
	sf, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r, "+ "))
	fin, err := sc.Final(sf)
	if err != nil {
		t.Fatal(err)
	}
	c.send(base64.StdEncoding.EncodeToString(fin) + "\r\n")
	r = c.read()
	v, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r, "+ "))
	if err := sc.Verify(v); err != nil {
		t.Fatal(err)
	}
	c.send("\r\n")
	if _, tagged := c.collect("N1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("SCRAM-SHA-256: %q", tagged)
	}
}

// TestScramIMAPStartTLS: on 143 nothing before STARTTLS.
func TestScramIMAPStartTLS(t *testing.T) {
	ts := scramServer(t, false)
	c := ts.dial()
	if g := c.greeting(); strings.Contains(g, "SCRAM") {
		t.Fatalf("SCRAM before TLS: %q", g)
	}
	c.expect("AUTHENTICATE SCRAM-SHA-256", "NO [PRIVACYREQUIRED]")
}
