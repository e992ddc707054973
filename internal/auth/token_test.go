package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestIsTokenShaped(t *testing.T) {
	for s, want := range map[string]bool{
		"0123456789abcdef0123456789abcdef":  true,
		"0123456789ABCDEF0123456789abcdef":  false, // Mailu: lowercase only
		"0123456789abcdef0123456789abcde":   false,
		"0123456789abcdef0123456789abcdef0": false,
		"0123456789abcdeg0123456789abcdef":  false,
		"":                                  false,
		"password":                          false,
	} {
		if got := IsTokenShaped(s); got != want {
			t.Errorf("IsTokenShaped(%q) = %v", s, got)
		}
	}
}

func TestNewToken(t *testing.T) {
	clear, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !IsTokenShaped(clear) {
		t.Fatalf("token %q is not 32 lowercase hex", clear)
	}
	if !strings.HasPrefix(hash, "$pbkdf2-sha256$1$") || strings.Contains(hash, clear) {
		t.Fatalf("hash %q", hash)
	}
	if ok, legacy := VerifyToken(hash, clear); !ok || legacy {
		t.Fatal("new token does not verify")
	}
	if ok, _ := VerifyToken(hash, clear[:31]+"0"); ok && clear[31] != '0' {
		t.Fatal("wrong token verified")
	}
	c2, _, _ := NewToken()
	if c2 == clear {
		t.Fatal("two tokens are equal")
	}
}

// TestTokenVectors: tokens stored by Mailu (passlib) verify.
func TestTokenVectors(t *testing.T) {
	n := 0
	for _, v := range loadVectors(t) {
		if !strings.HasPrefix(v.Scheme, "token_") {
			continue
		}
		n++
		ok, legacy := VerifyToken(v.Hash, v.Password)
		if !ok || legacy != (v.Scheme == "token_sha256_crypt") {
			t.Errorf("%s %q: ok=%v legacy=%v", v.Scheme, v.Hash, ok, legacy)
		}
		if ok, _ := VerifyToken(v.Hash, strings.Repeat("0", 32)); ok {
			t.Errorf("%s verified a wrong token", v.Scheme)
		}
		if ok, _ := VerifyToken(v.Hash, ""); ok {
			t.Errorf("%s verified an empty token", v.Scheme)
		}
	}
	if n < 4 {
		t.Fatalf("only %d token vectors", n)
	}
	if ok, _ := VerifyToken("$2b$04$xx", "x"); ok {
		t.Error("a bcrypt token hash verified")
	}
}

func TestTokenAllows(t *testing.T) {
	cases := []struct {
		ips    []string
		remote string
		want   bool
	}{
		{nil, "192.0.2.1", true},
		{[]string{}, "2001:db8::1", true},
		{[]string{"192.0.2.0/24"}, "192.0.2.200", true},
		{[]string{"192.0.2.0/24"}, "192.0.3.1", false},
		{[]string{"192.0.2.7/24"}, "192.0.2.1", true}, // host bits ignored
		{[]string{" 192.0.2.1 "}, "192.0.2.1", true},
		{[]string{"192.0.2.1"}, "::ffff:192.0.2.1", true},
		{[]string{"2001:db8::/32"}, "2001:db8:1::1", true},
		{[]string{"2001:db8::/32"}, "192.0.2.1", false},
		{[]string{"garbage"}, "192.0.2.1", false},
		{[]string{"garbage", "10.0.0.1"}, "10.0.0.1", true},
		{[]string{""}, "10.0.0.1", false},
	}
	for _, c := range cases {
		if got := TokenAllows(c.ips, netip.MustParseAddr(c.remote)); got != c.want {
			t.Errorf("TokenAllows(%q, %s) = %v", c.ips, c.remote, got)
		}
	}
}

func TestCredCacheUnit(t *testing.T) {
	c := newCredCache(2)
	c.put("a@x", "H1", "pa")
	if !c.check("a@x", "H1", "pa") || c.check("a@x", "H1", "pb") || c.check("b@x", "H1", "pa") {
		t.Fatal("basic check")
	}
	if c.check("a@x", "H2", "pa") {
		t.Fatal("entry survived a hash change")
	}
	if c.len() != 0 {
		t.Fatal("stale entry kept")
	}
	c.put("a@x", "H", "p")
	c.put("b@x", "H", "p")
	c.check("a@x", "H", "p") // a is now the most recent
	c.put("c@x", "H", "p")   // evicts b
	if c.len() != 2 || !c.check("a@x", "H", "p") || c.check("b@x", "H", "p") || !c.check("c@x", "H", "p") {
		t.Fatal("LRU eviction")
	}
	c.put("d@x", "H", "hunter2-long-secret")
	for _, el := range c.byKey {
		if e := el.Value.(*cacheEntry); strings.Contains(fmt.Sprintf("%#v", *e), "hunter2") {
			t.Fatal("cleartext in cache")
		}
	}
	var off *credCache
	off.put("a", "b", "c")
	if off.check("a", "b", "c") {
		t.Fatal("nil cache hit")
	}
}

// TestIDNAUsername: the domain is matched in its IDNA form.
func TestIDNAUsername(t *testing.T) {
	e := newEnv(t, nil)
	h, _ := HashPassword("pw", 4)
	e.users.add("bob@xn--bcher-kva.example", h, nil)
	res, err := e.try("Bob@Bücher.Example", "pw", "imap", 993, "192.0.2.1")
	if err != nil || res.User.Email != "bob@xn--bcher-kva.example" {
		t.Fatalf("IDNA login: %v", err)
	}
	if w := e.logs.records(t); !strings.Contains(w[len(w)-1]["msg"].(string), "bob@xn--bcher-kva.example/imap/993") {
		t.Fatalf("log names %v", w[len(w)-1]["msg"])
	}
}

// TestNewPanicsWithoutUsers documents the one required option.
func TestNewPanicsWithoutUsers(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(Options{})
}

func TestNewDefaults(t *testing.T) {
	a := New(Options{Users: newFakeUsers(), Rounds: 99, IPv4Mask: 40})
	if a.rounds != DefaultRounds || a.v4 != 24 || a.v6 != 48 || a.exemptLen != defaultExemptionLength {
		t.Fatalf("defaults: rounds %d v4 %d v6 %d exempt %v", a.rounds, a.v4, a.v6, a.exemptLen)
	}
	// Mailu's 5/hour when IPLimit is zero.
	ip := netip.MustParseAddr("192.0.2.1")
	for i := range 5 {
		_, err := a.Authenticate(context.Background(), Attempt{Username: string(rune('a'+i)) + "@x.example", Password: "x", Protocol: "imap", Port: 993, Remote: ip})
		if !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	if !a.IPRateLimited(context.Background(), ip) {
		t.Fatal("default IP limit is not 5/hour")
	}
}
