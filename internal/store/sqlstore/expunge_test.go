package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// expungeFixture makes a domain with the given users (no quota limit).
func expungeFixture(t *testing.T, s *Store, users ...string) {
	t.Helper()
	ctx := t.Context()
	must(t, s.CreateDomain(ctx, &store.Domain{Name: "example.test", MaxUsers: -1, MaxAliases: -1}))
	for _, u := range users {
		nu := store.NewUser(u, "example.test", 0, 80)
		must(t, s.CreateUser(ctx, &nu))
	}
}

func deliver(t *testing.T, s *Store, id string, body []byte, users ...string) {
	t.Helper()
	m := &store.NewMessage{ID: id, Sender: "s@remote.test", Body: body}
	for _, u := range users {
		m.Targets = append(m.Targets, store.MailboxTarget{User: u + "@example.test"})
	}
	must(t, s.CommitMessages(t.Context(), []*store.NewMessage{m}))
}

func usedQuota(t *testing.T, s *Store, email string) int64 {
	t.Helper()
	u, err := s.GetUser(t.Context(), email)
	must(t, err)
	return u.QuotaBytesUsed
}

func inbox(t *testing.T, s *Store, email string) store.Mailbox {
	t.Helper()
	mbs, err := s.ListMailboxes(t.Context(), email)
	must(t, err)
	for _, m := range mbs {
		if m.Name == "INBOX" {
			return m
		}
	}
	t.Fatalf("%s has no INBOX", email)
	return store.Mailbox{}
}

func uidsOf(l []store.MessageInfo) []uint32 {
	var out []uint32
	for _, m := range l {
		out = append(out, m.UID)
	}
	return out
}

func blobNameOf(t *testing.T, s *Store, bodyID int64) string {
	t.Helper()
	var name *string
	must(t, s.readConn().queryRow(t.Context(), `SELECT blob_name FROM body WHERE id = ?`, bodyID).Scan(&name))
	if name == nil {
		t.Fatalf("body %d is inline", bodyID)
	}
	return *name
}

func TestExpungeMessages(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		defer s.Close()
		ctx := t.Context()
		expungeFixture(t, s, "alice", "bob")
		const alice = "alice@example.test"

		small := []byte("Subject: one\r\n\r\nsmall\r\n")
		large := []byte("Subject: two\r\n\r\n" + strings.Repeat("large body line\r\n", 1000)) // > InlineMax: a blob
		shared := []byte("Subject: three\r\n\r\nfor alice and bob\r\n")
		deliver(t, s, "m1", small, "alice")
		deliver(t, s, "m2", large, "alice")
		deliver(t, s, "m3", shared, "alice", "bob")
		kept := []byte("Subject: four\r\n\r\nkept\r\n")
		deliver(t, s, "m4", kept, "alice")

		before, err := s.ListMessages(ctx, alice, "INBOX")
		must(t, err)
		if got := uidsOf(before); fmt.Sprint(got) != "[1 2 3 4]" {
			t.Fatalf("UIDs before: %v", got)
		}
		total := int64(len(small) + len(large) + len(shared) + len(kept))
		if u := usedQuota(t, s, alice); u != sumSize(before) || u != total {
			t.Fatalf("quota_bytes_used %d, messages %d, want %d", u, sumSize(before), total)
		}
		largeBlob := largeOf(t, s, before[1].BodyID)
		mb := inbox(t, s, alice)

		// Unknown and repeated UIDs are ignored; the case of INBOX too.
		must(t, s.ExpungeMessages(ctx, alice, "inbox", []uint32{3, 2, 99, 2}))

		after, err := s.ListMessages(ctx, alice, "INBOX")
		must(t, err)
		if got := uidsOf(after); fmt.Sprint(got) != "[1 4]" {
			t.Fatalf("UIDs after: %v", got)
		}
		if u := usedQuota(t, s, alice); u != sumSize(after) {
			t.Fatalf("quota_bytes_used %d after expunge, want %d", u, sumSize(after))
		}
		mb2 := inbox(t, s, alice)
		if mb2.HighestModSeq <= mb.HighestModSeq {
			t.Fatalf("highestmodseq %d -> %d, want it raised", mb.HighestModSeq, mb2.HighestModSeq)
		}
		if mb2.UIDNext != mb.UIDNext || mb2.UIDValidity != mb.UIDValidity {
			t.Fatalf("uidnext/uidvalidity changed: %+v -> %+v", mb, mb2)
		}
		// The large body had only this message: the background releaser
		// removes row and blob file soon after, with nobody calling it.
		eventually(t, "the expunged blob body released", func() bool {
			var pending, trash int
			must(t, s.readConn().queryRow(ctx, `SELECT COUNT(*) FROM body_unref`).Scan(&pending))
			must(t, s.readConn().queryRow(ctx, `SELECT COUNT(*) FROM blob_trash`).Scan(&trash))
			return pending == 0 && trash == 0 && !largeBlob.exists(t, s)
		})
		if _, err := s.OpenBody(ctx, before[1].BodyID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("OpenBody of the expunged blob body: %v, want ErrNotFound", err)
		}
		// The shared body stays for bob.
		bobs, err := s.ListMessages(ctx, "bob@example.test", "INBOX")
		must(t, err)
		if len(bobs) != 1 || string(readAll(t, s, bobs[0].BodyID)) != string(shared) {
			t.Fatalf("bob's copy of the shared message is damaged: %+v", bobs)
		}
		if u := usedQuota(t, s, "bob@example.test"); u != int64(len(shared)) {
			t.Fatalf("bob's quota_bytes_used %d changed", u)
		}

		// Nothing left to delete: no change, no new modseq.
		must(t, s.ExpungeMessages(ctx, alice, "INBOX", []uint32{2, 3}))
		must(t, s.ExpungeMessages(ctx, alice, "INBOX", nil))
		if mb3 := inbox(t, s, alice); mb3.HighestModSeq != mb2.HighestModSeq {
			t.Fatalf("highestmodseq moved %d -> %d without an expunge", mb2.HighestModSeq, mb3.HighestModSeq)
		}

		// A new delivery gets a fresh UID, not a reused one.
		deliver(t, s, "m5", small, "alice")
		last, err := s.ListMessages(ctx, alice, "INBOX")
		must(t, err)
		if got := uidsOf(last); fmt.Sprint(got) != "[1 4 5]" {
			t.Fatalf("UIDs after a new delivery: %v", got)
		}
		if m := last[2]; m.ModSeq <= mb2.HighestModSeq {
			t.Fatalf("new message modseq %d not above the expunge's %d", m.ModSeq, mb2.HighestModSeq)
		}
	})
}

func sumSize(l []store.MessageInfo) int64 {
	var n int64
	for _, m := range l {
		n += m.Size
	}
	return n
}

func readAll(t *testing.T, s *Store, id int64) []byte {
	t.Helper()
	rc, err := s.OpenBody(t.Context(), id)
	must(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	must(t, err)
	return b
}

func TestExpungeNotFound(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		defer s.Close()
		ctx := t.Context()
		expungeFixture(t, s, "alice")
		deliver(t, s, "m1", []byte("x\r\n"), "alice")
		for _, c := range []struct{ user, mailbox string }{
			{"alice@example.test", "Nope"},
			{"nobody@example.test", "INBOX"},
		} {
			err := s.ExpungeMessages(ctx, c.user, c.mailbox, []uint32{1})
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s %s: %v, want ErrNotFound", c.user, c.mailbox, err)
			}
		}
		if l, err := s.ListMessages(ctx, "alice@example.test", "INBOX"); err != nil || len(l) != 1 {
			t.Fatalf("alice's message: %v %v", l, err)
		}
	})
}

// TestExpungeQuotaFloor: a used quota that was already too low (an
// imported account, a manual fix) stops at zero.
func TestExpungeQuotaFloor(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		defer s.Close()
		ctx := t.Context()
		expungeFixture(t, s, "alice")
		deliver(t, s, "m1", []byte("Subject: x\r\n\r\nhello\r\n"), "alice")
		_, err := s.write.ExecContext(ctx, s.d.rebind(`UPDATE "user" SET quota_bytes_used = 3 WHERE email = ?`), "alice@example.test")
		must(t, err)
		must(t, s.ExpungeMessages(ctx, "alice@example.test", "INBOX", []uint32{1}))
		if u := usedQuota(t, s, "alice@example.test"); u != 0 {
			t.Fatalf("quota_bytes_used %d, want 0", u)
		}
	})
}

// TestExpungeMany expunges about a thousand UIDs, passed to one DELETE
// as one parameter (dialect.intSet), and waits for their bodies to be
// released in the background.
func TestExpungeMany(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		defer s.Close()
		ctx := t.Context()
		expungeFixture(t, s, "alice")
		const n = 1037
		var msgs []*store.NewMessage
		for i := range n {
			msgs = append(msgs, &store.NewMessage{ID: fmt.Sprint(i), Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i),
				Targets: []store.MailboxTarget{{User: "alice@example.test"}}})
		}
		must(t, s.CommitMessages(ctx, msgs))
		var del []uint32
		for uid := uint32(1); uid <= n; uid++ {
			if uid%7 != 0 {
				del = append(del, uid)
			}
		}
		must(t, s.ExpungeMessages(ctx, "alice@example.test", "INBOX", del))
		left, err := s.ListMessages(ctx, "alice@example.test", "INBOX")
		must(t, err)
		if len(left) != n/7 {
			t.Fatalf("%d messages left, want %d", len(left), n/7)
		}
		for _, m := range left {
			if m.UID%7 != 0 {
				t.Fatalf("UID %d survived", m.UID)
			}
		}
		if u := usedQuota(t, s, "alice@example.test"); u != sumSize(left) {
			t.Fatalf("quota_bytes_used %d, want %d", u, sumSize(left))
		}
		eventually(t, "one body per message left", func() bool {
			var bodies int
			must(t, s.readConn().queryRow(ctx, `SELECT COUNT(*) FROM body`).Scan(&bodies))
			return bodies == len(left)
		})
	})
}

// TestExpungeConcurrentDeliveries runs expunges beside deliveries to the
// same users (on PostgreSQL they take the same row locks): the used quota
// always matches what is left.
func TestExpungeConcurrentDeliveries(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		defer s.Close()
		ctx := context.WithoutCancel(t.Context())
		expungeFixture(t, s, "alice", "bob")
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 25 {
					m := &store.NewMessage{ID: fmt.Sprintf("w%d-%d", w, i), Body: fmt.Appendf(nil, "Subject: %d/%d\r\n\r\nx\r\n", w, i),
						Targets: []store.MailboxTarget{{User: "alice@example.test"}, {User: "bob@example.test"}}}
					if err := s.CommitMessages(ctx, []*store.NewMessage{m}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for _, u := range []string{"bob@example.test", "alice@example.test"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					l, err := s.ListMessages(ctx, u, "INBOX")
					if errors.Is(err, store.ErrNotFound) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					var del []uint32
					for i, m := range l {
						if i%2 == 0 {
							del = append(del, m.UID)
						}
					}
					if err := s.ExpungeMessages(ctx, u, "INBOX", del); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, u := range []string{"alice@example.test", "bob@example.test"} {
			l, err := s.ListMessages(ctx, u, "INBOX")
			must(t, err)
			if got := usedQuota(t, s, u); got != sumSize(l) {
				t.Fatalf("%s: quota_bytes_used %d, messages %d", u, got, sumSize(l))
			}
		}
	})
}

// eventually polls cond until it holds, failing after 20 seconds: for
// work the store does in the background.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
	}
}

// TestReleaseKeepsQueuedBody: a body shared by a mailbox copy and an
// outbound queue entry survives the copy's expunge and its background
// release, and goes with the queue entry (whose trigger still releases
// at once), whichever runs first.
func TestReleaseKeepsQueuedBody(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := o.openStore(t)
		defer s.Close()
		ctx := t.Context()
		expungeFixture(t, s, "alice")
		body := []byte("Subject: shared\r\n\r\nbody\r\n")
		must(t, s.CommitMessages(ctx, []*store.NewMessage{{ID: "q1", Sender: "alice@example.test", Body: body,
			Size: int64(len(body)), Targets: []store.MailboxTarget{{User: "alice@example.test"}}, Remote: []string{"x@r.example"}}}))
		l, err := s.ListMessages(ctx, "alice@example.test", "INBOX")
		must(t, err)
		if len(l) != 1 {
			t.Fatalf("%d messages, want 1", len(l))
		}
		id := l[0].BodyID
		must(t, s.ExpungeMessages(ctx, "alice@example.test", "INBOX", []uint32{l[0].UID}))
		s.releaseNow(ctx)
		if n := bodyRefs(t, s, id); n != 1 {
			t.Fatalf("after the expunge and release: refs %d, want 1 (the queue entry)", n)
		}
		r, err := s.OpenBody(ctx, id)
		must(t, err)
		r.Close()
		q, err := s.ListQueueEntries(ctx)
		must(t, err)
		if len(q) != 1 {
			t.Fatalf("%d queue entries, want 1", len(q))
		}
		must(t, s.DeleteQueueItem(ctx, q[0].ID))
		if _, err := s.OpenBody(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("body after the queue entry went: %v, want ErrNotFound", err)
		}
		var pending int
		must(t, s.readConn().queryRow(ctx, `SELECT COUNT(*) FROM body_unref`).Scan(&pending))
		if pending != 0 {
			t.Fatalf("%d body_unref rows left", pending)
		}
	})
}

// TestReleaseGrace: an expunged message's body stays readable through
// the release grace (a session not yet told of the expunge can still
// FETCH it, RFC 2180 4.1.1); the releaser then frees only the rows its
// mark covers, the admin path frees all at once, and with a short grace
// the background releaser frees the body by itself.
func TestReleaseGrace(t *testing.T) {
	for _, fl := range []struct {
		name string
		mk   func(testing.TB) Options
	}{{"sqlite", sqliteOptions}, {"postgresql", pgOptions}} {
		t.Run(fl.name, func(t *testing.T) {
			if fl.name == "postgresql" {
				skipWithoutPG(t)
			}
			graced := func(d time.Duration) *opener {
				return newOpener(func(tb testing.TB) Options {
					o := fl.mk(tb)
					o.ReleaseGrace = d
					return o
				})
			}
			ctx := t.Context()
			readable := func(s *Store, id int64) bool {
				t.Helper()
				r, err := s.OpenBody(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return false
				}
				must(t, err)
				r.Close()
				return true
			}

			s := imapFixture(t, graced(time.Hour), 0)
			inbox := box(t, s, "INBOX")
			uid1 := add(t, s, "INBOX", []byte("Subject: one\r\n\r\nfirst body\r\n"))
			uid2 := add(t, s, "INBOX", []byte("Subject: two\r\n\r\nsecond body\r\n"))
			msgs, err := s.ListMessagesByID(ctx, inbox.ID)
			must(t, err)
			body := map[uint32]int64{}
			for _, m := range msgs {
				body[m.UID] = m.BodyID
			}
			_, err = s.ExpungeByID(ctx, inbox.ID, []uint32{uid1})
			must(t, err)
			mark, err := s.newestUnref(ctx)
			must(t, err)
			_, err = s.ExpungeByID(ctx, inbox.ID, []uint32{uid2})
			must(t, err)
			if !readable(s, body[uid1]) || !readable(s, body[uid2]) {
				t.Fatal("an expunged message's body went before its grace")
			}
			_, err = s.releaseBodiesUpTo(ctx, mark)
			must(t, err)
			if readable(s, body[uid1]) {
				t.Error("the body under the mark was not released")
			}
			if !readable(s, body[uid2]) {
				t.Error("the body expunged after the mark was released with it")
			}
			s.releaseNow(ctx)
			if readable(s, body[uid2]) {
				t.Error("releaseNow left a body")
			}

			// Maintain's garbage collection keeps the grace too: a body
			// expunged just before it runs is still readable while it
			// waits, and released when it returns.
			s = imapFixture(t, graced(2*time.Second), 0)
			uid4 := add(t, s, "INBOX", []byte("Subject: four\r\n\r\nfourth body\r\n"))
			m4, err := s.MessageByUID(ctx, box(t, s, "INBOX").ID, uid4)
			must(t, err)
			_, err = s.ExpungeByID(ctx, m4.MailboxID, []uint32{uid4})
			must(t, err)
			gcDone := make(chan error, 1)
			go func() { gcDone <- s.CollectGarbage(ctx) }()
			time.Sleep(100 * time.Millisecond)
			if !readable(s, m4.BodyID) {
				t.Error("CollectGarbage released a body within its grace")
			}
			must(t, <-gcDone)
			if readable(s, m4.BodyID) {
				t.Error("CollectGarbage returned without releasing a body past its grace")
			}

			s = imapFixture(t, graced(100*time.Millisecond), 0)
			uid := add(t, s, "INBOX", []byte("Subject: three\r\n\r\nthird body\r\n"))
			m, err := s.MessageByUID(ctx, box(t, s, "INBOX").ID, uid)
			must(t, err)
			_, err = s.ExpungeByID(ctx, m.MailboxID, []uint32{uid})
			must(t, err)
			eventually(t, "the body released after a 100 ms grace", func() bool { return !readable(s, m.BodyID) })
		})
	}
}
