package sqlstore

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// TestPollAsChanges: the one-statement poll answers what the read
// transaction answers, from every modseq a client may be at: new
// messages, flag changes, expunges, nothing at all, a page limit, and
// expunge records pruned (then the transaction answers).
func TestPollAsChanges(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		viaTx := func(id int64, modseq uint64, limit int) *store.Changes {
			ch, err := s.firstPageTx(ctx, id, modseq, limit)
			must(t, err)
			return ch
		}
		compare := func(id int64, modseq uint64, limit int) {
			t.Helper()
			got, ok, err := s.poll(ctx, id, modseq, limit)
			must(t, err)
			if !ok {
				t.Fatalf("modseq %d: the poll could not answer", modseq)
			}
			if want := viaTx(id, modseq, limit); !reflect.DeepEqual(got, want) {
				t.Fatalf("modseq %d, limit %d:\n poll %+v\n   tx %+v", modseq, limit, got, want)
			}
		}
		for i := range 8 {
			add(t, s, "INBOX", []byte(fmt.Sprint("Subject: m", i, "\r\n\r\nbody\r\n")))
		}
		mb := box(t, s, "INBOX")
		_, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: mb.ID, UIDs: []uint32{2, 5}, Op: store.FlagsAdd, Flags: []string{`\Seen`, "$Label1"}})
		must(t, err)
		_, err = s.ExpungeByID(ctx, mb.ID, []uint32{3, 7})
		must(t, err)
		mb = box(t, s, "INBOX")
		for ms := uint64(0); ms <= mb.HighestModSeq+1; ms++ {
			compare(mb.ID, ms, 1000)
			compare(mb.ID, ms, 2) // the page cut short
		}
		// An idle poll: the mailbox only.
		ch, ok, err := s.poll(ctx, mb.ID, mb.HighestModSeq, 1000)
		must(t, err)
		if !ok || ch.Mailbox.Messages != 6 || ch.Changed != nil || ch.Expunged != nil {
			t.Fatalf("idle poll: %v %+v", ok, ch)
		}
		if _, _, err := s.poll(ctx, mb.ID+1000, 0, 1000); err != store.ErrNotFound {
			t.Fatalf("a mailbox that is not there: %v", err)
		}
		// Expunge records pruned below a client's modseq: the poll says
		// so, and ChangesPage lists every UID that is gone.
		start := mb.HighestModSeq
		for uid := uint32(1); uid <= 6; uid++ {
			_, err := s.ExpungeByID(ctx, mb.ID, []uint32{uid})
			must(t, err)
		}
		_, err = s.PruneExpunged(ctx, 1)
		must(t, err)
		if _, ok, err := s.poll(ctx, mb.ID, start, 1000); err != nil || ok {
			t.Fatalf("pruned: ok %v, err %v; want the transaction's answer", ok, err)
		}
		page, err := s.ChangesPage(ctx, mb.ID, start, store.ChangeKey{}, 1000)
		must(t, err)
		if fmt.Sprint(page.Expunged) != "[1 2 3 4 5 6 7]" {
			t.Fatalf("pruned: vanished %v", page.Expunged)
		}
	})
}
