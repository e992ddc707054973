package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestStoreAcrossPages: a STORE over more messages than one store
// transaction changes (storePage) reports every message once, with the
// new modseqs, and UNCHANGEDSINCE failures in any page come back in one
// MODIFIED.
func TestStoreAcrossPages(t *testing.T) {
	ts := startServer(t, nil)
	n := storePage + 300
	for i := 0; i < n; i += 1000 {
		var msgs []*store.NewMessage
		for j := i; j < min(i+1000, n); j++ {
			body := []byte(fmt.Sprintf("Subject: page test %d\r\n\r\nbody\r\n", j))
			msgs = append(msgs, &store.NewMessage{ID: fmt.Sprintf("p%d", j), Sender: "s@remote.test",
				ReceivedAt: time.Now(), Size: int64(len(body)), Body: body,
				Targets: []store.MailboxTarget{{User: alice, Mailbox: "INBOX"}}})
		}
		if err := ts.st.CommitMessages(t.Context(), msgs); err != nil {
			t.Fatal(err)
		}
	}
	c := ts.login(alice, alicePass)
	c.ok("ENABLE CONDSTORE")
	c.ok("SELECT INBOX")

	untagged := c.ok(`STORE 1:* +FLAGS (\Flagged)`)
	seen := map[string]bool{}
	for _, l := range untagged {
		if strings.Contains(l, " FETCH ") {
			if !strings.Contains(l, `\Flagged`) || !strings.Contains(l, "MODSEQ (") {
				t.Fatalf("FETCH without the flag or modseq: %q", l)
			}
			seq := strings.Fields(l)[1]
			if seen[seq] {
				t.Fatalf("message %s reported twice", seq)
			}
			seen[seq] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("%d FETCH responses for %d messages", len(seen), n)
	}

	// Another session changes one message in each page; a conditional
	// STORE of all must fail for those two alone, and the others get the
	// flag.
	var highest uint64
	for _, l := range c.ok(`STATUS INBOX (HIGHESTMODSEQ)`) {
		if i := strings.Index(l, "HIGHESTMODSEQ "); i >= 0 {
			fmt.Sscanf(l[i+len("HIGHESTMODSEQ "):], "%d", &highest)
		}
	}
	if highest == 0 {
		t.Fatal("no HIGHESTMODSEQ")
	}
	other := ts.login(alice, alicePass)
	other.ok("SELECT INBOX")
	v1, v2 := 7, storePage+7 // one in each page
	other.ok(fmt.Sprintf(`STORE %d,%d +FLAGS ($Other)`, v1, v2))
	c.expect(fmt.Sprintf(`STORE 1:* (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Seen)`, highest),
		fmt.Sprintf("OK [MODIFIED %d,%d]", v1, v2))
	seenCount := 0
	for _, l := range c.ok(`FETCH 1:* (FLAGS)`) {
		if strings.Contains(l, `\Seen`) {
			seenCount++
		} else if !strings.HasPrefix(l, fmt.Sprintf("* %d FETCH", v1)) && !strings.HasPrefix(l, fmt.Sprintf("* %d FETCH", v2)) {
			t.Fatalf("not stored: %q", l)
		}
	}
	if seenCount != n-2 {
		t.Fatalf("%d messages got \\Seen, want %d", seenCount, n-2)
	}
}
