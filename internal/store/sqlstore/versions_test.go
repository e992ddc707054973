package sqlstore

import (
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.ChangeVersions = (*Store)(nil)

// Every kind of committed change to a user's mailboxes moves her
// ChangeVersion, and only hers.
func TestChangeVersion(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		must(t, s.CreateUser(ctx, func() *store.User { u := store.NewUser("bob", "example.test", 0, 80); return &u }()))
		in := box(t, s, "INBOX")
		sent := box(t, s, "Sent")
		step := func(name string, fn func()) {
			t.Helper()
			before, bob := s.ChangeVersion(imapUser), s.ChangeVersion("bob@example.test")
			fn()
			if got := s.ChangeVersion(imapUser); got <= before {
				t.Fatalf("%s: version %d, was %d", name, got, before)
			}
			if got := s.ChangeVersion("bob@example.test"); got != bob {
				t.Fatalf("%s moved bob's version", name)
			}
		}
		step("delivery", func() { deliver(t, s, "m1", []byte("Subject: a\r\n\r\nx\r\n"), "alice") })
		step("append", func() { add(t, s, "INBOX", []byte("Subject: b\r\n\r\ny\r\n")) })
		step("store flags", func() {
			_, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: in.ID, UIDs: []uint32{1, 2}, Op: store.FlagsAdd, Flags: []string{`\Deleted`}})
			must(t, err)
		})
		step("copy", func() {
			_, _, _, err := s.CopyMessages(ctx, in.ID, []uint32{1}, sent.ID, false)
			must(t, err)
		})
		step("move", func() {
			_, _, _, err := s.CopyMessages(ctx, in.ID, []uint32{2}, sent.ID, true)
			must(t, err)
		})
		step("expunge by id", func() {
			_, err := s.ExpungeByID(ctx, sent.ID, nil)
			must(t, err)
		})
		step("expunge (POP3)", func() {
			add(t, s, "INBOX", []byte("Subject: c\r\n\r\nz\r\n"))
			must(t, s.ExpungeMessages(ctx, imapUser, "INBOX", []uint32{3}))
		})
		step("create", func() {
			_, err := s.CreateMailbox(ctx, imapUser, "Work", "")
			must(t, err)
		})
		step("rename", func() { must(t, s.RenameMailbox(ctx, imapUser, "Work", "Play")) })
		step("delete", func() { must(t, s.DeleteMailbox(ctx, imapUser, "Play")) })
		// Case does not matter: addresses are compared folded.
		if s.ChangeVersion("ALICE@example.test") != s.ChangeVersion(imapUser) {
			t.Fatal("version depends on case")
		}
		// A read changes nothing.
		v := s.ChangeVersion(imapUser)
		if _, err := s.ChangesSince(ctx, in.ID, 0); err != nil {
			t.Fatal(err)
		}
		if s.ChangeVersion(imapUser) != v {
			t.Fatal("ChangesSince moved the version")
		}
	})
}
