package storetest

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// testIMAP runs the store.Mailboxes part of the suite; a backend without
// it skips them.
func testIMAP(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"CreateMailbox", testCreateMailbox},
		{"MailboxNames", testMailboxNames},
		{"DeleteMailbox", testDeleteMailbox},
		{"RenameMailbox", testRenameMailbox},
		{"RenameInbox", testRenameInbox},
		{"Subscribe", testSubscribe},
		{"Append", testAppend},
		{"AppendQuota", testAppendQuota},
		{"AppendMessages", testAppendMessages},
		{"StoreFlags", testStoreFlags},
		{"UnchangedSince", testUnchangedSince},
		{"Copy", testCopy},
		{"CopyQuota", testCopyQuota},
		{"Move", testMove},
		{"Expunge", testExpunge},
		{"ExpungePOP3", testExpungePOP3},
		{"ChangesSince", testChangesSince},
		{"ChangesPage", testChangesPage},
		{"ModSeqMonotonic", testModSeqMonotonic},
		{"Watch", testWatch},
		{"ConcurrentIMAP", testConcurrentIMAP},
		{"ReadBodies", testReadBodies},
		{"HeaderSearch", testHeaderSearch},
		{"SaveDate", testSaveDate},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

const alice = "a@example.com"

// imapStore opens a store with user a@example.com (and its default
// mailboxes) and returns it with its Mailboxes side.
func imapStore(t *testing.T, open Open, quota int64) (store.Store, store.Mailboxes) {
	t.Helper()
	s := get(t, open)
	mb, ok := unwrap(s).(store.Mailboxes)
	if !ok {
		t.Skip("backend does not implement store.Mailboxes")
	}
	seed(t, s, quota, "a")
	must(t, s.EnsureMailboxes(ctx(t), alice, store.DefaultMailboxes))
	return s, mb
}

func getBox(t *testing.T, mb store.Mailboxes, name string) *store.Mailbox {
	t.Helper()
	m, err := mb.GetMailbox(ctx(t), alice, name)
	if err != nil {
		t.Fatalf("GetMailbox(%q): %v", name, err)
	}
	return m
}

func names(t *testing.T, s store.Store) []string {
	t.Helper()
	l, err := s.ListMailboxes(ctx(t), alice)
	must(t, err)
	var out []string
	for _, m := range l {
		out = append(out, m.Name)
	}
	return out
}

// appendMsg appends body to alice's mailbox and returns its UID.
func appendMsg(t *testing.T, mb store.Mailboxes, mailbox, body string, flags ...string) uint32 {
	t.Helper()
	uid, _, err := mb.AppendMessage(ctx(t), &store.NewAppend{User: alice, Mailbox: mailbox, Flags: flags, Body: []byte(body)})
	if err != nil {
		t.Fatalf("AppendMessage(%q): %v", mailbox, err)
	}
	return uid
}

func listByID(t *testing.T, mb store.Mailboxes, id int64) []store.MessageInfo {
	t.Helper()
	l, err := mb.ListMessagesByID(ctx(t), id)
	must(t, err)
	return l
}

func uidList(l []store.MessageInfo) []uint32 {
	out := []uint32{}
	for _, m := range l {
		out = append(out, m.UID)
	}
	return out
}

func quotaUsed(t *testing.T, mb store.Mailboxes) int64 {
	t.Helper()
	used, _, err := mb.Quota(ctx(t), alice)
	must(t, err)
	return used
}

func testCreateMailbox(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	inbox := getBox(t, mb, "INBOX")

	m, err := mb.CreateMailbox(c, alice, "Projects/2024/Q1", `\archive`)
	must(t, err)
	// CREATE does not subscribe (RFC 3501 6.3.6).
	if m.Name != "Projects/2024/Q1" || m.SpecialUse != `\Archive` || m.Subscribed || m.UIDNext != 1 ||
		m.HighestModSeq == 0 || m.Messages != 0 || m.UserEmail != alice || m.ID == 0 {
		t.Fatalf("created %+v", m)
	}
	if m.UIDValidity <= inbox.UIDValidity {
		t.Fatalf("new mailbox UIDVALIDITY %d not above INBOX's %d", m.UIDValidity, inbox.UIDValidity)
	}
	// The superiors were created too (RFC 9051 6.3.4), as plain mailboxes.
	for _, p := range []string{"Projects", "Projects/2024"} {
		if got := getBox(t, mb, p); got.SpecialUse != "" {
			t.Fatalf("parent %q has special use %q", p, got.SpecialUse)
		}
	}
	if got := getBox(t, mb, "Projects/2024/Q1"); !reflect.DeepEqual(got, m) {
		t.Fatalf("GetMailbox = %+v, CreateMailbox returned %+v", got, m)
	}
	// A child under an existing parent creates only itself.
	before := len(names(t, s))
	_, err = mb.CreateMailbox(c, alice, "Projects/2025", "")
	must(t, err)
	if n := len(names(t, s)); n != before+1 {
		t.Fatalf("%d mailboxes after creating one under an existing parent, want %d", n, before+1)
	}

	_, err = mb.CreateMailbox(c, alice, "Projects/2024", "")
	wantErr(t, err, store.ErrMailboxExists, "create existing mailbox")
	_, err = mb.CreateMailbox(c, alice, "inbox", "")
	wantErr(t, err, store.ErrMailboxExists, "create inbox (INBOX is case-insensitive)")
	_, err = mb.CreateMailbox(c, alice, "X", `\Bogus`)
	wantErr(t, err, store.ErrMailboxInvalid, "unknown special use")
	_, err = mb.CreateMailbox(c, "nobody@example.com", "X", "")
	wantErr(t, err, store.ErrNotFound, "create for a missing user")
	_, err = mb.GetMailbox(c, alice, "Nope")
	wantErr(t, err, store.ErrNotFound, "GetMailbox of a missing mailbox")
	_, err = mb.GetMailbox(c, "nobody@example.com", "INBOX")
	wantErr(t, err, store.ErrNotFound, "GetMailbox of a missing user")
}

func testMailboxNames(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	for _, bad := range []string{"", "/", "/lead", "trail/", "a//b", "cr\rlf", "lf\n", "nul\x00", "tab\tx",
		"del\x7f", "wild%", "star*", "bad\xffutf8", string(bytes.Repeat([]byte{'x'}, 1001))} {
		if _, err := mb.CreateMailbox(c, alice, bad, ""); !errors.Is(err, store.ErrMailboxInvalid) {
			t.Errorf("CreateMailbox(%q) = %v, want ErrMailboxInvalid", bad, err)
		}
	}
	// Names are case-sensitive except INBOX.
	_, err := mb.CreateMailbox(c, alice, "Work", "")
	must(t, err)
	_, err = mb.CreateMailbox(c, alice, "work", "")
	must(t, err)
	if getBox(t, mb, "Work").ID == getBox(t, mb, "work").ID {
		t.Fatal("Work and work are the same mailbox")
	}
	if getBox(t, mb, "iNbOx").ID != getBox(t, mb, "INBOX").ID {
		t.Fatal("iNbOx is not INBOX")
	}
	// INBOX as the first level is INBOX too; non-ASCII names are kept.
	m, err := mb.CreateMailbox(c, alice, "inbox/Ünïcode 日本", "")
	must(t, err)
	if m.Name != "INBOX/Ünïcode 日本" {
		t.Fatalf("created %q, want INBOX/Ünïcode 日本", m.Name)
	}
	if getBox(t, mb, "Inbox/Ünïcode 日本").ID != m.ID {
		t.Fatal("Inbox/... does not find INBOX/...")
	}
	// Delivery agrees.
	must(t, s.CommitMessages(c, []*store.NewMessage{{ID: "n", Body: []byte("n"),
		Targets: []store.MailboxTarget{{User: alice, Mailbox: "iNBOX/Ünïcode 日本"}}}}))
	if getBox(t, mb, "INBOX/Ünïcode 日本").Messages != 1 {
		t.Fatal("delivery to iNBOX/... did not reach INBOX/...")
	}
}

func testDeleteMailbox(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	err := mb.DeleteMailbox(c, alice, "inbox")
	wantErr(t, err, store.ErrMailboxInvalid, "delete INBOX")
	err = mb.DeleteMailbox(c, alice, "Nope")
	wantErr(t, err, store.ErrNotFound, "delete a missing mailbox")

	_, err = mb.CreateMailbox(c, alice, "Old/Child", "")
	must(t, err)
	err = mb.DeleteMailbox(c, alice, "Old")
	wantErr(t, err, store.ErrMailboxHasChildren, "delete a mailbox with inferiors")

	// Messages go with the mailbox: quota released, bodies nothing else
	// uses removed, bodies shared with a copy kept.
	old := getBox(t, mb, "Old/Child")
	appendMsg(t, mb, "Old/Child", "Subject: one\r\n\r\nkept in a copy\r\n")
	appendMsg(t, mb, "Old/Child", "Subject: two\r\n\r\ngone\r\n")
	appendMsg(t, mb, "INBOX", "Subject: three\r\n\r\nelsewhere\r\n")
	src := listByID(t, mb, old.ID)
	inbox := getBox(t, mb, "INBOX")
	_, _, _, err = mb.CopyMessages(c, old.ID, []uint32{src[0].UID}, inbox.ID, false)
	must(t, err)
	before := quotaUsed(t, mb)
	must(t, mb.DeleteMailbox(c, alice, "Old/Child"))
	if got, want := quotaUsed(t, mb), before-src[0].Size-src[1].Size; got != want {
		t.Fatalf("quota used %d after delete, want %d", got, want)
	}
	if _, err := mb.GetMailbox(c, alice, "Old/Child"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted mailbox: GetMailbox = %v", err)
	}
	if _, err := mb.ListMessagesByID(c, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted mailbox: ListMessagesByID = %v", err)
	}
	if _, err := mb.ChangesSince(c, old.ID, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted mailbox: ChangesSince = %v", err)
	}
	if got := readBody(t, s, src[0].BodyID); !bytes.Contains(got, []byte("kept in a copy")) {
		t.Fatalf("shared body reads %q", got)
	}
	if _, err := s.OpenBody(c, src[1].BodyID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("body of a deleted mailbox's message: OpenBody = %v, want ErrNotFound", err)
	}
	// The parent can go now; a re-created name gets a new UIDVALIDITY,
	// also when the deleted mailbox had the highest one (RFC 9051 2.3.1.1).
	must(t, mb.DeleteMailbox(c, alice, "Old"))
	again, err := mb.CreateMailbox(c, alice, "Old/Child", "")
	must(t, err)
	if again.UIDValidity <= old.UIDValidity {
		t.Fatalf("re-created mailbox UIDVALIDITY %d, not above the deleted one's %d", again.UIDValidity, old.UIDValidity)
	}
	// Deleting a default mailbox is allowed; delivery brings it back.
	must(t, mb.DeleteMailbox(c, alice, "Junk"))
	must(t, s.CommitMessages(c, []*store.NewMessage{{ID: "j", Body: []byte("x"),
		Targets: []store.MailboxTarget{{User: alice, Mailbox: "Junk"}}}}))
	if getBox(t, mb, "Junk").UIDValidity <= again.UIDValidity {
		t.Fatal("re-created Junk reuses an old UIDVALIDITY")
	}
}

func testRenameMailbox(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	for _, n := range []string{"A/B/C", "A/D", "AB", "Other"} {
		_, err := mb.CreateMailbox(c, alice, n, "")
		must(t, err)
	}
	a := getBox(t, mb, "A")
	uid := appendMsg(t, mb, "A/B", "Subject: x\r\n\r\ny\r\n")
	ab := getBox(t, mb, "A/B")

	must(t, mb.RenameMailbox(c, alice, "A", "New/Place"))
	got := names(t, s)
	for _, want := range []string{"New", "New/Place", "New/Place/B", "New/Place/B/C", "New/Place/D", "AB", "Other"} {
		if !slices.Contains(got, want) {
			t.Fatalf("after rename mailboxes are %v, missing %q", got, want)
		}
	}
	for _, gone := range []string{"A", "A/B", "A/B/C", "A/D"} {
		if slices.Contains(got, gone) {
			t.Fatalf("after rename %q still exists: %v", gone, got)
		}
	}
	// Renamed mailboxes keep their identity, UIDs and UIDVALIDITY.
	moved := getBox(t, mb, "New/Place/B")
	if moved.ID != ab.ID || moved.UIDValidity != ab.UIDValidity || moved.Messages != 1 {
		t.Fatalf("renamed %+v, was %+v", moved, ab)
	}
	if l := listByID(t, mb, moved.ID); len(l) != 1 || l[0].UID != uid {
		t.Fatalf("renamed mailbox holds %v", uidList(l))
	}
	if getBox(t, mb, "New/Place").ID != a.ID {
		t.Fatal("renamed mailbox has a new id")
	}
	// Back to where it was (a superior onto an inferior's old level).
	must(t, mb.RenameMailbox(c, alice, "New/Place", "A"))
	if getBox(t, mb, "A/B/C").ID == 0 {
		t.Fatal("A/B/C missing after renaming back")
	}
	// A level up onto a name an inferior had: "A/B" -> "A" is taken, but
	// "A/B" -> "Up" and its child "A/B/C" -> "Up/C" works.
	must(t, mb.RenameMailbox(c, alice, "A/B", "Up"))
	if getBox(t, mb, "Up/C").ID == 0 {
		t.Fatal("Up/C missing")
	}

	for _, tc := range []struct {
		from, to string
		want     error
	}{
		{"A", "Other", store.ErrMailboxExists},
		{"A", "A", store.ErrMailboxExists},
		{"A", "inbox", store.ErrMailboxExists},
		{"Up", "Other/../x//", store.ErrMailboxInvalid},
		{"A", "A/inside", store.ErrMailboxInvalid},
		{"Missing", "Whatever", store.ErrNotFound},
		{"A", "bad%name", store.ErrMailboxInvalid},
	} {
		err := mb.RenameMailbox(c, alice, tc.from, tc.to)
		if !errors.Is(err, tc.want) {
			t.Errorf("RenameMailbox(%q, %q) = %v, want %v", tc.from, tc.to, err, tc.want)
		}
	}
	// A renamed inferior colliding with an existing name fails the whole
	// rename.
	_, err := mb.CreateMailbox(c, alice, "Z/D", "")
	must(t, err)
	before := names(t, s)
	err = mb.RenameMailbox(c, alice, "A", "Z")
	if !errors.Is(err, store.ErrMailboxExists) {
		t.Fatalf("rename whose inferior collides = %v, want ErrMailboxExists", err)
	}
	if after := names(t, s); !reflect.DeepEqual(after, before) {
		t.Fatalf("failed rename changed mailboxes: %v -> %v", before, after)
	}
	// Delivery can make an inferior without its superiors. Renaming
	// "P/Q" to "P" then turns "P/Q/Q" into "P/Q", a name the rename frees
	// in the same transaction (created first, so it is renamed first).
	for _, n := range []string{"P/Q/Q", "P/Q"} {
		must(t, s.CommitMessages(c, []*store.NewMessage{{ID: n, Body: []byte(n),
			Targets: []store.MailboxTarget{{User: alice, Mailbox: n}}}}))
	}
	pqq := getBox(t, mb, "P/Q/Q")
	must(t, mb.RenameMailbox(c, alice, "P/Q", "P"))
	if getBox(t, mb, "P/Q").ID != pqq.ID || getBox(t, mb, "P").Messages != 1 {
		t.Fatal("P/Q/Q was not renamed to P/Q")
	}
	// A freed name is created anew with a higher UIDVALIDITY.
	m, err := mb.CreateMailbox(c, alice, "New/Place", "")
	must(t, err)
	if m.UIDValidity <= a.UIDValidity {
		t.Fatalf("UIDVALIDITY %d of a new mailbox under a renamed one's old name, not above %d", m.UIDValidity, a.UIDValidity)
	}
}

func testRenameInbox(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	_, err := mb.CreateMailbox(c, alice, "INBOX/Sub", "")
	must(t, err)
	appendMsg(t, mb, "INBOX/Sub", "sub")
	date := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	var bodies []string
	for i, f := range [][]string{{`\Seen`}, nil, {`\Flagged`, "$Work"}} {
		body := "Subject: m" + string(rune('0'+i)) + "\r\n\r\nbody\r\n"
		_, _, err := mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "INBOX", Flags: f, InternalDate: date, Body: []byte(body)})
		must(t, err)
		bodies = append(bodies, body)
	}
	inbox := getBox(t, mb, "INBOX")
	old := listByID(t, mb, inbox.ID)
	_, err = mb.ExpungeByID(c, inbox.ID, []uint32{old[0].UID})
	must(t, err)
	old = old[1:]
	bodies = bodies[1:]
	used := quotaUsed(t, mb)
	before := getBox(t, mb, "INBOX")

	must(t, mb.RenameMailbox(c, alice, "inbox", "Archive/Old Inbox"))
	// INBOX is still there, same UIDVALIDITY, empty; its children stay.
	after := getBox(t, mb, "INBOX")
	if after.ID != inbox.ID || after.UIDValidity != inbox.UIDValidity || after.Messages != 0 ||
		after.UIDNext != before.UIDNext || after.HighestModSeq <= before.HighestModSeq {
		t.Fatalf("INBOX after rename %+v, before %+v", after, before)
	}
	if getBox(t, mb, "INBOX/Sub").Messages != 1 {
		t.Fatal("INBOX/Sub was affected by renaming INBOX")
	}
	// The messages moved, in UID order, with new UIDs, flags, dates and
	// the same bodies.
	nb := getBox(t, mb, "Archive/Old Inbox")
	if nb.UIDValidity == inbox.UIDValidity {
		t.Fatal("new mailbox shares INBOX's UIDVALIDITY")
	}
	getBox(t, mb, "Archive")
	moved := listByID(t, mb, nb.ID)
	if len(moved) != len(old) {
		t.Fatalf("new mailbox has %d messages, want %d", len(moved), len(old))
	}
	for i, m := range moved {
		if m.UID != uint32(i+1) || !reflect.DeepEqual(m.Flags, old[i].Flags) || !m.InternalDate.Equal(date) ||
			m.BodyID != old[i].BodyID || m.Size != old[i].Size {
			t.Fatalf("moved message %d = %+v, was %+v", i, m, old[i])
		}
		if got := string(readBody(t, s, m.BodyID)); got != bodies[i] {
			t.Fatalf("moved body %d reads %q", i, got)
		}
	}
	if got := quotaUsed(t, mb); got != used {
		t.Fatalf("quota used %d after renaming INBOX, want %d (unchanged)", got, used)
	}
	// INBOX's moved messages are expunges for QRESYNC.
	ch, err := mb.ChangesSince(c, inbox.ID, before.HighestModSeq)
	must(t, err)
	if !reflect.DeepEqual(ch.Expunged, uidList(old)) || len(ch.Changed) != 0 {
		t.Fatalf("INBOX changes after rename: expunged %v changed %v, want expunged %v", ch.Expunged, uidList(ch.Changed), uidList(old))
	}
	// New mail still lands in INBOX, after the old UIDs.
	if uid := appendMsg(t, mb, "INBOX", "new"); uid != before.UIDNext {
		t.Fatalf("next INBOX UID %d, want %d", uid, before.UIDNext)
	}
	// Renaming an empty INBOX creates an empty mailbox.
	must(t, mb.DeleteMailbox(c, alice, "INBOX/Sub"))
	_, err = mb.ExpungeByID(c, inbox.ID, uidList(listByID(t, mb, inbox.ID)))
	must(t, err)
	must(t, mb.RenameMailbox(c, alice, "INBOX", "Empty"))
	if getBox(t, mb, "Empty").Messages != 0 {
		t.Fatal("renaming an empty INBOX moved messages")
	}
	err = mb.RenameMailbox(c, alice, "INBOX", "Empty")
	wantErr(t, err, store.ErrMailboxExists, "rename INBOX onto an existing name")
}

func testSubscribe(t *testing.T, open Open) {
	_, mb := imapStore(t, open, 0)
	c := ctx(t)
	_, err := mb.CreateMailbox(c, alice, "Lists", "")
	must(t, err)
	if getBox(t, mb, "Lists").Subscribed {
		t.Fatal("CREATE subscribed")
	}
	must(t, mb.SetSubscribed(c, alice, "Lists", true))
	must(t, mb.SetSubscribed(c, alice, "Lists", true)) // twice: no error
	must(t, mb.SetSubscribed(c, alice, "Lists", false))
	if getBox(t, mb, "Lists").Subscribed {
		t.Fatal("still subscribed after unsubscribe")
	}
	must(t, mb.SetSubscribed(c, alice, "Lists", true))
	if !getBox(t, mb, "Lists").Subscribed {
		t.Fatal("not subscribed after subscribe")
	}
	must(t, mb.SetSubscribed(c, alice, "inbox", false))
	if getBox(t, mb, "INBOX").Subscribed {
		t.Fatal("inbox: subscription not changed")
	}
	// The list is the user's own: a name without a mailbox can be on it,
	// DELETE leaves a subscription and RENAME moves it with the tree.
	must(t, mb.SetSubscribed(c, alice, "Missing", true))
	_, err = mb.CreateMailbox(c, alice, "Old/Child", "")
	must(t, err)
	must(t, mb.SetSubscribed(c, alice, "Old", true))
	must(t, mb.SetSubscribed(c, alice, "Old/Child", true))
	must(t, mb.RenameMailbox(c, alice, "Old", "New"))
	if !getBox(t, mb, "New/Child").Subscribed || !getBox(t, mb, "New").Subscribed {
		t.Fatal("RENAME lost the subscriptions")
	}
	must(t, mb.DeleteMailbox(c, alice, "New/Child"))
	subs, err := mb.Subscriptions(c, alice)
	must(t, err)
	if got := strings.Join(subs, ","); got != "Drafts,Junk,Lists,Missing,New,New/Child,Sent,Trash" {
		t.Fatalf("subscriptions %q, want the defaults but INBOX, Lists, Missing, New, New/Child", got)
	}
	must(t, mb.SetSubscribed(c, alice, "Missing", false))
	must(t, mb.SetSubscribed(c, alice, "Missing", false)) // not listed: no error
}

func testAppend(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	inbox := getBox(t, mb, "INBOX")
	date := time.Date(2023, 4, 5, 6, 7, 8, 0, time.FixedZone("x", 7200))
	body := []byte("Subject: appended\r\n\r\nhello\r\n")
	na := &store.NewAppend{User: alice, Mailbox: "inbox", InternalDate: date, Body: body,
		Flags: []string{`\seen`, `\SEEN`, "$Forwarded", `\Recent`, `\draft`, "$forwarded"}}
	uid, uv, err := mb.AppendMessage(c, na)
	must(t, err)
	if uid != 1 || uv != inbox.UIDValidity {
		t.Fatalf("APPENDUID %d %d, want %d 1", uv, uid, inbox.UIDValidity)
	}
	l := listByID(t, mb, inbox.ID)
	if len(l) != 1 {
		t.Fatalf("INBOX has %d messages", len(l))
	}
	m := l[0]
	if na.BodyID == 0 || na.BodyID != m.BodyID {
		t.Fatalf("NewAppend.BodyID = %d, want the stored body %d", na.BodyID, m.BodyID)
	}
	if want := []string{`\Seen`, "$Forwarded", `\Draft`}; !reflect.DeepEqual(m.Flags, want) {
		t.Fatalf("flags %q, want %q (system flags canonical, duplicates and \\Recent dropped)", m.Flags, want)
	}
	if !m.InternalDate.Equal(date) || m.Size != int64(len(body)) || m.MailboxID != inbox.ID || m.ModSeq <= inbox.HighestModSeq {
		t.Fatalf("appended %+v", m)
	}
	if got := readBody(t, s, m.BodyID); !bytes.Equal(got, body) {
		t.Fatalf("body reads %q", got)
	}
	now := getBox(t, mb, "INBOX")
	if now.UIDNext != 2 || now.Messages != 1 || now.HighestModSeq != m.ModSeq {
		t.Fatalf("INBOX after append %+v", now)
	}
	if quotaUsed(t, mb) != int64(len(body)) {
		t.Fatal("append not charged to the quota")
	}
	// No date: now. Empty body is fine.
	uid2, _, err := mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "Sent"})
	must(t, err)
	sent := listByID(t, mb, getBox(t, mb, "Sent").ID)
	if uid2 != 1 || len(sent) != 1 || sent[0].Size != 0 || len(sent[0].Flags) != 0 {
		t.Fatalf("empty append: uid %d, %+v", uid2, sent)
	}
	recent(t, sent[0].InternalDate, "internal date of an append without one")
	// A body over the inline limit (a blob) reads back the same.
	want := 1
	if bs, ok := unwrap(s).(blobStore); ok {
		big := bytes.Repeat([]byte("big body line\r\n"), int(bs.InlineMax()/15)+10)
		uid, _, err := mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "INBOX", Body: big})
		must(t, err)
		l := listByID(t, mb, inbox.ID)
		if l[len(l)-1].UID != uid || !bytes.Equal(readBody(t, s, l[len(l)-1].BodyID), big) {
			t.Fatal("large appended body does not read back")
		}
		want++
	}
	_, _, err = mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "Missing", Body: body})
	wantErr(t, err, store.ErrNotFound, "append to a missing mailbox")
	_, _, err = mb.AppendMessage(c, &store.NewAppend{User: "nobody@example.com", Mailbox: "INBOX", Body: body})
	wantErr(t, err, store.ErrNotFound, "append for a missing user")
	if _, _, err := mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "INBOX", Flags: []string{"bad flag"}}); err == nil {
		t.Fatal("append accepted a flag with a space")
	}
	if n := getBox(t, mb, "INBOX").Messages; n != want {
		t.Fatalf("failed appends stored messages: INBOX has %d, want %d", n, want)
	}
}

func testAppendQuota(t *testing.T, open Open) {
	_, mb := imapStore(t, open, 100)
	c := ctx(t)
	used, limit, err := mb.Quota(c, alice)
	must(t, err)
	if used != 0 || limit != 100 {
		t.Fatalf("Quota = %d, %d; want 0, 100", used, limit)
	}
	appendMsg(t, mb, "INBOX", string(bytes.Repeat([]byte{'x'}, 60)))
	before := getBox(t, mb, "INBOX")
	_, _, err = mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "INBOX", Body: bytes.Repeat([]byte{'y'}, 41)})
	wantErr(t, err, store.ErrQuotaExceeded, "append over quota")
	if after := getBox(t, mb, "INBOX"); !reflect.DeepEqual(after, before) {
		t.Fatalf("refused append changed INBOX: %+v -> %+v", before, after)
	}
	if quotaUsed(t, mb) != 60 {
		t.Fatal("refused append charged the quota")
	}
	appendMsg(t, mb, "INBOX", string(bytes.Repeat([]byte{'z'}, 40))) // exactly full
	if used, _, _ := mb.Quota(c, alice); used != 100 {
		t.Fatalf("used %d, want 100", used)
	}
	_, _, err = mb.Quota(c, "nobody@example.com")
	wantErr(t, err, store.ErrNotFound, "Quota of a missing user")
}

// testAppendMessages: RFC 3502 MULTIAPPEND stores all messages or none.
func testAppendMessages(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 100)
	c := ctx(t)
	before := getBox(t, mb, "INBOX")
	msgs := []*store.NewAppend{
		{Flags: []string{`\Seen`}, Body: []byte("Subject: one\r\n\r\n1\r\n")},
		{Body: []byte("Subject: two\r\n\r\n2\r\n")},
	}
	uids, uv, err := mb.AppendMessages(c, alice, "inbox", msgs)
	must(t, err)
	if !reflect.DeepEqual(uids, []uint32{1, 2}) || uv != before.UIDValidity {
		t.Fatalf("AppendMessages = %v %d, want [1 2] %d", uids, uv, before.UIDValidity)
	}
	l := listByID(t, mb, before.ID)
	if len(l) != 2 || l[0].ModSeq != l[1].ModSeq || !reflect.DeepEqual(l[0].Flags, []string{`\Seen`}) {
		t.Fatalf("stored %+v", l)
	}
	for i, m := range l {
		if msgs[i].BodyID != m.BodyID || !bytes.Equal(readBody(t, s, m.BodyID), msgs[i].Body) {
			t.Fatalf("message %d: body id %d, stored %d", i, msgs[i].BodyID, m.BodyID)
		}
	}
	m, err := mb.MessageByUID(c, before.ID, 2)
	must(t, err)
	if m.UID != 2 || m.BodyID != msgs[1].BodyID || m.Size != int64(len(msgs[1].Body)) {
		t.Fatalf("MessageByUID(2) = %+v", m)
	}
	_, err = mb.MessageByUID(c, before.ID, 3)
	wantErr(t, err, store.ErrNotFound, "MessageByUID of a missing UID")
	used := quotaUsed(t, mb)
	// Over quota together though each alone fits: nothing is stored.
	over := []*store.NewAppend{{Body: bytes.Repeat([]byte{'a'}, 30)}, {Body: bytes.Repeat([]byte{'b'}, 40)}}
	mid := getBox(t, mb, "INBOX")
	_, _, err = mb.AppendMessages(c, alice, "INBOX", over)
	wantErr(t, err, store.ErrQuotaExceeded, "multiappend over quota")
	if after := getBox(t, mb, "INBOX"); !reflect.DeepEqual(after, mid) || quotaUsed(t, mb) != used {
		t.Fatalf("refused multiappend changed INBOX or the quota: %+v -> %+v", mid, after)
	}
	_, _, err = mb.AppendMessages(c, alice, "Missing", msgs)
	wantErr(t, err, store.ErrNotFound, "multiappend to a missing mailbox")
	bad := []*store.NewAppend{{Body: []byte("x")}, {Flags: []string{"bad flag"}, Body: []byte("y")}}
	if _, _, err := mb.AppendMessages(c, alice, "INBOX", bad); err == nil {
		t.Fatal("multiappend accepted a flag with a space")
	}
	if n := getBox(t, mb, "INBOX").Messages; n != 2 {
		t.Fatalf("failed multiappends stored messages: INBOX has %d", n)
	}
	// Bodies over the inline limit (a blob file, or chunks on
	// PostgreSQL) read back the same.
	if bs, ok := unwrap(s).(blobStore); ok {
		u, err := s.GetUser(c, alice)
		must(t, err)
		u.QuotaBytes = 0
		must(t, s.UpdateUser(c, u))
		big := bytes.Repeat([]byte("big body line\r\n"), int(bs.InlineMax()/15)+10)
		two := []*store.NewAppend{{Body: big}, {Body: append([]byte("2"), big...)}}
		uids, _, err := mb.AppendMessages(c, alice, "Sent", two)
		must(t, err)
		l := listByID(t, mb, getBox(t, mb, "Sent").ID)
		if len(uids) != 2 || len(l) != 2 || !bytes.Equal(readBody(t, s, l[1].BodyID), two[1].Body) {
			t.Fatal("large multiappended bodies do not read back")
		}
	}
}
