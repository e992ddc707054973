package imapd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
)

// appendMessage APPENDs msg with flags and an internal date (LITERAL+).
func appendMessage(t *testing.T, c *client, flags, date, msg string) {
	t.Helper()
	c.ok(fmt.Sprintf("APPEND INBOX (%s) \"%s\" {%d+}\r\n%s", flags, date, len(msg), msg))
}

// searchMailbox fills alice's INBOX with six varied messages (UIDs 1-6).
func searchMailbox(t *testing.T) (*testServer, *client) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	appendMessage(t, c, `\Seen \Flagged $Forwarded`, " 8-Feb-1994 01:00:00 +0100", sampleMessage(t, "plain.eml"))
	appendMessage(t, c, "", "15-Mar-2022 09:00:00 +0000", sampleMessage(t, "alternative.eml"))
	appendMessage(t, c, `\Answered \Draft \Deleted`, "18-Mar-2022 00:00:00 +0000", sampleMessage(t, "encoded-words.eml"))
	appendMessage(t, c, "", "17-Mar-2022 00:00:00 +0000", sampleMessage(t, "nested-rfc822.eml"))
	appendMessage(t, c, "", "19-Mar-2022 00:00:00 +0000", sampleMessage(t, "8bit.eml"))
	appendMessage(t, c, "", " 1-Jun-2021 12:00:00 +0000", sampleMessage(t, "missing-headers.eml"))
	c.ok("SELECT INBOX")
	return ts, c
}

// searchResult runs a search and returns the numbers of its SEARCH response.
func searchResult(t *testing.T, c *client, cmd string) string {
	t.Helper()
	u := c.ok(cmd)
	var found []string
	for _, r := range u {
		if strings.HasPrefix(r, "* SEARCH") {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want one SEARCH response, got %q", cmd, u)
	}
	return strings.TrimSpace(strings.TrimPrefix(found[0], "* SEARCH"))
}

func TestSearchEveryKey(t *testing.T) {
	ts, c := searchMailbox(t)
	_ = ts
	tests := []struct {
		criteria string
		want     string
	}{
		{"ALL", "1 2 3 4 5 6"},
		{"ANSWERED", "3"},
		{"UNANSWERED", "1 2 4 5 6"},
		{"DELETED", "3"},
		{"UNDELETED", "1 2 4 5 6"},
		{"DRAFT", "3"},
		{"UNDRAFT", "1 2 4 5 6"},
		{"FLAGGED", "1"},
		{"UNFLAGGED", "2 3 4 5 6"},
		{"SEEN", "1"},
		{"UNSEEN", "2 3 4 5 6"},
		{"KEYWORD $forwarded", "1"},
		{"UNKEYWORD $Forwarded", "2 3 4 5 6"},
		// The session is the first to select the mailbox: all are \Recent.
		{"RECENT", "1 2 3 4 5 6"},
		{"NEW", "2 3 4 5 6"},
		{"OLD", ""},
		{"ON 8-Feb-1994", "1"},
		{"BEFORE 15-Mar-2022", "1 6"},
		{"SINCE 18-Mar-2022", "3 5"},
		{`SINCE "17-Mar-2022" BEFORE 18-Mar-2022`, "4"},
		{"SENTON 7-Feb-1994", "1"},
		{"SENTBEFORE 16-Mar-2022", "1 2 6"},
		{"SENTSINCE 17-Mar-2022", "3 4 5"},
		{"LARGER 800", "2 4"},
		{"SMALLER 100", "6"},
		{"FROM ALICE", "1"},
		{`FROM "andré"`, "3"},
		{`SUBJECT "lunch on"`, "1"},
		{`SUBJECT "grüße"`, "5"},
		{"TO carol", "1"},
		{"CC dave", "1"},
		{`BCC "a group"`, "3"},
		{"HEADER Reply-To reports", "2"},
		{`HEADER In-Reply-To ""`, "2 3"},
		{"BODY tuesday", "1"},
		{`BODY "café at 10"`, "2"},
		{`BODY "crème brûlée"`, "3"},
		{`BODY "inner html"`, "4"},
		{"BODY lunch", "1"},
		{"TEXT lunch", "1"},
		{`TEXT "body only"`, "6"},
		{"UID 2:4", "2 3 4"},
		{"UID 5:*", "5 6"},
		{"2,4:5", "2 4 5"},
		{"*", "6"},
		{"5:*", "5 6"},
		{"NOT SEEN", "2 3 4 5 6"},
		{"OR SEEN DRAFT", "1 3"},
		{`OR (SEEN FLAGGED) (UID 6 BODY "body only")`, "1 6"},
		{"NOT (OR FROM alice FROM bob) UNSEEN", "2 3 4 5 6"},
		{"undeleted unseen larger 500 since 1-Jan-2022", "2 4"},
	}
	for _, tc := range tests {
		if got := searchResult(t, c, "SEARCH "+tc.criteria); got != tc.want {
			t.Errorf("SEARCH %s = %q, want %q", tc.criteria, got, tc.want)
		}
		// UIDs are 1-6 too, so UID SEARCH gives the same numbers.
		if got := searchResult(t, c, "UID SEARCH CHARSET UTF-8 "+tc.criteria); got != tc.want {
			t.Errorf("UID SEARCH %s = %q, want %q", tc.criteria, got, tc.want)
		}
	}
}

func TestSearchArguments(t *testing.T) {
	_, c := searchMailbox(t)
	// Strings as literals: synchronizing (with the continuation request)
	// and LITERAL+.
	c.send("L1 SEARCH CHARSET UTF-8 SUBJECT {7}\r\n") // 7 octets of UTF-8
	if r := c.read(); !strings.HasPrefix(r, "+ ") {
		t.Fatalf("continuation: %q", r)
	}
	c.send("grüße\r\n")
	u, tagged := c.collect("L1")
	if !strings.HasPrefix(tagged, "OK") || len(u) != 1 || u[0] != "* SEARCH 5" {
		t.Errorf("literal search: %q %q", u, tagged)
	}
	if got := searchResult(t, c, "SEARCH BODY {7+}\r\nTUESDAY UNSEEN"); got != "" {
		t.Errorf("LITERAL+ BODY TUESDAY UNSEEN: %q", got)
	}
	if got := searchResult(t, c, "SEARCH BODY {7+}\r\nTUESDAY SEEN"); got != "1" {
		t.Errorf("LITERAL+ BODY TUESDAY SEEN: %q", got)
	}

	c.expect("SEARCH CHARSET ISO-8859-1 BODY x", "NO [BADCHARSET (UTF-8 US-ASCII)]")
	if got := searchResult(t, c, "SEARCH CHARSET us-ascii SEEN"); got != "1" {
		t.Errorf("CHARSET us-ascii: %q", got)
	}
	for _, bad := range []string{
		"SEARCH", "SEARCH FOO", "SEARCH (SEEN", "SEARCH SEEN)", "SEARCH RETURN (FOO) ALL", "SEARCH RETURN (PARTIAL 1:*) ALL", "SEARCH RETURN (MIN",
		"SEARCH BEFORE 1-Foo-2020", "SEARCH CHARSET", "UID SEARCH UID x", "SEARCH LARGER", `SEARCH "SEEN"`,
		"SEARCH 0", "SEARCH NOT", "SEARCH HEADER Subject", "SEARCH FROM andré", // 8-bit only in strings
	} {
		c.expect(bad, "BAD")
	}
}

func TestSearchESEARCH(t *testing.T) {
	_, c := searchMailbox(t)
	tests := []struct{ cmd, want string }{
		{"SEARCH RETURN (MIN MAX COUNT) UNSEEN", `* ESEARCH (TAG "A%03d") MIN 2 MAX 6 COUNT 5`},
		{"SEARCH RETURN () UNSEEN", `* ESEARCH (TAG "A%03d") ALL 2:6`},
		{"SEARCH RETURN (ALL) OR SEEN UID 3:4", `* ESEARCH (TAG "A%03d") ALL 1,3:4`},
		{"UID SEARCH RETURN (COUNT ALL) SEEN", `* ESEARCH (TAG "A%03d") UID ALL 1 COUNT 1`},
		{"UID SEARCH RETURN (MIN MAX COUNT) KEYWORD nothing", `* ESEARCH (TAG "A%03d") UID COUNT 0`},
		{"SEARCH RETURN (MIN) CHARSET UTF-8 FROM forwarder", `* ESEARCH (TAG "A%03d") MIN 4`},
	}
	for _, tc := range tests {
		u := c.ok(tc.cmd)
		want := fmt.Sprintf(tc.want, c.n)
		if len(u) != 1 || u[0] != want {
			t.Errorf("%s: %q, want %q", tc.cmd, u, want)
		}
	}
	// IMAP4rev2: SEARCH answers ESEARCH (RFC 9051 7.3.4).
	c.ok("ENABLE IMAP4rev2")
	u := c.ok("SEARCH FLAGGED")
	if want := fmt.Sprintf(`* ESEARCH (TAG "A%03d") ALL 1`, c.n); len(u) != 1 || u[0] != want {
		t.Errorf("rev2 SEARCH: %q, want %q", u, want)
	}
	u = c.ok("UID SEARCH KEYWORD nothing")
	if want := fmt.Sprintf(`* ESEARCH (TAG "A%03d") UID`, c.n); len(u) != 1 || u[0] != want {
		t.Errorf("rev2 empty UID SEARCH: %q, want %q", u, want)
	}
}

func TestSearchModSeq(t *testing.T) {
	_, c := searchMailbox(t)
	c.ok(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	// SEARCH MODSEQ enables CONDSTORE (RFC 7162 3.1) and reports the
	// highest modseq of what it found (3.1.5).
	u := c.ok("SEARCH MODSEQ 1")
	mustHave(t, u, "* OK [HIGHESTMODSEQ ")
	mustHave(t, u, "* SEARCH 1 2 3 4 5 6 (MODSEQ ")
	u = c.ok("FETCH 1:* (MODSEQ)")
	re := regexp.MustCompile(`^\* (\d) FETCH \(MODSEQ \((\d+)\)\)$`)
	modseq := map[string]string{}
	for _, r := range u {
		if m := re.FindStringSubmatch(r); m != nil {
			modseq[m[1]] = m[2]
		}
	}
	if len(modseq) != 6 {
		t.Fatalf("modseqs: %q", u)
	}
	high := modseq["2"] // the STORE came last
	if got := searchResult(t, c, "SEARCH MODSEQ "+high); got != "2 (MODSEQ "+high+")" {
		t.Errorf("SEARCH MODSEQ %s = %q", high, got)
	}
	if got := searchResult(t, c, `SEARCH MODSEQ "/flags/\\Flagged" all `+high); got != "2 (MODSEQ "+high+")" {
		t.Errorf("SEARCH MODSEQ with an entry = %q", got)
	}
	if got := searchResult(t, c, "SEARCH MODSEQ 99999999"); got != "" {
		t.Errorf("SEARCH MODSEQ in the future = %q (no MODSEQ when nothing matched)", got)
	}
	u = c.ok("UID SEARCH RETURN (MAX) MODSEQ 1")
	if want := fmt.Sprintf(`* ESEARCH (TAG "A%03d") UID MAX 6 MODSEQ %s`, c.n, modseq["6"]); len(u) != 1 || u[0] != want {
		t.Errorf("ESEARCH MODSEQ: %q, want %q", u, want)
	}
	// Without a MODSEQ key there is no MODSEQ in the answer.
	if got := searchResult(t, c, "SEARCH FLAGGED"); got != "1 2" {
		t.Errorf("SEARCH FLAGGED = %q", got)
	}
}

// TestSearchExpungedElsewhere: messages expunged by another session but
// not yet reported keep their numbers and, once their bodies are gone
// (the store releases them in the background), are not found.
func TestSearchExpungedElsewhere(t *testing.T) {
	ts, c := searchMailbox(t)
	third := listOf(t, ts, alice, "INBOX")[2]
	c2 := ts.login(alice, alicePass)
	c2.ok("SELECT INBOX")
	c2.ok("EXPUNGE") // message 3 has \Deleted
	waitBodyGone(t, ts, third.BodyID)
	u := c.ok("SEARCH TEXT example")
	mustHave(t, u, "* SEARCH 1 2 4 5")
	mustNotHave(t, u, "* 3 EXPUNGE") // not during SEARCH (RFC 9051 7.4.1)
	u = c.ok("UID SEARCH ALL")
	mustHave(t, u, "* 3 EXPUNGE")
	mustHave(t, u, "* SEARCH 1 2 4 5 6")
}

// FuzzSearchArgs feeds arbitrary criteria through the wire tokenizer and
// the search parser; what parses must match without error.
func FuzzSearchArgs(f *testing.F) {
	for _, s := range []string{
		"ALL", `OR (FROM a NOT TO b) UID 4:* SINCE 1-Jan-2020`, `HEADER X "y"`, "SUBJECT {3}\r\nabc",
		`MODSEQ "/flags/\\Seen" all 7`, "1:3,5 BODY x TEXT y LARGER 5", "NOT NOT (SEEN UNSEEN)",
	} {
		f.Add(s)
	}
	msg := []byte("From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")
	f.Fuzz(func(t *testing.T, args string) {
		d := newDecoder(bufio.NewReader(strings.NewReader(args+"\r\n")), 4096, 4096)
		toks := searchTokens(d)
		if d.End() != nil {
			return
		}
		key, err := imapmsg.ParseSearch(toks)
		if err != nil {
			return
		}
		key.Resolve(3, 30)
		st := imapmsg.ParseBytes(msg)
		if _, err := imapmsg.Match(key, &fuzzView{msg: msg, st: st}); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	})
}

// fuzzView is a message for FuzzSearchArgs.
type fuzzView struct {
	msg []byte
	st  *imapmsg.Structure
}

func (v *fuzzView) SeqNum() uint32          { return 2 }
func (v *fuzzView) UID() uint32             { return 20 }
func (v *fuzzView) Flags() []string         { return []string{`\Seen`} }
func (v *fuzzView) Size() int64             { return int64(len(v.msg)) }
func (v *fuzzView) InternalDate() time.Time { return time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) }
func (v *fuzzView) ModSeq() uint64          { return 5 }
func (v *fuzzView) Header() ([]byte, error) { return v.msg[:v.st.Root.BodyOffset], nil }
func (v *fuzzView) Content() (io.ReaderAt, *imapmsg.Structure, error) {
	return bytes.NewReader(v.msg), v.st, nil
}
