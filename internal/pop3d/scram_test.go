package pop3d

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/testutil"
)

func scramStart(t *testing.T, implicit bool) *testEnv {
	t.Helper()
	st := openStore(t)
	ctx := context.Background()
	h, _ := auth.HashPassword(alicePass, 4)
	c, err := auth.NewScramCredentials(alicePass, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPasswordHash(ctx, alice, h); err != nil {
		t.Fatal(err)
	}
	if err := st.SetScram(ctx, alice, h, c); err != nil {
		t.Fatal(err)
	}
	e := start(t, implicit, func(o *Options) {
		o.Store = st
		o.Auth = auth.New(auth.Options{Users: st, Rounds: 4, Logger: o.Logger})
	})
	e.st = st
	return e
}

// scramPOP runs AUTH mech with an initial response and returns the final
// status line.
func scramPOP(t *testing.T, c *client, mech string, sc *testutil.ScramClient) string {
	t.Helper()
	r := c.cmd("AUTH " + mech + " " + base64.StdEncoding.EncodeToString(sc.First()))
	if !strings.HasPrefix(r, "+ ") {
		return r
	}
	sf, _ := base64.StdEncoding.DecodeString(r[2:])
	fin, err := sc.Final(sf)
	if err != nil {
		t.Fatal(err)
	}
	r = c.cmd(base64.StdEncoding.EncodeToString(fin))
	if !strings.HasPrefix(r, "+ ") {
		return r
	}
	v, _ := base64.StdEncoding.DecodeString(r[2:])
	if err := sc.Verify(v); err != nil {
		t.Fatal(err)
	}
	return c.cmd("")
}

func TestScramPOP3(t *testing.T) {
	e := scramStart(t, true)
	put(t, e.st, alice, msg1)
	c := e.dial()
	c.send("CAPA")
	if caps := strings.Join(c.lines(), "\n"); !strings.Contains(caps, "SASL PLAIN LOGIN SCRAM-SHA-256-PLUS SCRAM-SHA-256") {
		t.Fatalf("CAPA %q", caps)
	}
	if r := scramPOP(t, c, "SCRAM-SHA-256", &testutil.ScramClient{User: alice, Password: "wrong"}); r != "-ERR [AUTH] Authentication failed" {
		t.Fatalf("wrong password: %q", r)
	}
	sc := &testutil.ScramClient{User: alice, Password: alicePass, CBFlag: "p=tls-exporter", CBData: make([]byte, 32)}
	if r := scramPOP(t, c, "SCRAM-SHA-256-PLUS", sc); r != "-ERR [AUTH] Authentication failed" {
		t.Fatalf("wrong binding: %q", r)
	}
	cb := testutil.ScramTLSExporter(c.conn.(*tls.Conn).ConnectionState())
	sc = &testutil.ScramClient{User: alice, Password: alicePass, CBFlag: "p=tls-exporter", CBData: cb}
	if r := scramPOP(t, c, "SCRAM-SHA-256-PLUS", sc); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("SCRAM-SHA-256-PLUS: %q", r)
	}
	c.expect("STAT", "+OK 1 ")
	if logs := e.logs.String(); !strings.Contains(logs, "failed: channel-binding") || strings.Contains(logs, alicePass) {
		t.Fatalf("log:\n%s", logs)
	}

	c = e.dial()
	if r := scramPOP(t, c, "SCRAM-SHA-256", &testutil.ScramClient{User: alice, Password: alicePass}); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("SCRAM-SHA-256: %q", r)
	}
}

// TestScramPOP3STLS: on 110 nothing before STLS, -PLUS after it.
func TestScramPOP3STLS(t *testing.T) {
	e := scramStart(t, false)
	c := e.dial()
	c.expect("AUTH SCRAM-SHA-256", "-ERR")
	c.starttls(e.cert.Client)
	cb := testutil.ScramTLSExporter(c.conn.(*tls.Conn).ConnectionState())
	sc := &testutil.ScramClient{User: alice, Password: alicePass, CBFlag: "p=tls-exporter", CBData: cb}
	if r := scramPOP(t, c, "SCRAM-SHA-256-PLUS", sc); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("after STLS: %q", r)
	}
}
