package msgauth

import (
	"bufio"
	"bytes"
	"crypto/rsa"
	"os"
	"strings"
	"testing"

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
		if !bytes.HasPrefix(msg, h.raw) {
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
// and the body as it was.
func FuzzCopyWithout(f *testing.F) {
	f.Add([]byte("Authentication-Results: mx.petrel.test; spf=pass\r\n\tdkim=none\r\nFrom: a@b\r\n\r\nbody\r\n"))
	f.Add([]byte("X: 1\nAuthentication-Results: x; y\n"))
	f.Add([]byte(" folded first\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var out bytes.Buffer
		n, err := CopyWithout(&out, bytes.NewReader(msg), func(string, string) bool { return false })
		if err != nil || n != 0 || !bytes.Equal(out.Bytes(), msg) {
			t.Fatalf("keep-all changed the message: %d %v\n%q\n%q", n, err, msg, out.Bytes())
		}
		out.Reset()
		isAR := func(name, _ string) bool { return strings.EqualFold(name, "Authentication-Results") }
		if _, err := CopyWithout(&out, bytes.NewReader(msg), isAR); err != nil {
			t.Fatal(err)
		}
		if out.Len() > len(msg) {
			t.Fatal("output grew")
		}
		if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 && !bytes.HasSuffix(out.Bytes(), msg[i+2:]) {
			t.Fatal("body changed")
		}
	})
}
