package imapd

import (
	"context"
	"sync"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// racingStore runs hook once just before the first expunge reaches the
// store: what another node does between the session's look at its view
// and the expunge's transaction.
type racingStore struct {
	*sqlstore.Store
	once sync.Once
	hook func()
}

func (r *racingStore) ExpungeByID(ctx context.Context, id int64, uids []uint32) ([]uint32, error) {
	r.once.Do(r.hook)
	return r.Store.ExpungeByID(ctx, id, uids)
}

func (r *racingStore) ExpungeDeleted(ctx context.Context, id int64, uids []uint32) ([]uint32, error) {
	r.once.Do(r.hook)
	return r.Store.ExpungeDeleted(ctx, id, uids)
}

// TestUIDExpungeRechecksDeleted: the session sees \Deleted on UIDs 1:3,
// then another node (a second store on the same database) removes it from
// UID 2 before UID EXPUNGE 1:3 runs. RFC 4315 2.1: only messages that
// are \Deleted may go; UID 2 must stay.
func TestUIDExpungeRechecksDeleted(t *testing.T) {
	rs := &racingStore{}
	ts := startServer(t, func(ts *testServer, o *Options) {
		rs.Store = ts.st
		o.Store = rs
	})
	deliver(t, ts.st, alice, "INBOX", testMessage("one"), testMessage("two"), testMessage("three"))
	other := reopenStore(t, ts)
	mb, err := other.GetMailbox(t.Context(), alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	rs.hook = func() {
		_, err := other.StoreFlags(context.Background(), &store.FlagUpdate{MailboxID: mb.ID, UIDs: []uint32{2},
			Op: store.FlagsRemove, Flags: []string{`\Deleted`}})
		if err != nil {
			t.Error(err)
		}
	}
	c := ts.login(alice, alicePass)
	c.ok("SELECT INBOX")
	c.ok(`UID STORE 1:3 +FLAGS.SILENT (\Deleted)`)
	c.ok("NOOP")
	c.ok("UID EXPUNGE 1:3")
	l := listOf(t, ts, alice, "INBOX")
	if len(l) != 1 || l[0].UID != 2 {
		t.Fatalf("after UID EXPUNGE: %v, want only UID 2 (its \\Deleted was cleared first)", uidList(l))
	}
	for _, f := range l[0].Flags {
		if f == `\Deleted` {
			t.Fatalf("UID 2 flags %v", l[0].Flags)
		}
	}
}

func uidList(l []store.MessageInfo) []uint32 {
	out := make([]uint32, len(l))
	for i, m := range l {
		out[i] = m.UID
	}
	return out
}
