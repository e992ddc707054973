package sqlstore

import (
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// checkMessageCounts fails unless every mailbox's message_count, as
// GetMailbox reports it, equals the rows it holds.
func checkMessageCounts(t *testing.T, s *Store, step string) {
	t.Helper()
	ctx := t.Context()
	type row struct {
		user, name string
		kept, real int64
	}
	rows, err := list(ctx, s.readConn(), "counts", func(sc interface{ Scan(...any) error }) (row, error) {
		var r row
		err := sc.Scan(&r.user, &r.name, &r.kept, &r.real)
		return r, err
	}, `SELECT m.user_email, m.name, m.message_count, (SELECT COUNT(*) FROM message x WHERE x.mailbox_id = m.id)
FROM mailbox m ORDER BY m.id`)
	must(t, err)
	if len(rows) == 0 {
		t.Fatalf("%s: no mailboxes", step)
	}
	for _, r := range rows {
		if r.kept != r.real {
			t.Errorf("%s: %s %q: message_count %d, holds %d", step, r.user, r.name, r.kept, r.real)
		}
		mb, err := s.GetMailbox(ctx, r.user, r.name)
		must(t, err)
		if int64(mb.Messages) != r.real {
			t.Errorf("%s: GetMailbox(%s, %q).Messages = %d, holds %d", step, r.user, r.name, mb.Messages, r.real)
		}
	}
}

// Every way messages come and go keeps mailbox.message_count equal to
// the mailbox's rows (migration 0190), which polls and SELECT now read
// instead of counting.
func TestMailboxMessageCount(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		bob := store.NewUser("bob", "example.test", 0, 80)
		must(t, s.CreateUser(ctx, &bob))
		in := box(t, s, "INBOX")
		sent := box(t, s, "Sent")
		msg := func(subject string) []byte { return []byte("Subject: " + subject + "\r\n\r\nbody\r\n") }
		step := func(name string, fn func()) {
			t.Helper()
			fn()
			checkMessageCounts(t, s, name)
		}
		step("delivery to two users", func() { deliver(t, s, "m1", msg("a"), "alice", "bob") })
		step("delivery to two mailboxes of one user", func() {
			m := &store.NewMessage{ID: "m2", Sender: "s@remote.test", Body: msg("b"), Targets: []store.MailboxTarget{
				{User: imapUser}, {User: imapUser, Mailbox: "Junk"}, {User: imapUser},
			}}
			must(t, s.CommitMessages(ctx, []*store.NewMessage{m}))
		})
		step("append", func() { add(t, s, "INBOX", msg("c")) })
		step("multiappend", func() {
			_, _, err := s.AppendMessages(ctx, imapUser, "Sent", []*store.NewAppend{
				{User: imapUser, Mailbox: "Sent", Body: msg("d")},
				{User: imapUser, Mailbox: "Sent", Body: msg("e")},
			})
			must(t, err)
		})
		step("copy", func() {
			_, _, _, err := s.CopyMessages(ctx, in.ID, []uint32{1, 2, 3}, sent.ID, false)
			must(t, err)
		})
		step("move", func() {
			_, _, _, err := s.CopyMessages(ctx, in.ID, []uint32{1, 4}, sent.ID, true)
			must(t, err)
		})
		step("expunge by id, UIDs partly gone", func() {
			_, err := s.ExpungeByID(ctx, sent.ID, []uint32{1, 2, 999})
			must(t, err)
		})
		step("expunge \\Deleted", func() {
			_, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: sent.ID, UIDs: []uint32{3, 4}, Op: store.FlagsAdd, Flags: []string{`\Deleted`}})
			must(t, err)
			_, err = s.ExpungeDeleted(ctx, sent.ID, nil)
			must(t, err)
		})
		step("expunge (POP3)", func() { must(t, s.ExpungeMessages(ctx, imapUser, "INBOX", []uint32{2})) })
		step("rename INBOX", func() { must(t, s.RenameMailbox(ctx, imapUser, "INBOX", "Old")) })
		step("import", func() {
			mb, err := s.PrepareImportMailbox(ctx, store.ImportMailbox{User: imapUser, Name: "Archive", UIDValidity: 7, UIDNext: 1})
			must(t, err)
			batch := []store.ImportedMessage{{UID: 3, Body: msg("f")}, {UID: 5, Body: msg("g")}}
			_, err = s.ImportMessages(ctx, mb.ID, batch)
			must(t, err)
			// Again with one more: the two already there are not counted twice.
			_, err = s.ImportMessages(ctx, mb.ID, append(batch, store.ImportedMessage{UID: 8, Body: msg("h")}))
			must(t, err)
		})
		step("delete mailbox", func() { must(t, s.DeleteMailbox(ctx, imapUser, "Old")) })
		if got := box(t, s, "Archive").Messages; got != 3 {
			t.Fatalf("Archive holds %d messages, want 3", got)
		}
	})
}

// Migration 0190 counts the messages already stored.
func TestMailboxMessageCountMigration(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		for range 3 {
			add(t, s, "INBOX", []byte("Subject: x\r\n\r\ny\r\n"))
		}
		add(t, s, "Sent", []byte("Subject: x\r\n\r\ny\r\n"))
		// Back to the schema before 0190, then open again to apply it.
		c := conn{q: s.write, d: s.d}
		_, err := c.exec(ctx, `ALTER TABLE mailbox DROP COLUMN message_count`)
		must(t, err)
		_, err = c.exec(ctx, `DELETE FROM schema_migrations WHERE version = 190`)
		must(t, err)
		must(t, s.Close())
		s = o.openStore(t)
		t.Cleanup(func() { s.Close() })
		checkMessageCounts(t, s, "after migration")
		if got := box(t, s, "INBOX").Messages; got != 3 {
			t.Fatalf("INBOX: %d messages after migration, want 3", got)
		}
	})
}
