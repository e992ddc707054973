package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// RFC 7677 3: user "user", password "pencil".
const (
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcCreds(t *testing.T) store.ScramCredentials {
	t.Helper()
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	c, err := scramCredentials("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestScramRFC7677Vector(t *testing.T) {
	creds := rfcCreds(t)
	var got ScramOutcome
	s := NewScramServer(ScramConfig{
		Credentials: func(u string) (store.ScramCredentials, bool, error) {
			if u != "user" {
				t.Fatalf("username %q", u)
			}
			return creds, true, nil
		},
		Finish: func(o ScramOutcome) error { got = o; return nil },
		Nonce:  func() string { return rfcServerNonce },
	})
	ch, done, err := s.Next([]byte(rfcClientFirst))
	if err != nil || done || string(ch) != rfcServerFirst {
		t.Fatalf("server-first %q %v %v", ch, done, err)
	}
	ch, done, err = s.Next([]byte(rfcClientFinal))
	if err != nil || done || string(ch) != rfcServerFinal {
		t.Fatalf("server-final %q %v %v", ch, done, err)
	}
	if !got.Valid || got.Username != "user" {
		t.Fatalf("outcome %+v", got)
	}
	if _, done, err = s.Next([]byte{}); !done || err != nil {
		t.Fatalf("after the empty response: %v %v", done, err)
	}
	if _, _, err = s.Next(nil); err == nil {
		t.Fatal("a message after the end was accepted")
	}

	// The same exchange with one bit of the proof flipped fails.
	s = NewScramServer(ScramConfig{
		Credentials: func(string) (store.ScramCredentials, bool, error) { return creds, true, nil },
		Finish:      func(o ScramOutcome) error { got = o; return ErrBadCredentials },
		Nonce:       func() string { return rfcServerNonce },
	})
	s.Next([]byte(rfcClientFirst))
	bad := strings.Replace(rfcClientFinal, "p=dHzb", "p=dHzc", 1)
	if _, _, err := s.Next([]byte(bad)); !errors.Is(err, ErrBadCredentials) || got.Valid || got.Reason != ReasonBadAuth {
		t.Fatalf("flipped proof: %v %+v", err, got)
	}
}

// TestScramFromHash: a passlib pbkdf2_sha256 hash carries SaltedPassword.
func TestScramFromHash(t *testing.T) {
	h, err := hashPBKDF2SHA256("pencil", 4096)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := ScramFromHash(h)
	if !ok {
		t.Fatal("pbkdf2_sha256 not usable")
	}
	want, _ := scramCredentials("pencil", c.Salt, 4096)
	if !bytes.Equal(c.StoredKey, want.StoredKey) || !bytes.Equal(c.ServerKey, want.ServerKey) || c.Iterations != 4096 {
		t.Fatal("credentials from the hash differ from the password's")
	}
	b, _ := HashPassword("pencil", 4)
	if _, ok := ScramFromHash(b); ok {
		t.Fatal("bcrypt hash gave SCRAM credentials")
	}
}

func TestScramParse(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		ok   bool
		user string
	}{
		{"n,,n=user,r=abc", true, "user"},
		{"y,,n=a=2Cb=3Dc,r=abc", true, "a,b=c"},
		{"p=tls-exporter,,n=user,r=abc", true, "user"},
		{"n,a=user,n=user,r=abc", true, "user"},
		{"n,,n=user,r=abc,ext=1", true, "user"},
		{"n,,m=x,n=user,r=abc", false, ""},
		{"x,,n=user,r=abc", false, ""},
		{"p=,,n=user,r=abc", false, ""},
		{"p=a,b,,n=user,r=abc", false, ""},
		{"n,,n=us=er,r=abc", false, ""},
		{"n,,n=,r=abc", false, ""},
		{"n,,n=user,r=a,b", true, "user"},
		{"n,,n=user,r=", false, ""},
		{"n,,n=user", false, ""},
		{"n,,r=abc,n=user", false, ""},
		{"n,b=x,n=user,r=abc", false, ""},
		{"n", false, ""},
		{"", false, ""},
	} {
		cf, err := parseClientFirst(tc.msg)
		if (err == nil) != tc.ok || cf.username != tc.user {
			t.Errorf("%q: %+v %v", tc.msg, cf, err)
		}
		if err != nil && !errors.Is(err, ErrScramMalformed) {
			t.Errorf("%q: error %v is not ErrScramMalformed", tc.msg, err)
		}
	}
	for _, tc := range []struct {
		msg string
		ok  bool
	}{
		{rfcClientFinal, true},
		{"c=biws,r=x,p=AAAA", true},
		{"c=biws,r=x,e=1,p=AAAA", true},
		{"c=biws,r=x", false},
		{"c=bi!s,r=x,p=AAAA", false},
		{"c=biws,r=x,p=AA", false},
		{"c=biws,r=x,p=", false},
		{"r=x,c=biws,p=AAAA", false},
		{"c=biws,p=AAAA", false},
	} {
		if _, err := parseClientFinal(tc.msg); (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.msg, err)
		}
	}
}

// TestScramGS2Flags: -PLUS needs p=; plain SCRAM refuses p=, and y over
// TLS (a downgrade); p= with an unknown binding type is refused.
func TestScramGS2Flags(t *testing.T) {
	creds := rfcCreds(t)
	cfg := func(plus, tlsOn bool) ScramConfig {
		c := ScramConfig{
			Plus:        plus,
			Credentials: func(string) (store.ScramCredentials, bool, error) { return creds, true, nil },
			Finish:      func(ScramOutcome) error { return nil },
		}
		if tlsOn {
			st := tlsPair(t)
			c.TLS = &st
		}
		return c
	}
	for _, tc := range []struct {
		name        string
		plus, tlsOn bool
		msg         string
		ok          bool
	}{
		{"plain n", false, false, "n,,n=user,r=abc", true},
		{"plain y without TLS", false, false, "y,,n=user,r=abc", true},
		{"plain y over TLS", false, true, "y,,n=user,r=abc", false},
		{"plain p", false, true, "p=tls-exporter,,n=user,r=abc", false},
		{"plus n", true, true, "n,,n=user,r=abc", false},
		{"plus exporter", true, true, "p=tls-exporter,,n=user,r=abc", true},
		{"plus unknown type", true, true, "p=tls-server-end-point,,n=user,r=abc", false},
		{"plus tls-unique on TLS 1.3", true, true, "p=tls-unique,,n=user,r=abc", false},
		{"plus without TLS", true, false, "p=tls-exporter,,n=user,r=abc", false},
	} {
		s := NewScramServer(cfg(tc.plus, tc.tlsOn))
		_, _, err := s.Next([]byte(tc.msg))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestScramFakeSalt: an unknown user gets the same salt every time, and
// different users different salts, so the answer does not tell.
func TestScramFakeSalt(t *testing.T) {
	first := func(user string) string {
		s := NewScramServer(ScramConfig{
			FakeKey:     []byte("k"),
			Credentials: func(string) (store.ScramCredentials, bool, error) { return store.ScramCredentials{}, false, nil },
			Finish:      func(ScramOutcome) error { return nil },
			Nonce:       func() string { return "N" },
		})
		ch, _, err := s.Next([]byte("n,,n=" + user + ",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		return string(ch)
	}
	if a, b := first("ghost@example.com"), first("ghost@example.com"); a != b || !strings.Contains(a, ",i=4096") {
		t.Fatalf("fake salt not stable: %q %q", a, b)
	}
	if first("ghost@example.com") == first("other@example.com") {
		t.Fatal("two unknown users share a salt")
	}
}

// TestScramLoginThroughCore: SCRAM logins go through the auth core: the
// fail2ban line, the limiter (per account and network), the token rule.
func TestScramLoginThroughCore(t *testing.T) {
	e := newEnv(t, nil)
	c, err := NewScramCredentials(alicePW, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.users.setScram("alice@example.com", c)
	e.users.add("nokeys@example.com", e.users.hashOf("alice@example.com"), nil)
	run := func(user, pw, ip string) (*Result, error) {
		l := e.a.NewScramLogin(context.Background(), Attempt{Protocol: "imap", Port: 993, Remote: netip.MustParseAddr(ip)}, false, nil)
		cl := &rfcClient{user: user, pw: pw}
		ch, _, err := l.Next(cl.first())
		if err != nil {
			return nil, err
		}
		fin, err := cl.final(ch)
		if err != nil {
			t.Fatal(err)
		}
		ch, _, err = l.Next(fin)
		if err != nil {
			return nil, err
		}
		if err := cl.verify(ch); err != nil {
			t.Fatal(err)
		}
		if _, done, err := l.Next([]byte{}); !done || err != nil {
			t.Fatalf("end: %v %v", done, err)
		}
		return l.Result(), nil
	}
	res, err := run("alice@example.com", alicePW, "192.0.2.1")
	if err != nil || res == nil || res.User.Email != "alice@example.com" {
		t.Fatalf("right password: %v %v", res, err)
	}
	if !strings.Contains(e.logs.String(), "success: scram-sha-256") {
		t.Fatal("no success line")
	}
	e.logs.reset()
	if _, err := run("alice@example.com", "wrong", "203.0.113.5"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if w := e.logs.warns(t); len(w) != 1 || w[0]["reason"] != ReasonBadAuth {
		t.Fatalf("log %v", w)
	}
	if strings.Contains(e.logs.String(), "wrong") {
		t.Fatal("the password reached the log")
	}
	e.logs.reset()
	if _, err := run("nokeys@example.com", alicePW, "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("user without keys: %v", err)
	}
	if w := e.logs.warns(t); len(w) != 1 || w[0]["reason"] != ReasonNoScram {
		t.Fatalf("log %v", w)
	}
	if _, err := run("ghost@example.com", "x", "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	// Distinct wrong passwords count per account and network like PLAIN's;
	// the same wrong password repeated counts once.
	for i := range 5 {
		run("alice@example.com", "same wrong", "203.0.113.5")
		_ = i
	}
	for i := range 20 {
		run("alice@example.com", fmt.Sprintf("wrong %d", i), "203.0.113.5")
	}
	if _, err := run("alice@example.com", alicePW, "203.0.113.5"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("over the account-network limit: %v", err)
	}
	if acct, an, _ := e.a.limits.(*MemoryLimits).counts("alice@example.com", "203.0.113.0/24"); an != 10 || acct != 10 {
		t.Fatalf("counted %d for the pair, %d for the account; want 10 and 10", an, acct)
	}
	if _, err := run("alice@example.com", alicePW, "198.51.100.1"); err != nil {
		t.Fatalf("another network: %v", err)
	}
	// AUTH_REQUIRE_TOKENS: no SCRAM offered, and refused if tried.
	e2 := newEnv(t, func(o *Options) { o.RequireTokens = true })
	e2.users.setScram("alice@example.com", c)
	if m := e2.a.ScramMechanisms(true); len(m) != 0 {
		t.Fatalf("offered with AUTH_REQUIRE_TOKENS: %v", m)
	}
	e = e2
	if _, err := run("alice@example.com", alicePW, "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("AUTH_REQUIRE_TOKENS: %v", err)
	}
	if m := newEnv(t, nil).a.ScramMechanisms(false); len(m) != 1 || m[0] != ScramSHA256 {
		t.Fatalf("without TLS: %v", m)
	}
}

// TestScramStoredOnVerify: a successful password login stores SCRAM
// credentials for the verified password; a re-hash stores them for the
// new hash.
func TestScramStoredOnVerify(t *testing.T) {
	e := newEnv(t, nil)
	st := &scramStore{fakeUsers: e.users}
	e.a.users = st
	if _, err := e.try("alice@example.com", alicePW, "imap", 993, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if len(st.sets) != 1 || st.sets[0].hash != e.users.hashOf("alice@example.com") {
		t.Fatalf("SetScram calls %+v", st.sets)
	}
	want, _ := scramCredentials(alicePW, st.sets[0].c.Salt, st.sets[0].c.Iterations)
	if !bytes.Equal(st.sets[0].c.StoredKey, want.StoredKey) {
		t.Fatal("stored keys are not the password's")
	}
}

type scramSet struct {
	hash string
	c    store.ScramCredentials
}

type scramStore struct {
	*fakeUsers
	sets []scramSet
}

func (s *scramStore) SetScram(_ context.Context, email, hash string, c store.ScramCredentials) error {
	s.sets = append(s.sets, scramSet{hash, c})
	return nil
}

// FuzzScramMessages: the parsers and the server never panic on any input.
func FuzzScramMessages(f *testing.F) {
	f.Add(rfcClientFirst, rfcClientFinal)
	f.Add("p=tls-exporter,a=x,n=a=2Cb,r=abc,ext", "c=,r=,p=")
	f.Add("y,,n=user,r=abc", "c=biws,r=abc,p=AAAA")
	f.Fuzz(func(t *testing.T, first, final string) {
		parseClientFirst(first)
		parseClientFinal(final)
		salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
		c, _ := scramCredentials("pencil", salt, 1)
		s := NewScramServer(ScramConfig{
			Credentials: func(string) (store.ScramCredentials, bool, error) { return c, true, nil },
			Finish: func(o ScramOutcome) error {
				if o.Valid {
					return nil
				}
				return ErrBadCredentials
			},
			Nonce: func() string { return "srv" },
		})
		if _, done, err := s.Next([]byte(first)); err != nil || done {
			return
		}
		s.Next([]byte(final))
		s.Next([]byte{})
	})
}

// TestScramPlusChannelBinding: -PLUS binds the exchange to the TLS
// connection (tls-exporter, RFC 9266); the exporter of another connection
// (a man in the middle's) fails with reason channel-binding.
func TestScramPlusChannelBinding(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := NewScramCredentials(alicePW, 0)
	e.users.setScram("alice@example.com", c)
	srvState, cliState := tlsPairs(t)
	_, otherCli := tlsPairs(t)
	run := func(cs tls.ConnectionState) error {
		l := e.a.NewScramLogin(context.Background(), Attempt{Protocol: "smtp", Port: 465, Remote: netip.MustParseAddr("192.0.2.1")}, true, &srvState)
		cb, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		cl := &rfcClient{user: "alice@example.com", pw: alicePW, gs2: "p=tls-exporter,,", cbData: cb}
		ch, _, err := l.Next(cl.first())
		if err != nil {
			return err
		}
		fin, _ := cl.final(ch)
		ch, _, err = l.Next(fin)
		if err != nil {
			return err
		}
		if err := cl.verify(ch); err != nil {
			t.Fatal(err)
		}
		if l.Result() != nil {
			t.Fatal("Result before the exchange ended")
		}
		l.Next([]byte{})
		if l.Result() == nil {
			t.Fatal("no Result")
		}
		return nil
	}
	if err := run(cliState); err != nil {
		t.Fatalf("right binding: %v", err)
	}
	e.logs.reset()
	if err := run(otherCli); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong binding: %v", err)
	}
	if w := e.logs.warns(t); len(w) != 1 || w[0]["reason"] != ReasonChannelBinding {
		t.Fatalf("log %v", w)
	}
}

// TestScramPasswordPrepared: credentials are derived from the prepared
// password (RFC 5802 2.2 Normalize; PRECIS OpaqueString), so composed and
// decomposed forms, and a no-break space, give the same keys.
func TestScramPasswordPrepared(t *testing.T) {
	salt := []byte("0123456789abcdef")
	a, _ := scramCredentials("caf\u00e9\u00a0bar", salt, 4096)
	b, _ := scramCredentials("cafe\u0301 bar", salt, 4096)
	c, _ := scramCredentials("cafe bar", salt, 4096)
	if !bytes.Equal(a.StoredKey, b.StoredKey) {
		t.Fatal("NFC or space mapping not applied")
	}
	if bytes.Equal(a.StoredKey, c.StoredKey) {
		t.Fatal("different passwords gave the same keys")
	}
}
