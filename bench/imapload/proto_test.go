package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestLiteralSize(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {4096}", 4096, true},
		{"* 1 FETCH (BODY[] {12+}", 12, true},
		{"* 1 FETCH (BINARY[] ~{0}", 0, true},
		{"* 1 FETCH (FLAGS (\\Seen))", 0, false},
		{"{}", 0, false},
		{"{+}", 0, false},
		{"{12a}", 0, false},
		{"{-1}", 0, false},
		{"{1234567890123456789}", 0, false},
		{"}", 0, false},
		{"* OK {5", 0, false},
	} {
		n, ok := literalSize([]byte(tc.line))
		if n != tc.n || ok != tc.ok {
			t.Errorf("literalSize(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}

func TestParseTagged(t *testing.T) {
	for _, tc := range []struct {
		line, tag  string
		cond, text string
		ok         bool
	}{
		{"a1 OK LOGIN completed", "a1", "OK", "LOGIN completed", true},
		{"a1 no [AUTHENTICATIONFAILED] bad", "a1", "NO", "[AUTHENTICATIONFAILED] bad", true},
		{"a12 OK done", "a1", "", "", false},
		{"* OK still here", "a1", "", "", false},
		{"a1", "a1", "", "", false},
		{"a1 BAD", "a1", "BAD", "", true},
	} {
		st, ok := parseTagged([]byte(tc.line), tc.tag)
		if ok != tc.ok || st.cond != tc.cond || st.text != tc.text {
			t.Errorf("parseTagged(%q, %q) = %+v, %v", tc.line, tc.tag, st, ok)
		}
	}
}

// TestReadUntil feeds a server transcript with literals spanning several
// lines and checks the untagged responses, their literal bytes and the
// status.
func TestReadUntil(t *testing.T) {
	lit := strings.Repeat("x", 70000) // larger than the reader's buffer
	in := "* 1 FETCH (UID 7 BODY[] {5}\r\nab\r\nc)\r\n" +
		"* 2 FETCH (UID 9 BODY[HEADER.FIELDS (SUBJECT)] {3}\r\nS\r\n BODY[TEXT] {70000}\r\n" + lit + ")\r\n" +
		"* 3 EXISTS\r\n" +
		"a1 OK FETCH done\r\n"
	c := &conn{r: bufio.NewReaderSize(strings.NewReader(in), 4096)}
	var got []string
	var lits []int64
	st, n, err := c.readUntil("a1", func(u untagged) {
		got = append(got, string(u.line))
		lits = append(lits, u.litBytes)
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.cond != "OK" || n != int64(len(in)) {
		t.Errorf("status %+v, %d bytes; want OK, %d", st, n, len(in))
	}
	want := []string{"* 1 FETCH (UID 7 BODY[] {5}", "* 2 FETCH (UID 9 BODY[HEADER.FIELDS (SUBJECT)] {3}", "* 3 EXISTS"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("untagged %q, want %q", got, want)
	}
	if len(lits) != 3 || lits[0] != 5 || lits[1] != 70003 || lits[2] != 0 {
		t.Errorf("literal bytes %v", lits)
	}
	if v, ok := parseFetchUID([]byte(got[1])); !ok || v != 9 {
		t.Errorf("parseFetchUID = %d, %v", v, ok)
	}
	if v, ok := parseExists([]byte(got[2])); !ok || v != 3 {
		t.Errorf("parseExists = %d, %v", v, ok)
	}
}

func TestReadUntilTruncated(t *testing.T) {
	c := &conn{r: bufio.NewReader(strings.NewReader("* 1 FETCH (BODY[] {50}\r\nshort"))}
	if _, _, err := c.readUntil("a1", nil); err == nil {
		t.Fatal("a literal cut short was not an error")
	}
}

func TestParseFetchUIDAndSearch(t *testing.T) {
	for _, tc := range []struct {
		line string
		uid  int64
		ok   bool
	}{
		{"* 5 FETCH (UID 123 FLAGS (\\Seen))", 123, true},
		{"* 5 FETCH (FLAGS (\\Seen) UID 44)", 44, true},
		{"* 5 FETCH (XUID 3 UID 4)", 4, true},
		{"* 5 FETCH (FLAGS ())", 0, false},
		{"* 5 EXPUNGE", 0, false},
		{"* 5 FETCH (UID x)", 0, false},
	} {
		v, ok := parseFetchUID([]byte(tc.line))
		if v != tc.uid || ok != tc.ok {
			t.Errorf("parseFetchUID(%q) = %d, %v", tc.line, v, ok)
		}
	}
	if n := searchCount([]byte("* SEARCH 1 2 3")); n != 3 {
		t.Errorf("searchCount = %d", n)
	}
	if n := searchCount([]byte("* SEARCH")); n != 0 {
		t.Errorf("empty searchCount = %d", n)
	}
}

func TestMessageAndSpread(t *testing.T) {
	m := message(42, 4096, "n", "user1@example.test")
	if len(m) != 4096 || !bytes.HasSuffix(m, []byte("\r\n")) || !bytes.Contains(m, []byte("Subject: Bench message 42 about topic 42\r\n")) {
		t.Errorf("message: %d bytes, %q...", len(m), m[:80])
	}
	u := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if s := spread(u, 5); len(s) != 5 || s[0] != 1 || s[4] != 9 {
		t.Errorf("spread = %v", s)
	}
	if s := spread(u, 20); len(s) != 10 {
		t.Errorf("spread = %v", s)
	}
}

// FuzzReadUntil: whatever the server sends, reading responses ends (with
// a status or an error) and never panics.
func FuzzReadUntil(f *testing.F) {
	f.Add([]byte("* 1 FETCH (BODY[] {3}\r\nabc)\r\na1 OK done\r\n"))
	f.Add([]byte("* 1 FETCH (UID 7 FLAGS ())\r\n* SEARCH 1 2\r\na1 NO x\r\n"))
	f.Add([]byte("* 1 FETCH {99999999999}\r\n"))
	f.Add([]byte("+ go\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &conn{r: bufio.NewReaderSize(bytes.NewReader(in), 16)}
		_, n, err := c.readUntil("a1", func(u untagged) {
			parseFetchUID(u.line)
			parseExists(u.line)
			searchCount(u.line)
		})
		if err == nil && n > int64(len(in)) {
			t.Fatalf("read %d bytes of %d", n, len(in))
		}
	})
}
