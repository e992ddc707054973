package imapd

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// uidValidity returns the UIDVALIDITY a SELECT reported.
func uidValidityOf(t *testing.T, resps []string) uint32 {
	t.Helper()
	for _, r := range resps {
		if m := regexp.MustCompile(`^\* OK \[UIDVALIDITY (\d+)\]`).FindStringSubmatch(r); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 32)
			return uint32(n)
		}
	}
	t.Fatalf("no UIDVALIDITY in %q", resps)
	return 0
}

func highestModSeqOf(t *testing.T, resps []string) uint64 {
	t.Helper()
	for _, r := range resps {
		if m := regexp.MustCompile(`^\* OK \[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(r); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no HIGHESTMODSEQ in %q", resps)
	return 0
}

func TestSelectExamine(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"))
	c := ts.login(alice, alicePass)
	c.expect("CLOSE", "BAD")
	// The first session to select INBOX: all three are \Recent to it
	// (RFC 3501 2.3.2, 6.3.1).
	u, tagged := c.cmd("SELECT INBOX")
	if tagged != "OK [READ-WRITE] SELECT completed" {
		t.Fatalf("SELECT: %q", tagged)
	}
	for _, want := range []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)]`,
		"* 3 EXISTS", "* 3 RECENT", "* OK [UNSEEN 1]", "* OK [UIDVALIDITY ", "* OK [UIDNEXT 4]", "* OK [HIGHESTMODSEQ ",
	} {
		mustHave(t, u, want)
	}
	c.expect("SELECT Nope", "NO [NONEXISTENT]")
	// A failed SELECT leaves the Selected state (RFC 9051 6.3.2).
	c.expect("STORE 1 +FLAGS (\\Seen)", "BAD")

	_, tagged = c.cmd("EXAMINE INBOX")
	if tagged != "OK [READ-ONLY] EXAMINE completed" {
		t.Fatalf("EXAMINE: %q", tagged)
	}
	c.expect(`STORE 1 +FLAGS (\Seen)`, "NO")
	c.expect("EXPUNGE", "NO")
	c.ok("UNSELECT")
	c.expect("UNSELECT", "BAD")

	// IMAP4rev2: no RECENT, OK [CLOSED] when switching.
	c.ok("ENABLE IMAP4rev2")
	c.ok("SELECT INBOX")
	u = c.ok("SELECT Sent")
	for _, r := range u {
		if strings.HasSuffix(r, " RECENT") {
			t.Fatalf("RECENT in an IMAP4rev2 session: %q", u)
		}
	}
	if !strings.HasPrefix(u[0], "* OK [CLOSED]") {
		t.Fatalf("rev2 reselect: %q", u)
	}
	mustHave(t, u, "* 0 EXISTS")
	mustHave(t, u, `* LIST (\HasNoChildren \Sent) "/" Sent`)
}

func TestStore(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"))
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX") // the first to select it: all are \Recent to c
	u := c.ok(`STORE 1:2 +FLAGS (\Seen $Important)`)
	if !slices.Equal(u, []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important \*)] Flags permitted`,
		`* 1 FETCH (UID 1 FLAGS (\Seen $Important \Recent))`,
		`* 2 FETCH (UID 2 FLAGS (\Seen $Important \Recent))`,
	}) {
		t.Fatalf("+FLAGS: %q", u)
	}
	u = c.ok(`STORE 2 -FLAGS.SILENT ($Important)`)
	if len(u) != 0 {
		t.Fatalf(".SILENT: %q", u)
	}
	u = c.ok(`UID STORE 3 FLAGS \Flagged \Draft`)
	if !slices.Equal(u, []string{`* 3 FETCH (UID 3 FLAGS (\Flagged \Draft \Recent))`}) {
		t.Fatalf("UID STORE: %q", u)
	}
	c.expect(`STORE 9 +FLAGS (\Seen)`, "BAD")
	c.expect(`STORE 1 +FLAGS (\Bogus)`, "BAD")
	c.expect(`STORE 1 FROBS (\Seen)`, "BAD")
	msgs := listOf(t, ts, alice, "INBOX")
	if !hasFlag(msgs[0].Flags, `\Seen`) || !hasFlag(msgs[0].Flags, "$Important") || hasFlag(msgs[1].Flags, "$Important") ||
		!hasFlag(msgs[2].Flags, `\Draft`) || hasFlag(msgs[2].Flags, `\Seen`) {
		t.Fatalf("stored flags: %+v", msgs)
	}

	// CONDSTORE: MODSEQ in FETCH responses, UNCHANGEDSINCE.
	c.ok("ENABLE CONDSTORE")
	u = c.ok(`STORE 1 +FLAGS (\Answered)`)
	if len(u) != 1 || !regexp.MustCompile(`^\* 1 FETCH \(UID 1 FLAGS \(.*\\Answered.*\) MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf("CONDSTORE STORE: %q", u)
	}
	_, tagged := c.cmd(`STORE 1:2 (UNCHANGEDSINCE 1) +FLAGS (\Flagged)`)
	if !strings.HasPrefix(tagged, "OK [MODIFIED 1:2]") {
		t.Fatalf("UNCHANGEDSINCE: %q", tagged)
	}
	u, tagged = c.cmd(`UID STORE 3 (UNCHANGEDSINCE 0) +FLAGS (\Flagged)`)
	if !strings.HasPrefix(tagged, "OK [MODIFIED 3]") || len(u) != 0 {
		t.Fatalf("UNCHANGEDSINCE 0: %q %q", u, tagged)
	}
	u = c.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	if len(u) != 1 || !regexp.MustCompile(`^\* 2 FETCH \(UID 2 MODSEQ \(\d+\)\)$`).MatchString(u[0]) {
		t.Fatalf(".SILENT with CONDSTORE: %q", u)
	}
}

func TestCopyMoveExpunge(t *testing.T) {
	ts := startServer(t, nil)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"), testMessage("four"))
	c := ts.login(alice, alicePass)
	uv := uidValidityOf(t, c.ok("SELECT Trash"))
	c.ok("SELECT INBOX")
	_, tagged := c.cmd("COPY 2:3 Trash")
	if want := fmt.Sprintf("OK [COPYUID %d 2:3 1:2] COPY completed", uv); tagged != want {
		t.Fatalf("COPY: %q, want %q", tagged, want)
	}
	c.expect("COPY 1 Nope", "NO [TRYCREATE]")
	c.expect("COPY 7 Trash", "BAD")

	u := c.ok("UID MOVE 1,4 Trash")
	if !slices.Equal(u, []string{
		fmt.Sprintf("* OK [COPYUID %d 1,4 3:4] Moved", uv),
		"* 1 EXPUNGE",
		"* 3 EXPUNGE",
	}) {
		t.Fatalf("MOVE: %q", u)
	}
	if n := len(listOf(t, ts, alice, "Trash")); n != 4 {
		t.Fatalf("Trash has %d messages", n)
	}
	// INBOX now has UIDs 2 and 3 as 1 and 2.
	c.ok(`STORE 1:2 +FLAGS.SILENT (\Deleted)`)
	u = c.ok("UID EXPUNGE 3")
	if !slices.Equal(u, []string{"* 2 EXPUNGE"}) {
		t.Fatalf("UID EXPUNGE: %q", u)
	}
	u = c.ok("EXPUNGE")
	if !slices.Equal(u, []string{"* 1 EXPUNGE"}) {
		t.Fatalf("EXPUNGE: %q", u)
	}
	if n := len(listOf(t, ts, alice, "INBOX")); n != 0 {
		t.Fatalf("INBOX has %d messages", n)
	}

	// CLOSE expunges silently; QRESYNC turns EXPUNGE into VANISHED.
	c.ok("SELECT Trash")
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	u = c.ok("CLOSE")
	if len(u) != 0 {
		t.Fatalf("CLOSE: %q", u)
	}
	if n := len(listOf(t, ts, alice, "Trash")); n != 3 {
		t.Fatalf("Trash has %d messages after CLOSE", n)
	}
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT Trash")
	c.ok(`STORE 1:2 +FLAGS.SILENT (\Deleted)`)
	u = c.ok("EXPUNGE")
	if !slices.Equal(u, []string{"* VANISHED 2:3"}) {
		t.Fatalf("EXPUNGE with QRESYNC: %q", u)
	}
}

func TestAppend(t *testing.T) {
	ts := startServer(t, func(_ *testServer, o *Options) { o.MaxMessageSize = 1000 })
	c := ts.login(alice, alicePass)
	uv := uidValidityOf(t, c.ok("EXAMINE Drafts"))
	c.ok("UNSELECT")
	msg := testMessage("draft")

	// A synchronizing literal.
	c.send(fmt.Sprintf("a1 APPEND Drafts (\\Draft \\Seen) \" 7-Feb-1994 21:52:25 -0800\" {%d}\r\n", len(msg)))
	if r := c.read(); !strings.HasPrefix(r, "+ ") {
		t.Fatalf("continuation: %q", r)
	}
	c.send(msg + "\r\n")
	_, tagged := c.collect("a1")
	if want := fmt.Sprintf("OK [APPENDUID %d 1] APPEND completed", uv); tagged != want {
		t.Fatalf("APPEND: %q, want %q", tagged, want)
	}
	// LITERAL+.
	c.send(fmt.Sprintf("a2 APPEND Drafts {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := c.collect("a2"); tagged != fmt.Sprintf("OK [APPENDUID %d 2] APPEND completed", uv) {
		t.Fatalf("APPEND LITERAL+: %q", tagged)
	}
	msgs := listOf(t, ts, alice, "Drafts")
	if len(msgs) != 2 || !hasFlag(msgs[0].Flags, `\Draft`) || !hasFlag(msgs[0].Flags, `\Seen`) ||
		!msgs[0].InternalDate.Equal(time.Date(1994, 2, 8, 5, 52, 25, 0, time.UTC)) || msgs[0].Size != int64(len(msg)) {
		t.Fatalf("appended: %+v", msgs)
	}
	body := readBody(t, ts, msgs[1].BodyID)
	if body != msg {
		t.Fatalf("body %q", body)
	}

	// A missing mailbox: TRYCREATE before the literal is sent.
	c.send("a3 APPEND Nope {5}\r\n")
	if _, tagged := c.collect("a3"); !strings.HasPrefix(tagged, "NO [TRYCREATE]") {
		t.Fatalf("TRYCREATE: %q", tagged)
	}
	// Too big: TOOBIG, also for a non-synchronizing literal that is
	// then skipped.
	c.send("a4 APPEND Drafts {2000}\r\n")
	if _, tagged := c.collect("a4"); !strings.HasPrefix(tagged, "NO [TOOBIG]") {
		t.Fatalf("TOOBIG: %q", tagged)
	}
	c.send("a5 APPEND Drafts {1001+}\r\n" + strings.Repeat("x", 1001) + "\r\n")
	if _, tagged := c.collect("a5"); !strings.HasPrefix(tagged, "NO [TOOBIG]") {
		t.Fatalf("TOOBIG LITERAL+: %q", tagged)
	}
	c.ok("NOOP") // the session is in step

	// Quota.
	usr, err := ts.st.GetUser(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	usr.QuotaBytes = int64(2*len(msg) + 10)
	if err := ts.st.UpdateUser(t.Context(), usr); err != nil {
		t.Fatal(err)
	}
	c.send(fmt.Sprintf("a6 APPEND Drafts {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := c.collect("a6"); !strings.HasPrefix(tagged, "NO [OVERQUOTA]") {
		t.Fatalf("OVERQUOTA: %q", tagged)
	}

	// APPEND to the selected mailbox shows up as EXISTS, and as \Recent
	// to this session, which selected Drafts first (RFC 3501 2.3.2).
	usr.QuotaBytes = 0
	if err := ts.st.UpdateUser(t.Context(), usr); err != nil {
		t.Fatal(err)
	}
	c.ok("SELECT Drafts")
	c.send(fmt.Sprintf("a7 APPEND Drafts {%d+}\r\n%s\r\n", len(msg), msg))
	u, tagged := c.collect("a7")
	if !strings.HasPrefix(tagged, "OK [APPENDUID") || !slices.Equal(u, []string{"* 3 EXISTS", "* 3 RECENT"}) {
		t.Fatalf("APPEND to selected: %q %q", u, tagged)
	}
}
