package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/testutil"
)

// scramEnv runs role with the real authenticator over a sqlstore whose
// alice has a password and its SCRAM credentials.
func scramEnv(t *testing.T, role Role) *testEnv {
	t.Helper()
	st := testutil.OpenStore(t, t.TempDir(), "example.test", "alice")
	ctx := context.Background()
	h, err := auth.HashPassword("Scram-Pa55", 4)
	if err != nil {
		t.Fatal(err)
	}
	c, err := auth.NewScramCredentials("Scram-Pa55", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPasswordHash(ctx, "alice@example.test", h); err != nil {
		t.Fatal(err)
	}
	if err := st.SetScram(ctx, "alice@example.test", h, c); err != nil {
		t.Fatal(err)
	}
	return startServer(t, role, func(o *Options) {
		o.Auth = auth.New(auth.Options{Users: st, Rounds: 4, Logger: o.Logger})
	})
}

// scramSMTP runs AUTH mech with sc and returns the final reply code.
func scramSMTP(t *testing.T, c *client, mech string, sc *testutil.ScramClient) int {
	t.Helper()
	c.send("AUTH " + mech + " " + base64.StdEncoding.EncodeToString(sc.First()))
	first := c.expect(334, "")
	sf, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(first, "334 "))
	if err != nil {
		t.Fatalf("server-first %q", first)
	}
	fin, err := sc.Final(sf)
	if err != nil {
		t.Fatal(err)
	}
	c.send(base64.StdEncoding.EncodeToString(fin))
	code, lines, err := c.readReply()
	if err != nil {
		t.Fatal(err)
	}
	if code != 334 {
		return code
	}
	v, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[len(lines)-1], "334 "))
	if err := sc.Verify(v); err != nil {
		t.Fatal(err)
	}
	c.send("")
	code, _, err = c.readReply()
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func exporter(t *testing.T, c *client) []byte {
	t.Helper()
	return testutil.ScramTLSExporter(c.conn.(*tls.Conn).ConnectionState())
}

func TestScramSubmissions(t *testing.T) {
	e := scramEnv(t, RoleSubmissions)
	c := e.dial()
	caps := strings.Join(c.ehlo(), "\n")
	if !strings.Contains(caps, "AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN") {
		t.Fatalf("EHLO %q", caps)
	}
	if code := scramSMTP(t, c, "SCRAM-SHA-256", &testutil.ScramClient{User: "alice@example.test", Password: "Scram-Pa55"}); code != 235 {
		t.Fatalf("SCRAM-SHA-256: %d", code)
	}
	c.cmd("AUTH PLAIN "+plainIR("alice@example.test", "Scram-Pa55"), 503, "5.5.1")

	c = e.dial()
	c.ehlo()
	sc := &testutil.ScramClient{User: "alice@example.test", Password: "Scram-Pa55", CBFlag: "p=tls-exporter", CBData: exporter(t, c)}
	if code := scramSMTP(t, c, "SCRAM-SHA-256-PLUS", sc); code != 235 {
		t.Fatalf("SCRAM-SHA-256-PLUS: %d", code)
	}

	// Bound to another connection (a man in the middle's): refused.
	c = e.dial()
	c.ehlo()
	wrong := make([]byte, 32)
	rand.Read(wrong)
	sc = &testutil.ScramClient{User: "alice@example.test", Password: "Scram-Pa55", CBFlag: "p=tls-exporter", CBData: wrong}
	if code := scramSMTP(t, c, "SCRAM-SHA-256-PLUS", sc); code != 535 {
		t.Fatalf("wrong binding: %d, want 535", code)
	}
	if !strings.Contains(e.logs.String(), "failed: channel-binding") {
		t.Fatal("no channel-binding log line")
	}
	// Wrong password.
	if code := scramSMTP(t, c, "SCRAM-SHA-256", &testutil.ScramClient{User: "alice@example.test", Password: "nope"}); code != 535 {
		t.Fatalf("wrong password: %d, want 535", code)
	}
	// A client that could bind but believes the server cannot (y) over
	// TLS, where -PLUS is offered: a downgrade, refused.
	c.send("AUTH SCRAM-SHA-256 " + base64.StdEncoding.EncodeToString([]byte("y,,n=alice@example.test,r=abcdef")))
	c.expect(535, "5.7.8")
	// Malformed client-first.
	c.send("AUTH SCRAM-SHA-256 " + base64.StdEncoding.EncodeToString([]byte("x,,n=alice")))
	c.expect(501, "5.5.2")
	if strings.Contains(e.logs.String(), "Scram-Pa55") || strings.Contains(e.logs.String(), "nope") {
		t.Fatal("a password reached the log")
	}
}

// TestScramSubmission587: nothing before STARTTLS; after it, -PLUS works.
func TestScramSubmission587(t *testing.T) {
	e := scramEnv(t, RoleSubmission)
	c := e.dial()
	if caps := strings.Join(c.ehlo(), "\n"); strings.Contains(caps, "SCRAM") {
		t.Fatalf("SCRAM offered in plaintext: %q", caps)
	}
	c.cmd("AUTH SCRAM-SHA-256", 530, "5.7.0")
	c.starttls(e.cert.Client)
	if caps := strings.Join(c.ehlo(), "\n"); !strings.Contains(caps, "SCRAM-SHA-256-PLUS") {
		t.Fatalf("after STARTTLS: %q", caps)
	}
	sc := &testutil.ScramClient{User: "alice@example.test", Password: "Scram-Pa55", CBFlag: "p=tls-exporter", CBData: exporter(t, c)}
	if code := scramSMTP(t, c, "SCRAM-SHA-256-PLUS", sc); code != 235 {
		t.Fatalf("SCRAM-SHA-256-PLUS after STARTTLS: %d", code)
	}
}
