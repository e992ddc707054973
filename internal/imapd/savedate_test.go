package imapd

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// SEARCH SAVEDON today finds what was saved today, whatever its internal
// date (RFC 8514 4.2); FETCH SAVEDATE names today (UTC).
func TestSaveDateToday(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	msg := "Subject: old\r\n\r\nold\r\n"
	c.send("a1 APPEND INBOX \"01-Feb-2001 04:05:06 +0000\" {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg + "\r\n")
	if _, tagged := c.collect("a1"); !strings.HasPrefix(tagged, "OK") {
		t.Fatal(tagged)
	}
	c.ok("SELECT INBOX")
	// The day may turn over between APPEND and the search: try both days.
	before := time.Now().UTC()
	u := c.ok("FETCH 1 SAVEDATE")
	after := time.Now().UTC()
	days := []string{before.Format("_2-Jan-2006"), after.Format("_2-Jan-2006")}
	if len(u) != 1 || (!strings.Contains(u[0], `SAVEDATE "`+days[0]) && !strings.Contains(u[0], `SAVEDATE "`+days[1])) {
		t.Fatalf("FETCH SAVEDATE: %q, want day %q", u, days)
	}
	found := false
	for _, d := range days {
		r := c.ok("SEARCH SAVEDON " + strings.TrimSpace(d))
		found = found || (len(r) == 1 && r[0] == "* SEARCH 1")
	}
	if !found {
		t.Fatal("SEARCH SAVEDON today: no match")
	}
	if r := c.ok("SEARCH ON 1-Feb-2001"); len(r) != 1 || r[0] != "* SEARCH 1" {
		t.Fatalf("SEARCH ON the internal date: %q", r)
	}
}
