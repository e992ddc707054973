package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// fill appends n messages to alice's mailbox and returns it.
func fill(t *testing.T, mb store.Mailboxes, mailbox string, n int) *store.Mailbox {
	t.Helper()
	for i := range n {
		appendMsg(t, mb, mailbox, fmt.Sprintf("Subject: %s %d\r\n\r\nbody %d\r\n", mailbox, i, i))
	}
	return getBox(t, mb, mailbox)
}

func flagsOf(t *testing.T, mb store.Mailboxes, id int64) map[uint32][]string {
	t.Helper()
	out := map[uint32][]string{}
	for _, m := range listByID(t, mb, id) {
		if len(m.Flags) > 0 {
			out[m.UID] = m.Flags
		} else {
			out[m.UID] = nil
		}
	}
	return out
}

func testStoreFlags(t *testing.T, open Open) {
	_, mb := imapStore(t, open, 0)
	c := ctx(t)
	box := fill(t, mb, "INBOX", 4)
	st := func(op store.FlagOp, flags []string, uids ...uint32) *store.StoreResult {
		t.Helper()
		r, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: uids, Op: op, Flags: flags})
		must(t, err)
		return r
	}
	hms := getBox(t, mb, "INBOX").HighestModSeq

	r := st(store.FlagsAdd, []string{`\SEEN`, "$Work"}, 1, 2, 99)
	if len(r.Changed) != 2 || len(r.Failed) != 0 {
		t.Fatalf("+FLAGS on 1, 2, 99: %+v", r)
	}
	ms := r.Changed[0].ModSeq
	if ms <= hms || r.Changed[1].ModSeq != ms {
		t.Fatalf("STORE modseqs %d, %d; want one new modseq above %d", ms, r.Changed[1].ModSeq, hms)
	}
	if got := getBox(t, mb, "INBOX").HighestModSeq; got != ms {
		t.Fatalf("HIGHESTMODSEQ %d after STORE, want %d", got, ms)
	}
	want := map[uint32][]string{1: {`\Seen`, "$Work"}, 2: {`\Seen`, "$Work"}, 3: nil, 4: nil}
	if got := flagsOf(t, mb, box.ID); !reflect.DeepEqual(got, want) {
		t.Fatalf("flags %v, want %v", got, want)
	}
	if !reflect.DeepEqual(r.Changed[0].Flags, want[1]) || r.Changed[0].UID != 1 || r.Changed[0].BodyID == 0 {
		t.Fatalf("Changed[0] = %+v", r.Changed[0])
	}

	// Adding what is there, in any case, changes nothing: no new modseq.
	r = st(store.FlagsAdd, []string{`\seen`, "$work"}, 1, 2)
	if len(r.Changed) != 0 || getBox(t, mb, "INBOX").HighestModSeq != ms {
		t.Fatalf("no-op STORE changed %+v or bumped HIGHESTMODSEQ", r.Changed)
	}
	// Only the messages whose flags change get the new modseq.
	r = st(store.FlagsAdd, []string{`\Seen`}, 1, 2, 3)
	if len(r.Changed) != 1 || r.Changed[0].UID != 3 {
		t.Fatalf("+FLAGS \\Seen on 1:3 changed %v, want only 3", uidList(r.Changed))
	}
	l := listByID(t, mb, box.ID)
	if l[0].ModSeq != ms || l[2].ModSeq <= ms {
		t.Fatalf("modseqs %d (unchanged message) and %d (changed)", l[0].ModSeq, l[2].ModSeq)
	}
	r = st(store.FlagsRemove, []string{`\seen`, "$WORK", `\Deleted`}, 1, 3)
	want[1], want[3] = nil, nil
	if len(r.Changed) != 2 {
		t.Fatalf("-FLAGS changed %v", uidList(r.Changed))
	}
	r = st(store.FlagsReplace, []string{`\flagged`, "$Label1", `\Answered`}, 2, 4)
	want[2], want[4] = []string{`\Flagged`, "$Label1", `\Answered`}, []string{`\Flagged`, "$Label1", `\Answered`}
	if got := flagsOf(t, mb, box.ID); !reflect.DeepEqual(got, want) {
		t.Fatalf("flags %v, want %v", got, want)
	}
	// Replacing with the same set in another order is no change.
	if r = st(store.FlagsReplace, []string{"$label1", `\Answered`, `\Flagged`}, 2); len(r.Changed) != 0 {
		t.Fatal("FLAGS with the same set counted as a change")
	}
	if r = st(store.FlagsReplace, nil, 2); len(r.Changed) != 1 || len(r.Changed[0].Flags) != 0 {
		t.Fatalf("FLAGS () = %+v", r.Changed)
	}
	if r = st(store.FlagsAdd, []string{`\Draft`}); len(r.Changed) != 0 {
		t.Fatal("STORE without UIDs changed something")
	}

	_, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID + 1000, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	wantErr(t, err, store.ErrNotFound, "STORE in a missing mailbox")
	for _, bad := range []string{"two words", "", `\`, "par(en", "quo\"te", "bra]cket", "star*"} {
		_, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{bad}})
		if err == nil {
			t.Errorf("STORE accepted flag %q", bad)
		}
	}
}

func testUnchangedSince(t *testing.T, open Open) {
	_, mb := imapStore(t, open, 0)
	c := ctx(t)
	box := fill(t, mb, "INBOX", 3)
	l := listByID(t, mb, box.ID)
	// Another session changes message 2 after the client's view.
	r, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{"$Other"}})
	must(t, err)
	view := l[2].ModSeq // the client saw everything up to message 3's append
	// RFC 7162 3.1.3: messages changed since fail, the rest are stored.
	r, err = mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1, 2, 3}, Op: store.FlagsAdd,
		Flags: []string{`\Deleted`}, UnchangedSince: view})
	must(t, err)
	if !reflect.DeepEqual(r.Failed, []uint32{2}) || !reflect.DeepEqual(uidList(r.Changed), []uint32{1, 3}) {
		t.Fatalf("UNCHANGEDSINCE %d: failed %v changed %v; want failed [2], changed [1 3]", view, r.Failed, uidList(r.Changed))
	}
	if f := flagsOf(t, mb, box.ID)[2]; !reflect.DeepEqual(f, []string{"$Other"}) {
		t.Fatalf("failed message's flags changed to %v", f)
	}
	// A message whose modseq equals UNCHANGEDSINCE passes.
	cur := listByID(t, mb, box.ID)[1].ModSeq
	r, err = mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{2}, Op: store.FlagsAdd,
		Flags: []string{`\Seen`}, UnchangedSince: cur})
	must(t, err)
	if len(r.Failed) != 0 || len(r.Changed) != 1 {
		t.Fatalf("UNCHANGEDSINCE equal to the modseq: %+v", r)
	}
	// A failing STORE alone changes nothing.
	before := getBox(t, mb, "INBOX").HighestModSeq
	r, err = mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{2}, Op: store.FlagsReplace,
		UnchangedSince: cur})
	must(t, err)
	if len(r.Failed) != 1 || len(r.Changed) != 0 || getBox(t, mb, "INBOX").HighestModSeq != before {
		t.Fatalf("all-failing STORE: %+v", r)
	}
}

func testCopy(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	src := fill(t, mb, "INBOX", 5)
	_, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: src.ID, UIDs: []uint32{2}, Op: store.FlagsAdd, Flags: []string{`\Seen`, "$K"}})
	must(t, err)
	dst, err := mb.CreateMailbox(c, alice, "Copies", "")
	must(t, err)
	appendMsg(t, mb, "Copies", "already here")
	srcMsgs := listByID(t, mb, src.ID)
	used := quotaUsed(t, mb)

	from, to, uv, err := mb.CopyMessages(c, src.ID, []uint32{4, 2, 99, 2}, dst.ID, false)
	must(t, err)
	if !reflect.DeepEqual(from, []uint32{2, 4}) || !reflect.DeepEqual(to, []uint32{2, 3}) || uv != dst.UIDValidity {
		t.Fatalf("COPYUID %d %v %v, want %d [2 4] [2 3]", uv, from, to, dst.UIDValidity)
	}
	copies := listByID(t, mb, dst.ID)
	if len(copies) != 3 {
		t.Fatalf("destination has %d messages", len(copies))
	}
	for i, orig := range []store.MessageInfo{srcMsgs[1], srcMsgs[3]} {
		cp := copies[i+1]
		if cp.BodyID != orig.BodyID || cp.Size != orig.Size || !cp.InternalDate.Equal(orig.InternalDate) ||
			!reflect.DeepEqual(cp.Flags, orig.Flags) || cp.MailboxID != dst.ID {
			t.Fatalf("copy %+v of %+v: body not shared or attributes lost", cp, orig)
		}
		if !bytes.Equal(readBody(t, s, cp.BodyID), readBody(t, s, orig.BodyID)) {
			t.Fatal("copy reads differently")
		}
	}
	if got, want := quotaUsed(t, mb), used+srcMsgs[1].Size+srcMsgs[3].Size; got != want {
		t.Fatalf("quota used %d after copy, want %d", got, want)
	}
	if got := listByID(t, mb, src.ID); !reflect.DeepEqual(got, srcMsgs) {
		t.Fatal("COPY changed the source")
	}
	// The copies stay when the originals go.
	_, err = mb.ExpungeByID(c, src.ID, []uint32{2, 4})
	must(t, err)
	if !bytes.Contains(readBody(t, s, copies[1].BodyID), []byte("body 1")) {
		t.Fatal("copy lost its body when the original was expunged")
	}
	// Copy into the same mailbox.
	from, to, _, err = mb.CopyMessages(c, src.ID, []uint32{1}, src.ID, false)
	must(t, err)
	if !reflect.DeepEqual(from, []uint32{1}) || !reflect.DeepEqual(to, []uint32{6}) {
		t.Fatalf("copy to self: %v -> %v", from, to)
	}
	// Nothing to copy is no error and no change.
	before := getBox(t, mb, "Copies")
	from, to, uv, err = mb.CopyMessages(c, src.ID, []uint32{2, 4, 1000}, dst.ID, false)
	must(t, err)
	if len(from) != 0 || len(to) != 0 || uv != dst.UIDValidity || !reflect.DeepEqual(getBox(t, mb, "Copies"), before) {
		t.Fatalf("copy of expunged UIDs: %v %v %d", from, to, uv)
	}
	_, _, _, err = mb.CopyMessages(c, src.ID, []uint32{1}, dst.ID+1000, false)
	wantErr(t, err, store.ErrNotFound, "copy to a missing mailbox")
	_, _, _, err = mb.CopyMessages(c, src.ID+1000, []uint32{1}, dst.ID, false)
	wantErr(t, err, store.ErrNotFound, "copy from a missing mailbox")
	// Mailboxes of another user are out of reach.
	seed(t, s, 0, "b")
	must(t, s.EnsureMailboxes(c, "b@example.com", store.DefaultMailboxes))
	bl, err := s.ListMailboxes(c, "b@example.com")
	must(t, err)
	_, _, _, err = mb.CopyMessages(c, src.ID, []uint32{1}, bl[0].ID, false)
	wantErr(t, err, store.ErrNotFound, "copy to another user's mailbox")
	_, _, _, err = mb.CopyMessages(c, src.ID, []uint32{1}, bl[0].ID, true)
	wantErr(t, err, store.ErrNotFound, "move to another user's mailbox")
	if len(listByID(t, mb, bl[0].ID)) != 0 || len(listByID(t, mb, src.ID)) != 4 {
		t.Fatal("cross-user copy or move changed something")
	}
}

func testCopyQuota(t *testing.T, open Open) {
	_, mb := imapStore(t, open, 100)
	c := ctx(t)
	appendMsg(t, mb, "INBOX", string(bytes.Repeat([]byte{'x'}, 40)))
	appendMsg(t, mb, "INBOX", string(bytes.Repeat([]byte{'y'}, 30)))
	inbox := getBox(t, mb, "INBOX")
	trash := getBox(t, mb, "Trash")
	_, _, _, err := mb.CopyMessages(c, inbox.ID, []uint32{1, 2}, trash.ID, false)
	wantErr(t, err, store.ErrQuotaExceeded, "copy over quota")
	if quotaUsed(t, mb) != 70 || len(listByID(t, mb, trash.ID)) != 0 {
		t.Fatal("refused copy changed something")
	}
	// A move is not charged: the user is near the limit and can still
	// move everything to Trash.
	_, _, _, err = mb.CopyMessages(c, inbox.ID, []uint32{1, 2}, trash.ID, true)
	must(t, err)
	if quotaUsed(t, mb) != 70 {
		t.Fatalf("quota used %d after MOVE, want 70", quotaUsed(t, mb))
	}
	_, _, _, err = mb.CopyMessages(c, trash.ID, []uint32{2}, inbox.ID, false) // 30 more: exactly full
	must(t, err)
	if quotaUsed(t, mb) != 100 {
		t.Fatalf("quota used %d, want 100", quotaUsed(t, mb))
	}
}

func testMove(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	src := fill(t, mb, "INBOX", 4)
	dst := getBox(t, mb, "Trash")
	srcMsgs := listByID(t, mb, src.ID)
	used := quotaUsed(t, mb)

	from, to, uv, err := mb.CopyMessages(c, src.ID, []uint32{3, 1}, dst.ID, true)
	must(t, err)
	if !reflect.DeepEqual(from, []uint32{1, 3}) || !reflect.DeepEqual(to, []uint32{1, 2}) || uv != dst.UIDValidity {
		t.Fatalf("MOVE COPYUID %d %v %v", uv, from, to)
	}
	if got := uidList(listByID(t, mb, src.ID)); !reflect.DeepEqual(got, []uint32{2, 4}) {
		t.Fatalf("source after MOVE holds %v, want [2 4]", got)
	}
	moved := listByID(t, mb, dst.ID)
	if len(moved) != 2 || moved[0].BodyID != srcMsgs[0].BodyID || moved[1].BodyID != srcMsgs[2].BodyID {
		t.Fatalf("moved messages %+v", moved)
	}
	for _, m := range moved {
		if len(readBody(t, s, m.BodyID)) == 0 {
			t.Fatal("moved body is gone")
		}
	}
	if quotaUsed(t, mb) != used {
		t.Fatalf("quota used %d after MOVE, want %d", quotaUsed(t, mb), used)
	}
	// The sources' expunges are recorded (RFC 6851 with QRESYNC: VANISHED).
	ch, err := mb.ChangesSince(c, src.ID, src.HighestModSeq)
	must(t, err)
	if !reflect.DeepEqual(ch.Expunged, []uint32{1, 3}) || len(ch.Changed) != 0 || ch.Mailbox.Messages != 2 {
		t.Fatalf("source changes after MOVE: %+v", ch)
	}
	dch, err := mb.ChangesSince(c, dst.ID, dst.HighestModSeq)
	must(t, err)
	if !reflect.DeepEqual(uidList(dch.Changed), []uint32{1, 2}) || len(dch.Expunged) != 0 {
		t.Fatalf("destination changes after MOVE: %+v", dch)
	}
	// Moving within one mailbox renumbers.
	from, to, _, err = mb.CopyMessages(c, src.ID, []uint32{2}, src.ID, true)
	must(t, err)
	if !reflect.DeepEqual(from, []uint32{2}) || !reflect.DeepEqual(to, []uint32{5}) {
		t.Fatalf("move to self: %v -> %v", from, to)
	}
	if got := uidList(listByID(t, mb, src.ID)); !reflect.DeepEqual(got, []uint32{4, 5}) {
		t.Fatalf("after move to self: %v", got)
	}
	// A move that fails moves nothing.
	_, _, _, err = mb.CopyMessages(c, src.ID, []uint32{4}, dst.ID+1000, true)
	wantErr(t, err, store.ErrNotFound, "move to a missing mailbox")
	if got := uidList(listByID(t, mb, src.ID)); !reflect.DeepEqual(got, []uint32{4, 5}) {
		t.Fatalf("failed move changed the source: %v", got)
	}
}

func testExpunge(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	box := fill(t, mb, "INBOX", 5)
	l := listByID(t, mb, box.ID)
	_, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{2, 4}, Op: store.FlagsAdd, Flags: []string{`\Deleted`}})
	must(t, err)
	// "$Deleted" or "\DeletedX" are not \Deleted.
	_, err = mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{"$Deleted", `\DeletedX`}})
	must(t, err)
	used := quotaUsed(t, mb)
	before := getBox(t, mb, "INBOX")

	gone, err := mb.ExpungeByID(c, box.ID, nil)
	must(t, err)
	if !reflect.DeepEqual(gone, []uint32{2, 4}) {
		t.Fatalf("EXPUNGE removed %v, want [2 4]", gone)
	}
	after := getBox(t, mb, "INBOX")
	if after.Messages != 3 || after.HighestModSeq != before.HighestModSeq+1 || after.UIDNext != before.UIDNext {
		t.Fatalf("INBOX after EXPUNGE %+v, before %+v", after, before)
	}
	if got, want := quotaUsed(t, mb), used-l[1].Size-l[3].Size; got != want {
		t.Fatalf("quota used %d after EXPUNGE, want %d", got, want)
	}
	// The body goes, though not necessarily within the expunge (the SQL
	// store releases bodies in the background).
	var bodyErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, bodyErr = s.OpenBody(c, l[1].BodyID); errors.Is(bodyErr, store.ErrNotFound) {
			break
		}
	}
	if !errors.Is(bodyErr, store.ErrNotFound) {
		t.Fatalf("expunged body: OpenBody = %v 20 s later", bodyErr)
	}
	// Explicit UIDs go whatever their flags; missing ones are ignored.
	gone, err = mb.ExpungeByID(c, box.ID, []uint32{5, 2, 77})
	must(t, err)
	if !reflect.DeepEqual(gone, []uint32{5}) {
		t.Fatalf("UID EXPUNGE removed %v, want [5]", gone)
	}
	// Nothing to expunge: no change, no new modseq.
	hms := getBox(t, mb, "INBOX").HighestModSeq
	for _, uids := range [][]uint32{nil, {}, {42}} {
		gone, err = mb.ExpungeByID(c, box.ID, uids)
		must(t, err)
		if len(gone) != 0 {
			t.Fatalf("ExpungeByID(%v) removed %v", uids, gone)
		}
	}
	if getBox(t, mb, "INBOX").HighestModSeq != hms {
		t.Fatal("an empty expunge bumped HIGHESTMODSEQ")
	}
	ch, err := mb.ChangesSince(c, box.ID, before.HighestModSeq)
	must(t, err)
	if !reflect.DeepEqual(ch.Expunged, []uint32{2, 4, 5}) {
		t.Fatalf("expunged since %d: %v, want [2 4 5]", before.HighestModSeq, ch.Expunged)
	}
	ch, err = mb.ChangesSince(c, box.ID, after.HighestModSeq)
	must(t, err)
	if !reflect.DeepEqual(ch.Expunged, []uint32{5}) {
		t.Fatalf("expunged since %d: %v, want [5]", after.HighestModSeq, ch.Expunged)
	}
	_, err = mb.ExpungeByID(c, box.ID+1000, nil)
	wantErr(t, err, store.ErrNotFound, "expunge in a missing mailbox")
}

func testExpungePOP3(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("p1", alice), msg("p2", alice), msg("p3", alice)}))
	box := getBox(t, mb, "INBOX")
	must(t, s.ExpungeMessages(c, alice, "INBOX", []uint32{3, 1}))
	ch, err := mb.ChangesSince(c, box.ID, box.HighestModSeq)
	must(t, err)
	if !reflect.DeepEqual(ch.Expunged, []uint32{1, 3}) || ch.Mailbox.HighestModSeq != box.HighestModSeq+1 || ch.Mailbox.Messages != 1 {
		t.Fatalf("changes after POP3 expunge: %+v", ch)
	}
}

func testChangesSince(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	box := getBox(t, mb, "INBOX")
	check := func(since uint64, changed, expunged []uint32) *store.Changes {
		t.Helper()
		ch, err := mb.ChangesSince(c, box.ID, since)
		must(t, err)
		if got := uidList(ch.Changed); !reflect.DeepEqual(got, changed) {
			t.Fatalf("changed since %d: %v, want %v", since, got, changed)
		}
		if !reflect.DeepEqual(append([]uint32{}, ch.Expunged...), expunged) {
			t.Fatalf("expunged since %d: %v, want %v", since, ch.Expunged, expunged)
		}
		now := getBox(t, mb, "INBOX")
		if !reflect.DeepEqual(ch.Mailbox, *now) {
			t.Fatalf("Changes.Mailbox %+v, GetMailbox %+v", ch.Mailbox, *now)
		}
		for _, m := range ch.Changed {
			if m.ModSeq <= since || m.ModSeq > now.HighestModSeq {
				t.Fatalf("changed message %d has modseq %d, outside (%d, %d]", m.UID, m.ModSeq, since, now.HighestModSeq)
			}
		}
		return ch
	}
	check(0, []uint32{}, []uint32{})
	m0 := box.HighestModSeq

	must(t, s.CommitMessages(c, []*store.NewMessage{msg("d1", alice), msg("d2", alice)})) // delivery
	check(m0, []uint32{1, 2}, []uint32{})
	m1 := getBox(t, mb, "INBOX").HighestModSeq
	check(m1, []uint32{}, []uint32{})

	appendMsg(t, mb, "INBOX", "appended") // APPEND
	check(m1, []uint32{3}, []uint32{})
	m2 := getBox(t, mb, "INBOX").HighestModSeq

	_, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	must(t, err)
	ch := check(m2, []uint32{1}, []uint32{}) // STORE
	if !reflect.DeepEqual(ch.Changed[0].Flags, []string{`\Seen`}) {
		t.Fatalf("changed flags %v", ch.Changed[0].Flags)
	}
	m3 := ch.Mailbox.HighestModSeq

	trash := getBox(t, mb, "Trash")
	appendMsg(t, mb, "Trash", "in trash")
	_, _, _, err = mb.CopyMessages(c, trash.ID, []uint32{1}, box.ID, false) // COPY in
	must(t, err)
	check(m3, []uint32{4}, []uint32{})
	m4 := getBox(t, mb, "INBOX").HighestModSeq

	_, _, _, err = mb.CopyMessages(c, box.ID, []uint32{2}, trash.ID, true) // MOVE out
	must(t, err)
	check(m4, []uint32{}, []uint32{2})
	m5 := getBox(t, mb, "INBOX").HighestModSeq

	_, err = mb.ExpungeByID(c, box.ID, []uint32{3}) // EXPUNGE
	must(t, err)
	check(m5, []uint32{}, []uint32{3})

	// Everything since the start, and since 0 (all current messages and
	// every expunge).
	check(m0, []uint32{1, 4}, []uint32{2, 3})
	check(0, []uint32{1, 4}, []uint32{2, 3})
	// A modseq in the future: nothing.
	check(1<<62, []uint32{}, []uint32{})
	// A message added and expunged after the modseq is only an expunge.
	appendMsg(t, mb, "INBOX", "short-lived")
	m6 := getBox(t, mb, "INBOX").HighestModSeq
	uid := appendMsg(t, mb, "INBOX", "shorter-lived")
	_, err = mb.ExpungeByID(c, box.ID, []uint32{uid})
	must(t, err)
	check(m6, []uint32{}, []uint32{uid})
	_, err = mb.ChangesSince(c, box.ID+1000, 0)
	wantErr(t, err, store.ErrNotFound, "ChangesSince of a missing mailbox")
}

// testChangesPage checks that ChangesPage's pages, read one after the
// other, come in (modseq, UID) order and add up to ChangesSince's list,
// that only the first carries the expunged UIDs, and that a message
// changed again between pages comes again with its new modseq.
func testChangesPage(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	p, ok := mb.(store.ChangePager)
	if !ok {
		t.Skip("backend does not implement store.ChangePager")
	}
	c := ctx(t)
	box := getBox(t, mb, "INBOX")
	var msgs []*store.NewMessage
	for i := range 12 {
		msgs = append(msgs, msg(fmt.Sprintf("p%d", i), alice))
	}
	must(t, s.CommitMessages(c, msgs))
	_, err := mb.ExpungeByID(c, box.ID, []uint32{2, 5})
	must(t, err)
	m0 := getBox(t, mb, "INBOX").HighestModSeq
	flag := func(op store.FlagOp, f string, uids ...uint32) {
		t.Helper()
		_, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: uids, Op: op, Flags: []string{f}})
		must(t, err)
	}
	// Several modseqs, one of them shared by several messages, and an
	// expunge of a changed message.
	flag(store.FlagsAdd, `\Seen`, 1, 3, 4, 7, 9, 11, 12)
	flag(store.FlagsAdd, `\Flagged`, 3, 11)
	flag(store.FlagsAdd, `\Answered`, 1)
	_, err = mb.ExpungeByID(c, box.ID, []uint32{9})
	must(t, err)
	key := func(m store.MessageInfo) store.ChangeKey { return store.ChangeKey{ModSeq: m.ModSeq, UID: m.UID} }
	less := func(a, b store.ChangeKey) bool { return a.ModSeq < b.ModSeq || (a.ModSeq == b.ModSeq && a.UID < b.UID) }
	for _, since := range []uint64{0, m0} {
		full, err := mb.ChangesSince(c, box.ID, since)
		must(t, err)
		for _, limit := range []int{1, 2, 3, 100} {
			var got []store.MessageInfo
			var after store.ChangeKey
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatalf("since %d, limit %d: more than 20 pages", since, limit)
				}
				ch, err := p.ChangesPage(c, box.ID, since, after, limit)
				must(t, err)
				if len(ch.Changed) > limit {
					t.Fatalf("since %d, limit %d: page of %d", since, limit, len(ch.Changed))
				}
				first := after == store.ChangeKey{}
				if first && !reflect.DeepEqual(ch.Mailbox, full.Mailbox) {
					t.Fatalf("first page mailbox %+v, ChangesSince %+v", ch.Mailbox, full.Mailbox)
				}
				if !first && ch.Mailbox != (store.Mailbox{}) {
					t.Fatalf("since %d: later page carries the mailbox %+v", since, ch.Mailbox)
				}
				if first && !reflect.DeepEqual(ch.Expunged, full.Expunged) {
					t.Fatalf("since %d: first page expunged %v, ChangesSince %v", since, ch.Expunged, full.Expunged)
				}
				if !first && len(ch.Expunged) != 0 {
					t.Fatalf("since %d: later page carries expunged %v", since, ch.Expunged)
				}
				for _, m := range ch.Changed {
					if !first && !less(after, key(m)) {
						t.Fatalf("since %d, limit %d: %+v after %+v", since, limit, key(m), after)
					}
					after, first = key(m), false
				}
				got = append(got, ch.Changed...)
				if len(ch.Changed) < limit {
					break
				}
			}
			slices.SortFunc(got, func(a, b store.MessageInfo) int { return int(a.UID) - int(b.UID) })
			if !reflect.DeepEqual(uidList(got), uidList(full.Changed)) {
				t.Fatalf("since %d, limit %d: pages %v, ChangesSince %v", since, limit, uidList(got), uidList(full.Changed))
			}
			for i := range got {
				if got[i].ModSeq != full.Changed[i].ModSeq || !reflect.DeepEqual(got[i].Flags, full.Changed[i].Flags) {
					t.Fatalf("since %d, limit %d: message %d %+v, ChangesSince %+v", since, limit, got[i].UID, got[i], full.Changed[i])
				}
			}
		}
	}
	// A message changed again after a page comes on a later one.
	first, err := p.ChangesPage(c, box.ID, m0, store.ChangeKey{}, 2)
	must(t, err)
	if got := uidList(first.Changed); !reflect.DeepEqual(got, []uint32{4, 7}) {
		t.Fatalf("first page of 2 since m0: %v", got)
	}
	flag(store.FlagsAdd, `\Draft`, 4)
	var rest []uint32
	after := key(first.Changed[1])
	for {
		ch, err := p.ChangesPage(c, box.ID, m0, after, 2)
		must(t, err)
		rest = append(rest, uidList(ch.Changed)...)
		if len(ch.Changed) < 2 {
			break
		}
		after = key(ch.Changed[1])
	}
	if want := []uint32{12, 3, 11, 1, 4}; !reflect.DeepEqual(rest, want) {
		t.Fatalf("later pages after a change: %v, want %v", rest, want)
	}
	if _, err := p.ChangesPage(c, box.ID, 0, store.ChangeKey{}, 0); err == nil {
		t.Fatal("ChangesPage with limit 0: no error")
	}
	_, err = p.ChangesPage(c, box.ID+1000, 0, store.ChangeKey{}, 10)
	wantErr(t, err, store.ErrNotFound, "ChangesPage of a missing mailbox")
	_, err = p.ChangesPage(c, box.ID+1000, 0, store.ChangeKey{ModSeq: 5, UID: 5}, 10)
	wantErr(t, err, store.ErrNotFound, "later ChangesPage of a missing mailbox")
}

// testModSeqMonotonic checks that every change gives the mailbox a
// higher HIGHESTMODSEQ, every message's modseq stays at or below it and
// UIDs only grow.
func testModSeqMonotonic(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 0)
	c := ctx(t)
	box := getBox(t, mb, "INBOX")
	other := getBox(t, mb, "Drafts")
	last := box.HighestModSeq
	lastUID := uint32(0)
	step := func(what string, fn func()) {
		t.Helper()
		fn()
		now := getBox(t, mb, "INBOX")
		if now.HighestModSeq <= last {
			t.Fatalf("%s: HIGHESTMODSEQ %d, not above %d", what, now.HighestModSeq, last)
		}
		last = now.HighestModSeq
		for _, m := range listByID(t, mb, box.ID) {
			if m.ModSeq > last || m.ModSeq == 0 {
				t.Fatalf("%s: message %d modseq %d, HIGHESTMODSEQ %d", what, m.UID, m.ModSeq, last)
			}
			if m.UID > lastUID {
				if m.UID >= now.UIDNext {
					t.Fatalf("%s: UID %d not below UIDNEXT %d", what, m.UID, now.UIDNext)
				}
				lastUID = m.UID
			}
		}
	}
	for i := range 3 {
		step("append", func() { appendMsg(t, mb, "INBOX", fmt.Sprint("m", i)) })
		step("delivery", func() { must(t, s.CommitMessages(c, []*store.NewMessage{msg(fmt.Sprint("d", i), alice)})) })
		step("store", func() {
			_, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{lastUID}, Op: store.FlagsAdd, Flags: []string{fmt.Sprint("$k", i)}})
			must(t, err)
		})
		step("copy in", func() {
			appendMsg(t, mb, "Drafts", "draft")
			_, _, _, err := mb.CopyMessages(c, other.ID, uidList(listByID(t, mb, other.ID)), box.ID, false)
			must(t, err)
		})
		step("move out", func() {
			_, _, _, err := mb.CopyMessages(c, box.ID, []uint32{lastUID}, other.ID, true)
			must(t, err)
		})
		step("expunge", func() {
			l := listByID(t, mb, box.ID)
			_, err := mb.ExpungeByID(c, box.ID, []uint32{l[0].UID})
			must(t, err)
		})
	}
}

func testWatch(t *testing.T, open Open) {
	s, mb := imapStore(t, open, 200)
	c := ctx(t)
	seed(t, s, 0, "b")
	ch, stop := mb.Watch(alice)
	defer stop()
	other, stopOther := mb.Watch("b@example.com")
	defer stopOther()
	// Signals are sent before the writer returns, so no waiting is needed.
	fired := func(what string, want bool) {
		t.Helper()
		got := false
		select {
		case <-ch:
			got = true
		default:
		}
		if got != want {
			t.Fatalf("%s: Watch fired = %v, want %v", what, got, want)
		}
		select {
		case <-ch:
			t.Fatalf("%s: a second signal is pending", what)
		default:
		}
	}
	fired("nothing yet", false)
	box := getBox(t, mb, "INBOX")
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("w1", alice)}))
	fired("delivery", true)
	appendMsg(t, mb, "INBOX", "x")
	fired("append", true)
	_, _, err := mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "INBOX", Body: bytes.Repeat([]byte{'q'}, 300)})
	wantErr(t, err, store.ErrQuotaExceeded, "append over quota")
	fired("refused append", false)
	_, err = mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	must(t, err)
	fired("store", true)
	_, err = mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{1}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	must(t, err)
	fired("store that changes nothing", false)
	trash := getBox(t, mb, "Trash")
	_, _, _, err = mb.CopyMessages(c, box.ID, []uint32{1}, trash.ID, false)
	must(t, err)
	fired("copy", true)
	_, _, _, err = mb.CopyMessages(c, box.ID, []uint32{2}, trash.ID, true)
	must(t, err)
	fired("move", true)
	_, err = mb.ExpungeByID(c, trash.ID, []uint32{1})
	must(t, err)
	fired("expunge", true)
	_, err = mb.ExpungeByID(c, trash.ID, []uint32{1})
	must(t, err)
	fired("expunge of nothing", false)
	must(t, s.ExpungeMessages(c, alice, "Trash", []uint32{2}))
	fired("POP3 expunge", true)
	_, err = mb.CreateMailbox(c, alice, "W", "")
	must(t, err)
	fired("create", true)
	must(t, mb.RenameMailbox(c, alice, "W", "W2"))
	fired("rename", true)
	must(t, mb.DeleteMailbox(c, alice, "W2"))
	fired("delete", true)
	select {
	case <-other:
		t.Fatal("b's watcher fired for a's changes")
	default:
	}
	// Two changes while nobody reads: one pending signal, and the writer
	// never blocks.
	for range 20 {
		must(t, s.CommitMessages(c, []*store.NewMessage{msg("burst", "b@example.com")}))
	}
	<-other
	select {
	case <-other:
		t.Fatal("more than one signal pending")
	default:
	}
	// After stop nothing arrives.
	stop()
	stop() // twice is harmless
	appendMsg(t, mb, "INBOX", "after stop")
	select {
	case <-ch:
		t.Fatal("stopped watcher fired")
	default:
	}
}

// testConcurrentIMAP appends and stores on one mailbox from many
// goroutines: UIDs stay unique and dense, every change gets its own
// modseq, and nothing is lost.
func testConcurrentIMAP(t *testing.T, open Open) {
	_, mb := imapStore(t, open, 0)
	c := ctx(t)
	box := getBox(t, mb, "INBOX")
	const workers, per = 8, 10
	var mu sync.Mutex
	var uids []uint32
	modseqs := map[uint64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*per*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				uid, _, err := mb.AppendMessage(c, &store.NewAppend{User: alice, Mailbox: "INBOX", Body: []byte(fmt.Sprintf("w%d m%d", w, i))})
				if err != nil {
					errs <- err
					return
				}
				// Each STORE sets a keyword of its own, so it always changes.
				r, err := mb.StoreFlags(c, &store.FlagUpdate{MailboxID: box.ID, UIDs: []uint32{uid}, Op: store.FlagsAdd,
					Flags: []string{fmt.Sprintf("$w%di%d", w, i)}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				uids = append(uids, uid)
				if len(r.Changed) != 1 {
					errs <- fmt.Errorf("STORE on %d changed %d messages", uid, len(r.Changed))
				} else if prev, dup := modseqs[r.Changed[0].ModSeq]; dup {
					errs <- fmt.Errorf("modseq %d given to two STOREs (%s and %d)", r.Changed[0].ModSeq, prev, uid)
				} else {
					modseqs[r.Changed[0].ModSeq] = fmt.Sprint("store ", uid)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(uids)
	for i, u := range uids {
		if u != uint32(i+1) {
			t.Fatalf("APPEND UIDs not unique and dense: position %d has %d", i, u)
		}
	}
	l := listByID(t, mb, box.ID)
	if len(l) != workers*per {
		t.Fatalf("%d messages, want %d", len(l), workers*per)
	}
	final := getBox(t, mb, "INBOX")
	for _, m := range l {
		if len(m.Flags) != 1 {
			t.Fatalf("message %d has flags %v, want its one keyword", m.UID, m.Flags)
		}
		if _, ok := modseqs[m.ModSeq]; !ok {
			t.Fatalf("message %d has modseq %d, which no STORE returned", m.UID, m.ModSeq)
		}
	}
	// Every APPEND and every STORE took a modseq of its own.
	if want := box.HighestModSeq + 2*workers*per; final.HighestModSeq != want || final.UIDNext != workers*per+1 {
		t.Fatalf("HIGHESTMODSEQ %d, UIDNEXT %d; want %d, %d", final.HighestModSeq, final.UIDNext, want, workers*per+1)
	}
}
