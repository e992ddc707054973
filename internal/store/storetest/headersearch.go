package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// headerIndexerSetter is how a backend is told to store header fields at
// delivery and APPEND (sqlstore.Store.SetHeaderIndexer).
type headerIndexerSetter interface {
	SetHeaderIndexer(fn store.HeaderIndexer)
}

// testIndexer stands in for IMAP's indexer: the Subject as written,
// lower case, in FieldSubject; "long" makes every field too long.
func testIndexer(header []byte) *store.HeaderFields {
	hf := &store.HeaderFields{}
	for _, line := range strings.Split(string(header), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Subject: "); ok {
			hf.Value[store.FieldSubject] = strings.ToLower(v)
			hf.Value[store.FieldMessageID] = "<" + strings.ToLower(v) + ">"
		}
	}
	if hf.Value[store.FieldSubject] == "long" {
		hf.Value[store.FieldSubject] = strings.Repeat("x", store.MaxHeaderFieldLen+1)
		hf.Long[store.FieldMessageID] = true
	}
	return hf
}

type colEntry struct {
	uid        uint32
	value      string
	ok, stored bool
	body       int64
}

func column(t *testing.T, hs store.HeaderSearch, mailbox int64, f store.HeaderField, from uint32) []colEntry {
	t.Helper()
	var out []colEntry
	must(t, hs.HeaderColumn(ctx(t), mailbox, f, from, func(uid uint32, body int64, v string, ok, stored bool) error {
		out = append(out, colEntry{uid: uid, value: v, ok: ok, stored: stored, body: body})
		return nil
	}))
	return out
}

func testHeaderSearch(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	hs, ok := unwrap(s).(store.HeaderSearch)
	setter, ok2 := unwrap(s).(headerIndexerSetter)
	if !ok || !ok2 {
		t.Skip("backend does not keep header fields")
	}
	c := ctx(t)
	inbox := getBox(t, mb, "INBOX")

	// Stored before the indexer: no fields (an "old" message).
	appendMsg(t, mb, "INBOX", "Subject: Old One\r\n\r\nbody\r\n")
	setter.SetHeaderIndexer(testIndexer)
	appendMsg(t, mb, "INBOX", "Subject: Appended\r\n\r\nbody\r\n")
	must(t, s.CommitMessages(c, []*store.NewMessage{{ID: "d1", Sender: "s@x.example", ReceivedAt: time.Now(),
		Body: []byte("Subject: Delivered\r\n\r\nhello\r\n"), Size: 29,
		Targets: []store.MailboxTarget{{User: alice, Mailbox: "INBOX"}, {User: alice, Mailbox: "Archive"}}}}))
	appendMsg(t, mb, "INBOX", "Subject: long\r\n\r\nbody\r\n")
	// A body over the inline limit (a blob file where the backend has them).
	appendMsg(t, mb, "INBOX", "Subject: Big\r\n\r\n"+strings.Repeat("big body line\r\n", 20000))

	col := column(t, hs, inbox.ID, store.FieldSubject, 1)
	want := []colEntry{
		{uid: 1, ok: false, stored: false},
		{uid: 2, value: "appended", ok: true, stored: true},
		{uid: 3, value: "delivered", ok: true, stored: true},
		{uid: 4, ok: false, stored: true}, // too long: NULL
		{uid: 5, value: "big", ok: true, stored: true},
	}
	if len(col) != len(want) {
		t.Fatalf("column %+v, want %d rows", col, len(want))
	}
	for i, w := range want {
		g := col[i]
		if g.uid != w.uid || g.value != w.value || g.ok != w.ok || g.stored != w.stored {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
	if mid := column(t, hs, inbox.ID, store.FieldMessageID, 2); len(mid) != 4 || mid[0].value != "<appended>" || mid[2].ok {
		t.Errorf("Message-ID column from UID 2: %+v", mid)
	}
	// The delivery's second copy shares the body and its fields.
	if arch := column(t, hs, getBox(t, mb, "Archive").ID, store.FieldSubject, 1); len(arch) != 1 || arch[0].value != "delivered" {
		t.Errorf("Archive column: %+v", arch)
	}

	// Backfill: the reader stores the old body's fields; a second writer
	// does not overwrite them, and a body that is gone is skipped.
	old := col[0].body
	must(t, hs.PutHeaderFields(c, map[int64]*store.HeaderFields{old: {Value: [store.NumHeaderFields]string{"old one"}}}))
	must(t, hs.PutHeaderFields(c, map[int64]*store.HeaderFields{
		old:          {Value: [store.NumHeaderFields]string{"changed"}},
		old + 100000: {Value: [store.NumHeaderFields]string{"nobody"}},
	}))
	if got := column(t, hs, inbox.ID, store.FieldSubject, 1); !got[0].ok || !got[0].stored || got[0].value != "old one" {
		t.Errorf("after backfill: %+v", got[0])
	}
	if got := column(t, hs, inbox.ID, store.FieldFrom, 1); !got[0].stored || !got[0].ok || got[0].value != "" {
		t.Errorf("empty field after backfill: %+v", got[0])
	}

	// Copies keep the fields; expunging every copy drops the body and its
	// fields with it, and storing fields for it again is a no-op.
	trash := getBox(t, mb, "Trash")
	_, _, _, err := mb.CopyMessages(c, inbox.ID, []uint32{2}, trash.ID, true)
	must(t, err)
	if got := column(t, hs, trash.ID, store.FieldSubject, 1); len(got) != 1 || got[0].value != "appended" {
		t.Errorf("moved message: %+v", got)
	}
	uids := uidList(listByID(t, mb, trash.ID))
	_, err = mb.ExpungeByID(c, trash.ID, uids)
	must(t, err)
	if got := column(t, hs, inbox.ID, store.FieldSubject, 1); len(got) != 4 {
		t.Errorf("inbox after the move: %+v", got)
	}
	must(t, hs.PutHeaderFields(c, map[int64]*store.HeaderFields{col[1].body: {}}))
	if got := column(t, hs, trash.ID, store.FieldSubject, 1); len(got) != 0 {
		t.Errorf("trash after expunge: %+v", got)
	}
	if err := hs.HeaderColumn(c, inbox.ID, store.NumHeaderFields, 1, func(uint32, int64, string, bool, bool) error { return nil }); err == nil {
		t.Error("no error for an unknown field")
	}
}
