package imapd

import (
	"slices"
	"strings"
	"testing"
)

func TestListDefaultsAndHierarchy(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	u := c.ok(`LIST "" "*"`)
	want := []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren \Junk) "/" Junk`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren \Trash) "/" Trash`,
	}
	if !slices.Equal(u, want) {
		t.Fatalf("LIST:\n%s\nwant\n%s", strings.Join(u, "\n"), strings.Join(want, "\n"))
	}
	u = c.ok(`LIST "" ""`)
	if !slices.Equal(u, []string{`* LIST (\Noselect) "/" ""`}) {
		t.Fatalf("delimiter: %q", u)
	}
	c.ok(`CREATE "Work/Projects/2024"`)
	c.expect(`CREATE Work`, "NO [ALREADYEXISTS]")
	c.expect(`CREATE inbox`, "NO [ALREADYEXISTS]")
	c.expect(`CREATE "a//b"`, "NO [CANNOT]")
	u = c.ok(`LIST "" "Work/%"`)
	if !slices.Equal(u, []string{`* LIST (\HasChildren) "/" Work/Projects`}) {
		t.Fatalf("Work/%%: %q", u)
	}
	u = c.ok(`LIST "Work/" "%"`)
	if !slices.Equal(u, []string{`* LIST (\HasChildren) "/" Work/Projects`}) {
		t.Fatalf("ref Work/: %q", u)
	}
	u = c.ok(`LIST "" "*2024"`)
	if !slices.Equal(u, []string{`* LIST (\HasNoChildren) "/" Work/Projects/2024`}) {
		t.Fatalf("*2024: %q", u)
	}
	u = c.ok(`LIST "" "inbox"`)
	if !slices.Equal(u, []string{`* LIST (\HasNoChildren) "/" INBOX`}) {
		t.Fatalf("inbox: %q", u)
	}
	c.expect(`DELETE Work`, "NO [HASCHILDREN]")
	c.expect(`DELETE INBOX`, "NO")
	c.expect(`DELETE Nope`, "NO [NONEXISTENT]")
	c.ok(`RENAME Work Job`)
	u = c.ok(`LIST "" "Job*"`)
	if len(u) != 3 || !has(u, `* LIST (\HasNoChildren) "/" Job/Projects/2024`) {
		t.Fatalf("after RENAME: %q", u)
	}
	c.expect(`RENAME Job Sent`, "NO [ALREADYEXISTS]")
	c.expect(`RENAME Nope Other`, "NO [NONEXISTENT]")
	c.ok(`DELETE Job/Projects/2024`)
	c.ok(`DELETE Job/Projects`)
	c.ok(`DELETE Job`)
	if u := c.ok(`LIST "" "Job*"`); len(u) != 0 {
		t.Fatalf("after DELETE: %q", u)
	}
}

func TestListExtended(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	c.ok(`CREATE Lists/Go`)
	c.ok(`CREATE Lists/Rust`)
	// New mailboxes (and the parents CREATE makes) are subscribed.
	c.ok(`UNSUBSCRIBE Lists`)
	c.ok(`UNSUBSCRIBE Lists/Rust`)
	c.ok(`SUBSCRIBE Lists/Go`)
	c.ok(`UNSUBSCRIBE Junk`)

	u := c.ok(`LIST (SUBSCRIBED) "" "*"`)
	for _, r := range u {
		if !strings.Contains(r, `\Subscribed`) {
			t.Errorf("SUBSCRIBED selection returned %q", r)
		}
	}
	mustHave(t, u, `* LIST (\HasNoChildren \Subscribed) "/" Lists/Go`)
	mustNotHave(t, u, `* LIST (\HasNoChildren \Junk)`)

	// RECURSIVEMATCH: the unsubscribed parent comes with CHILDINFO.
	u = c.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`)
	mustHave(t, u, `* LIST (\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))`)
	c.expect(`LIST (RECURSIVEMATCH) "" "%"`, "BAD")

	u = c.ok(`LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)`)
	if len(u) != 4 {
		t.Fatalf("SPECIAL-USE selection: %q", u)
	}
	u = c.ok(`LIST "" "Lists/*" RETURN (SUBSCRIBED CHILDREN)`)
	if !slices.Equal(u, []string{`* LIST (\HasNoChildren \Subscribed) "/" Lists/Go`, `* LIST (\HasNoChildren) "/" Lists/Rust`}) {
		t.Fatalf("RETURN (SUBSCRIBED): %q", u)
	}
	// Several patterns.
	u = c.ok(`LIST "" ("INBOX" "Sent")`)
	if len(u) != 2 {
		t.Fatalf("patterns: %q", u)
	}
	// LIST-STATUS (RFC 5819).
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"))
	u = c.ok(`LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))`)
	if !slices.Equal(u, []string{`* LIST (\HasNoChildren) "/" INBOX`, `* STATUS INBOX (MESSAGES 2 UNSEEN 2 UIDNEXT 3)`}) {
		t.Fatalf("LIST-STATUS: %q", u)
	}
	// LSUB (IMAP4rev1).
	u = c.ok(`LSUB "" "*"`)
	mustHave(t, u, `* LSUB () "/" Lists/Go`)
	mustNotHave(t, u, `* LSUB () "/" Junk`)
	u = c.ok(`LSUB "" "%"`)
	mustHave(t, u, `* LSUB (\Noselect) "/" Lists`)
}

func TestStatusNamespaceQuota(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"))
	// No session has selected INBOX yet: both are \Recent (RFC 3501 6.3.10).
	u := c.ok(`STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ)`)
	if len(u) != 1 || !strings.HasPrefix(u[0], "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY ") ||
		!strings.Contains(u[0], " UNSEEN 2 DELETED 0 SIZE ") || !strings.Contains(u[0], " RECENT 2 HIGHESTMODSEQ ") {
		t.Fatalf("STATUS: %q", u)
	}
	c.expect(`STATUS Nope (MESSAGES)`, "NO [NONEXISTENT]")
	c.expect(`STATUS INBOX (BOGUS)`, "BAD")
	u = c.ok("NAMESPACE")
	if !slices.Equal(u, []string{`* NAMESPACE (("" "/")) NIL NIL`}) {
		t.Fatalf("NAMESPACE: %q", u)
	}
	// Unlimited quota: no quota root.
	u = c.ok("GETQUOTAROOT INBOX")
	if !slices.Equal(u, []string{`* QUOTAROOT INBOX`}) {
		t.Fatalf("GETQUOTAROOT: %q", u)
	}
	c.expect(`GETQUOTA ""`, "NO")
	c.expect(`SETQUOTA "" (STORAGE 10)`, "NO [NOPERM]")

	// A quota of 1 MiB.
	usr, err := ts.st.GetUser(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	usr.QuotaBytes = 1 << 20
	if err := ts.st.UpdateUser(t.Context(), usr); err != nil {
		t.Fatal(err)
	}
	u = c.ok("GETQUOTAROOT INBOX")
	if len(u) != 2 || u[0] != `* QUOTAROOT INBOX ""` || !strings.HasPrefix(u[1], `* QUOTA "" (STORAGE 1 1024)`) {
		t.Fatalf("GETQUOTAROOT: %q", u)
	}
	u = c.ok(`GETQUOTA ""`)
	if !slices.Equal(u, []string{`* QUOTA "" (STORAGE 1 1024)`}) {
		t.Fatalf("GETQUOTA: %q", u)
	}
}

func TestEnableAndID(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial()
	c.greeting()
	u := c.ok(`ID ("name" "test" "version" NIL)`)
	if !slices.Equal(u, []string{`* ID ("name" "Petrel")`}) {
		t.Fatalf("ID: %q", u)
	}
	c.ok("ID NIL")
	c.expect("ENABLE CONDSTORE", "BAD") // not authenticated
	c.ok("LOGIN " + quote(alice) + " " + quote(alicePass))
	u = c.ok("ENABLE QRESYNC UTF8=ACCEPT X-UNKNOWN")
	if !slices.Equal(u, []string{"* ENABLED QRESYNC"}) {
		t.Fatalf("ENABLE: %q", u)
	}
	u = c.ok("ENABLE CONDSTORE IMAP4rev2")
	if !slices.Equal(u, []string{"* ENABLED IMAP4rev2"}) {
		t.Fatalf("ENABLE again: %q", u)
	}
}

func TestUTF7Names(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	// RFC 3501 5.1.3's example: "~peter/mail/台北/日本語".
	c.ok(`CREATE "&U,BTFw-/&ZeVnLIqe-"`)
	u := c.ok(`LIST "" "&U,BTFw-/*"`)
	if !slices.Equal(u, []string{`* LIST (\HasNoChildren) "/" &U,BTFw-/&ZeVnLIqe-`}) {
		t.Fatalf("rev1 LIST: %q", u)
	}
	c.expect(`CREATE "&Jjo"`, "NO [CANNOT]") // a valid astring, not a valid name
	c.ok("ENABLE IMAP4rev2")
	u = c.ok(`LIST "" "台北/*"`)
	if !slices.Equal(u, []string{`* LIST (\HasNoChildren) "/" "台北/日本語"`}) {
		t.Fatalf("rev2 LIST: %q", u)
	}
}

func TestCreateSpecialUseDeleteSelectedRenameInbox(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.login(alice, alicePass)
	c.ok(`CREATE Archive (USE (\Archive))`)
	c.expect(`CREATE Weird (USE (\Bogus))`, "NO [USEATTR]")
	c.expect(`CREATE Weird (USE (\Archive \Trash))`, "NO [USEATTR]")
	u := c.ok(`LIST "" Archive`)
	if !slices.Equal(u, []string{`* LIST (\HasNoChildren \Archive) "/" Archive`}) {
		t.Fatalf("special use: %q", u)
	}
	// A trailing delimiter is dropped (RFC 9051 6.3.4).
	c.ok(`CREATE Folder/`)
	mustHave(t, c.ok(`LIST "" Folder`), `* LIST (\HasNoChildren) "/" Folder`)

	// Deleting the selected mailbox leaves the Selected state.
	c.ok("SELECT Folder")
	u = c.ok("DELETE Folder")
	mustHave(t, u, "* OK [CLOSED]")
	c.expect("NOOP", "OK")
	c.expect("EXPUNGE", "BAD")

	// RENAME INBOX moves its messages and leaves INBOX empty.
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"))
	c.ok("SELECT INBOX")
	u = c.ok("RENAME INBOX Old")
	if !slices.Equal(u, []string{"* 1 EXPUNGE", "* 1 EXPUNGE"}) {
		t.Fatalf("RENAME INBOX while selected: %q", u)
	}
	if n := len(listOf(t, ts, alice, "Old")); n != 2 {
		t.Fatalf("Old has %d messages", n)
	}
	mustHave(t, c.ok(`STATUS INBOX (MESSAGES)`), "* STATUS INBOX (MESSAGES 0)")
	c.expect("RENAME Old INBOX", "NO [ALREADYEXISTS]")
	// RFC 9051 6.3.7: a name without a mailbox can be subscribed.
	c.ok("SUBSCRIBE Nope")
	mustHave(t, c.ok(`LIST (SUBSCRIBED) "" Nope`), `* LIST (\NonExistent \HasNoChildren \Subscribed) "/" Nope`)
	c.ok("UNSUBSCRIBE Nope")
}
