package msgauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

const testEd25519Seed = "0123456789abcdef0123456789abcdef"

func testEd25519Key() (ed25519.PrivateKey, string) {
	k := ed25519.NewKeyFromSeed([]byte(testEd25519Seed))
	return k, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}

func testRSAKey(t testing.TB) (crypto.Signer, string) {
	t.Helper()
	pem, err := os.ReadFile("testdata/pkcs1.key")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := PublicKeyRecord(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return key, rec
}

// The cache keeps a parse for its TTL, then parses again; it never holds
// more than its bound; a record's parse error (revoked key) is cached
// like a key, under its own text.
func TestKeyCache(t *testing.T) {
	_, rsaRec := testRSAKey(t)
	_, edRec := testEd25519Key()
	now := time.Unix(1_800_000_000, 0)
	c := newKeyCache(2, time.Minute, func() time.Time { return now })

	k1, err := c.get(rsaRec)
	if err != nil || k1.rsa == nil || k1.keyAlgo != "rsa" {
		t.Fatalf("%+v %v", k1, err)
	}
	if k2, _ := c.get(rsaRec); k2 != k1 {
		t.Fatal("second look-up within the TTL parsed again")
	}
	now = now.Add(time.Minute)
	if k3, _ := c.get(rsaRec); k3 == k1 || k3.rsa.key.N.Cmp(k1.rsa.key.N) != 0 {
		t.Fatal("expired entry was reused (or parsed differently)")
	}

	if _, err := c.get("v=DKIM1; k=rsa; p="); err == nil || err.msg != "key revoked" || err.result != PermError {
		t.Fatalf("revoked: %v", err)
	}
	ke, err := c.get(edRec)
	if err != nil || ke.keyAlgo != "ed25519" || len(ke.ed25519) != ed25519.PublicKeySize {
		t.Fatalf("%+v %v", ke, err)
	}
	if n := c.len(); n != 2 {
		t.Fatalf("%d entries, bound 2", n)
	}
	for i := range 50 {
		c.get("v=DKIM1; p=" + strings.Repeat("A", i+1))
		if n := c.len(); n > 2 {
			t.Fatalf("%d entries, bound 2", n)
		}
	}

	// No caching at all with a zero bound.
	c0 := newKeyCache(0, time.Minute, time.Now)
	a, _ := c0.get(rsaRec)
	b, _ := c0.get(rsaRec)
	if a == b || c0.len() != 0 {
		t.Fatal("a zero-size cache kept an entry")
	}

	// Concurrent use (run with -race).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if k, err := c.get(rsaRec); err != nil || k.rsa == nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// Key record checks as go-msgauth makes them.
func TestParseKeyRecord(t *testing.T) {
	_, rsaRec := testRSAKey(t)
	for rec, want := range map[string]string{
		"v=DKIM2; p=AAAA":                 "incompatible public key version",
		"v=DKIM1; k=rsa":                  "key syntax error: missing public key data",
		"v=DKIM1; p=":                     "key revoked",
		"v=DKIM1; p=!!!":                  "key syntax error",
		"v=DKIM1; p=AAAA":                 "key syntax error",
		"v=DKIM1; k=ed25519; p=AAAA":      "invalid Ed25519 public key size: 3 bytes",
		"v=DKIM1; k=dsa; p=AAAA":          "unsupported key algorithm",
		"v=DKIM1; p=AAAA; p=AAAA":         "key record error: duplicate tag name",
		"v=DKIM1; garbage":                "key record error: malformed header params",
		rsaRec + "; h=sha1 : sha256":      "",
		rsaRec + "; s=*":                  "",
		"v=DKIM1; p=MCowBQYDK2VwAyEAGb9E": "key syntax error",
	} {
		k, err := parseKeyRecord(rec)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", rec, err)
		case want != "" && (err == nil || !strings.HasPrefix(err.msg, want) || err.result != PermError):
			t.Errorf("%q: %v, want %q", rec, err, want)
		case want == "" && k.rsa == nil:
			t.Errorf("%q: no key", rec)
		}
	}
	k, _ := parseKeyRecord(rsaRec + "; h=sha1 : sha256; s=email")
	if strings.Join(k.hashAlgos, ",") != "sha1,sha256" || strings.Join(k.services, ",") != "email" {
		t.Fatalf("%+v", k)
	}
	if k, _ := parseKeyRecord(rsaRec + "; s=*"); k.services != nil {
		t.Fatalf("s=* kept: %v", k.services)
	}
}

// A changed key record counts as soon as DNS returns it (the cache is
// keyed by the record's text): a new key makes the old signature fail, a
// revoked key (p= empty) is permerror, the old record passes again.
func TestDKIMKeyRecordChanges(t *testing.T) {
	rsaKey, rsaRec := testRSAKey(t)
	_, edRec := testEd25519Key()
	signed := goSign(t, rsaKey, "sender.test", vMessage("a@sender.test"))
	var mu sync.Mutex
	res := mapResolver{}
	set := func(rec string) {
		mu.Lock()
		defer mu.Unlock()
		res["sel._domainkey.sender.test"] = []string{rec}
	}
	v := NewVerifier(VerifierOptions{Hostname: ourHost, Resolver: res, DNSTimeout: time.Second})
	check := func(wantResult, wantReason string) {
		t.Helper()
		r := verify(t, v, Session{Helo: "mail.sender.test"}, signed)
		if len(r.DKIM) != 1 || r.DKIM[0].Result != wantResult || !strings.Contains(r.DKIM[0].Reason, wantReason) {
			t.Fatalf("want %s (%s): %+v", wantResult, wantReason, r.DKIM)
		}
	}
	set(rsaRec)
	check(Pass, "")
	check(Pass, "")
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	otherRec, _ := PublicKeyRecord(other.Public())
	set(otherRec)
	check(Fail, "signature did not verify")
	set("v=DKIM1; k=rsa; p=")
	check(PermError, "key revoked")
	set(edRec)
	check(PermError, "inappropriate key algorithm")
	set(rsaRec + "; s=other")
	check(PermError, "inappropriate service")
	set(rsaRec + "; h=sha1")
	check(PermError, "inappropriate hash algorithm")
	set(rsaRec)
	check(Pass, "")
	if n := v.keys.len(); n != 6 {
		t.Fatalf("%d cached parses, want 6", n)
	}
}

// dkimBodies are bodies whose canonical forms differ in the details:
// bare LF, lone CR, trailing blank lines, white space runs and ends.
var dkimBodies = []string{
	"",
	"\r\n",
	"\r\n\r\n\r\n",
	"Hello\r\n",
	"Hello",
	"Hello\r\n\r\n\r\n",
	"Hello\n\nWorld\n\n",
	"a \t b  \r\n \t \r\nc\t\r\n\r\n",
	"lone\rCR\r\r\nend\r",
	"trailing CR\r",
	"mixed\r\n\n\r\r\n \r\n",
	"  leading space\r\n\t\r\n",
	strings.Repeat("0123456789 abcdefghij\t\t klmnopqrstuvwxyz  \r\n", 200) + "\r\n\r\n",
	strings.Repeat("x", 9000) + "\r" + strings.Repeat("y", 5000) + "\r\n",
}

// Our verifier accepts what go-msgauth signs, with either key type and
// every canonicalization, and refuses a changed body, as go-msgauth's
// own verifier does.
func TestDKIMMatchesGoMsgauth(t *testing.T) {
	rsaKey, rsaRec := testRSAKey(t)
	edKey, edRec := testEd25519Key()
	res := mapResolver{"rsa._domainkey.sender.test": {rsaRec}, "ed._domainkey.sender.test": {edRec}}
	v := NewVerifier(VerifierOptions{Hostname: ourHost, Resolver: res, DNSTimeout: time.Second})
	head := "From: Alice <a@sender.test>\r\nTo: b@petrel.test\r\nSubject:  folded\r\n\tsubject  \r\nX-Empty:\r\n"
	for _, canon := range [][2]dkim.Canonicalization{
		{dkim.CanonicalizationSimple, dkim.CanonicalizationSimple},
		{dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed},
		{dkim.CanonicalizationSimple, dkim.CanonicalizationRelaxed},
		{dkim.CanonicalizationRelaxed, dkim.CanonicalizationSimple},
	} {
		for i, body := range dkimBodies {
			for _, alg := range []struct {
				sel    string
				signer crypto.Signer
			}{{"ed", edKey}, {"rsa", rsaKey}} {
				if alg.sel == "rsa" && i%4 != 0 {
					continue // RSA signing is slow; a few bodies suffice
				}
				var signed bytes.Buffer
				err := dkim.Sign(&signed, strings.NewReader(head+"\r\n"+body), &dkim.SignOptions{
					Domain: "sender.test", Selector: alg.sel, Signer: alg.signer,
					HeaderCanonicalization: canon[0], BodyCanonicalization: canon[1],
					HeaderKeys: []string{"From", "To", "Subject", "X-Empty", "X-Missing"},
				})
				if err != nil {
					t.Fatal(err)
				}
				r := verify(t, v, Session{Helo: "mail.sender.test"}, signed.String())
				if len(r.DKIM) != 1 || r.DKIM[0].Result != Pass {
					t.Errorf("%v %s body %d: %+v", canon, alg.sel, i, r.DKIM)
				}
				changed := signed.String() + "more\r\n"
				r = verify(t, v, Session{Helo: "mail.sender.test"}, changed)
				vs, _ := dkim.VerifyWithOptions(strings.NewReader(changed), &dkim.VerifyOptions{LookupTXT: func(n string) ([]string, error) { return res.LookupTXT(context.Background(), n) }})
				theirs := len(vs) == 1 && vs[0].Err == nil
				if (r.DKIM[0].Result == Pass) != theirs {
					t.Errorf("%v %s body %d changed: ours %+v, go-msgauth pass=%v", canon, alg.sel, i, r.DKIM, theirs)
				}
			}
		}
	}
}

// FuzzDKIMVerify: for any message go-msgauth signs (Ed25519, for speed),
// our verifier and go-msgauth's agree on pass, also after the signed
// message is changed by the fuzzer's second input appended to the body.
func FuzzDKIMVerify(f *testing.F) {
	for _, b := range dkimBodies[:12] {
		f.Add("From: a@sender.test\r\nSubject: x\r\n", b, "", byte(0))
	}
	f.Add("From: a@sender.test\r\nSubject: x\r\n", "body\r\n", "\r\n\r\n", byte(1))
	f.Add("From: a@sender.test\nSubject:\n \t x\n", "a  b\n", " \r\n", byte(3))
	edKey, edRec := testEd25519Key()
	res := mapResolver{"ed._domainkey.sender.test": {edRec}}
	v := NewVerifier(VerifierOptions{Hostname: ourHost, Resolver: res, DNSTimeout: time.Second})
	lookup := func(n string) ([]string, error) { return res.LookupTXT(context.Background(), n) }
	f.Fuzz(func(t *testing.T, head, body, tail string, canon byte) {
		hc, bc := dkim.Canonicalization(dkim.CanonicalizationSimple), dkim.Canonicalization(dkim.CanonicalizationSimple)
		if canon&1 != 0 {
			hc = dkim.CanonicalizationRelaxed
		}
		if canon&2 != 0 {
			bc = dkim.CanonicalizationRelaxed
		}
		var signed bytes.Buffer
		if err := dkim.Sign(&signed, strings.NewReader(head+"\r\n"+body), &dkim.SignOptions{
			Domain: "sender.test", Selector: "ed", Signer: edKey,
			HeaderCanonicalization: hc, BodyCanonicalization: bc,
		}); err != nil {
			return
		}
		msg := signed.String() + tail
		vs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
		theirs := err == nil && len(vs) == 1 && vs[0].Err == nil
		r, err := v.Verify(context.Background(), Session{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "x.test"}, strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if r.DMARC.Result == PermError && r.DMARC.Reason == "header too large or malformed" {
			return // our header reader refused it: nothing verified
		}
		ours := len(r.DKIM) == 1 && r.DKIM[0].Result == Pass
		if ours != theirs {
			t.Fatalf("ours %+v, go-msgauth pass=%v (%v)\n%q", r.DKIM, theirs, vs, msg)
		}
	})
}
