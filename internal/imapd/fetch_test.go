package imapd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
	"github.com/petrelmail/petrel/internal/testutil"
)

// sampleMessage reads one of imapmsg's test messages.
func sampleMessage(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("imapmsg/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fetchOne runs a FETCH that must succeed and returns its one FETCH
// response, which must be for seq.
func fetchOne(t *testing.T, c *client, seq int, cmd string) string {
	t.Helper()
	u := c.ok(cmd)
	var got []string
	for _, r := range u {
		if strings.HasPrefix(r, fmt.Sprintf("* %d FETCH ", seq)) {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%s: want one FETCH for %d, got %q", cmd, seq, u)
	}
	return got[0]
}

func literal(s string) string { return fmt.Sprintf("{%d}\r\n%s", len(s), s) }

func TestFetchItems(t *testing.T) {
	ts := startServer(t, nil)
	names := []string{"plain.eml", "nested-rfc822.eml", "8bit.eml", "mixed-attachments.eml"}
	var msgs []string
	for _, n := range names {
		msgs = append(msgs, sampleMessage(t, n))
	}
	deliver(t, ts.st, alice, "INBOX", msgs...)
	c := ts.login(alice, alicePass)
	// The first session to select INBOX: every message is \Recent to it
	// (RFC 3501 2.3.2).
	c.ok("SELECT INBOX")

	for i, msg := range msgs {
		st := imapmsg.ParseBytes([]byte(msg))
		seq := i + 1
		r := fetchOne(t, c, seq, fmt.Sprintf("FETCH %d (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)", seq))
		want := fmt.Sprintf("* %d FETCH (UID %d FLAGS (\\Recent) INTERNALDATE ", seq, seq)
		if !strings.HasPrefix(r, want) {
			t.Errorf("%s: %q does not start with %q", names[i], r, want)
		}
		if !regexp.MustCompile(`INTERNALDATE "[ 0-3][0-9]-[A-Z][a-z]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4}"`).MatchString(r) {
			t.Errorf("%s: bad INTERNALDATE in %q", names[i], r)
		}
		tail := fmt.Sprintf(" RFC822.SIZE %d ENVELOPE %s BODYSTRUCTURE %s BODY %s)", len(msg),
			st.AppendEnvelope(nil), st.AppendBodyStructure(nil, true), st.AppendBodyStructure(nil, false))
		if !strings.HasSuffix(r, tail) {
			t.Errorf("%s:\n got %q\nwant suffix %q", names[i], r, tail)
		}
	}

	// Macros (RFC 9051 6.4.5).
	r := fetchOne(t, c, 1, "FETCH 1 FAST")
	if !regexp.MustCompile(`^\* 1 FETCH \(FLAGS \(\\Recent\) INTERNALDATE "[^"]+" RFC822.SIZE \d+\)$`).MatchString(r) {
		t.Errorf("FAST: %q", r)
	}
	r = fetchOne(t, c, 1, "FETCH 1 ALL")
	if !regexp.MustCompile(`^\* 1 FETCH \(FLAGS \(\\Recent\) INTERNALDATE "[^"]+" RFC822.SIZE \d+ ENVELOPE \(.*\)\)$`).MatchString(r) {
		t.Errorf("ALL: %q", r)
	}
	r = fetchOne(t, c, 2, "FETCH 2 full")
	if !strings.Contains(r, " ENVELOPE (") || !strings.Contains(r, " BODY ((") || strings.Contains(r, "BODYSTRUCTURE") {
		t.Errorf("FULL: %q", r)
	}
	// A single item without parentheses; UID FETCH always returns UID.
	if r := fetchOne(t, c, 2, "FETCH 2 RFC822.SIZE"); r != fmt.Sprintf("* 2 FETCH (RFC822.SIZE %d)", len(msgs[1])) {
		t.Errorf("RFC822.SIZE: %q", r)
	}
	if r := fetchOne(t, c, 3, "UID FETCH 3 FLAGS"); r != "* 3 FETCH (UID 3 FLAGS (\\Recent))" {
		t.Errorf("UID FETCH: %q", r)
	}
	if u := c.ok("UID FETCH 50:60 FLAGS"); len(u) != 0 {
		t.Errorf("UID FETCH of missing UIDs: %q", u)
	}
	// Several messages, in order.
	u := c.ok("FETCH 2:* (UID)")
	if len(u) != 3 || u[0] != "* 2 FETCH (UID 2)" || u[2] != "* 4 FETCH (UID 4)" {
		t.Errorf("FETCH 2:*: %q", u)
	}

	for _, bad := range []string{
		"FETCH 1 (FOO)", "FETCH 1 BODY[", "FETCH 1 BODY[MIME]", "FETCH 1 BODY.PEEK", "FETCH 1 (ALL)",
		"FETCH 1 BODY[1]<1>", "FETCH 1 BODY[1]<1.0>", "FETCH 99 FLAGS", "FETCH 1", "FETCH 1 ()",
		"FETCH 1 BODY[HEADER.FIELDS ()]", "FETCH 1 FLAGS (FOO)", "FETCH 1 BINARY[1.TEXT]", "FETCH 1 BINARY.SIZE[1]<0.5>",
	} {
		c.expect(bad, "BAD")
	}
}

func TestFetchSections(t *testing.T) {
	ts := startServer(t, nil)
	nested := sampleMessage(t, "nested-rfc822.eml")
	plain := sampleMessage(t, "plain.eml")
	deliver(t, ts.st, alice, "INBOX", nested, plain)
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	tests := []struct {
		seq  int
		item string
		want string // the response item
	}{
		{1, "BODY.PEEK[]", "BODY[] " + literal(nested)},
		{1, "BODY.PEEK[]<10.20>", "BODY[]<10> " + literal(crlf("arder@example.com\nT"))},
		{1, "BODY.PEEK[]<100000.5>", "BODY[]<100000> " + literal("")},
		{1, "BODY.PEEK[1]", "BODY[1] " + literal("See below.")},
		{1, "BODY.PEEK[1.MIME]", "BODY[1.MIME] " + literal(crlf("Content-Type: text/plain\n\n"))},
		{1, "BODY.PEEK[2.1]", "BODY[2.1] " + literal("inner plain")},
		{1, "BODY.PEEK[2.2.1]", "BODY[2.2.1] " + literal("<p>inner html</p>")},
		{1, "BODY.PEEK[3.1]<5.100>", "BODY[3.1]<5> " + literal("text")},
		{1, "BODY.PEEK[2.HEADER.FIELDS (Subject)]", "BODY[2.HEADER.FIELDS (Subject)] " + literal(crlf("Subject: Inner\n\n"))},
		{1, `BODY.PEEK[HEADER.FIELDS ("To" {4}` + "\r\ndate)]", "BODY[HEADER.FIELDS (To date)] " +
			literal(crlf("To: someone@example.net\nDate: Thu, 17 Mar 2022 12:00:00 +0000\n\n"))},
		{1, "BODY.PEEK[HEADER.FIELDS.NOT (From To Date MIME-Version)]", "BODY[HEADER.FIELDS.NOT (From To Date MIME-Version)] " +
			literal(crlf("Subject: Fwd: Documents\nContent-Type: multipart/mixed; boundary=\"fwd\"\n\n"))},
		{1, "BODY.PEEK[9]", "BODY[9] " + literal("")},
		{2, "RFC822.HEADER", "RFC822.HEADER " + literal(plain[:strings.Index(plain, "\r\n\r\n")+4])},
		{2, "BODY.PEEK[TEXT]<0.7>", "BODY[TEXT]<0> " + literal("Hi Bob,")},
	}
	for _, tc := range tests {
		r := fetchOne(t, c, tc.seq, fmt.Sprintf("FETCH %d (%s)", tc.seq, tc.item))
		want := fmt.Sprintf("* %d FETCH (%s)", tc.seq, tc.want)
		if r != want {
			t.Errorf("FETCH %s:\n got %q\nwant %q", tc.item, r, want)
		}
	}
	// Nothing above set \Seen.
	if r := fetchOne(t, c, 1, "FETCH 1:2 FLAGS"); r != "* 1 FETCH (FLAGS (\\Recent))" {
		t.Errorf("flags after PEEK: %q", r)
	}
}

func TestFetchSetsSeen(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"), testMessage("four"))
	c := ts.login(alice, alicePass)

	// EXAMINE never sets \Seen.
	c.ok("EXAMINE INBOX")
	r := fetchOne(t, c, 1, "FETCH 1 BODY[TEXT]")
	if r != "* 1 FETCH (BODY[TEXT] "+literal("Hello one\r\n")+")" {
		t.Errorf("EXAMINE FETCH: %q", r)
	}
	// EXAMINE left \Recent for this SELECT to take (RFC 3501 6.3.2).
	c.ok("SELECT INBOX")
	if r := fetchOne(t, c, 1, "FETCH 1 FLAGS"); r != "* 1 FETCH (FLAGS (\\Recent))" {
		t.Fatalf("after EXAMINE: %q", r)
	}

	// BODY[] sets \Seen and reports the new flags (RFC 9051 6.4.5).
	r = fetchOne(t, c, 1, "FETCH 1 BODY[TEXT]")
	if r != "* 1 FETCH (BODY[TEXT] "+literal("Hello one\r\n")+` FLAGS (\Seen \Recent))` {
		t.Errorf("BODY[TEXT]: %q", r)
	}
	// Already seen: no FLAGS added.
	if r := fetchOne(t, c, 1, "FETCH 1 BODY[TEXT]<0.5>"); r != "* 1 FETCH (BODY[TEXT]<0> "+literal("Hello")+")" {
		t.Errorf("second BODY[TEXT]: %q", r)
	}
	// RFC822 and RFC822.TEXT set it, RFC822.HEADER does not.
	r = fetchOne(t, c, 2, "FETCH 2 (RFC822.HEADER)")
	if strings.Contains(r, "FLAGS") {
		t.Errorf("RFC822.HEADER: %q", r)
	}
	r = fetchOne(t, c, 2, "FETCH 2 (FLAGS RFC822.TEXT)")
	if r != `* 2 FETCH (FLAGS (\Seen \Recent) RFC822.TEXT `+literal("Hello two\r\n")+")" {
		t.Errorf("RFC822.TEXT: %q", r)
	}
	r = fetchOne(t, c, 3, "UID FETCH 3 RFC822")
	if r != "* 3 FETCH (UID 3 RFC822 "+literal(testMessage("three"))+` FLAGS (\Seen \Recent))` {
		t.Errorf("RFC822: %q", r)
	}
	for _, m := range listOf(t, ts, alice, "INBOX") {
		if want := m.UID <= 3; hasFlag(m.Flags, flagSeen) != want {
			t.Errorf("UID %d flags %v in the store", m.UID, m.Flags)
		}
	}
	// With CONDSTORE the implicit FLAGS come with MODSEQ.
	c.ok("ENABLE CONDSTORE")
	r = fetchOne(t, c, 4, "FETCH 4 BODY[]<0.4>")
	if !regexp.MustCompile(`^\* 4 FETCH \(BODY\[\]<0> \{4\}\r\nFrom FLAGS \(\\Seen \\Recent\) MODSEQ \(\d+\)\)$`).MatchString(r) {
		t.Errorf("BODY[] with CONDSTORE: %q", r)
	}
	// Another session sees the change.
	c2 := ts.login(alice, alicePass)
	c2.ok("SELECT INBOX")
	if u := c2.ok("SEARCH UNSEEN"); len(u) != 1 || u[0] != "* SEARCH" {
		t.Errorf("UNSEEN in another session: %q", u)
	}
}

func TestFetchCondstore(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"))
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")

	// FETCH MODSEQ enables CONDSTORE and announces HIGHESTMODSEQ (RFC 7162 3.1.2).
	u := c.ok("FETCH 1:* (MODSEQ)")
	mustHave(t, u, "* OK [HIGHESTMODSEQ ")
	re := regexp.MustCompile(`^\* (\d) FETCH \(MODSEQ \((\d+)\)\)$`)
	var modseqs []string
	for _, r := range u {
		if m := re.FindStringSubmatch(r); m != nil {
			modseqs = append(modseqs, m[2])
		}
	}
	if len(modseqs) != 3 {
		t.Fatalf("MODSEQ: %q", u)
	}
	high := highestModSeqOf(t, u)
	c.ok(`STORE 2 +FLAGS.SILENT (\Flagged)`)

	// CHANGEDSINCE returns only what changed, with MODSEQ (RFC 7162 3.3.1).
	u = c.ok(fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", high))
	if len(u) != 1 || !regexp.MustCompile(`^\* 2 FETCH \(FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Errorf("CHANGEDSINCE: %q", u)
	}
	if u := c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 18446744073)"); len(u) != 0 {
		t.Errorf("CHANGEDSINCE in the future: %q", u)
	}

	// VANISHED needs QRESYNC and UID FETCH.
	c.expect(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", high), "BAD")
	c.ok("ENABLE QRESYNC")
	c.expect(fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", high), "BAD")
	c.expect("UID FETCH 1:* (FLAGS) (VANISHED)", "BAD")
	c.ok(`STORE 3 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXPUNGE")
	u = c.ok(fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", high))
	if len(u) != 2 || u[0] != "* VANISHED (EARLIER) 3" || !regexp.MustCompile(`^\* 2 FETCH \(UID 2 FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)$`).MatchString(u[1]) {
		t.Errorf("VANISHED: %q", u)
	}
	// Only the UIDs asked about.
	if u := c.ok(fmt.Sprintf("UID FETCH 1:2 (FLAGS) (CHANGEDSINCE %d VANISHED)", high)); has(u, "* VANISHED") {
		t.Errorf("VANISHED outside the set: %q", u)
	}
}

// TestFetchByteForByte: what delivery stored is what FETCH returns,
// inline and in blob files, with dot lines, 8-bit text, long lines and
// bare CRs left alone.
func TestFetchByteForByte(t *testing.T) {
	ts := startServer(t, nil)
	long := strings.Repeat("0123456789", 200) // a 2000-octet line
	bodies := []string{
		"From: a@remote.test\r\nSubject: dots\r\n\r\n.\r\n..leading dots\r\n.\r\n.end\r\n",
		"From: =?utf-8?q?J=C3=B6rg?= <j@remote.test>\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄÖÜ äöü ß € 日本語\r\n" + long + "\r\n",
		"From: a@remote.test\r\nSubject: big\r\n\r\n" + strings.Repeat(long+"\r\n", 40), // over the inline limit: a blob file
		"From: a@remote.test\r\nSubject: odd\r\n\r\nbare\rcr and no final newline",
	}
	deliver(t, ts.st, alice, "INBOX", bodies...)
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	for i, b := range bodies {
		seq := i + 1
		r := fetchOne(t, c, seq, fmt.Sprintf("FETCH %d (RFC822.SIZE BODY.PEEK[])", seq))
		want := fmt.Sprintf("* %d FETCH (RFC822.SIZE %d BODY[] %s)", seq, len(b), literal(b))
		if r != want {
			t.Errorf("message %d differs (%d octets): got %d octets", seq, len(b), len(r))
		}
	}
	// The big one again, in pieces: partial fetches add up.
	big := bodies[2]
	var got strings.Builder
	for off := 0; off < len(big); off += 30000 {
		r := fetchOne(t, c, 3, fmt.Sprintf("FETCH 3 BODY.PEEK[]<%d.30000>", off))
		i := strings.Index(r, "}\r\n")
		got.WriteString(r[i+3 : len(r)-1])
	}
	if got.String() != big {
		t.Errorf("partial fetches: %d octets, want %d", got.Len(), len(big))
	}
}

// TestFetchExpungedElsewhere: a message expunged by another session keeps
// its sequence number during FETCH (RFC 9051 7.4.1); once its body is
// gone, the FETCH says EXPUNGEISSUED (RFC 5530) and the rest is still
// sent. (The store releases bodies in the background: until then the
// data is still returned, which RFC 2180 4.1.1 allows.)
func TestFetchExpungedElsewhere(t *testing.T) {
	ts := startServer(t, nil)
	c, first := expungeFirstElsewhere(t, ts)
	waitBodyGone(t, ts, first.BodyID)
	u, tagged := c.cmd("FETCH 1:2 (BODY.PEEK[TEXT])")
	if !strings.HasPrefix(tagged, "NO [EXPUNGEISSUED]") {
		t.Errorf("tagged %q (untagged %q)", tagged, u)
	}
	mustHave(t, u, "* 2 FETCH (BODY[TEXT] "+literal("Hello two\r\n")+")")
	mustNotHave(t, u, "* 1 EXPUNGE")
	// The next command that may report it does.
	u = c.ok("NOOP")
	mustHave(t, u, "* 1 EXPUNGE")
}

func TestStructCache(t *testing.T) {
	one := imapmsg.ParseBytes([]byte("Subject: x\r\n\r\nbody\r\n"))               // 1 part
	multi := imapmsg.ParseBytes([]byte(sampleMessage(t, "nested-multipart.eml"))) // 7 parts
	if structBytes(multi) < 7*partOverhead || structBytes(one) < partOverhead {
		t.Fatalf("estimates: one %d, multi %d bytes", structBytes(one), structBytes(multi))
	}
	bound := structBytes(multi) + 2*structBytes(one)
	c := newStructCache(3, bound)
	for id := int64(1); id <= 3; id++ {
		c.put(id, one)
	}
	if c.get(1) != one { // 1 is now the most recent
		t.Fatal("entry 1 missing")
	}
	c.put(4, one) // over 3 entries: 2, the least recent, goes
	if c.get(2) != nil || c.get(1) == nil || c.get(3) == nil || c.get(4) == nil || c.len() != 3 {
		t.Fatalf("after the 4th entry: len %d", c.len())
	}
	c.put(5, multi) // over the bytes: the oldest go until it fits
	if c.get(5) != multi || c.bytes() > bound || c.len() != 3 {
		t.Fatalf("bytes %d of %d", c.bytes(), bound)
	}
	huge := imapmsg.ParseBytes([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("--b\r\n\r\nx\r\n", 20) + "--b--\r\n"))
	c.put(6, huge) // bigger than the whole cache: not cached
	if c.get(6) != nil {
		t.Error("an oversized structure was cached")
	}
	if c.get(5) != multi {
		t.Error("an oversized structure evicted others")
	}
}

// TestFetchImaplib fetches BODY[] and BODYSTRUCTURE with Python's
// imaplib, an independent client.
func TestFetchImaplib(t *testing.T) {
	ts := startServer(t, nil)
	msg := sampleMessage(t, "mixed-attachments.eml")
	deliver(t, ts.st, alice, "INBOX", msg)
	out := runPython(t, ts, `
m.select("INBOX")
typ, d = m.fetch("1", "(BODY.PEEK[] BODYSTRUCTURE)")
assert typ == "OK", typ
body = d[0][1]
rest = d[0][0].decode() + d[1].decode()
out["body"] = body.decode("latin-1")
out["rest"] = rest
typ, d = m.uid("FETCH", "1", "(BODY[1])")
out["part1"] = d[0][1].decode("latin-1")
out["part1resp"] = d[0][0].decode() + d[1].decode()
typ, d = m.search(None, "FROM", "bob", "UNSEEN")
out["search"] = d[0].decode()
`)
	if out["body"] != msg {
		t.Errorf("imaplib BODY[]: %d octets, want %d", len(out["body"]), len(msg))
	}
	st := imapmsg.ParseBytes([]byte(msg))
	if want := "BODYSTRUCTURE " + string(st.AppendBodyStructure(nil, true)); !strings.Contains(out["rest"], want) {
		t.Errorf("imaplib BODYSTRUCTURE: %q, want %q", out["rest"], want)
	}
	if out["part1"] != "Voil=E0 les documents.\r\n" {
		t.Errorf("imaplib BODY[1]: %q", out["part1"])
	}
	if !strings.Contains(out["part1resp"], `FLAGS (\Seen \Recent)`) || !strings.Contains(out["part1resp"], "UID 1") {
		t.Errorf("imaplib UID FETCH BODY[1]: %q", out["part1resp"])
	}
	if out["search"] != "" {
		t.Errorf("imaplib SEARCH FROM bob UNSEEN after BODY[1]: %q", out["search"])
	}
	var infos []store.MessageInfo = listOf(t, ts, alice, "INBOX")
	if !hasFlag(infos[0].Flags, flagSeen) {
		t.Errorf("flags %v", infos[0].Flags)
	}
}

// runPython logs in as alice with Python's imaplib (plaintext: the test
// server has NoTLS), runs body (Python statements filling the dict out
// with strings) and returns out. Strings made with .decode("latin-1")
// come back as the original bytes.
func runPython(t *testing.T, ts *testServer, body string) map[string]string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := "import imaplib, json, sys\n" +
		"host, port, user, pw = sys.argv[1:5]\n" +
		"m = imaplib.IMAP4(host, int(port), timeout=20)\n" +
		"m.login(user, pw)\n" +
		"out = {}\n" + body + "\nm.logout()\nprint(json.dumps(out))\n"
	host, port, _ := net.SplitHostPort(ts.addr)
	cmd := exec.Command(py, "-c", script, host, port, alice, alicePass)
	raw, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("imaplib: %v\n%s\n%s", err, raw, stderr)
	}
	var out map[string]string
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	for k, v := range out {
		b := make([]byte, 0, len(v))
		for _, r := range v {
			b = append(b, byte(r)) // latin-1: one rune per original byte
		}
		out[k] = string(b)
	}
	return out
}

// FuzzFetchArgs feeds arbitrary FETCH arguments to the parser: it must
// either fail or produce items that make sense.
func FuzzFetchArgs(f *testing.F) {
	for _, s := range []string{
		"1:* (UID FLAGS)", "1 ALL", "2,4:* FULL", "1 (BODY.PEEK[1.2.HEADER.FIELDS (From \"To\")]<0.100>)",
		"1 (BODY[] RFC822 RFC822.HEADER RFC822.TEXT MODSEQ) (CHANGEDSINCE 5 VANISHED)", "* BODY[TEXT]<5.5>",
		"1 (BODY[HEADER.FIELDS ({4}\r\nDate)])", "1 BODY[1.MIME]", "1 (ENVELOPE BODYSTRUCTURE BODY INTERNALDATE RFC822.SIZE)",
		"1 (BINARY.PEEK[1.2]<0.5> BINARY.SIZE[] BINARY[3])",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, args string) {
		d := newDecoder(bufio.NewReader(strings.NewReader(" "+args+"\r\n")), 4096, 4096)
		req, err := parseFetch(d)
		if err != nil {
			return
		}
		if len(req.items) == 0 || len(req.set) == 0 {
			t.Fatalf("%q: accepted without items or set", args)
		}
		for _, it := range req.items {
			if (it.kind == fetchBinary || it.kind == fetchBinarySize) && it.section.Specifier != imapmsg.SpecNone {
				t.Fatalf("%q: binary section %q is not a part number", args, it.section.String())
			}
			if it.kind == fetchBinarySize && it.partial != nil {
				t.Fatalf("%q: BINARY.SIZE with a partial", args)
			}
			if it.kind != fetchSection {
				continue
			}
			if _, err := imapmsg.ParseSection(it.section.String()); err != nil {
				t.Fatalf("%q: section %q does not parse again: %v", args, it.section.String(), err)
			}
			if it.partial != nil && it.partial.Count == 0 {
				t.Fatalf("%q: empty partial", args)
			}
		}
	})
}

// TestFetchGoIMAP reads ENVELOPE, BODYSTRUCTURE and sections with
// go-imap's client, which parses them independently.
func TestFetchGoIMAP(t *testing.T) {
	ts := startServer(t, nil)
	nested := sampleMessage(t, "nested-rfc822.eml")
	deliver(t, ts.st, alice, "INBOX", nested, sampleMessage(t, "8bit.eml"), sampleMessage(t, "encoded-words.eml"))
	c, err := imapclient.DialInsecure(ts.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	part21 := &imap.FetchItemBodySection{Part: []int{2, 1}, Peek: true}
	header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{
		UID: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		RFC822Size: true, BodySection: []*imap.FetchItemBodySection{part21, header, {Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.Envelope == nil || m.Envelope.Subject != "Fwd: Documents" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Addr() != "forwarder@example.com" {
		t.Errorf("envelope %+v", m.Envelope)
	}
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 3 || mp.Extended == nil || mp.Extended.Params["boundary"] != "fwd" {
		t.Fatalf("bodystructure %#v", m.BodyStructure)
	}
	inner, ok := mp.Children[1].(*imap.BodyStructureSinglePart)
	if !ok || inner.MessageRFC822 == nil || inner.MessageRFC822.Envelope.Subject != "Inner" || inner.MessageRFC822.NumLines != 17 {
		t.Errorf("message/rfc822 part %#v", mp.Children[1])
	}
	if got := string(m.FindBodySection(part21)); got != "inner plain" {
		t.Errorf("BODY[2.1] = %q", got)
	}
	if got := string(m.FindBodySection(header)); got != "Subject: Fwd: Documents\r\n\r\n" {
		t.Errorf("BODY[HEADER.FIELDS (Subject)] = %q", got)
	}
	if got := string(m.FindBodySection(&imap.FetchItemBodySection{})); got != nested || m.RFC822Size != int64(len(nested)) {
		t.Errorf("BODY[]: %d octets, RFC822.SIZE %d, want %d", len(got), m.RFC822Size, len(nested))
	}
	// 8-bit header text comes as literals; the client reads them.
	if e := msgs[1].Envelope; e == nil || e.Subject != "Grüße aus Köln – 8bit" || e.From[0].Name != "Jörg Müller" {
		t.Errorf("8-bit envelope %+v", e)
	}
	if e := msgs[2].Envelope; e == nil || len(e.To) != 3 || e.To[1].Mailbox != "undisclosed-recipients" ||
		len(e.Bcc) != 5 || len(e.InReplyTo) != 2 || e.From[0].Name != "André Pirard" {
		// Group start and end markers are addresses too (RFC 9051 7.5.2).
		t.Errorf("encoded-words envelope %+v", e)
	}

	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "köln"}}}, &imap.SearchOptions{ReturnAll: true, ReturnCount: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.Count != 1 || len(data.AllUIDs()) != 1 || data.AllUIDs()[0] != 2 {
		t.Errorf("UID SEARCH: count %d, %v", data.Count, data.AllUIDs())
	}
}

// TestFetchDuringReleaseGrace: a message another session expunged is
// still fetched whole until this session is told of the expunge (RFC
// 2180 4.1.1), because the store keeps its body for the release grace;
// the next command that may report the expunge does.
func TestFetchDuringReleaseGrace(t *testing.T) {
	ts := startServer(t, func(ts *testServer, o *Options) {
		ts.st = testutil.OpenStoreWith(t, sqlstore.Options{
			Path: filepath.Join(ts.dir, "graced.db"), BlobDir: filepath.Join(ts.dir, "graced-blobs"),
			InlineMax: 4096, ReleaseGrace: time.Hour,
		}, testDomain, "alice", "bob")
		o.Store = ts.st
	})
	c, _ := expungeFirstElsewhere(t, ts)
	// Without a grace the background releaser frees the body within
	// milliseconds of its kick; give it the time to, so that this test
	// fails if the grace is not kept.
	time.Sleep(300 * time.Millisecond)
	u := c.ok("FETCH 1:2 (BODY.PEEK[TEXT])")
	mustHave(t, u, "* 1 FETCH (BODY[TEXT] "+literal("Hello one\r\n")+")")
	mustHave(t, u, "* 2 FETCH (BODY[TEXT] "+literal("Hello two\r\n")+")")
	u = c.ok("NOOP")
	mustHave(t, u, "* 1 EXPUNGE")
}

// expungeFirstElsewhere delivers messages "one" and "two" to alice's
// INBOX, selects it in a new session and expunges message 1 behind that
// session's back; it returns the session and the expunged message.
func expungeFirstElsewhere(t *testing.T, ts *testServer) (*client, store.MessageInfo) {
	t.Helper()
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"))
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	first := listOf(t, ts, alice, "INBOX")[0]
	if _, err := ts.st.ExpungeByID(context.Background(), first.MailboxID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	return c, first
}

// waitBodyGone polls until the store has released body id (it does so
// in the background after an expunge), failing after 20 seconds.
func waitBodyGone(t *testing.T, ts *testServer, id int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := ts.st.OpenBody(context.Background(), id)
		if err == nil {
			r.Close()
		}
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("body %d still there 20 s after its expunge: %v", id, err)
		}
	}
}
