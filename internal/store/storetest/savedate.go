package storetest

import (
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// testSaveDate: every message gets its save date when it is saved into a
// mailbox, and a copy or move gets a new one while the internal date
// stays (RFC 8514 4.1); SaveDates keeps to the UID range asked for.
func testSaveDate(t *testing.T, open Open) {
	_, mb := imapStore(t, open, 0)
	c := ctx(t)
	before := time.Now().Add(-time.Second)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	_, _, err := mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "INBOX", InternalDate: old, Body: []byte("Subject: a\r\n\r\na\r\n")})
	must(t, err)
	src := fill(t, mb, "INBOX", 2)
	after := time.Now().Add(time.Second)
	got, err := mb.SaveDates(c, src.ID, 1, 3)
	must(t, err)
	if len(got) != 3 {
		t.Fatalf("SaveDates: %v, want UIDs 1-3", got)
	}
	for uid, d := range got {
		if d.Before(before) || d.After(after) {
			t.Fatalf("UID %d saved %v, not between %v and %v", uid, d, before, after)
		}
	}
	if l := listByID(t, mb, src.ID); !l[0].InternalDate.Equal(old) {
		t.Fatalf("internal date %v, want %v", l[0].InternalDate, old)
	}
	if got, err := mb.SaveDates(c, src.ID, 2, 2); err != nil || len(got) != 1 {
		t.Fatalf("SaveDates(2:2) = %v, %v", got, err)
	}

	// Copies are saved now, later than their source was.
	time.Sleep(20 * time.Millisecond) // a clock step between two saves, not a synchronisation
	dst := getBox(t, mb, "Trash")
	_, to, _, err := mb.CopyMessages(c, src.ID, []uint32{1}, dst.ID, false)
	must(t, err)
	_, moved, _, err := mb.CopyMessages(c, src.ID, []uint32{2}, dst.ID, true)
	must(t, err)
	saved, err := mb.SaveDates(c, dst.ID, 1, 10)
	must(t, err)
	for _, uid := range []uint32{to[0], moved[0]} {
		if !saved[uid].After(got[2]) {
			t.Fatalf("copy or move UID %d saved %v, not after the source's %v", uid, saved[uid], got[2])
		}
	}
	if l := listByID(t, mb, dst.ID); !l[0].InternalDate.Equal(old) {
		t.Fatalf("copy's internal date %v, want %v", l[0].InternalDate, old)
	}
	if got, err := mb.SaveDates(c, src.ID, 1, 10); err != nil || len(got) != 2 || got[2] != (time.Time{}) {
		t.Fatalf("source after move: %v, %v", got, err)
	}
}
