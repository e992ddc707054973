package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// sixMessages starts a server with six messages (UIDs 1-6, subjects
// s1-s6) in alice's INBOX and a client with INBOX selected.
func sixMessages(t *testing.T) (*testServer, *client) {
	t.Helper()
	ts := startServer(t, nil)
	for i := 1; i <= 6; i++ {
		deliver(t, ts.st, alice, "INBOX", testMessage(fmt.Sprintf("s%d", i)))
	}
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	return ts, c
}

// nextTag is the tag of the client's next command.
func nextTag(c *client) string { return fmt.Sprintf("A%03d", c.n+1) }

// fetchedUIDs runs a FETCH and returns "seq:uid" of its responses.
func fetchedUIDs(t *testing.T, c *client, cmd string) string {
	t.Helper()
	var got []string
	for _, r := range c.ok(cmd) {
		var q, u int
		if n, _ := fmt.Sscanf(r, "* %d FETCH (UID %d", &q, &u); n == 2 {
			got = append(got, fmt.Sprintf("%d:%d", q, u))
		}
	}
	return strings.Join(got, " ")
}

func TestSearchResSaveAndUse(t *testing.T) {
	ts, c := sixMessages(t)
	u := c.ok("SEARCH RETURN (SAVE) OR SUBJECT s2 SUBJECT s4")
	mustNotHave(t, u, "* ESEARCH") // SAVE alone answers nothing (RFC 5182 1)
	mustNotHave(t, u, "* SEARCH")
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "2:2 4:4" {
		t.Errorf("FETCH $: %q", got)
	}
	if got := fetchedUIDs(t, c, "UID FETCH $ (FLAGS)"); got != "2:2 4:4" {
		t.Errorf("UID FETCH $: %q", got)
	}
	if got := searchResult(t, c, "SEARCH $"); got != "2 4" {
		t.Errorf("SEARCH $: %q", got)
	}
	if got := searchResult(t, c, "UID SEARCH UID $ SMALLER 100000"); got != "2 4" {
		t.Errorf("UID SEARCH UID $: %q", got)
	}
	if got := searchResult(t, c, "SEARCH OR $ 6"); got != "2 4 6" {
		t.Errorf("SEARCH OR $ 6: %q", got)
	}
	mustHave(t, c.ok("THREAD ORDEREDSUBJECT US-ASCII $"), "* THREAD (2)(4)")
	mustHave(t, c.ok("SORT (REVERSE ARRIVAL) US-ASCII $"), "* SORT 4 2")
	u = c.ok(`STORE $ +FLAGS (\Flagged)`)
	mustHave(t, u, `* 2 FETCH (UID 2 FLAGS (\Flagged`)
	mustHave(t, u, `* 4 FETCH (UID 4 FLAGS (\Flagged`)
	if len(u) != 2 {
		t.Errorf("STORE $: %q", u)
	}
	c.ok("CREATE Other")
	c.expect("COPY $ Other", "OK [COPYUID ")
	if n := len(listOf(t, ts, alice, "Other")); n != 2 {
		t.Errorf("COPY $ copied %d messages", n)
	}
	// "$" is a UID set: after message 2 is expunged it still names UID 4,
	// now message 3.
	c.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	mustHave(t, c.ok("EXPUNGE"), "* 2 EXPUNGE")
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "3:4" {
		t.Errorf("FETCH $ after EXPUNGE: %q", got)
	}
	// Expunged by another session: gone from "$" once reported.
	c2 := ts.login(alice, alicePass)
	c2.ok("SELECT INBOX")
	c2.ok(`UID STORE 4 +FLAGS.SILENT (\Deleted)`)
	c2.ok("UID EXPUNGE 4")
	mustHave(t, c.ok("NOOP"), "* 3 EXPUNGE")
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "" {
		t.Errorf("FETCH $ after the other session's EXPUNGE: %q", got)
	}
	// An empty "$" is valid and matches nothing (RFC 5182 2.1).
	c.expect("COPY $ Other", "OK")
	c.expect(`STORE $ +FLAGS (\Seen)`, "OK")
}

func TestSearchResResetRules(t *testing.T) {
	_, c := sixMessages(t)
	var tag string
	c.ok("SEARCH RETURN (SAVE) SUBJECT s3")
	// BAD leaves "$" alone, even with SAVE; NO without SAVE too.
	c.expect("SEARCH RETURN (SAVE) FOOBAR", "BAD")
	c.expect("SEARCH CHARSET KOI8-R ALL", "NO [BADCHARSET")
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "3:3" {
		t.Fatalf("after BAD and NO without SAVE: %q", got)
	}
	// NO with SAVE empties it (RFC 5182 example 5).
	c.expect("SEARCH RETURN (SAVE) CHARSET KOI8-R (OR $ 1:2) ALL", "NO [BADCHARSET")
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "" {
		t.Fatalf("after a failed SEARCH with SAVE: %q", got)
	}
	// MIN and MAX alone save only those (RFC 5182 2.4).
	tag = nextTag(c)
	mustHave(t, c.ok("SEARCH RETURN (SAVE MIN MAX) ALL"), `* ESEARCH (TAG "`+tag+`") MIN 1 MAX 6`)
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "1:1 6:6" {
		t.Errorf("SAVE MIN MAX: %q", got)
	}
	tag = nextTag(c)
	mustHave(t, c.ok("SEARCH RETURN (SAVE MIN COUNT) 2:4"), `* ESEARCH (TAG "`+tag+`") MIN 2 COUNT 3`)
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "2:2 3:3 4:4" {
		t.Errorf("SAVE MIN COUNT: %q", got)
	}
	// SORT's SAVE: MIN is the first in sort order.
	tag = nextTag(c)
	mustHave(t, c.ok("SORT RETURN (SAVE MIN) (REVERSE ARRIVAL) US-ASCII ALL"), `* ESEARCH (TAG "`+tag+`") MIN 6`)
	if got := fetchedUIDs(t, c, "UID FETCH $ (UID)"); got != "6:6" {
		t.Errorf("SORT SAVE MIN: %q", got)
	}
	// SELECT starts with an empty "$".
	c.ok("SEARCH RETURN (SAVE) ALL")
	c.ok("SELECT INBOX")
	if got := fetchedUIDs(t, c, "FETCH $ (UID)"); got != "" {
		t.Errorf("after SELECT: %q", got)
	}
	// "$" is a whole sequence set, not part of one; and not in SELECT.
	c.expect("FETCH $,1 (UID)", "BAD")
	c.expect("SEARCH RETURN (SAVE) ALL", "OK")
	c.ok("UNSELECT")
	c.expect("FETCH $ (UID)", "BAD")
}

func TestSearchResPipelinedMoveExpunge(t *testing.T) {
	ts, c := sixMessages(t)
	c.ok("CREATE Other")
	// RFC 5182 2.3: pipelined, the FETCH sees the SEARCH's result.
	c.send("P1 SEARCH RETURN (SAVE) SUBJECT s5\r\nP2 UID FETCH $ (UID)\r\nP3 MOVE $ Other\r\n")
	if _, tagged := c.collect("P1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("P1: %s", tagged)
	}
	u, tagged := c.collect("P2")
	if !strings.HasPrefix(tagged, "OK") || len(u) != 1 || !strings.HasPrefix(u[0], "* 5 FETCH (UID 5") {
		t.Fatalf("P2: %q %s", u, tagged)
	}
	u, tagged = c.collect("P3")
	if !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("P3: %s", tagged)
	}
	mustHave(t, u, "* 5 EXPUNGE")
	if n := len(listOf(t, ts, alice, "Other")); n != 1 {
		t.Errorf("MOVE $ moved %d", n)
	}
	c.ok("SEARCH RETURN (SAVE) 1:2")
	c.ok(`STORE 1:3 +FLAGS.SILENT (\Deleted)`)
	u = c.ok("UID EXPUNGE $")
	if len(u) != 2 || !has(u, "* 1 EXPUNGE") {
		t.Errorf("UID EXPUNGE $: %q", u)
	}
	if n := len(listOf(t, ts, alice, "INBOX")); n != 3 {
		t.Errorf("after UID EXPUNGE $: %d messages left", n)
	}
}

func TestContextPartial(t *testing.T) {
	_, c := sixMessages(t)
	tests := []struct{ cmd, want string }{
		{"SEARCH RETURN (PARTIAL 2:4) ALL", "PARTIAL (2:4 2:4)"},
		{"SEARCH RETURN (PARTIAL 4:2) ALL", "PARTIAL (2:4 2:4)"},
		{"SEARCH RETURN (PARTIAL 5:10) ALL", "PARTIAL (5:10 5:6)"},
		{"SEARCH RETURN (PARTIAL 7:9) ALL", "PARTIAL (7:9 NIL)"},
		{"SEARCH RETURN (PARTIAL 2:3) 1:2,4:6", "PARTIAL (2:3 2,4)"},
		{"SEARCH RETURN (PARTIAL 1:2 COUNT) 3:6", "PARTIAL (1:2 3:4) COUNT 4"},
		{"UID SEARCH RETURN (PARTIAL 6:6) ALL", "UID PARTIAL (6:6 6)"},
		{"SORT RETURN (PARTIAL 1:3) (REVERSE ARRIVAL) US-ASCII ALL", "PARTIAL (1:3 6,5,4)"},
		{"SORT RETURN (PARTIAL 5:8) (ARRIVAL) US-ASCII ALL", "PARTIAL (5:8 5:6)"},
		{"UID SORT RETURN (PARTIAL 9:9) (SUBJECT) US-ASCII ALL", "UID PARTIAL (9:9 NIL)"},
	}
	for _, tc := range tests {
		want := `* ESEARCH (TAG "` + nextTag(c) + `") ` + tc.want
		u := c.ok(tc.cmd)
		if len(u) != 1 || u[0] != want {
			t.Errorf("%s: got %q, want %q", tc.cmd, u, want)
		}
	}
	for _, bad := range []string{
		"SEARCH RETURN (PARTIAL 1) ALL", "SEARCH RETURN (PARTIAL 1:*) ALL", "SEARCH RETURN (PARTIAL *:1) ALL",
		"SEARCH RETURN (PARTIAL 0:1) ALL", "SEARCH RETURN (PARTIAL 1:2 ALL) ALL", "SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
		"SORT RETURN (PARTIAL 1) (ARRIVAL) US-ASCII ALL",
	} {
		c.expect(bad, "BAD")
	}
}

// esearches returns the untagged ESEARCH responses among resps.
func esearches(resps []string) []string {
	var out []string
	for _, r := range resps {
		if strings.HasPrefix(r, "* ESEARCH") {
			out = append(out, r)
		}
	}
	return out
}

func indexOf(resps []string, prefix string) int {
	for i, r := range resps {
		if strings.HasPrefix(r, prefix) {
			return i
		}
	}
	return -1
}

func TestContextUpdateAddTo(t *testing.T) {
	ts, c := sixMessages(t)
	u := c.ok("SEARCH RETURN (UPDATE) SUBJECT fresh")
	if len(u) != 1 || u[0] != `* ESEARCH (TAG "A003")` {
		t.Fatalf("SEARCH RETURN (UPDATE): %q", u)
	}
	c.ok("UID SEARCH RETURN (UPDATE COUNT) SUBJECT fresh")
	// Another session delivers; the next NOOP says EXISTS, then ADDTO.
	c2 := ts.login(alice, alicePass)
	msg := testMessage("fresh")
	c2.send(fmt.Sprintf("B1 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	if _, tagged := c2.collect("B1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatalf("APPEND: %s", tagged)
	}
	u = c.ok("NOOP")
	ex, add := indexOf(u, "* 7 EXISTS"), indexOf(u, `* ESEARCH (TAG "A003") ADDTO (0 7)`)
	if ex < 0 || add < 0 || add < ex {
		t.Fatalf("NOOP after delivery: %q", u)
	}
	mustHave(t, u, `* ESEARCH (TAG "A004") UID ADDTO (0 7)`)
	// Delivery during IDLE.
	c.send("I1 IDLE\r\n")
	if r := c.read(); !strings.HasPrefix(r, "+ ") {
		t.Fatalf("IDLE: %q", r)
	}
	deliver(t, ts.st, alice, "INBOX", testMessage("fresh2"), testMessage("stale"))
	got := c.waitFor(`* ESEARCH (TAG "A004")`, 20*time.Second)
	c.send("DONE\r\n")
	u, _ = c.collect("I1")
	got = append(got, u...)
	mustHave(t, got, "* 9 EXISTS")
	mustHave(t, got, `* ESEARCH (TAG "A003") ADDTO (0 8)`)
	mustHave(t, got, `* ESEARCH (TAG "A004") UID ADDTO (0 8)`)
}

func TestContextUpdateRemoveFrom(t *testing.T) {
	ts, c := sixMessages(t)
	mustHave(t, c.ok("UID SEARCH RETURN (UPDATE COUNT) UNSEEN"), `* ESEARCH (TAG "A003") UID COUNT 6`)
	mustHave(t, c.ok("SEARCH RETURN (UPDATE ALL) NOT SUBJECT s1"), `* ESEARCH (TAG "A004") ALL 2:6`)
	// A flag change by another session.
	c2 := ts.login(alice, alicePass)
	c2.ok("SELECT INBOX")
	c2.ok(`STORE 2,5 +FLAGS.SILENT (\Seen)`)
	u := c.ok("NOOP")
	if e := esearches(u); len(e) != 1 || e[0] != `* ESEARCH (TAG "A003") UID REMOVEFROM (0 2,5)` {
		t.Fatalf("NOOP after STORE elsewhere: %q", u)
	}
	// The session's own STORE, both ways.
	u = c.ok(`STORE 3 +FLAGS (\Seen)`)
	if e := esearches(u); len(e) != 1 || e[0] != `* ESEARCH (TAG "A003") UID REMOVEFROM (0 3)` {
		t.Fatalf("own STORE +Seen: %q", u)
	}
	u = c.ok(`STORE 2:3 -FLAGS (\Seen)`)
	if e := esearches(u); len(e) != 1 || e[0] != `* ESEARCH (TAG "A003") UID ADDTO (0 2:3)` {
		t.Fatalf("own STORE -Seen: %q", u)
	}
	// An expunge elsewhere: REMOVEFROM before the EXPUNGE, with the
	// sequence number it had.
	c2.ok(`STORE 4 +FLAGS.SILENT (\Deleted)`)
	c2.ok("EXPUNGE")
	u = c.ok("NOOP")
	rm, ex := indexOf(u, `* ESEARCH (TAG "A004") REMOVEFROM (0 4)`), indexOf(u, "* 4 EXPUNGE")
	if rm < 0 || ex < 0 || rm > ex {
		t.Fatalf("NOOP after EXPUNGE elsewhere: %q", u)
	}
	mustHave(t, u, `* ESEARCH (TAG "A003") UID REMOVEFROM (0 4)`)
	// The session's own EXPUNGE.
	c.ok(`STORE 1:2 +FLAGS.SILENT (\Deleted)`)
	u = c.ok("EXPUNGE")
	rm, ex = indexOf(u, `* ESEARCH (TAG "A004") REMOVEFROM (0 2)`), indexOf(u, "* 1 EXPUNGE")
	if rm < 0 || ex < 0 || rm > ex {
		t.Fatalf("own EXPUNGE: %q", u)
	}
}

func TestContextCancelUpdateAndLimits(t *testing.T) {
	_, c := sixMessages(t)
	c.ok("SEARCH RETURN (UPDATE) SEEN")
	tag := fmt.Sprintf("A%03d", c.n)
	// RFC 5267 4.3: a tag with an UPDATE context cannot be reused.
	c.send(tag + " SEARCH RETURN (UPDATE) ALL\r\n")
	if _, tagged := c.collect(tag); !strings.HasPrefix(tagged, "BAD") {
		t.Fatalf("tag reuse: %s", tagged)
	}
	mustHave(t, c.ok(`STORE 1 +FLAGS (\Seen)`), `* ESEARCH (TAG "`+tag+`") ADDTO (0 1)`)
	c.expect(`CANCELUPDATE "nosuch"`, "BAD")
	c.ok(`CANCELUPDATE "` + tag + `"`)
	mustNotHave(t, c.ok(`STORE 2 +FLAGS (\Seen)`), "* ESEARCH")
	// Ten contexts, then NOUPDATE for the eleventh, whose other return
	// options are still honoured.
	for i := 0; i < maxUpdates; i++ {
		mustNotHave(t, c.ok("SEARCH RETURN (UPDATE) ALL"), "* NO")
	}
	u := c.ok("SEARCH RETURN (UPDATE COUNT) ALL")
	tag = fmt.Sprintf("A%03d", c.n)
	mustHave(t, u, `* ESEARCH (TAG "`+tag+`") COUNT 6`)
	mustHave(t, u, `* NO [NOUPDATE "`+tag+`"]`)
	// Contexts end with the mailbox.
	c.ok("SELECT INBOX")
	mustNotHave(t, c.ok(`STORE 3 +FLAGS (\Seen)`), "* ESEARCH")
	mustNotHave(t, c.ok("SEARCH RETURN (UPDATE) ALL"), "* NO")
}

func TestContextSortUpdate(t *testing.T) {
	ts, c := sixMessages(t)
	mustHave(t, c.ok("SORT RETURN (UPDATE ALL) (REVERSE ARRIVAL) US-ASCII UNSEEN"),
		`* ESEARCH (TAG "A003") ALL 6,5,4,3,2,1`)
	mustHave(t, c.ok("UID SORT RETURN (UPDATE) (SUBJECT) US-ASCII UNSEEN"), `* ESEARCH (TAG "A004") UID`)
	deliver(t, ts.st, alice, "INBOX", testMessage("s0"))
	u := c.ok("NOOP")
	mustHave(t, u, "* 7 EXISTS")
	mustHave(t, u, `* ESEARCH (TAG "A003") ADDTO (1 7)`)
	mustHave(t, u, `* ESEARCH (TAG "A004") UID ADDTO (1 7)`) // "s0" sorts first
	// Order now 7,6,5,4,3,2,1: message 5 is third.
	u = c.ok(`STORE 5 +FLAGS (\Seen)`)
	mustHave(t, u, `* ESEARCH (TAG "A003") REMOVEFROM (3 5)`)
	mustHave(t, u, `* ESEARCH (TAG "A004") UID REMOVEFROM (6 5)`)
	u = c.ok(`STORE 5 -FLAGS (\Seen)`)
	mustHave(t, u, `* ESEARCH (TAG "A003") ADDTO (3 5)`)
	mustHave(t, u, `* ESEARCH (TAG "A004") UID ADDTO (6 5)`)
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	u = c.ok("EXPUNGE")
	mustHave(t, u, `* ESEARCH (TAG "A003") REMOVEFROM (7 1)`)
	mustHave(t, u, `* ESEARCH (TAG "A004") UID REMOVEFROM (2 1)`)
}

func TestSearchResVanished(t *testing.T) {
	ts, c := sixMessages(t)
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT INBOX")
	c.ok("SEARCH RETURN (SAVE) 2:3")
	c2 := ts.login(alice, alicePass)
	c2.ok("SELECT INBOX")
	c2.ok(`STORE 2,5 +FLAGS.SILENT (\Deleted)`)
	c2.ok("EXPUNGE")
	// "$" still names UID 2, whose expunge the session has not reported:
	// VANISHED (EARLIER) lists it and not UID 5, which "$" never held.
	u := c.ok("UID FETCH $ (FLAGS) (CHANGEDSINCE 1 VANISHED)")
	mustHave(t, u, "* VANISHED (EARLIER) 2")
	mustNotHave(t, u, "* VANISHED (EARLIER) 2,5")
	mustHave(t, u, "* VANISHED 2,5")
	if got := fetchedUIDs(t, c, "UID FETCH $ (UID)"); got != "2:3" {
		t.Errorf("UID FETCH $ after VANISHED: %q", got)
	}
}

// TestContextUpdateFullText: with FULL_TEXT_SEARCH on, an UPDATE context
// tests BODY as the search did (the indexed text: HTML reduced to text),
// not by a substring match of the decoded part.
func TestContextUpdateFullText(t *testing.T) {
	ts := ftsServer(t, false, false)
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	mustHave(t, c.ok("SEARCH RETURN (UPDATE COUNT) BODY Petrel"), `* ESEARCH (TAG "A003") COUNT 0`)
	deliver(t, ts.st, alice, "INBOX", "From: a@remote.test\r\nSubject: zoo\r\n\r\nno bird here\r\n", ftsMessages[3]) // the HTML one
	u := c.ok("NOOP")
	mustHave(t, u, "* 2 EXISTS")
	if e := esearches(u); len(e) != 1 || e[0] != `* ESEARCH (TAG "A003") ADDTO (0 2)` {
		t.Fatalf("NOOP: %q", u)
	}
}
