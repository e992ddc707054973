package sqlstore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// importUser makes a domain and a user for the import tests.
func importUser(t *testing.T, s *Store) string {
	t.Helper()
	ctx := t.Context()
	if err := s.CreateDomain(ctx, &store.Domain{Name: "one.test", MaxUsers: -1, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
	u := store.NewUser("anna", "one.test", 100, 80) // a quota the import does not enforce
	u.Password = "x"
	if err := s.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	return u.Email
}

// TestImportMessages: given UIDs and UIDVALIDITY are kept, a UID already
// there is skipped (a resumed import), UIDNEXT passes the highest UID,
// the quota is counted but not enforced, and a mailbox holding messages
// under another UIDVALIDITY is refused.
func TestImportMessages(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		ctx := t.Context()
		user := importUser(t, s)
		mb, err := s.PrepareImportMailbox(ctx, store.ImportMailbox{User: user, Name: "Work/2024", UIDValidity: 1700000000, UIDNext: 5, Subscribed: false})
		if err != nil {
			t.Fatal(err)
		}
		if mb.UIDValidity != 1700000000 || mb.UIDNext != 5 || mb.Subscribed {
			t.Fatalf("prepared %+v", mb)
		}
		if _, err := s.GetMailbox(ctx, user, "Work"); err != nil {
			t.Errorf("parent not created: %v", err)
		}
		date := time.Date(2019, 5, 6, 7, 8, 9, 0, time.UTC)
		big := make([]byte, DefaultInlineMax+10) // a blob file on SQLite, inline or blob on PostgreSQL
		for i := range big {
			big[i] = 'x'
		}
		msgs := []store.ImportedMessage{
			{UID: 3, Flags: []string{`\Seen`, "$Label1"}, InternalDate: date, Body: []byte("Subject: a\r\n\r\n")},
			{UID: 9, Flags: nil, InternalDate: date, Body: big},
		}
		n, err := s.ImportMessages(ctx, mb.ID, msgs)
		if err != nil || n != 2 {
			t.Fatalf("import: %d, %v", n, err)
		}
		// The same batch again and one new message: only that one is stored.
		msgs = append(msgs, store.ImportedMessage{UID: 12, Body: []byte("Subject: c\r\n\r\n")})
		n, err = s.ImportMessages(ctx, mb.ID, msgs)
		if err != nil || n != 1 {
			t.Fatalf("second import: %d, %v", n, err)
		}
		got, err := s.ListMessages(ctx, user, "Work/2024")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].UID != 3 || got[1].UID != 9 || got[2].UID != 12 ||
			fmt.Sprint(got[0].Flags) != `[\Seen $Label1]` || !got[0].InternalDate.Equal(date) {
			t.Fatalf("messages %+v", got)
		}
		after, _ := s.GetMailbox(ctx, user, "Work/2024")
		if after.UIDNext != 13 || after.UIDValidity != 1700000000 || after.HighestModSeq <= mb.HighestModSeq {
			t.Errorf("mailbox after %+v", after)
		}
		uids, err := s.MailboxUIDs(ctx, mb.ID)
		if err != nil || fmt.Sprint(uids) != "[3 9 12]" {
			t.Errorf("MailboxUIDs %v %v", uids, err)
		}
		used, _, _ := s.Quota(ctx, user)
		if want := int64(len(msgs[0].Body) + len(big) + len(msgs[2].Body)); used != want {
			t.Errorf("quota used %d, want %d", used, want)
		}
		// Preparing again (a rerun) keeps everything.
		again, err := s.PrepareImportMailbox(ctx, store.ImportMailbox{User: user, Name: "Work/2024", UIDValidity: 1700000000, UIDNext: 5})
		if err != nil || again.UIDNext != 13 || again.Messages != 3 {
			t.Errorf("rerun prepare %+v %v", again, err)
		}
		_, err = s.PrepareImportMailbox(ctx, store.ImportMailbox{User: user, Name: "Work/2024", UIDValidity: 42})
		if !errors.Is(err, store.ErrUIDValidityMismatch) {
			t.Errorf("other UIDVALIDITY over messages: %v", err)
		}
		// An empty mailbox (Petrel's default INBOX) takes the imported one.
		if err := s.EnsureMailboxes(ctx, user, store.DefaultMailboxes); err != nil {
			t.Fatal(err)
		}
		in, err := s.PrepareImportMailbox(ctx, store.ImportMailbox{User: user, Name: "INBOX", UIDValidity: 77, UIDNext: 2, Subscribed: true})
		if err != nil || in.UIDValidity != 77 || in.UIDNext != 2 {
			t.Errorf("INBOX %+v %v", in, err)
		}
		if sent, _ := s.PrepareImportMailbox(ctx, store.ImportMailbox{User: user, Name: "Sent", SpecialUse: `\Sent`, UIDValidity: 78, Subscribed: true}); sent == nil || sent.SpecialUse != `\Sent` {
			t.Errorf("Sent %+v", sent)
		}
	})
}
