package sqlstore

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestClaimRecent: each claim hands out the UIDs above the previous one
// once, and the claim (a relaxed commit) does not wait for a WAL fsync.
func TestClaimRecent(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		inbox := box(t, s, "INBOX")
		uid1 := add(t, s, "INBOX", []byte("Subject: a\r\n\r\nA\r\n"))
		uid2 := add(t, s, "INBOX", []byte("Subject: b\r\n\r\nB\r\n"))
		// upTo is exclusive: the claim covers [from, upTo)
		_, calls := s.wal.stats()
		from, err := s.ClaimRecent(ctx, inbox.ID, uid2+1)
		must(t, err)
		if _, after := s.wal.stats(); after != calls {
			t.Fatalf("a \\Recent claim waited for %d WAL fsyncs, want none (relaxed)", after-calls)
		}
		if from > uid1 {
			t.Fatalf("first claim from %d, want at most %d", from, uid1)
		}
		if from, err = s.ClaimRecent(ctx, inbox.ID, uid2+1); err != nil || from != uid2+1 {
			t.Fatalf("second claim: from %d err %v, want %d (nothing left)", from, err, uid2+1)
		}
		uid3 := add(t, s, "INBOX", []byte("Subject: c\r\n\r\nC\r\n"))
		if from, err = s.ClaimRecent(ctx, inbox.ID, uid3+1); err != nil || from != uid2+1 {
			t.Fatalf("third claim: from %d err %v, want %d", from, err, uid2+1)
		}
	})
}

// TestRelaxedChangesApply: STORE, COPY, MOVE and EXPUNGE commit relaxed
// (no fsync of their own) and each takes effect; on SQLite STORE and
// COPY return without waiting for the WAL's fsync, and the next delivery
// waits for one that covers them all.
func TestRelaxedChangesApply(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		inbox := box(t, s, "INBOX")
		archive, err := s.CreateMailbox(ctx, inbox.UserEmail, "Archive", "")
		must(t, err)
		uid1 := add(t, s, "INBOX", []byte("Subject: a\r\n\r\nA\r\n"))
		uid2 := add(t, s, "INBOX", []byte("Subject: b\r\n\r\nB\r\n"))
		_, calls := s.wal.stats()
		relaxed := func(after string) {
			t.Helper()
			if _, now := s.wal.stats(); now != calls {
				t.Fatalf("%s waited for %d WAL fsyncs, want none (relaxed)", after, now-calls)
			}
		}
		res, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: inbox.ID, UIDs: []uint32{uid1, uid2}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
		must(t, err)
		if len(res.Changed) != 2 {
			t.Fatalf("STORE changed %d messages, want 2", len(res.Changed))
		}
		relaxed("STORE")
		if _, dst, _, err := s.CopyMessages(ctx, inbox.ID, []uint32{uid1}, archive.ID, false); err != nil || len(dst) != 1 {
			t.Fatalf("COPY: %v %v", dst, err)
		}
		relaxed("COPY")
		if src, _, _, err := s.CopyMessages(ctx, inbox.ID, []uint32{uid2}, archive.ID, true); err != nil || len(src) != 1 {
			t.Fatalf("MOVE: %v %v", src, err)
		}
		gone, err := s.ExpungeByID(ctx, inbox.ID, []uint32{uid1})
		must(t, err)
		if !slices.Equal(gone, []uint32{uid1}) {
			t.Fatalf("EXPUNGE removed %v, want [%d]", gone, uid1)
		}
		msgs, err := s.ListMessagesByID(ctx, archive.ID)
		must(t, err)
		if len(msgs) != 2 {
			t.Fatalf("Archive holds %d messages, want 2 (a copy and a move)", len(msgs))
		}
		for _, m := range msgs {
			if !slices.Contains(m.Flags, `\Seen`) {
				t.Fatalf("Archive message %d has flags %v, want \\Seen carried over", m.UID, m.Flags)
			}
		}
		if left, err := s.ListMessagesByID(ctx, inbox.ID); err != nil || len(left) != 0 {
			t.Fatalf("INBOX after MOVE and EXPUNGE: %d messages, %v; want none", len(left), err)
		}
		syncs, _ := s.wal.stats()
		add(t, s, "INBOX", []byte("Subject: c\r\n\r\nC\r\n"))
		if now, _ := s.wal.stats(); s.Flavor() == FlavorSQLite && now == syncs {
			t.Fatal("an APPEND returned without a WAL fsync")
		}
	})
}

// TestClaimRecentConcurrentSessions: when every session of a mailbox
// claims the same new mail at once, exactly one gets it, and only that
// one takes the writer; the others find the claim done with a read.
func TestClaimRecentConcurrentSessions(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		inbox := box(t, s, "INBOX")
		uid := add(t, s, "INBOX", []byte("Subject: a\r\n\r\nA\r\n"))
		const sessions = 16
		froms := make(chan uint32, sessions)
		start := make(chan struct{})
		txs := s.writeTxs.Load()
		var wg sync.WaitGroup
		for range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				from, err := s.ClaimRecent(ctx, inbox.ID, uid+1)
				if err != nil {
					t.Error(err)
				}
				froms <- from
			}()
		}
		close(start)
		wg.Wait()
		close(froms)
		got := 0
		for from := range froms {
			if from <= uid {
				got++
			}
		}
		if got != 1 {
			t.Fatalf("%d sessions were handed UID %d as \\Recent, want 1", got, uid)
		}
		if n := s.writeTxs.Load() - txs; n != 1 {
			t.Fatalf("%d concurrent claims took the writer %d times, want once", sessions, n)
		}
	})
}

// TestExpungeNothingDeletedReads: an EXPUNGE or UID EXPUNGE that finds
// no \Deleted message answers from a read and never takes the writer;
// one that finds some takes it once and expunges only those.
func TestExpungeNothingDeletedReads(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		// The body releaser, kicked by the expunge, must not run its own
		// write transaction while they are counted.
		mk := o.mk
		o = newOpener(func(tb testing.TB) Options {
			opt := mk(tb)
			opt.ReleaseGrace = time.Hour
			return opt
		})
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		inbox := box(t, s, "INBOX")
		a := add(t, s, "INBOX", []byte("Subject: a\r\n\r\nA\r\n"))
		b := add(t, s, "INBOX", []byte("Subject: b\r\n\r\nB\r\n"))
		txs := s.writeTxs.Load()
		for _, uids := range [][]uint32{nil, {a, b}} {
			var gone []uint32
			var err error
			if uids == nil {
				gone, err = s.ExpungeByID(ctx, inbox.ID, nil)
			} else {
				gone, err = s.ExpungeDeleted(ctx, inbox.ID, uids)
			}
			if err != nil || len(gone) != 0 {
				t.Fatalf("expunge %v with nothing \\Deleted: %v, %v", uids, gone, err)
			}
		}
		if n := s.writeTxs.Load() - txs; n != 0 {
			t.Fatalf("expunges of nothing took the writer %d times", n)
		}
		if _, err := s.ExpungeByID(ctx, inbox.ID+1000, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expunge in a missing mailbox: %v", err)
		}

		if _, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: inbox.ID, UIDs: []uint32{b}, Op: store.FlagsAdd, Flags: []string{`\Deleted`}}); err != nil {
			t.Fatal(err)
		}
		// UID EXPUNGE of a only: b is \Deleted but not named.
		if gone, err := s.ExpungeDeleted(ctx, inbox.ID, []uint32{a}); err != nil || len(gone) != 0 {
			t.Fatalf("UID EXPUNGE of an undeleted message: %v, %v", gone, err)
		}
		txs = s.writeTxs.Load()
		gone, err := s.ExpungeByID(ctx, inbox.ID, nil)
		if err != nil || len(gone) != 1 || gone[0] != b {
			t.Fatalf("EXPUNGE: %v, %v; want [%d]", gone, err, b)
		}
		if n := s.writeTxs.Load() - txs; n != 1 {
			t.Fatalf("an expunge of one message took the writer %d times", n)
		}
	})
}
