package submit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/petrelmail/petrel/internal/msgauth"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// testNow is the fixed clock of the golden files.
var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))

func fixedOptions() Options {
	return Options{
		Hostname:     "mail.example.com",
		Now:          func() time.Time { return testNow },
		NewMessageID: func() string { return "20250304040607.fixedid" },
	}
}

func prepare(t testing.TB, p *Preparer, in []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := p.Prepare(context.Background(), bytes.NewReader(in), &out, Meta{User: "alice@example.com", Sender: "alice@example.com", ID: "m1"}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return out.Bytes()
}

// TestGolden runs every testdata/*.eml through Prepare without signing and
// compares with testdata/*.golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	p := New(fixedOptions())
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := prepare(t, p, in)
			golden := strings.TrimSuffix(f, ".eml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
			checkParses(t, got)
		})
	}
}

// TestScrubbing states the rules the golden files show.
func TestScrubbing(t *testing.T) {
	p := New(fixedOptions())
	in, err := os.ReadFile("testdata/scrub.eml")
	if err != nil {
		t.Fatal(err)
	}
	out := string(prepare(t, p, in))
	head, body, _ := strings.Cut(out, "\r\n\r\n")
	for _, gone := range []string{"203.0.113.7", "192.168.1.23", "laptop.local (Postfix)", "Thunderbird", "Apple Mail", "GPGMail", "Mac OS X Mail"} {
		if strings.Contains(head, gone) {
			t.Errorf("header still has %q:\n%s", gone, head)
		}
	}
	for _, n := range fieldNames([]byte(out)) {
		if scrubbed(n) {
			t.Errorf("field %s survived", n)
		}
	}
	for _, kept := range []string{"From: Alice Example <alice@example.com>\r\n", "Mime-Version: 1.0\r\n", "Message-ID: <c0ffee@laptop.local>\r\n",
		"Date: Tue, 4 Mar 2025 05:05:58 +0100\r\n", "X-Mailer-Version: stays", "X-Received: stays too"} {
		if !strings.Contains(head, kept) {
			t.Errorf("header lost %q:\n%s", kept, head)
		}
	}
	if strings.Count(head, "Message-ID") != 1 || strings.Count(head, "\r\nDate:") != 1 {
		t.Errorf("Message-ID or Date added although present:\n%s", head)
	}
	if !strings.Contains(body, "Received: this line is in the body") {
		t.Error("body changed")
	}

	missing, _ := os.ReadFile("testdata/missing-ids.eml")
	out = string(prepare(t, p, missing))
	for _, want := range []string{"Message-ID: <20250304040607.fixedid@mail.example.com>\r\n", "Date: Tue, 4 Mar 2025 05:06:07 +0100\r\n\r\nbody\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDefaultMessageID(t *testing.T) {
	p := New(Options{Hostname: "mail.example.com"})
	a := prepare(t, p, []byte("From: a@example.com\r\n\r\nx\r\n"))
	b := prepare(t, p, []byte("From: a@example.com\r\n\r\nx\r\n"))
	msgA, err := mail.ReadMessage(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	msgB, _ := mail.ReadMessage(bytes.NewReader(b))
	idA, idB := msgA.Header.Get("Message-ID"), msgB.Header.Get("Message-ID")
	if idA == idB || !strings.HasSuffix(idA, "@mail.example.com>") || !strings.HasPrefix(idA, "<") {
		t.Errorf("Message-IDs %q and %q", idA, idB)
	}
	if _, err := msgA.Header.Date(); err != nil {
		t.Errorf("Date does not parse: %v", err)
	}
}

// ---- signing ----

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

// signing: example.com has a fresh key, alt.example is its alternative,
// nokey.example is local without a key.
type signing struct {
	keys    *msgauth.Keys
	signers *msgauth.Signers
	record  string // example.com's DKIM TXT record
}

func newSigning(t testing.TB, lookupErr error) signing {
	t.Helper()
	keys := msgauth.NewKeys(t.TempDir(), "")
	if err := keys.Generate(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	rec, err := keys.PublicKeyRecord(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	l := fakeLookup{
		domains: map[string]bool{"example.com": true, "nokey.example": true},
		alts:    map[string]string{"alt.example": "example.com"},
		err:     lookupErr,
	}
	return signing{keys: keys, signers: msgauth.NewSigners(keys, l), record: rec}
}

// lookup answers the DKIM TXT query of the domain and its alternative from
// the record msgauth.PublicKeyRecord made.
func (s signing) lookup(name string) ([]string, error) {
	switch name {
	case "dkim._domainkey.example.com", "dkim._domainkey.alt.example":
		return []string{s.record}, nil
	}
	return nil, fmt.Errorf("no TXT for %s", name)
}

func verifyGo(t *testing.T, s signing, msg []byte) *dkim.Verification {
	t.Helper()
	v, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: s.lookup})
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 {
		t.Fatalf("%d signatures, want 1", len(v))
	}
	return v[0]
}

func TestSignedVerifies(t *testing.T) {
	s := newSigning(t, nil)
	opts := fixedOptions()
	opts.Signers = s.signers
	p := New(opts)
	unsignedP := New(fixedOptions())
	in, _ := os.ReadFile("testdata/scrub.eml")

	out := prepare(t, p, in)
	if !bytes.HasPrefix(out, []byte("DKIM-Signature: ")) {
		t.Fatalf("not signed:\n%s", out)
	}
	// After the signature comes exactly the unsigned preparation.
	if want := prepare(t, unsignedP, in); !bytes.HasSuffix(out, want) || bytes.Count(out, []byte("DKIM-Signature")) != 1 {
		t.Fatalf("signed output is not signature + prepared message:\n%s", out)
	}
	v := verifyGo(t, s, out)
	if v.Err != nil || v.Domain != "example.com" {
		t.Fatalf("verification: %+v", v)
	}
	// The added Message-ID is signed: changing it breaks the signature.
	missing, _ := os.ReadFile("testdata/missing-ids.eml")
	signed := prepare(t, p, missing)
	if v := verifyGo(t, s, signed); v.Err != nil {
		t.Fatalf("missing-ids: %v", v.Err)
	}
	tampered := bytes.Replace(signed, []byte("fixedid"), []byte("otherid"), 1)
	if v := verifyGo(t, s, tampered); v.Err == nil {
		t.Error("changing the added Message-ID did not break the signature")
	}
}

func TestSignedAlternativeAndUnsigned(t *testing.T) {
	s := newSigning(t, nil)
	var logs bytes.Buffer
	opts := fixedOptions()
	opts.Signers = s.signers
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := New(opts)

	alt := prepare(t, p, []byte("From: Alice <alice@Alt.Example>\r\nTo: b@remote.test\r\n\r\nhi\r\n"))
	if v := verifyGo(t, s, alt); v.Err != nil || v.Domain != "alt.example" {
		t.Errorf("alternative: %+v", v)
	}
	for _, msg := range []string{
		"From: a@remote.test\r\n\r\nforeign From\r\n",
		"From: a@nokey.example\r\n\r\nno key\r\n",
		"To: b@remote.test\r\n\r\nno From\r\n",
		"From: undisclosed\r\n\r\nno address\r\n",
	} {
		out := prepare(t, p, []byte(msg))
		if bytes.Contains(out, []byte("DKIM-Signature")) {
			t.Errorf("signed %q", msg)
		}
		checkParses(t, out)
	}
	if n := strings.Count(logs.String(), "not DKIM-signed"); n != 4 {
		t.Errorf("%d debug lines for unsigned messages, want 4:\n%s", n, logs.String())
	}
}

func TestSignerLookupFailure(t *testing.T) {
	s := newSigning(t, errors.New("database down"))
	opts := fixedOptions()
	opts.Signers = s.signers
	var out bytes.Buffer
	err := New(opts).Prepare(t.Context(), strings.NewReader("From: a@example.com\r\n\r\nx\r\n"), &out, Meta{})
	if err == nil || !strings.Contains(err.Error(), "database down") {
		t.Fatalf("err %v, want the lookup failure", err)
	}
}

// A message over MemoryLimit is spooled to TempDir while signing, and the
// file is gone afterwards.
func TestSignLargeMessageSpools(t *testing.T) {
	s := newSigning(t, nil)
	dir := t.TempDir()
	opts := fixedOptions()
	opts.Signers = s.signers
	opts.TempDir = dir
	opts.MemoryLimit = 4096
	p := New(opts)
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	msg := "From: a@example.com\r\nSubject: big\r\n\r\n" + strings.Repeat(line, 5000) // 330 KB

	probe := &probeWriter{dir: dir}
	if err := p.Prepare(t.Context(), strings.NewReader(msg), probe, Meta{}); err != nil {
		t.Fatal(err)
	}
	if probe.filesSeen != 1 {
		t.Errorf("%d files in TempDir while writing, want 1 spool file", probe.filesSeen)
	}
	if v := verifyGo(t, s, probe.buf.Bytes()); v.Err != nil {
		t.Fatal(v.Err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool file left behind: %v", ents)
	}
	// Small messages do not touch the disk.
	probe = &probeWriter{dir: dir}
	if err := p.Prepare(t.Context(), strings.NewReader("From: a@example.com\r\n\r\nsmall\r\n"), probe, Meta{}); err != nil {
		t.Fatal(err)
	}
	if probe.filesSeen != 0 {
		t.Errorf("a small message was spooled to disk")
	}
}

// probeWriter records how many files dir holds when the output starts.
type probeWriter struct {
	dir       string
	buf       bytes.Buffer
	filesSeen int
	probed    bool
}

func (w *probeWriter) Write(p []byte) (int, error) {
	if !w.probed {
		w.probed = true
		ents, _ := os.ReadDir(w.dir)
		w.filesSeen = len(ents)
	}
	return w.buf.Write(p)
}

// pythonVerify is the independent check (Debian's python3-dkim), with a
// dnsfunc answering from the record.
const pythonVerify = `
import os, sys, dkim
rec = os.environ["PETREL_DKIM"].encode()
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return rec if name.rstrip(".") in ("dkim._domainkey.example.com", "dkim._domainkey.alt.example") else None
print("PASS" if dkim.verify(open(sys.argv[1], "rb").read(), dnsfunc=dnsfunc) else "FAIL")
`

func TestSignedVerifiesWithPythonDKIM(t *testing.T) {
	if exec.Command("/usr/bin/python3", "-c", "import dkim").Run() != nil {
		t.Skip("/usr/bin/python3 cannot import dkim (Debian python3-dkim)")
	}
	s := newSigning(t, nil)
	opts := fixedOptions()
	opts.Signers = s.signers
	p := New(opts)
	files, _ := filepath.Glob("testdata/*.eml")
	dir := t.TempDir()
	for _, f := range files {
		in, _ := os.ReadFile(f)
		out := prepare(t, p, in)
		if !bytes.HasPrefix(out, []byte("DKIM-Signature:")) {
			continue // no From in a local domain
		}
		for _, tamper := range []bool{false, true} {
			msg := out
			want := "PASS"
			if tamper {
				msg = append(bytes.Clone(out), "tampered\r\n"...)
				want = "FAIL"
			}
			path := filepath.Join(dir, "msg.eml")
			if err := os.WriteFile(path, msg, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/usr/bin/python3", "-c", pythonVerify, path)
			cmd.Env = append(os.Environ(), "PETREL_DKIM="+s.record)
			res, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("python: %v\n%s", err, res)
			}
			if got := strings.TrimSpace(string(res)); got != want {
				t.Errorf("%s (tampered %v): python dkim.verify says %s, want %s", f, tamper, got, want)
			}
		}
	}
}

// ---- limits and errors ----

func TestHeaderTooLarge(t *testing.T) {
	p := New(fixedOptions())
	big := "From: a@example.com\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 1030) + "\r\nbody\r\n"
	err := p.Prepare(t.Context(), strings.NewReader(big), io.Discard, Meta{})
	if !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("err %v, want ErrHeaderTooLarge", err)
	}
	oneLine := "X-Long: " + strings.Repeat("y", MaxHeaderBytes) + "\r\n\r\n"
	if err := p.Prepare(t.Context(), strings.NewReader(oneLine), io.Discard, Meta{}); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("one long line: err %v", err)
	}
	// Just under the limit is fine, and a large body is no header.
	ok := "From: a@example.com\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 990) + "\r\n" + strings.Repeat("b", 3<<20)
	if err := p.Prepare(t.Context(), strings.NewReader(ok), io.Discard, Meta{}); err != nil {
		t.Errorf("990 KB header: %v", err)
	}
}

var errClient = errors.New("client went away")

// failingReader gives data, then fails.
type failingReader struct {
	data string
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, errClient
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// The client's read error comes back wrapped (smtpd tells it from a local
// fault), while signing or not.
func TestSourceErrorPropagates(t *testing.T) {
	s := newSigning(t, nil)
	signed := fixedOptions()
	signed.Signers = s.signers
	for _, p := range []*Preparer{New(fixedOptions()), New(signed)} {
		for _, data := range []string{"From: a@exam", "From: a@example.com\r\n\r\npartial bo"} {
			err := p.Prepare(t.Context(), &failingReader{data: data}, io.Discard, Meta{})
			if !errors.Is(err, errClient) {
				t.Errorf("%q: err %v, want the client's error", data, err)
			}
		}
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := New(fixedOptions()).Prepare(ctx, strings.NewReader("From: a@example.com\r\n\r\nx\r\n"), io.Discard, Meta{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

// checkParses asserts that out is a message: a header of fields and
// continuation lines, the empty line, then the body; and that Go's
// net/mail reads it when every field name is a token it accepts.
func checkParses(t testing.TB, out []byte) {
	t.Helper()
	lines, ok := headerLines(out)
	if !ok {
		t.Fatalf("no empty line after the header:\n%q", out)
	}
	tokens := true
	for i, line := range lines {
		if line == "" {
			t.Fatalf("empty header line in %q", out)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if i == 0 {
				t.Fatalf("header starts with a continuation: %q", out)
			}
			continue
		}
		name, _, found := strings.Cut(line, ":")
		if !found || !isFText(strings.TrimRight(name, " \t")) {
			t.Fatalf("header line %q is not a field", line)
		}
		tokens = tokens && isToken(name)
	}
	if tokens {
		if _, err := mail.ReadMessage(bytes.NewReader(out)); err != nil {
			t.Fatalf("net/mail cannot read the output: %v\n%q", err, out)
		}
	}
}

// headerLines returns the header lines of msg, up to the empty line.
func headerLines(msg []byte) ([]string, bool) {
	s := string(msg)
	if strings.HasPrefix(s, "\r\n") {
		return nil, true
	}
	end := strings.Index(s, "\r\n\r\n")
	if end < 0 {
		return nil, false
	}
	return strings.Split(s[:end], "\r\n"), true
}

// fieldNames returns the names of the header fields of msg.
func fieldNames(msg []byte) []string {
	lines, _ := headerLines(msg)
	var out []string
	for _, l := range lines {
		if l != "" && l[0] != ' ' && l[0] != '\t' {
			name, _, _ := strings.Cut(l, ":")
			out = append(out, strings.TrimRight(name, " \t"))
		}
	}
	return out
}

func isFText(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// isToken: the RFC 7230 token characters net/textproto accepts in names.
func isToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// FuzzPrepare: Prepare never panics, and what it writes is a message whose
// header has a Message-ID and a Date and no scrubbed field.
func FuzzPrepare(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, name := range files {
		b, _ := os.ReadFile(name)
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("\r\n"))
	f.Add([]byte("From: a@example.com"))
	f.Add([]byte("From: a@example.com\nSubject: lf only\n\nbody\n"))
	f.Add([]byte("Received :x\r\n\tmore\r\nMIME-Version: 1.0 \r\n (c)\r\n\r\n"))
	s := newSigning(f, nil)
	opts := fixedOptions()
	opts.Signers = s.signers
	opts.MemoryLimit = 512
	opts.TempDir = f.TempDir()
	p := New(opts)
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		err := p.Prepare(context.Background(), bytes.NewReader(in), &out, Meta{})
		if errors.Is(err, ErrHeaderTooLarge) {
			return
		}
		if err != nil {
			t.Fatalf("Prepare(%q): %v", in, err)
		}
		got := out.Bytes()
		// A signature goes in front; the rest is checked like unsigned output.
		if bytes.HasPrefix(got, []byte("DKIM-Signature:")) {
			if v := verifyGo(t, s, got); v.Err != nil {
				t.Fatalf("signature does not verify: %v\n%q", v.Err, got)
			}
		}
		checkParses(t, got)
		hasID, hasDate := false, false
		for _, n := range fieldNames(got) {
			hasID = hasID || strings.EqualFold(n, "Message-ID")
			hasDate = hasDate || strings.EqualFold(n, "Date")
			if scrubbed(n) {
				t.Fatalf("scrubbed field %q survived in %q", n, got)
			}
		}
		if !hasID || !hasDate {
			t.Fatalf("Message-ID or Date missing in %q", got)
		}
	})
}
