package srs

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The vectors below were produced by an independent implementation,
// Debian's libmail-srs-perl (Mail::SRS::Guarded 0.31, by the author of
// the SRS paper; srslib, which Mailu uses, follows the same format), with
// testdata/mailsrs.pl:
//
//	SRS_KEY_HEX=<hex of DeriveKey(testSecret)> SRS_ALIAS=example.org perl testdata/mailsrs.pl
//
// TestAgainstMailSRS repeats the comparison live, on random input, when
// Perl and Mail::SRS are installed.
const (
	testSecret = "0123456789abcdefghij" // SECRET_KEY
	testDomain = "example.org"          // DOMAIN
	// t0 is 2023-11-14 22:13:20 UTC, day 19675: timestamp "G3".
	t0 = 1700000000
)

func rewriterAt(unix int64) *Rewriter {
	return New([]byte(testSecret), testDomain, func() time.Time { return time.Unix(unix, 0) })
}

func TestDeriveKey(t *testing.T) {
	// printf SRS_KEY | openssl dgst -sha256 -hmac 0123456789abcdefghij
	const want = "c321fa65f112fa0ea23880990993cad51e1e99c175dcf27e78b6beeecd2dc1d8"
	if got := hex.EncodeToString(DeriveKey([]byte(testSecret))); got != want {
		t.Errorf("DeriveKey = %s, want %s", got, want)
	}
}

func TestForwardVectors(t *testing.T) {
	tests := []struct {
		at           int64
		sender, want string
	}{
		{t0, "alice@Example.com", "SRS0=2qTa=G3=Example.com=alice@example.org"},
		{t0, "bob.smith+tag@remote.test", "SRS0=rXgV=G3=remote.test=bob.smith+tag@example.org"},
		{t0, "x=y@weird.test", "SRS0=JTnt=G3=weird.test=x=y@example.org"},
		// Second hop: SRS0 becomes SRS1 pointing at the first hop.
		{t0, "SRS0=abcd=XY=orig.org=bob@first.net", "SRS1=Wv37=first.net==abcd=XY=orig.org=bob@example.org"},
		{t0, "srs0+abcd=XY=orig.org=bob@first.net", "SRS1=H7BG=first.net=+abcd=XY=orig.org=bob@example.org"},
		// Third hop: the SRS1 keeps its first hop and gets our hash.
		{t0, "SRS1=zzzz=first.net==abcd=XY=orig.org=bob@second.net", "SRS1=Wv37=first.net==abcd=XY=orig.org=bob@example.org"},
		{t0, "alice@example.org", "SRS0=Ph4W=G3=example.org=alice@example.org"},
		// Day boundaries: day 0 is "AA", day 1 "AB".
		{86399, "a@b.c", "SRS0=6bH+=AA=b.c=a@example.org"},
		{86400, "a@b.c", "SRS0=P6qS=AB=b.c=a@example.org"},
		{t0, "ünï@bücher.example", "SRS0=P7sh=G3=bücher.example=ünï@example.org"},
	}
	for _, tt := range tests {
		got, err := rewriterAt(tt.at).Forward(tt.sender, nil)
		if err != nil || got != tt.want {
			t.Errorf("Forward(%q) at %d = %q, %v; want %q", tt.sender, tt.at, got, err, tt.want)
		}
	}
}

func TestForwardLeavesAlone(t *testing.T) {
	r := rewriterAt(t0)
	local := func(d string) bool { return d == "example.org" || d == "xn--bcher-kva.example" }
	for _, s := range []string{"", "alice@example.org", "Alice@EXAMPLE.org", "x@Bücher.example"} {
		got, err := r.Forward(s, local)
		if err != nil || got != s {
			t.Errorf("Forward(%q) = %q, %v; want it unchanged", s, got, err)
		}
	}
	got, err := r.Forward("MAILER-DAEMON", local)
	if !errors.Is(err, ErrBadAddress) || got != "MAILER-DAEMON" {
		t.Errorf("Forward without @ = %q, %v", got, err)
	}
	// A remote sender is rewritten although isLocal is set.
	if got, _ := r.Forward("bob@remote.test", local); !strings.HasPrefix(got, "SRS0=") {
		t.Errorf("remote sender not rewritten: %q", got)
	}
}

func TestReverseVectors(t *testing.T) {
	day := int64(86400)
	tests := []struct {
		at      int64
		addr    string
		want    string
		wantErr error // nil and want "": not an SRS address
	}{
		{t0, "SRS0=2qTa=G3=Example.com=alice@example.org", "alice@Example.com", nil},
		// Case smashed by a remote MTA: hash and timestamp still match.
		{t0, "srs0=2QTA=g3=example.com=alice@example.org", "alice@example.com", nil},
		{t0, "SRS0+2qTa=G3=Example.com=alice@any.domain", "alice@Example.com", nil},
		{t0 + 20*day, "SRS0=2qTa=G3=Example.com=alice@example.org", "alice@Example.com", nil},
		{t0 + 21*day, "SRS0=2qTa=G3=Example.com=alice@example.org", "", ErrExpired},
		{t0 - day, "SRS0=2qTa=G3=Example.com=alice@example.org", "", ErrExpired}, // from the future
		{t0, "SRS0=2qTb=G3=Example.com=alice@example.org", "", ErrBadHash},
		{t0, "SRS0=2qT=G3=Example.com=alice@example.org", "", ErrBadHash},  // too short
		{t0, "SRS0=2=G3=Example.com=alice@example.org", "", ErrBadHash},    // srslib would check 1 char
		{t0, "SRS0=2qTa=H3=Example.com=alice@example.org", "", ErrBadHash}, // timestamp is hashed
		{t0, "SRS0=2qTa=G3=Example.com=mallory@example.org", "", ErrBadHash},
		{t0, "SRS1=Wv37=first.net==abcd=XY=orig.org=bob@example.org", "SRS0=abcd=XY=orig.org=bob@first.net", nil},
		{t0 + 400*day, "SRS1=Wv37=first.net==abcd=XY=orig.org=bob@example.org", "SRS0=abcd=XY=orig.org=bob@first.net", nil}, // SRS1 has no timestamp
		{t0, "SRS1=Wv38=first.net==abcd=XY=orig.org=bob@example.org", "", ErrBadHash},
		// Not SRS addresses (srslib is_srs_address is false).
		{t0, "alice@example.org", "", nil},
		{t0, "SRS0@example.org", "", nil},
		{t0, "SRS0=abcd=XY=host@example.org", "", nil},
		{t0, "SRS0==abcd=XY=host=user@example.org", "", nil},
		{t0, "SRS1=abcd=host=x@example.org", "", nil},
		{t0, "SRS2=abcd=XY=host=user@example.org", "", nil},
		{t0, "no-at-sign", "", nil},
	}
	for _, tt := range tests {
		got, ok, err := rewriterAt(tt.at).Reverse(tt.addr)
		switch {
		case tt.wantErr != nil:
			if ok || !errors.Is(err, tt.wantErr) {
				t.Errorf("Reverse(%q) at +%dd = %q, %v, %v; want %v", tt.addr, (tt.at-t0)/day, got, ok, err, tt.wantErr)
			}
		case tt.want == "":
			if ok || err != nil {
				t.Errorf("Reverse(%q) = %q, %v, %v; want not SRS", tt.addr, got, ok, err)
			}
		default:
			if !ok || err != nil || got != tt.want {
				t.Errorf("Reverse(%q) at +%dd = %q, %v, %v; want %q", tt.addr, (tt.at-t0)/day, got, ok, err, tt.want)
			}
		}
	}
}

// A key from another SECRET_KEY does not verify.
func TestReverseOtherKey(t *testing.T) {
	fwd, _ := rewriterAt(t0).Forward("alice@remote.test", nil)
	other := New([]byte("another secret key"), testDomain, func() time.Time { return time.Unix(t0, 0) })
	if _, ok, err := other.Reverse(fwd); ok || !errors.Is(err, ErrBadHash) {
		t.Errorf("other key: %v %v", ok, err)
	}
}

func TestRoundTrip(t *testing.T) {
	r := rewriterAt(t0)
	for _, s := range []string{"a@b.c", "first.last+x@sub.remote.test", "=odd=@x.y", "SRS0=abcd=XY=orig.org=bob@first.net"} {
		f, err := r.Forward(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		back, ok, err := r.Reverse(f)
		if !ok || err != nil || back != s {
			t.Errorf("Reverse(Forward(%q)=%q) = %q, %v, %v", s, f, back, ok, err)
		}
	}
}

// TestAgainstMailSRS compares Forward and Reverse with Mail::SRS on random
// senders and days.
func TestAgainstMailSRS(t *testing.T) {
	if exec.Command("perl", "-MMail::SRS::Guarded", "-e", "1").Run() != nil {
		t.Skip("perl with Mail::SRS (Debian libmail-srs-perl) is not installed")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-_="
	word := func(n int) string {
		b := make([]byte, 1+rng.IntN(n))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		return string(b)
	}
	type query struct {
		op   string
		at   int64
		addr string
	}
	var qs []query
	for range 200 {
		at := int64(rng.IntN(2_000_000_000))
		sender := word(20) + "@" + strings.ReplaceAll(word(12), "=", "x") + ".test"
		if rng.IntN(4) == 0 {
			sender = "SRS0=" + strings.ReplaceAll(word(6), "=", "y") + "=AB=orig.test=" + word(8) + "@" + "hop.test"
		}
		qs = append(qs, query{"forward", at, sender})
		fwd, err := rewriterAt(at).Forward(sender, nil)
		if err != nil {
			t.Fatal(err)
		}
		later := at + int64(rng.IntN(25))*86400
		qs = append(qs, query{"reverse", later, fwd})
		if rng.IntN(3) == 0 {
			qs = append(qs, query{"reverse", later, strings.ToLower(fwd)})
		}
	}
	var in strings.Builder
	for _, q := range qs {
		fmt.Fprintf(&in, "%s %d %s\n", q.op, q.at, q.addr)
	}
	cmd := exec.Command("perl", "testdata/mailsrs.pl")
	cmd.Env = []string{"SRS_KEY_HEX=" + hex.EncodeToString(DeriveKey([]byte(testSecret))), "SRS_ALIAS=" + testDomain}
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("perl: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	i := 0
	for ; sc.Scan(); i++ {
		line := sc.Text()
		if i >= len(qs) {
			t.Fatalf("extra output %q", line)
		}
		q := qs[i]
		r := rewriterAt(q.at)
		if q.op == "forward" {
			got, _ := r.Forward(q.addr, nil)
			if got != line {
				t.Errorf("Forward(%q) at %d: Petrel %q, Mail::SRS %q", q.addr, q.at, got, line)
			}
			continue
		}
		got, ok, err := r.Reverse(q.addr)
		perlOK := !strings.HasPrefix(line, "ERR ")
		if ok != perlOK || (ok && got != line) {
			t.Errorf("Reverse(%q) at %d: Petrel %q %v %v, Mail::SRS %q", q.addr, q.at, got, ok, err, line)
		}
	}
	if i != len(qs) {
		t.Fatalf("Mail::SRS answered %d of %d queries", i, len(qs))
	}
}

func FuzzReverse(f *testing.F) {
	r := rewriterAt(t0)
	for _, s := range []string{
		"SRS0=2qTa=G3=Example.com=alice@example.org",
		"SRS1=Wv37=first.net==abcd=XY=orig.org=bob@example.org",
		"srs0+x=y=z=w@h", "SRS1-a=b=-c@d", "SRS0=@", "@", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		orig, ok, err := r.Reverse(addr)
		if ok && (err != nil || !strings.Contains(orig, "@")) {
			t.Fatalf("Reverse(%q) = %q, %v, %v", addr, orig, ok, err)
		}
		if !ok && orig != "" {
			t.Fatalf("Reverse(%q) returned %q without ok", addr, orig)
		}
		// Whatever reverses must come from our own Forward: forwarding
		// the result again and reversing gives it back.
		if ok {
			if _, ok2, err2 := r.Reverse(mustForward(t, r, orig)); !ok2 || err2 != nil {
				t.Fatalf("round trip of %q failed: %v", orig, err2)
			}
		}
	})
}

func mustForward(t *testing.T, r *Rewriter, s string) string {
	t.Helper()
	out, err := r.Forward(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
