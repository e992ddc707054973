package msgauth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// fakeLookup: domains and alternatives (alternative -> parent).
type fakeLookup struct {
	domains map[string]bool
	alts    map[string]string
	err     error
}

func (f fakeLookup) IsDomain(_ context.Context, name string) (bool, error) {
	return f.domains[name], f.err
}

func (f fakeLookup) AlternativeParent(_ context.Context, name string) (string, bool, error) {
	p, ok := f.alts[name]
	return p, ok, f.err
}

const testMessage = "From: Alice <alice@example.com>\r\n" +
	"To: Bob <bob@remote.test>\r\n" +
	"Subject: Hello\r\n" +
	"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"X-Not-Signed: whatever\r\n" +
	"\r\n" +
	"Hello Bob,\r\n" +
	"  spaces   and trailing blanks   \r\n" +
	"\r\n\r\n"

// testSetup: example.com has the testdata key; alt.example is its
// alternative; nokey.example is local without a key.
func testSetup(t *testing.T) (*Keys, *Signers) {
	t.Helper()
	k := NewKeys(t.TempDir(), "")
	installKey(t, k, "example.com", "pkcs8.key")
	l := fakeLookup{
		domains: map[string]bool{"example.com": true, "nokey.example": true},
		alts:    map[string]string{"alt.example": "example.com", "xn--bcher-kva.example": "example.com"},
	}
	return k, NewSigners(k, l)
}

// zoneFor renders the records `petrel dns` would print for domain with
// example.com's key, as zone-file lines.
func zoneFor(t *testing.T, k *Keys, domain string) []Record {
	t.Helper()
	rec, err := k.PublicKeyRecord(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Records(RecordsOptions{Domain: domain, Hostnames: []string{"mail.example.com"},
		ServerDomain: "example.com", DKIMRecord: rec, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// lookupFromZone answers TXT queries from zone-file lines, parsing them back
// as a resolver would see them.
func lookupFromZone(t *testing.T, recs []Record) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		var out []string
		for _, r := range recs {
			if r.Type != "TXT" || !strings.EqualFold(r.Name, name+".") {
				continue
			}
			line := r.String()
			i := strings.Index(line, " IN TXT ")
			txt, err := ParseTXT(line[i+len(" IN TXT "):])
			if err != nil {
				t.Errorf("zone line %q: %v", line, err)
			}
			out = append(out, txt)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no TXT for %s", name)
		}
		return out, nil
	}
}

func newBR(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func verifyGo(t *testing.T, msg []byte, recs []Record) []*dkim.Verification {
	t.Helper()
	v, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookupFromZone(t, recs)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSignVerifiesWithGoMsgauth(t *testing.T) {
	k, s := testSetup(t)
	var out bytes.Buffer
	if err := s.Sign(t.Context(), &out, strings.NewReader(testMessage)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "DKIM-Signature: ") || !strings.HasSuffix(out.String(), testMessage) {
		t.Fatalf("signed message is not field + original:\n%s", out.String())
	}
	v := verifyGo(t, out.Bytes(), zoneFor(t, k, "example.com"))
	if len(v) != 1 || v[0].Err != nil {
		t.Fatalf("verification: %+v", v[0])
	}
	if v[0].Domain != "example.com" {
		t.Errorf("d=%s", v[0].Domain)
	}
	sig := out.String()[:strings.Index(out.String(), "From:")]
	for _, want := range []string{"a=rsa-sha256", "c=relaxed/relaxed", "s=dkim", "d=example.com"} {
		if !strings.Contains(sig, want) {
			t.Errorf("signature lacks %s:\n%s", want, sig)
		}
	}
}

func TestHeaderKeys(t *testing.T) {
	tests := []struct {
		name, header, want string
	}{
		{"minimal", "From: a@example.com\r\n",
			"from:from:reply-to:subject:to:cc"},
		{"typical", "From: a@example.com\r\nTo: b@x\r\nSubject: s\r\nDate: d\r\nMessage-ID: <m>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nX-Foo: y\r\n",
			"from:from:reply-to:subject:subject:date:date:message-id:message-id:to:to:cc:mime-version:mime-version:content-type:content-type"},
		{"two To, list and resent", "from: a@example.com\r\nTO: b@x\r\nTo: c@x\r\nList-Id: <l>\r\nResent-From: r@x\r\nReferences: <r>\r\n",
			"from:from:reply-to:subject:to:to:to:cc:resent-from:references:references:list-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := readHeader(newBR(tt.header + "\r\nbody\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(headerKeys(h), ":"); got != tt.want {
				t.Errorf("h=\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// Oversigning: a From, Subject or To added after signing breaks the
// signature; a header not in the list does not.
func TestTamperingBreaksSignature(t *testing.T) {
	k, s := testSetup(t)
	var out bytes.Buffer
	if err := s.Sign(t.Context(), &out, strings.NewReader(testMessage)); err != nil {
		t.Fatal(err)
	}
	signed := out.String()
	i := strings.Index(signed, "From:")
	recs := zoneFor(t, k, "example.com")
	tests := []struct {
		name string
		msg  string
		ok   bool
	}{
		{"untouched", signed, true},
		{"unsigned header added", signed[:i] + "X-Spam: no\r\n" + signed[i:], true},
		{"second From on top", signed[:i] + "From: mallory@evil.test\r\n" + signed[i:], false},
		{"second From below", strings.Replace(signed, "To: Bob", "From: mallory@evil.test\r\nTo: Bob", 1), false},
		{"Reply-To added", signed[:i] + "Reply-To: mallory@evil.test\r\n" + signed[i:], false},
		{"Cc added", signed[:i] + "Cc: mallory@evil.test\r\n" + signed[i:], false},
		{"subject changed", strings.Replace(signed, "Subject: Hello", "Subject: Pay now", 1), false},
		{"body changed", strings.Replace(signed, "Hello Bob", "Hello Eve", 1), false},
		{"whitespace only (relaxed)", strings.Replace(signed, "Subject: Hello", "Subject:    Hello", 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := verifyGo(t, []byte(tt.msg), recs)
			if ok := len(v) == 1 && v[0].Err == nil; ok != tt.ok {
				t.Errorf("verified=%v, want %v (%v)", ok, tt.ok, v[0].Err)
			}
		})
	}
}

func TestSignerFor(t *testing.T) {
	_, s := testSetup(t)
	ctx := t.Context()
	tests := []struct {
		from    string
		domain  string
		wantErr error
	}{
		{"example.com", "example.com", nil},
		{"EXAMPLE.com.", "example.com", nil},
		{"alt.example", "alt.example", nil},
		{"Bücher.example", "xn--bcher-kva.example", nil}, // SMTPUTF8 From: d= is the A-label
		{"remote.test", "", ErrNotLocal},
		{"nokey.example", "", ErrNoKey},
		{"[127.0.0.1]", "", ErrNotLocal},
	}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			sg, err := s.SignerFor(ctx, tt.from)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !Unsigned(err) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sg.Domain() != tt.domain || sg.Selector() != "dkim" {
				t.Errorf("d=%s s=%s", sg.Domain(), sg.Selector())
			}
		})
	}
	failing := NewSigners(NewKeys(t.TempDir(), ""), fakeLookup{err: errors.New("db down")})
	if _, err := failing.SignerFor(ctx, "example.com"); err == nil || Unsigned(err) {
		t.Errorf("lookup failure: %v, want a real error", err)
	}
}

// An alternative is signed as itself with its parent's key, and verifies
// against the alternative's own DNS records.
func TestAlternativeSignedAsItself(t *testing.T) {
	k, s := testSetup(t)
	msg := strings.Replace(testMessage, "alice@example.com", "alice@Alt.Example", 1)
	var out bytes.Buffer
	if err := s.Sign(t.Context(), &out, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	v := verifyGo(t, out.Bytes(), zoneFor(t, k, "alt.example"))
	if len(v) != 1 || v[0].Err != nil || v[0].Domain != "alt.example" {
		t.Fatalf("verification: %+v", v[0])
	}
}

func TestSignersUnsigned(t *testing.T) {
	_, s := testSetup(t)
	tests := []struct {
		name, msg string
		want      error
	}{
		{"no From", "To: b@x\r\n\r\nbody\r\n", ErrNoFrom},
		{"From without address", "From: undisclosed\r\n\r\nbody\r\n", ErrNoFrom},
		{"foreign From", "From: a@remote.test\r\n\r\nbody\r\n", ErrNotLocal},
		{"local without key", "From: a@nokey.example\r\n\r\nbody\r\n", ErrNoKey},
		{"starts folded", " x\r\nFrom: a@example.com\r\n\r\nbody\r\n", ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := s.Sign(t.Context(), &out, strings.NewReader(tt.msg))
			if !errors.Is(err, tt.want) || !Unsigned(err) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if out.Len() != 0 {
				t.Error("wrote output although unsigned")
			}
		})
	}
}

func TestSignEdgeMessages(t *testing.T) {
	k, s := testSetup(t)
	recs := zoneFor(t, k, "example.com")
	tests := []struct{ name, msg string }{
		{"header only", "From: a@example.com\r\nSubject: x\r\n"},
		{"header only, no final newline", "From: a@example.com\r\nSubject: x"},
		{"empty body", "From: a@example.com\r\n\r\n"},
		{"folded From", "From: \"A, long\r\n name\" <a@example.com>\r\n\r\nbody\r\n"},
		{"encoded display name", "From: =?koi8-r?B?8NLJ18XU?= <a@example.com>\r\n\r\nbody\r\n"},
		{"upper-case domain", "From: a@Example.COM\r\n\r\nbody\r\n"},
		{"long line", "From: a@example.com\r\nX-Long: " + strings.Repeat("y", 100000) + "\r\n\r\nbody\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := s.Sign(t.Context(), &out, strings.NewReader(tt.msg)); err != nil {
				t.Fatal(err)
			}
			msg := out.Bytes()
			if !bytes.HasSuffix(msg, []byte("\r\n")) {
				msg = append(msg, "\r\n"...) // as SMTP DATA transmits it
			}
			if !bytes.Contains(msg, []byte("\r\n\r\n")) {
				// go-msgauth's verifier needs the blank line; an empty
				// body is what a header-only message has.
				msg = append(msg, "\r\n"...)
			}
			v := verifyGo(t, msg, recs)
			if len(v) != 1 || v[0].Err != nil {
				t.Fatalf("verification: %+v", v[0])
			}
		})
	}
}

func TestSignHeaderTooLarge(t *testing.T) {
	_, s := testSetup(t)
	msg := "From: a@example.com\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 1100) + "\r\nbody\r\n"
	if _, err := s.Signature(t.Context(), strings.NewReader(msg)); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("err %v, want ErrHeaderTooLarge", err)
	}
}

func TestSignCancelled(t *testing.T) {
	k, _ := testSetup(t)
	key, _ := k.Load(context.Background(), "example.com")
	sg, err := NewSigner("example.com", "dkim", key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := sg.Signature(ctx, strings.NewReader(testMessage)); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

// Sign starts at the reader's current offset and leaves the message intact.
func TestSignFromOffset(t *testing.T) {
	k, s := testSetup(t)
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("SPOOL-PREFIX\n" + testMessage)
	if _, err := f.Seek(int64(len("SPOOL-PREFIX\n")), 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Sign(t.Context(), &out, f); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), testMessage) || strings.Contains(out.String(), "SPOOL-PREFIX") {
		t.Fatal("wrong bytes copied")
	}
	if v := verifyGo(t, out.Bytes(), zoneFor(t, k, "example.com")); v[0].Err != nil {
		t.Fatal(v[0].Err)
	}
}

// pythonVerify is the independent check: Debian's python3-dkim verifies
// the message with a dnsfunc that answers from the zone line Records()
// printed, parsed in Python. It returns Python's verdict.
const pythonVerify = `
import os, re, sys, dkim
zone = os.environ["PETREL_ZONE"]
want = os.environ["PETREL_NAME"]
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    for line in zone.splitlines():
        owner, ttl, cls, typ, data = line.split(" ", 4)
        if typ == "TXT" and owner.lower() == name.lower() and owner.lower() == want:
            return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', data)).encode()
    return None
msg = open(sys.argv[1], "rb").read()
print("PASS" if dkim.verify(msg, dnsfunc=dnsfunc) else "FAIL")
`

func havePythonDKIM() bool {
	return exec.Command("/usr/bin/python3", "-c", "import dkim").Run() == nil
}

func TestSignVerifiesWithPythonDKIM(t *testing.T) {
	if !havePythonDKIM() {
		t.Skip("/usr/bin/python3 cannot import dkim (Debian python3-dkim)")
	}
	k, s := testSetup(t)
	dir := t.TempDir()
	verify := func(t *testing.T, msg []byte, recs []Record, name string) string {
		t.Helper()
		p := filepath.Join(dir, "msg.eml")
		if err := os.WriteFile(p, msg, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/usr/bin/python3", "-c", pythonVerify, p)
		cmd.Env = append(os.Environ(), "PETREL_ZONE="+Zone(recs), "PETREL_NAME="+name)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	tests := []struct {
		name, from, domain string
		tamper             bool
		want               string
	}{
		{"local domain", "alice@example.com", "example.com", false, "PASS"},
		{"alternative", "alice@alt.example", "alt.example", false, "PASS"},
		{"tampered body", "alice@example.com", "example.com", true, "FAIL"},
		{"header only", "alice@example.com", "example.com", false, "PASS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := strings.Replace(testMessage, "alice@example.com", tt.from, 1)
			if tt.name == "header only" {
				msg = msg[:strings.Index(msg, "\r\n\r\n")+2]
			}
			var out bytes.Buffer
			if err := s.Sign(t.Context(), &out, strings.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			signed := out.Bytes()
			if tt.tamper {
				signed = bytes.Replace(signed, []byte("Hello Bob"), []byte("Hello Eve"), 1)
			}
			recs := zoneFor(t, k, tt.domain)
			if got := verify(t, signed, recs, "dkim._domainkey."+tt.domain+"."); got != tt.want {
				t.Errorf("python dkim.verify: %s, want %s", got, tt.want)
			}
		})
	}
}

// BenchmarkSign: one 10 KB message signed with an RSA-2048 key (the cost
// the queue pays per outgoing message).
func BenchmarkSign(b *testing.B) {
	k := NewKeys(b.TempDir(), "")
	p, _ := k.Path("example.com")
	key, err := os.ReadFile("testdata/pkcs8.key")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, key, 0o600); err != nil {
		b.Fatal(err)
	}
	s := NewSigners(k, fakeLookup{domains: map[string]bool{"example.com": true}})
	msg := testMessage + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 160)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := s.Signature(b.Context(), strings.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}
