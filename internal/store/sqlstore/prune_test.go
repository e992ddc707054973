package sqlstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestPruneExpungedResync: the expunged table is bounded, and a client
// whose modseq is older than the pruned records is not given a partial
// VANISHED list: it gets every UID that is gone (RFC 7162 3.2.5.2), while
// a client newer than the cut still gets the exact list.
func TestPruneExpungedResync(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		for i := range 12 {
			add(t, s, "INBOX", []byte(fmt.Sprint("message ", i)))
		}
		mb := box(t, s, "INBOX")
		start := mb.HighestModSeq
		var after []uint64 // modseq after expunging UID i+1
		for uid := uint32(1); uid <= 10; uid++ {
			_, err := s.ExpungeByID(ctx, mb.ID, []uint32{uid})
			must(t, err)
			after = append(after, box(t, s, "INBOX").HighestModSeq)
		}
		n, err := s.PruneExpunged(ctx, 3)
		must(t, err)
		if n != 7 {
			t.Fatalf("pruned %d records, want 7", n)
		}
		if rows := expungeRows(t, s, mb.ID); len(rows) != 3 {
			t.Fatalf("%d expunge records left, want 3", len(rows))
		}
		// Synchronised after UID 8 went: exact answer from the kept rows.
		ch, err := s.ChangesSince(ctx, mb.ID, after[7])
		must(t, err)
		if fmt.Sprint(ch.Expunged) != "[9 10]" {
			t.Fatalf("client after UID 8: vanished %v, want [9 10]", ch.Expunged)
		}
		// Synchronised before any expunge: every UID that is gone.
		for _, ms := range []uint64{start, after[2]} {
			ch, err = s.ChangesSince(ctx, mb.ID, ms)
			must(t, err)
			if fmt.Sprint(ch.Expunged) != "[1 2 3 4 5 6 7 8 9 10]" {
				t.Fatalf("client at modseq %d: vanished %v, want all of 1..10", ms, ch.Expunged)
			}
		}
		// A second prune with nothing over the bound changes nothing.
		n, err = s.PruneExpunged(ctx, 3)
		must(t, err)
		if n != 0 {
			t.Fatalf("second prune removed %d", n)
		}
	})
}

// TestPruneDeliveryKeys: keys older than the cut go; a delivery with a
// pruned key is no longer recognised (a new message), a kept one is.
func TestPruneDeliveryKeys(t *testing.T) {
	skipWithoutPG(t) // SQLite records no keys (skipDelivered)
	func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		m := func(key string) []*store.NewMessage {
			return []*store.NewMessage{{ID: key, Body: []byte("x"), DeliveryKey: key,
				Targets: []store.MailboxTarget{{User: imapUser}}}}
		}
		must(t, s.CommitMessages(ctx, m("k1")))
		must(t, s.CommitMessages(ctx, m("k1"))) // a re-run: skipped
		if n := len(listMsgs(t, s, box(t, s, "INBOX").ID)); n != 1 {
			t.Fatalf("%d messages after a re-run with the same key, want 1", n)
		}
		n, err := s.PruneDeliveryKeys(ctx, time.Now().Add(-time.Hour))
		must(t, err)
		if n != 0 {
			t.Fatalf("pruned %d fresh keys", n)
		}
		n, err = s.PruneDeliveryKeys(ctx, time.Now().Add(time.Hour))
		must(t, err)
		if n != 1 {
			t.Fatalf("pruned %d keys, want 1", n)
		}
		must(t, s.Maintain(ctx))
	}(t, newOpener(pgOptions))
}
