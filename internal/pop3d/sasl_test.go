package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/store"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func plainIR(authzid, user, pass string) string { return b64(authzid + "\x00" + user + "\x00" + pass) }

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func tlsHandshake(t *testing.T, c net.Conn, e *testEnv) net.Conn {
	t.Helper()
	tc := tls.Client(c, e.cert.Client)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return tc
}

func TestAuthSASL(t *testing.T) {
	e := start(t, true, nil)
	put(t, e.st, alice, msg1)

	cases := []struct {
		name   string
		dialog func(c *client) string // returns the final status line
		ok     bool
	}{
		{"PLAIN with initial response", func(c *client) string {
			return c.cmd("AUTH PLAIN " + plainIR("", alice, alicePass))
		}, true},
		{"PLAIN with authzid = user", func(c *client) string {
			return c.cmd("AUTH PLAIN " + plainIR(alice, alice, alicePass))
		}, true},
		{"plain, lower case, without initial response", func(c *client) string {
			c.expect("auth plain", "+ ")
			return c.cmd(plainIR("", alice, alicePass))
		}, true},
		{"LOGIN", func(c *client) string {
			if got := c.cmd("AUTH LOGIN"); got != "+ "+b64("Username:") {
				return "challenge " + got
			}
			if got := c.cmd(b64(alice)); got != "+ "+b64("Password:") {
				return "challenge " + got
			}
			return c.cmd(b64(alicePass))
		}, true},
		{"LOGIN with the username as initial response", func(c *client) string {
			c.expect("AUTH LOGIN "+b64(alice), "+ "+b64("Password:"))
			return c.cmd(b64(alicePass))
		}, true},
		{"PLAIN wrong password", func(c *client) string {
			return c.cmd("AUTH PLAIN " + plainIR("", alice, "nope"))
		}, false},
		{"PLAIN other authzid", func(c *client) string {
			return c.cmd("AUTH PLAIN " + plainIR(bob, alice, alicePass))
		}, false},
		{"PLAIN empty initial response", func(c *client) string {
			return c.cmd("AUTH PLAIN =")
		}, false},
		{"PLAIN bad base64", func(c *client) string {
			return c.cmd("AUTH PLAIN %%%")
		}, false},
		{"LOGIN bad base64 answer", func(c *client) string {
			c.expect("AUTH LOGIN", "+ ")
			return c.cmd("not base64!")
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial()
			c.t = t
			got := tc.dialog(c)
			if tc.ok && got != "+OK Logged in." {
				t.Fatalf("got %q, want login", got)
			}
			if !tc.ok && got != "-ERR [AUTH] Authentication failed" {
				t.Fatalf("got %q, want [AUTH] failure", got)
			}
			if tc.ok {
				c.expect("STAT", "+OK 1 ")
			}
			c.expect("QUIT", "+OK")
		})
	}

	c := e.dial()
	c.expect("AUTH", "+OK")
	if got := c.lines(); len(got) != 2 || got[0] != "PLAIN" || got[1] != "LOGIN" {
		t.Fatalf("AUTH list: %q", got)
	}
	c.expect("AUTH CRAM-MD5", "-ERR Unsupported authentication mechanism")
	c.expect("AUTH PLAIN a b", "-ERR Too many arguments")
	c.expect("AUTH LOGIN", "+ ")
	c.expect("*", "-ERR Authentication canceled by the client")
	c.expect("AUTH PLAIN", "+ ")
	c.expect("*", "-ERR Authentication canceled")
	c.expect("AUTH PLAIN "+plainIR("", alice, alicePass), "+OK Logged in.")
	c.expect("AUTH PLAIN", "-ERR Already logged in")
	c.expect("QUIT", "+OK")
	if l := e.logs.String(); containsAny(l, alicePass, b64(alicePass), plainIR("", alice, alicePass)) {
		t.Errorf("SASL payloads reached the log:\n%s", l)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if x != "" && strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// TestEnablePOP uses the real auth core: a user with enable_pop=false is
// refused like a wrong password, and enabled users get in.
func TestEnablePOP(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	hash, err := auth.HashPassword(alicePass, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{alice, bob} {
		u, err := st.GetUser(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		u.EnablePOP = email == alice
		if err := st.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := st.SetPasswordHash(ctx, email, hash); err != nil {
			t.Fatal(err)
		}
	}
	authn := auth.New(auth.Options{Users: st, Rounds: 4})
	e := start(t, true, func(o *Options) { o.Auth = authn; o.Store = st })
	e.st = st
	put(t, st, alice, msg1)
	put(t, st, bob, msg2)

	c := e.dial()
	c.expect("USER "+bob, "+OK")
	c.expect("PASS "+alicePass, "-ERR [AUTH] Authentication failed")
	c.expect("AUTH PLAIN "+plainIR("", bob, alicePass), "-ERR [AUTH] Authentication failed")
	c = e.dial()
	c.expect("AUTH PLAIN "+plainIR("", "alice", alicePass), "-ERR [AUTH] Authentication failed") // not a full address
	c.login(alice, alicePass)
	c.expect("RETR 1", "+OK")
	if got := string(c.multi()); got != msg1 {
		t.Fatalf("RETR: %q", got)
	}
	c.expect("QUIT", "+OK")
	if n := len(inboxOf(t, st, bob)); n != 1 {
		t.Fatalf("bob's mail: %d", n)
	}
}

// failingStore makes every store call fail.
type failingStore struct{ Store }

func (failingStore) ListMailboxes(context.Context, string) ([]store.Mailbox, error) {
	return nil, errors.New("database down")
}

func TestStoreErrorAtLogin(t *testing.T) {
	e := start(t, true, func(o *Options) { o.Store = failingStore{o.Store} })
	c := e.dial()
	c.expect("USER "+alice, "+OK")
	c.expect("PASS "+alicePass, "-ERR [SYS/TEMP] Cannot open your mailbox now")
	c.expect("STAT", "-ERR Log in first")
	c.expect("QUIT", "+OK")
}

// brokenStore fails the calls whose error is set.
type brokenStore struct {
	Store
	openErr, expungeErr error
}

func (b brokenStore) OpenBody(ctx context.Context, id int64) (io.ReadCloser, error) {
	if b.openErr != nil {
		return nil, b.openErr
	}
	return b.Store.OpenBody(ctx, id)
}

func (b brokenStore) ExpungeMessages(ctx context.Context, user, mailbox string, uids []uint32) error {
	if b.expungeErr != nil {
		return b.expungeErr
	}
	return b.Store.ExpungeMessages(ctx, user, mailbox, uids)
}

func TestStoreErrorsInTransaction(t *testing.T) {
	e := start(t, true, func(o *Options) {
		o.Store = brokenStore{Store: o.Store, openErr: errors.New("disk gone"), expungeErr: errors.New("database down")}
	})
	put(t, e.st, alice, msg1)
	c := e.dial()
	c.login(alice, alicePass)
	c.expect("RETR 1", "-ERR [SYS/TEMP] Cannot read the mailbox now")
	c.expect("LIST", "-ERR [SYS/TEMP] Cannot read the mailbox now")
	c.expect("UIDL", "+OK") // needs no body
	c.lines()
	c.expect("DELE 1", "+OK")
	c.expect("QUIT", "-ERR [SYS/TEMP] Could not delete the messages marked with DELE; they are still there")
	c.eof()
	if n := len(inboxOf(t, e.st, alice)); n != 1 {
		t.Fatalf("%d messages left", n)
	}
	eventually(t, "logout line", func() bool { return strings.Contains(e.logs.String(), `reason="quit, expunge failed"`) })
}
