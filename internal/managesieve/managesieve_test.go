package managesieve

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/testutil"
)

// RFC 5804 1.7 and 2.2: the greeting is the capability list; before
// STARTTLS, SASL is empty and logins are refused with ENCRYPT-NEEDED;
// after it the capabilities come again, without STARTTLS and with the
// mechanisms.
func TestCapabilitiesAndStartTLS(t *testing.T) {
	e := start(t, nil)
	c, g := e.dial()
	caps := capMap(g)
	want := map[string]string{"IMPLEMENTATION": "Petrel", "SASL": "", "SIEVE": "fileinto vacation",
		"STARTTLS": "", "MAXREDIRECTS": "4", "VERSION": "1.0", "UNAUTHENTICATE": ""}
	for k, v := range want {
		if got, ok := caps[k]; !ok || got != v {
			t.Errorf("capability %s = %q (present %v), want %q; all: %v", k, got, ok, v, caps)
		}
	}
	if _, ok := caps["OWNER"]; ok {
		t.Error("OWNER before login")
	}
	if _, ok := caps["NOTIFY"]; ok {
		t.Error("NOTIFY without notify methods")
	}
	c.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, alicePass)+`"`, "NO (ENCRYPT-NEEDED)")
	c.expect("LISTSCRIPTS", `NO "Authenticate first"`)
	if n := len(e.auth.Attempts()); n != 0 {
		t.Fatalf("%d auth attempts before TLS", n)
	}
	r := c.starttls(e.cert.Client)
	caps = capMap(r)
	if caps["SASL"] != "PLAIN LOGIN" {
		t.Fatalf("SASL after TLS = %q", caps["SASL"])
	}
	if _, ok := caps["STARTTLS"]; ok {
		t.Fatal("STARTTLS offered over TLS")
	}
	c.expect("STARTTLS", `NO "TLS is already active"`)
	c.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, alicePass)+`"`, `OK "Logged in"`)
	at := e.auth.Last()
	if at.Protocol != "sieve" || at.Port != 4190 || at.Username != alice || !at.Remote.IsLoopback() {
		t.Fatalf("attempt %+v", at)
	}
	r = c.expect("CAPABILITY", "OK")
	if capMap(r)["OWNER"] != alice {
		t.Fatalf("OWNER after login: %v", capMap(r))
	}
	c.expect("LOGOUT", `OK "Logout completed"`)
	c.eof()
}

// TLS_FLAVOR=notls: logins in plaintext, no STARTTLS.
func TestNoTLS(t *testing.T) {
	e := start(t, func(o *Options) { o.TLSConfig, o.NoTLS = nil, true })
	c, g := e.dial()
	if caps := capMap(g); caps["SASL"] != "PLAIN LOGIN" || caps["STARTTLS"] != "" {
		t.Fatalf("caps %v", caps)
	} else if _, ok := caps["STARTTLS"]; ok {
		t.Fatal("STARTTLS without a certificate")
	}
	c.expect("STARTTLS", "NO")
	c.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, alicePass)+`"`, "OK")
}

// A server without a certificate and without NoTLS, or without a
// validator, refuses to start.
func TestServeChecksOptions(t *testing.T) {
	for _, edit := range []func(*Options){
		func(o *Options) { o.TLSConfig = nil },
		func(o *Options) { o.Validate = nil },
		func(o *Options) { o.Hostname = "" },
	} {
		o := Options{TLSConfig: &tls.Config{}, Hostname: "h", Auth: testutil.NewFakeAuth(nil), Store: testutil.OpenStore(t, t.TempDir(), "x.test"), Validate: fakeValidate}
		edit(&o)
		if err := New(o).Serve(nil); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// The script commands of RFC 5804 2.5-2.12 with their response codes.
func TestScripts(t *testing.T) {
	e := start(t, nil)
	c := e.login(alice, alicePass)
	ctx := context.Background()

	r := c.expect("LISTSCRIPTS", "OK")
	if len(r.lines) != 0 {
		t.Fatalf("scripts before any: %q", r.lines)
	}
	main := "require \"fileinto\";\r\nif header :contains \"subject\" \"x\" { fileinto \"X\"; }\r\n"
	c.expect(`PUTSCRIPT "main" `+literal(main), `OK "Script stored"`)
	c.expect(`PUTSCRIPT "quoted \"q\"" "keep;"`, "OK")
	// {n} without "+" is taken as well (Dovecot does).
	c.expect(`PUTSCRIPT "sync" {5}`+"\r\nstop;", "OK")
	r = c.expect(`PUTSCRIPT "broken" `+literal("keep;\nbad;\n"), "NO")
	if r.status != `NO "line 2: unknown command \"bad\""` {
		t.Fatalf("bad script: %q", r.status)
	}
	if _, err := e.st.GetSieveScript(ctx, alice, "broken"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused script was stored: %v", err)
	}
	c.expect(`CHECKSCRIPT `+literal("bad"), `NO "line 1:`)
	c.expect(`CHECKSCRIPT "keep;"`, `OK "Script is valid"`)
	c.expect(`PUTSCRIPT "" "keep;"`, `NO "Script name is empty"`)
	c.expect("PUTSCRIPT \"a\x7fb\" \"keep;\"", `NO "Script name contains a control character"`)

	r = c.expect("LISTSCRIPTS", "OK")
	if got := strings.Join(r.lines, "|"); got != `"main"|"quoted \"q\""|"sync"` {
		t.Fatalf("LISTSCRIPTS %q", got)
	}
	c.expect(`SETACTIVE "nope"`, "NO (NONEXISTENT)")
	c.expect(`SETACTIVE "main"`, `OK "Script activated"`)
	if name, script, err := e.st.SieveActiveScript(ctx, alice); err != nil || name != "main" || string(script) != main {
		t.Fatalf("active %q %q %v", name, script, err)
	}
	r = c.expect("LISTSCRIPTS", "OK")
	if got := strings.Join(r.lines, "|"); got != `"main" ACTIVE|"quoted \"q\""|"sync"` {
		t.Fatalf("LISTSCRIPTS %q", got)
	}
	r = c.expect(`GETSCRIPT "main"`, `OK "Getscript completed"`)
	if len(r.items) != 1 || string(r.items[0]) != main {
		t.Fatalf("GETSCRIPT %q", r.items)
	}
	c.expect(`GETSCRIPT "nope"`, "NO (NONEXISTENT)")
	c.expect(`DELETESCRIPT "main"`, "NO (ACTIVE)")
	c.expect(`DELETESCRIPT "nope"`, "NO (NONEXISTENT)")
	c.expect(`RENAMESCRIPT "main" "sync"`, "NO (ALREADYEXISTS)")
	c.expect(`RENAMESCRIPT "nope" "x"`, "NO (NONEXISTENT)")
	c.expect(`RENAMESCRIPT "main" "Main ü"`, `OK "Script renamed"`)
	if name, _, err := e.st.SieveActiveScript(ctx, alice); err != nil || name != "Main ü" {
		t.Fatalf("active after rename %q %v", name, err)
	}
	// Replacing the active script with a broken one leaves it as it was.
	c.expect(`PUTSCRIPT "Main ü" "bad;"`, "NO")
	if _, script, _ := e.st.SieveActiveScript(ctx, alice); string(script) != main {
		t.Fatalf("active script changed by a refused PUTSCRIPT: %q", script)
	}
	c.expect(`SETACTIVE ""`, `OK "No script is active now"`)
	if _, _, err := e.st.SieveActiveScript(ctx, alice); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("active after SETACTIVE \"\": %v", err)
	}
	c.expect(`DELETESCRIPT "Main ü"`, `OK "Script deleted"`)
	c.expect(`HAVESPACE "x" 100`, `OK "Putscript would succeed"`)
	c.expect(`HAVESPACE "x" 99999999`, "NO (QUOTA/MAXSIZE)")
	c.expect(`HAVESPACE "x" "100"`, "NO")

	r = c.expect(`NOOP "tag 1"`, "OK (TAG ")
	if r.status != `OK (TAG "tag 1") "Done"` {
		t.Fatalf("NOOP %q", r.status)
	}
	// Bob sees none of Alice's scripts.
	b := e.login(bob, bobPass)
	if r := b.expect("LISTSCRIPTS", "OK"); len(r.lines) != 0 {
		t.Fatalf("bob sees %q", r.lines)
	}
	b.expect(`GETSCRIPT "sync"`, "NO (NONEXISTENT)")

	c.expect("UNAUTHENTICATE", `OK "Unauthenticated"`)
	c.expect("LISTSCRIPTS", `NO "Authenticate first"`)
	c.expect(`AUTHENTICATE "PLAIN" "`+plain(bob, bobPass)+`"`, "OK")
	c.expect("LISTSCRIPTS", "OK")
	logs := e.logs.String()
	for _, w := range []string{"sieve login", "sieve script stored", "sieve script activated", "script=main"} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %q", w)
		}
	}
	if strings.Contains(logs, alicePass) {
		t.Fatal("password in the log")
	}
}

// Limits: count, size, storage, with QUOTA codes; a script literal over
// MAXSIZE is read and refused, and the session goes on.
func TestLimits(t *testing.T) {
	e := start(t, func(o *Options) { o.Limits = store.SieveLimits{MaxScripts: 2, MaxSize: 100, MaxStorage: 150} })
	c := e.login(alice, alicePass)
	c.expect(`PUTSCRIPT "a" `+literal(strings.Repeat("#", 100)), "OK")
	r := c.expect(`PUTSCRIPT "b" `+literal(strings.Repeat("#", 101)), "NO (QUOTA/MAXSIZE)")
	if !strings.Contains(r.status, "100 octets") {
		t.Fatalf("MAXSIZE text %q", r.status)
	}
	c.expect(`PUTSCRIPT "b" `+literal(strings.Repeat("#", 51)), "NO (QUOTA)")
	c.expect(`HAVESPACE "b" 51`, "NO (QUOTA)")
	c.expect(`PUTSCRIPT "b" `+literal(strings.Repeat("#", 50)), "OK")
	c.expect(`PUTSCRIPT "c" "x"`, "NO (QUOTA/MAXSCRIPTS)")
	c.expect(`HAVESPACE "c" 1`, "NO (QUOTA/MAXSCRIPTS)")
	c.expect(`HAVESPACE "b" 50`, "OK")
	c.expect(`CHECKSCRIPT `+literal(strings.Repeat("#", 101)), "NO (QUOTA/MAXSIZE)")
	// A name literal over its bound is refused too.
	c.expect(`GETSCRIPT `+literal(strings.Repeat("n", maxStringLiteral+1)), `NO "String too long"`)
	c.expect("NOOP", "OK")

	// A literal far beyond anything the reader would skip ends the session.
	c.send(`PUTSCRIPT "x" {999999999+}`)
	if r := c.read(); r.status != `BYE (QUOTA/MAXSIZE) "Literal too large"` {
		t.Fatalf("huge literal: %q", r.status)
	}
	c.eof()
}

// Syntax errors get NO and the session goes on; a literal announced on a
// bad line is skipped rather than run as commands; too many bad commands
// and a line over MaxLineLength end it.
func TestBadCommands(t *testing.T) {
	e := start(t, func(o *Options) { o.MaxLineLength = 256 })
	c := e.login(alice, alicePass)
	c.expect("FROB", `NO "Unknown command"`)
	c.expect(`PUTSCRIPT "a" "unterminated`, "NO")
	c.expect(`PUTSCRIPT a `+literal("LOGOUT"), "NO") // an atom name: the literal is skipped
	c.expect(`PUTSCRIPT "a"`, `NO "Wrong number of arguments"`)
	c.expect(`PUTSCRIPT "a" 12`, "NO")
	c.expect(`LISTSCRIPTS "x"`, `NO "LISTSCRIPTS takes no arguments"`)
	c.expect(`GETSCRIPT "a\q"`, `NO "bad quoted string"`)
	c.expect(`HAVESPACE "a" 99999999999`, `NO "bad number"`)
	c.expect("", `NO "Empty command"`)
	c.expect(`noop`, "OK") // command names are case-insensitive
	c.send(strings.Repeat("x", 300))
	if r := c.read(); r.status != `BYE "Line too long"` {
		t.Fatalf("long line: %q", r.status)
	}
	c.eof()

	c = e.login(alice, alicePass)
	for i := 0; i < maxBadCommands-1; i++ {
		c.expect("FROB", "NO")
	}
	c.expect("FROB", `BYE "Too many bad commands"`)
	c.eof()
}

// LOGIN and its challenges; three failures end the session; the auth
// core's verdicts map to NO texts and TRYLATER.
func TestAuthenticate(t *testing.T) {
	e := start(t, nil)
	c, _ := e.dial()
	c.starttls(e.cert.Client)
	b64 := func(s string) string { return `"` + base64.StdEncoding.EncodeToString([]byte(s)) + `"` }
	c.send(`AUTHENTICATE "LOGIN"`)
	if l := c.line(); l != b64("Username:") {
		t.Fatalf("first challenge %q", l)
	}
	c.send(b64(alice))
	if l := c.line(); l != b64("Password:") {
		t.Fatalf("second challenge %q", l)
	}
	c.send(b64(alicePass))
	if l := c.line(); l != `OK "Logged in"` {
		t.Fatalf("LOGIN result %q", l)
	}

	c, _ = e.dial()
	c.starttls(e.cert.Client)
	// No initial response: an empty challenge, then a literal response.
	c.send(`AUTHENTICATE "PLAIN"`)
	if l := c.line(); l != `""` {
		t.Fatalf("PLAIN challenge %q", l)
	}
	c.send(literal(plain(alice, "wrong")))
	if l := c.line(); l != `NO "Authentication failed"` {
		t.Fatalf("wrong password: %q", l)
	}
	c.send(`AUTHENTICATE "PLAIN"`)
	c.line()
	c.send(`"*"`)
	if l := c.line(); l != `NO "Authentication canceled"` {
		t.Fatalf("cancel: %q", l)
	}
	c.expect(`AUTHENTICATE "CRAM-MD5"`, `NO "Unsupported authentication mechanism"`)
	c.expect(`AUTHENTICATE "PLAIN" "`+base64.StdEncoding.EncodeToString([]byte("x\x00"+alice+"\x00"+alicePass))+`"`, `NO "Authentication failed"`)
	c.expect(`AUTHENTICATE "PLAIN" "!!"`, `NO "Authentication failed"`)
	if l := c.line(); l != `BYE "Too many failed logins"` {
		t.Fatalf("after three failures: %q", l)
	}
	c.eof()

	for _, tc := range []struct {
		err  error
		want string
	}{
		{auth.ErrRateLimited, `NO (TRYLATER) "Temporary authentication failure (rate-limit)"`},
		{auth.ErrNotFullAddress, `NO "Authentication failed: ` + auth.NotFullAddressText + `"`},
		{errors.New("database down"), `NO (TRYLATER) "Temporary server problem, try again later"`},
	} {
		e.auth.SetFail(tc.err)
		c, _ = e.dial()
		c.starttls(e.cert.Client)
		if r := c.cmd(`AUTHENTICATE "PLAIN" "` + plain(alice, alicePass) + `"`); r.status != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, r.status, tc.want)
		}
	}
	e.auth.SetFail(nil)
}

// SCRAM-SHA-256(-PLUS) through the real auth core: the server-final
// message comes in OK (SASL ...) (RFC 5804 2.1).
func TestScram(t *testing.T) {
	var e *testEnv
	e = start(t, func(o *Options) {
		st := testutil.OpenStore(t, t.TempDir(), testDomain, "alice")
		h, _ := auth.HashPassword(alicePass, 4)
		cr, err := auth.NewScramCredentials(alicePass, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SetPasswordHash(context.Background(), alice, h); err != nil {
			t.Fatal(err)
		}
		if err := st.SetScram(context.Background(), alice, h, cr); err != nil {
			t.Fatal(err)
		}
		o.Store = st
		o.Auth = auth.New(auth.Options{Users: st, Rounds: 4, Logger: o.Logger})
	})
	scram := func(c *client, mech string, sc *testutil.ScramClient) string {
		c.send(`AUTHENTICATE "` + mech + `" "` + base64.StdEncoding.EncodeToString(sc.First()) + `"`)
		l := c.line()
		if !strings.HasPrefix(l, `"`) {
			return l
		}
		sf, _ := base64.StdEncoding.DecodeString(strings.Trim(l, `"`))
		fin, err := sc.Final(sf)
		if err != nil {
			t.Fatal(err)
		}
		c.send(`"` + base64.StdEncoding.EncodeToString(fin) + `"`)
		l = c.line()
		if v, ok := strings.CutPrefix(l, `OK (SASL "`); ok {
			v, _, _ = strings.Cut(v, `"`)
			b, _ := base64.StdEncoding.DecodeString(v)
			if err := sc.Verify(b); err != nil {
				t.Fatalf("server signature: %v", err)
			}
		}
		return l
	}
	c, _ := e.dial()
	r := c.starttls(e.cert.Client)
	if got := capMap(r)["SASL"]; got != "PLAIN LOGIN SCRAM-SHA-256-PLUS SCRAM-SHA-256" {
		t.Fatalf("SASL %q", got)
	}
	if l := scram(c, "SCRAM-SHA-256", &testutil.ScramClient{User: alice, Password: "wrong"}); l != `NO "Authentication failed"` {
		t.Fatalf("wrong password: %q", l)
	}
	cb := testutil.ScramTLSExporter(c.conn.(*tls.Conn).ConnectionState())
	sc := &testutil.ScramClient{User: alice, Password: alicePass, CBFlag: "p=tls-exporter", CBData: cb}
	if l := scram(c, "SCRAM-SHA-256-PLUS", sc); !strings.HasPrefix(l, `OK (SASL "`) || !strings.HasSuffix(l, `) "Logged in"`) {
		t.Fatalf("SCRAM-SHA-256-PLUS: %q", l)
	}
	c.expect("LISTSCRIPTS", "OK")
	c, _ = e.dial()
	c.starttls(e.cert.Client)
	if l := scram(c, "SCRAM-SHA-256", &testutil.ScramClient{User: alice, Password: alicePass}); !strings.HasPrefix(l, "OK (SASL") {
		t.Fatalf("SCRAM-SHA-256: %q", l)
	}
}

// Connection limits answer BYE (TRYLATER); logged-in sessions per user and
// address are bounded too.
func TestConnectionLimits(t *testing.T) {
	e := start(t, func(o *Options) { o.MaxConnsPerIP = 2; o.MaxConnsPerUserIP = 1 })
	c := e.login(alice, alicePass)
	c2, _ := e.dial()
	c2.starttls(e.cert.Client)
	c2.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, alicePass)+`"`, "NO (TRYLATER)")
	c3 := e.dialRaw()
	if l := c3.line(); l != `BYE (TRYLATER) "Too many connections from your address, try again later"` {
		t.Fatalf("third connection: %q", l)
	}
	c.expect("LOGOUT", "OK")
	c.eof()
	eventually(t, "the first connection to be released", func() bool { return e.srv.conns.Count() == 1 })
	c2.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, alicePass)+`"`, "OK")
}

// An idle client is told why it is disconnected.
func TestIdleTimeout(t *testing.T) {
	e := start(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	c, _ := e.dial()
	if r := c.read(); r.status != `BYE "Disconnected for inactivity"` {
		t.Fatalf("idle: %q", r.status)
	}
	c.eof()
}

// Shutdown: a session waiting for a command gets BYE (TRYLATER).
func TestShutdown(t *testing.T) {
	e := start(t, nil)
	c := e.login(alice, alicePass)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	if r := c.read(); r.status != `BYE (TRYLATER) "Server shutting down, try again later"` {
		t.Fatalf("shutdown: %q", r.status)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// LOG_LEVEL=TRACE shows the dialogue without passwords or SASL data, and
// scripts only as a count.
func TestTraceRedacts(t *testing.T) {
	logs := &testutil.LogBuffer{}
	e := start(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.Level(-8)}))
	})
	c, _ := e.dial()
	c.starttls(e.cert.Client)
	c.send(`AUTHENTICATE "LOGIN"`)
	c.line()
	c.send(`"` + base64.StdEncoding.EncodeToString([]byte(alice)) + `"`)
	c.line()
	c.send(literal(base64.StdEncoding.EncodeToString([]byte(alicePass))))
	if l := c.line(); l != `OK "Logged in"` {
		t.Fatalf("LOGIN: %q", l)
	}
	c.expect("UNAUTHENTICATE", "OK")
	c.expect(`AUTHENTICATE "PLAIN" "`+plain(bob, bobPass)+`"`, "OK")
	c.expect(`PUTSCRIPT "s" `+literal("# secret-ish script body\r\nkeep;\r\n"), "OK")
	c.expect(`GETSCRIPT "s"`, "OK")
	c.expect("LOGOUT", "OK")
	eventually(t, "the logout trace", func() bool { return strings.Contains(logs.String(), "Logout completed") })
	out := logs.String()
	for _, secret := range []string{alicePass, base64.StdEncoding.EncodeToString([]byte(alicePass)), plain(bob, bobPass), bobPass, "secret-ish"} {
		if strings.Contains(out, secret) {
			t.Fatalf("trace shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"PUTSCRIPT", `AUTHENTICATE \"PLAIN\"`, "Logged in"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
}

// The real auth core: AUTH_REQUIRE_TOKENS covers sieve (an app token
// logs in, the password does not, SCRAM is not offered), and the
// failed-login limits (here AUTH_RATELIMIT_USER_NETWORK) answer TRYLATER.
func TestRealAuth(t *testing.T) {
	realAuth := func(t *testing.T, o auth.Options) (*testEnv, string) {
		var token string
		e := start(t, func(opts *Options) {
			st := testutil.OpenStore(t, t.TempDir(), testDomain, "alice")
			h, _ := auth.HashPassword(alicePass, 4)
			if err := st.SetPasswordHash(context.Background(), alice, h); err != nil {
				t.Fatal(err)
			}
			clear, hash, err := auth.NewToken()
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CreateToken(context.Background(), &store.Token{UserEmail: alice, Password: hash}); err != nil {
				t.Fatal(err)
			}
			token = clear
			o.Users, o.Rounds, o.Logger = st, 4, opts.Logger
			opts.Store, opts.Auth = st, auth.New(o)
		})
		return e, token
	}
	t.Run("RequireTokens", func(t *testing.T) {
		e, token := realAuth(t, auth.Options{RequireTokens: true})
		c, _ := e.dial()
		if caps := capMap(c.starttls(e.cert.Client)); caps["SASL"] != "PLAIN LOGIN" {
			t.Fatalf("SASL with AUTH_REQUIRE_TOKENS: %q", caps["SASL"])
		}
		c.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, alicePass)+`"`, `NO "Authentication failed"`)
		c.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, token)+`"`, `OK "Logged in"`)
		if logs := e.logs.String(); !strings.Contains(logs, "app_token=true") || strings.Contains(logs, token) {
			t.Fatalf("log:\n%s", logs)
		}
	})
	t.Run("RateLimit", func(t *testing.T) {
		e, _ := realAuth(t, auth.Options{UserNetLimit: ratelimit.Rate{Count: 2, Per: time.Hour}})
		var last string
		for i := 0; i < 4; i++ {
			c, _ := e.dial()
			c.starttls(e.cert.Client)
			last = c.cmd(`AUTHENTICATE "PLAIN" "` + plain(alice, fmt.Sprint("wrong", i)) + `"`).status
		}
		if last != `NO (TRYLATER) "Temporary authentication failure (rate-limit)"` {
			t.Fatalf("after the IP limit: %q", last)
		}
		c, _ := e.dial()
		c.starttls(e.cert.Client)
		c.expect(`AUTHENTICATE "PLAIN" "`+plain(alice, alicePass)+`"`, "NO (TRYLATER)")
	})
}
