package imapd

import (
	"fmt"
	"strings"
	"testing"
)

// lit is a LITERAL+ literal (RFC 7888) of s.
func lit(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// syncAppend sends line, whose last element is a synchronizing literal
// header, and then each of parts after a "+" (each but the last ends with
// the next literal header), and returns the tagged response. A tagged
// answer instead of "+" ends it early.
func (c *client) syncAppend(line string, parts ...string) (untagged []string, tagged string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("A%03d", c.n)
	c.send(tag + " " + line + "\r\n")
	for _, p := range parts {
		for {
			r := c.read()
			if strings.HasPrefix(r, "+") {
				break
			}
			if strings.HasPrefix(r, tag+" ") {
				return untagged, strings.TrimPrefix(r, tag+" ")
			}
			untagged = append(untagged, r)
		}
		c.send(p)
	}
	return c.collect(tag)
}

func TestMultiAppend(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.MaxMessageSize = 400 })
	c := ts.login(alice, alicePass)
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " MULTIAPPEND") {
		t.Fatalf("CAPABILITY %q lacks MULTIAPPEND", caps)
	}
	m1, m2, m3 := testMessage("one"), testMessage("two"), testMessage("three")
	_, tagged := c.cmd("APPEND INBOX (\\Seen) " + lit(m1) + " " + lit(m2) + ` (\Flagged) "05-Dec-2026 10:00:00 +0000" ` + lit(m3))
	if !strings.HasPrefix(tagged, "OK [APPENDUID ") || !strings.Contains(tagged, " 1:3]") {
		t.Fatalf("MULTIAPPEND: %q, want OK [APPENDUID v 1:3]", tagged)
	}
	l := listOf(t, ts, alice, "INBOX")
	if len(l) != 3 || !hasFlag(l[0].Flags, flagSeen) || hasFlag(l[1].Flags, flagSeen) || !hasFlag(l[2].Flags, flagFlagged) ||
		l[2].InternalDate.Year() != 2026 || readBody(t, ts, l[1].BodyID) != m2 {
		t.Fatalf("stored %+v", l)
	}
	// Atomicity: the second message is over MESSAGE_SIZE_LIMIT, so the
	// first is not kept either; synchronizing literals: the client is
	// told before it sends the large one.
	big := strings.Repeat("x", 500)
	_, tagged = c.syncAppend(fmt.Sprintf("APPEND INBOX {%d}", len(m1)), m1+fmt.Sprintf(" {%d}\r\n", len(big)), big+"\r\n")
	if !strings.HasPrefix(tagged, "NO [TOOBIG]") {
		t.Fatalf("MULTIAPPEND with a large second message: %q, want NO [TOOBIG]", tagged)
	}
	// The same with non-synchronizing literals: the bytes are skipped.
	c.expect("APPEND INBOX "+lit(m1)+" "+lit(big)+" "+lit(m3), "NO [TOOBIG]")
	// A bad third message (no literal) is BAD and nothing is stored.
	c.expect("APPEND INBOX "+lit(m1)+" "+lit(m2)+" (\\Seen)", "BAD")
	// A missing mailbox: TRYCREATE, nothing stored anywhere.
	c.expect("APPEND Nowhere "+lit(m1)+" "+lit(m2), "NO [TRYCREATE]")
	c.ok("NOOP")
	if n := len(listOf(t, ts, alice, "INBOX")); n != 3 {
		t.Fatalf("INBOX has %d messages after refused MULTIAPPENDs, want 3", n)
	}
}

// TestMultiAppendQuota: two messages that fit alone but not together
// are both refused.
func TestMultiAppendQuota(t *testing.T) {
	ts := startServer(t, nil)
	m1 := testMessage("one")
	usr, err := ts.st.GetUser(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	usr.QuotaBytes = int64(len(m1)) * 3 / 2
	if err := ts.st.UpdateUser(t.Context(), usr); err != nil {
		t.Fatal(err)
	}
	c := ts.login(alice, alicePass)
	c.expect("APPEND INBOX "+lit(m1)+" "+lit(m1), "NO [OVERQUOTA]")
	if n := len(listOf(t, ts, alice, "INBOX")); n != 0 {
		t.Fatalf("INBOX has %d messages after an over-quota MULTIAPPEND", n)
	}
	c.ok("APPEND INBOX " + lit(m1))
}

func TestCatenate(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.MaxMessageSize = 1000 })
	c := ts.login(alice, alicePass)
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " CATENATE") {
		t.Fatalf("CAPABILITY %q lacks CATENATE", caps)
	}
	orig := "From: a@example.test\r\nSubject: orig\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\npart one\r\n--b--\r\n"
	c.ok("APPEND INBOX " + lit(orig))
	sel := c.ok("SELECT INBOX")
	uv := ""
	for _, r := range sel {
		if _, err := fmt.Sscanf(r, "* OK [UIDVALIDITY %s", &uv); err == nil {
			uv = strings.TrimSuffix(uv, "]")
		}
	}
	if uv == "" {
		t.Fatalf("no UIDVALIDITY in %q", sel)
	}
	c.ok("CREATE Out")
	cases := []struct{ parts, want string }{
		{`URL "/INBOX;UIDVALIDITY=` + uv + `/;UID=1/;SECTION=HEADER" TEXT ` + lit("new body\r\n"),
			"From: a@example.test\r\nSubject: orig\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\nnew body\r\n"},
		{`TEXT ` + lit("Subject: wrapped\r\n\r\n") + ` URL ";UID=1/;SECTION=1"`, "Subject: wrapped\r\n\r\npart one"},
		{`URL "imap://alice%40example.test@` + testHost + `/INBOX/;UID=1/;PARTIAL=0.4" TEXT ` + lit(": x\r\n\r\ny"), "From: x\r\n\r\ny"},
	}
	for i, tc := range cases {
		c.ok("APPEND Out CATENATE (" + tc.parts + ")")
		l := listOf(t, ts, alice, "Out")
		if len(l) != i+1 || readBody(t, ts, l[i].BodyID) != tc.want {
			t.Fatalf("CATENATE (%s) stored %q, want %q", tc.parts, readBody(t, ts, l[len(l)-1].BodyID), tc.want)
		}
	}
	// BADURL: wrong UIDVALIDITY, a missing UID or mailbox, another user,
	// another server, URLAUTH; the client that waits for "+" for the
	// literal after the URL gets the NO instead.
	for _, url := range []string{
		"/INBOX;UIDVALIDITY=1" + uv + "/;UID=1", "/INBOX/;UID=9", "/Nope/;UID=1",
		"imap://bob%40example.test@" + testHost + "/INBOX/;UID=1", "imap://other.example/INBOX/;UID=1",
		"/INBOX/;UID=1;URLAUTH=anonymous:internal:0123", "/INBOX", "http://x/",
	} {
		_, tagged := c.syncAppend(`APPEND Out CATENATE (URL "`+url+`" TEXT {4}`, "body)\r\n")
		if want := "NO [BADURL " + url + "]"; !strings.HasPrefix(tagged, want) {
			t.Fatalf("CATENATE URL %q: %q, want %q", url, tagged, want)
		}
	}
	// TOOBIG when the URL's data would pass MESSAGE_SIZE_LIMIT.
	c.expect(`APPEND Out CATENATE (TEXT `+lit(strings.Repeat("x", 990))+` URL "/INBOX/;UID=1")`, "NO [TOOBIG]")
	// Bob cannot name Alice's messages: his own INBOX has no UID 1.
	b := ts.login(bob, bobPass)
	b.expect(`APPEND INBOX CATENATE (URL "/INBOX/;UID=1")`, "NO [BADURL")
	// With MULTIAPPEND: both or neither.
	c.ok(`APPEND Out CATENATE (URL ";UID=1") ` + lit(orig))
	c.expect(`APPEND Out CATENATE (URL ";UID=1") CATENATE (URL ";UID=7")`, "NO [BADURL ;UID=7]")
	c.expect(`APPEND Nope CATENATE (URL ";UID=7")`, "NO [TRYCREATE]")
	c.ok("NOOP")
	l := listOf(t, ts, alice, "Out")
	if len(l) != 5 || readBody(t, ts, l[3].BodyID) != orig || readBody(t, ts, l[4].BodyID) != orig {
		t.Fatalf("Out has %d messages after the MULTIAPPEND tests, want 5", len(l))
	}
}

// binaryMessage has a base64 part, a quoted-printable part, one in an
// encoding Petrel does not know and a plain one.
const binaryMessage = "From: a@example.test\r\nMime-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	"aGVs bG8A\r\nd29y\r\nbGQ=\r\n" + // "hello\x00world"
	"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
	"caf=C3=A9 =\r\nau lait  \r\n" +
	"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n" +
	"--XX\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XX--\r\n"

func TestFetchBinary(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", binaryMessage)
	c := ts.login(alice, alicePass)
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " BINARY") {
		t.Fatalf("CAPABILITY %q lacks BINARY", caps)
	}
	c.ok("SELECT INBOX")
	cases := map[string]string{
		"BINARY.SIZE[1]":      "* 1 FETCH (BINARY.SIZE[1] 11)",
		"BINARY.PEEK[1]":      "* 1 FETCH (BINARY[1] ~{11}\r\nhello\x00world)", // NUL: literal8
		"BINARY.PEEK[1]<3.4>": "* 1 FETCH (BINARY[1]<3> ~{4}\r\nlo\x00w)",
		"BINARY.PEEK[1]<6.9>": "* 1 FETCH (BINARY[1]<6> {5}\r\nworld)",
		"BINARY.PEEK[2]":      "* 1 FETCH (BINARY[2] {13}\r\ncafé au lait)",
		"BINARY.SIZE[2]":      "* 1 FETCH (BINARY.SIZE[2] 13)",
		"BINARY.PEEK[4]":      "* 1 FETCH (BINARY[4] {5}\r\nplain)",
		"BINARY.PEEK[9]":      "* 1 FETCH (BINARY[9] {0}\r\n)",
		"BODY.PEEK[1]":        "* 1 FETCH (BODY[1] {21}\r\naGVs bG8A\r\nd29y\r\nbGQ=)",
	}
	for item, want := range cases {
		u := c.ok("FETCH 1 " + item)
		if len(u) != 1 || u[0] != want {
			t.Errorf("FETCH 1 %s: %q, want %q", item, u, want)
		}
	}
	if u := c.ok("FETCH 1 BINARY.PEEK[]"); len(u) != 1 || !strings.HasSuffix(u[0], binaryMessage+")") {
		t.Errorf("BINARY[] is not the message: %q", u)
	}
	// RFC 3516 4.3: an encoding Petrel cannot decode.
	c.expect("FETCH 1 BINARY.PEEK[3]", "NO [UNKNOWN-CTE]")
	c.expect("FETCH 1 BINARY.SIZE[3]", "NO [UNKNOWN-CTE]")
	// BINARY without PEEK sets \Seen; BINARY.SIZE does not.
	if u := c.ok("FETCH 1 BINARY.SIZE[2]"); strings.Contains(strings.Join(u, ""), `\Seen`) {
		t.Errorf("BINARY.SIZE set \\Seen: %q", u)
	}
	if u := c.ok("FETCH 1 BINARY[4]"); len(u) != 1 || !strings.Contains(u[0], `\Seen`) {
		t.Errorf("BINARY[4] did not report \\Seen: %q", u)
	}
}

// TestAppendLiteral8 appends a message with a NUL byte as literal8: it is
// kept as base64, BODY[1] has no NUL and BINARY[1] gives the bytes back.
func TestAppendLiteral8(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	msg := "From: a@example.test\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\r\n\r\n"
	_, tagged := c.syncAppend(fmt.Sprintf("APPEND INBOX ~{%d}", len(msg)), msg+"\r\n")
	if !strings.HasPrefix(tagged, "OK [APPENDUID") {
		t.Fatalf("literal8 APPEND: %q", tagged)
	}
	c.ok("SELECT INBOX")
	body := c.ok("FETCH 1 BODY.PEEK[]")
	if len(body) != 1 || strings.Contains(body[0], "\x00") || !strings.Contains(body[0], "Content-Transfer-Encoding: base64\r\n\r\nAC3kDQoNCg==") {
		t.Fatalf("BODY[] of a literal8 message: %q", body)
	}
	want := "* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n\x00-\xe4\r\n\r\n)"
	if u := c.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])"); len(u) != 1 || u[0] != want {
		t.Fatalf("BINARY of a literal8 message: %q, want %q", u, want)
	}
	// literal8 in CATENATE's TEXT is encoded the same way; a NUL in a
	// plain literal is BAD, and a NUL in a header cannot be stored.
	c.ok("APPEND INBOX CATENATE (TEXT " + lit("A: b\r\n\r\n") + " TEXT ~{2+}\r\n\x00x)")
	c.ok("NOOP")
	if u := c.ok("FETCH 2 BINARY.PEEK[1]"); len(u) != 1 || u[0] != "* 2 FETCH (BINARY[1] ~{2}\r\n\x00x)" {
		t.Fatalf("BINARY[1] of a CATENATE with literal8: %q", u)
	}
	c.expect("APPEND INBOX CATENATE (TEXT {5+}\r\nA: \x00\n)", "BAD")
	c.expect("APPEND INBOX ~{5+}\r\nA: \x00\n", "NO [UNKNOWN-CTE]")
}

// TestImaplibAppendExtensions speaks MULTIAPPEND, CATENATE and BINARY
// with Python's imaplib, an independent client (its literals inline as
// LITERAL+, since imaplib sends one literal per command).
func TestImaplibAppendExtensions(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", binaryMessage)
	one, two := testMessage("one"), testMessage("two")
	out := runPython(t, ts, `
out["caps"] = " ".join(sorted(m.capabilities))
m.create("Dst")
def lit(s): return "{%d+}\r\n%s" % (len(s), s)
out["multi"] = str(m._simple_command("APPEND", "Dst", lit(`+pyQuote(one)+`) + " " + lit(`+pyQuote(two)+`)))
out["uidplus"] = str(m.untagged_responses.get("APPENDUID"))
m.select("INBOX")
out["cat"] = str(m._simple_command("APPEND", "Dst", 'CATENATE (URL ";UID=1/;SECTION=HEADER" TEXT ' + lit("body\r\n") + ")"))
out["badurl"] = str(m._simple_command("APPEND", "Dst", 'CATENATE (URL "/INBOX/;UID=99")'))
typ, dat = m.fetch("1", "(BINARY.SIZE[1] BINARY.PEEK[1])")
out["binary"] = dat[0][0].decode("latin-1") + dat[0][1].decode("latin-1")
out["unknown"] = str(m.fetch("1", "(BINARY.PEEK[3])"))
m.select("Dst")
typ, dat = m.fetch("1:3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
out["subjects"] = " ".join(d[1].decode().strip() for d in dat if isinstance(d, tuple))
`)
	for _, c := range []string{"MULTIAPPEND", "CATENATE", "BINARY"} {
		if !strings.Contains(" "+out["caps"]+" ", " "+c+" ") {
			t.Errorf("imaplib capabilities %q lack %s", out["caps"], c)
		}
	}
	checks := map[string]string{
		"multi":    `('OK', [b'[APPENDUID `,
		"cat":      `('OK'`,
		"badurl":   `('NO', [b'[BADURL /INBOX/;UID=99]`,
		"binary":   "1 (BINARY.SIZE[1] 11 BINARY[1] ~{11}hello\x00world",
		"unknown":  `UNKNOWN-CTE`,
		"subjects": "Subject: one Subject: two",
	}
	for k, want := range checks {
		if !strings.Contains(out[k], want) {
			t.Errorf("imaplib %s: %q, want %q in it", k, out[k], want)
		}
	}
	if !strings.Contains(out["multi"], ` 1:2]`) {
		t.Errorf("imaplib MULTIAPPEND: %q, want APPENDUID with 1:2", out["multi"])
	}
}

// pyQuote is s as a Python string literal.
func pyQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", `\r`, "\n", `\n`).Replace(s) + `"`
}

func TestParseIMAPURL(t *testing.T) {
	for _, tc := range []struct {
		raw, base string
		ok        bool
		want      string // mailbox uidvalidity uid section partial
	}{
		{"/INBOX;UIDVALIDITY=5/;UID=3", "", true, "INBOX 5 3  <nil>"},
		{"/inbox/;uid=3/;section=1.MIME", "", true, "INBOX 0 3 1.MIME <nil>"},
		{"/Archive%2F2020/;UID=7/;SECTION=HEADER.FIELDS%20(From)/;PARTIAL=10.20", "", true, "Archive/2020 0 7 HEADER.FIELDS (From) 10.20"},
		{"/a/b;UIDVALIDITY=1/;UID=2/;PARTIAL=4", "", true, "a/b 1 2  4.9223372036854775807"},
		{";UID=9/;SECTION=TEXT", "Sent", true, "Sent 0 9 TEXT <nil>"},
		{"imap://u%40x@host:143/INBOX/;UID=1", "", true, "INBOX 0 1  <nil>"},
		{";UID=9", "", false, ""},
		{"/INBOX", "", false, ""},
		{"/INBOX/;UID=0", "", false, ""},
		{"/INBOX/;UID=01", "", false, ""},
		{"/INBOX/;UID=1;EXPIRE=2026-01-01T00:00:00Z", "", false, ""},
		{"/INBOX/;UID=1/;URLAUTH=anonymous:internal:00", "", false, ""},
		{"/INBOX/;UID=1/;SECTION=", "", false, ""},
		{"/INBOX/;UID=1/;SECTION=1/;SECTION=2", "", false, ""},
		{"/INBOX/;UID=1/;PARTIAL=1.0", "", false, ""},
		{"/IN%ZZBOX/;UID=1", "", false, ""},
		{"/;UID=1", "", false, ""},
		{"imap:///INBOX/;UID=1", "", false, ""},
		{"http://host/INBOX/;UID=1", "", false, ""},
	} {
		u, ok := parseIMAPURL(tc.raw, tc.base)
		if ok != tc.ok {
			t.Errorf("parseIMAPURL(%q) ok = %v, want %v", tc.raw, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		partial := "<nil>"
		if u.partial != nil {
			partial = fmt.Sprintf("%d.%d", u.partial.Offset, u.partial.Count)
		}
		got := fmt.Sprintf("%s %d %d %s %s", u.mailbox, u.uidValidity, u.uid, u.section, partial)
		if got != tc.want {
			t.Errorf("parseIMAPURL(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// FuzzParseIMAPURL: a URL that parses names one message of a mailbox.
func FuzzParseIMAPURL(f *testing.F) {
	for _, s := range []string{"/INBOX;UIDVALIDITY=5/;UID=3/;SECTION=1/;PARTIAL=0.5", ";UID=1", "imap://a@b/c/;UID=2", "/%41/;uid=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, ok := parseIMAPURL(raw, "Base")
		if ok && (u.uid == 0 || u.mailbox == "" || (u.partial != nil && u.partial.Count == 0)) {
			t.Fatalf("parseIMAPURL(%q) = %+v", raw, u)
		}
	})
}
