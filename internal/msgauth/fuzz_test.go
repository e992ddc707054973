package msgauth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/mailaddr"
)

func FuzzParsePrivateKey(f *testing.F) {
	for _, name := range []string{"pkcs1.key", "pkcs8.key", "ed25519.key", "rsa512.key"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParsePrivateKey(data)
		if err != nil {
			return
		}
		rk, ok := s.(*rsa.PrivateKey)
		if !ok || rk.N.BitLen() < minKeyBits {
			t.Fatalf("accepted %T", s)
		}
		rec, err := PublicKeyRecord(s.Public())
		if err != nil || !strings.HasPrefix(rec, "v=DKIM1; k=rsa; p=") {
			t.Fatalf("record %q, %v", rec, err)
		}
	})
}

// FuzzReadHeader: the header reader never panics, returns a prefix of the
// input, and whatever it can read, a signature over it verifies.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte(testMessage))
	f.Add([]byte("From: a@example.com\r\nSubject: x"))
	f.Add([]byte("From: a@example.com\n\tfolded\nTo: b\n\nbody"))
	f.Add([]byte(" leading continuation\r\nFrom: a@example.com\r\n\r\n"))
	f.Add([]byte("no colon line\r\n\r\n"))
	f.Add([]byte("From: a@example.com\r\r\n\r\nbody\r"))
	keyPEM, err := os.ReadFile("testdata/pkcs8.key")
	if err != nil {
		f.Fatal(err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		f.Fatal(err)
	}
	rec, _ := PublicKeyRecord(key.Public())
	signer, err := NewSigner("example.com", "dkim", key)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := readHeader(bufio.NewReader(bytes.NewReader(msg)))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(msg, []byte(h.text)) {
			t.Fatal("raw header is not a prefix of the message")
		}
		if len(headerKeys(h)) == 0 {
			t.Fatal("empty h= list (From must always be signed)")
		}
		// Only CRLF messages of printable text are what SMTP carries and
		// what both signer and verifier define; skip the rest.
		if bytes.ContainsAny(bytes.ReplaceAll(msg, []byte("\r\n"), nil), "\r\n\x00") || !h.complete {
			return
		}
		sig, err := signer.Signature(t.Context(), bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		v, err := dkim.VerifyWithOptions(strings.NewReader(sig+string(msg)), &dkim.VerifyOptions{
			LookupTXT: func(string) ([]string, error) { return []string{rec}, nil },
		})
		if err != nil || len(v) != 1 {
			t.Fatalf("verify: %v %v", v, err)
		}
		if v[0].Err != nil {
			t.Fatalf("own signature does not verify: %v", v[0].Err)
		}
	})
}

func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{
		"Alice <alice@example.com>", "alice@Example.COM", `"a@b" <c@d.example>`,
		"=?utf-8?q?J=C3=B6rg?= <j@bücher.example>", "undisclosed-recipients:;",
		"a@[127.0.0.1]", "group: a@x.example, b@y.example;", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := FromDomain(s)
		if err != nil {
			return
		}
		if n, err := mailaddr.NormalizeDomain(d); err != nil || n != d {
			t.Fatalf("FromDomain(%q) = %q, not normalised (%q, %v)", s, d, n, err)
		}
	})
}

func FuzzParseTXT(f *testing.F) {
	for _, s := range []string{`"a"`, `"a" "b"`, `"\"\\"`, `"\065"`, `""`, `"x`, `x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		txt, err := ParseTXT(s)
		if err != nil {
			return
		}
		back, err := ParseTXT(quoteTXT(txt))
		if err != nil || back != txt {
			t.Fatalf("round trip of %q: %q, %v", txt, back, err)
		}
	})
}

func FuzzAuthservID(f *testing.F) {
	for _, s := range []string{"mx.petrel.test; spf=pass", ` (c (n)) "q\"x" 1; none`, "(", `"`, "a\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id := AuthservID(v)
		if len(id) > len(v) {
			t.Fatalf("id %q longer than %q", id, v)
		}
	})
}

// FuzzCopyWithout: keeping every field copies the message unchanged;
// dropping every Authentication-Results field leaves none in the header
// and the body as it was; HeaderHas agrees with what was dropped.
func FuzzCopyWithout(f *testing.F) {
	f.Add([]byte("Authentication-Results: mx.petrel.test; spf=pass\r\n\tdkim=none\r\nFrom: a@b\r\n\r\nbody\r\n"))
	f.Add([]byte("X: 1\nAuthentication-Results: x; y\n"))
	f.Add([]byte(" folded first\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var out bytes.Buffer
		keep := FieldFilter{Names: []string{"Authentication-Results", "X"}, Match: func(string, string) bool { return false }}
		n, err := CopyWithout(&out, bytes.NewReader(msg), keep)
		if err != nil || n != 0 || !bytes.Equal(out.Bytes(), msg) {
			t.Fatalf("keep-all changed the message: %d %v\n%q\n%q", n, err, msg, out.Bytes())
		}
		out.Reset()
		n, err = CopyWithout(&out, bytes.NewReader(msg), Drop("authentication-results"))
		if err != nil {
			t.Fatal(err)
		}
		if has, err := HeaderHas(bytes.NewReader(msg), Drop("Authentication-Results")); err != nil || has != (n > 0) {
			t.Fatalf("HeaderHas %v %v, CopyWithout dropped %d", has, err, n)
		}
		if out.Len() > len(msg) {
			t.Fatal("output grew")
		}
		if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 && !bytes.HasSuffix(out.Bytes(), msg[i+2:]) {
			t.Fatal("body changed")
		}
	})
}

// mapResolver answers TXT from a map and nothing else (no network).
type mapResolver map[string][]string

func (m mapResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := m[strings.TrimSuffix(strings.ToLower(name), ".")]; ok {
		return v, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
func (m mapResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
func (m mapResolver) LookupIPAddr(_ context.Context, name string) ([]net.IPAddr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
func (m mapResolver) LookupHost(_ context.Context, name string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
func (m mapResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

// FuzzVerify: any message and DNS answers give results in RFC 8601's
// words and a header that parses with our authserv-id, never a panic.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("From: a@x.test\r\nDKIM-Signature: v=1; a=rsa-sha256; d=x.test; s=s; h=from; bh=; b=\r\n\r\nbody\r\n"),
		"v=spf1 ip4:192.0.2.0/24 ~all", "v=DMARC1; p=reject; sp=none; pct=50; adkim=s", "x@x.test")
	f.Add([]byte("From: a@x.test, b@y.test\r\nFrom: c@z.test\r\n\r\n"), "v=spf1 include:x.test -all", "v=DMARC1", "")
	f.Add([]byte(" folded\r\nFrom:\r\n"), "v=spf1 redirect=x.test", "v=DMARC1; p=quarantine", "<>")
	words := map[string]bool{Pass: true, Fail: true, SoftFail: true, Neutral: true, None: true, TempError: true, PermError: true}
	f.Fuzz(func(t *testing.T, msg []byte, spfRec, dmarcRec, mailFrom string) {
		res := mapResolver{"x.test": {spfRec}, "_dmarc.x.test": {dmarcRec}, "s._domainkey.x.test": {"v=DKIM1; p="}}
		v := NewVerifier(VerifierOptions{Hostname: "mx.petrel.test", Resolver: res, DNSTimeout: time.Second})
		r, err := v.Verify(context.Background(), Session{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "x.test", MailFrom: mailFrom}, bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{r.SPF.Result, r.DMARC.Result, r.IPRev.Result} {
			if !words[w] {
				t.Fatalf("result %q", w)
			}
		}
		for _, d := range r.DKIM {
			if !words[d.Result] {
				t.Fatalf("dkim result %q", d.Result)
			}
		}
		h := r.Header("192.0.2.1")
		if strings.Count(h, "\n") != strings.Count(h, "\r\n\t")+1 || !strings.HasSuffix(h, "\r\n") {
			t.Fatalf("header lines: %q", h)
		}
		if id := AuthservID(strings.TrimPrefix(h, "Authentication-Results: ")); id != "mx.petrel.test" {
			t.Fatalf("id %q in %q", id, h)
		}
	})
}
