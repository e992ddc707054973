package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// msg returns a small inline message for users' INBOXes.
func msg(id string, users ...string) *store.NewMessage {
	body := []byte("Subject: " + id + "\r\n\r\nbody of " + id + "\r\n")
	m := &store.NewMessage{ID: id, Sender: "sender@remote.example", ReceivedAt: time.Now(),
		Size: int64(len(body)), Body: body}
	for _, u := range users {
		m.Targets = append(m.Targets, store.MailboxTarget{User: u, Mailbox: "INBOX"})
	}
	return m
}

func readBody(t *testing.T, s store.Store, id int64) []byte {
	t.Helper()
	r, err := s.OpenBody(ctx(t), id)
	if err != nil {
		t.Fatalf("OpenBody(%d): %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func user(t *testing.T, s store.Store, email string) *store.User {
	t.Helper()
	u, err := s.GetUser(ctx(t), email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mailbox(t *testing.T, s store.Store, email, name string) store.Mailbox {
	t.Helper()
	l, err := s.ListMailboxes(ctx(t), email)
	must(t, err)
	for _, m := range l {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("%s has no mailbox %q", email, name)
	return store.Mailbox{}
}

func testCommitMessages(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a", "b")
	received := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	m1 := msg("m1", "a@example.com")
	m1.ReceivedAt = received
	m1.Targets[0].Flags = []string{`\Seen`, `$Label1`}
	m2 := msg("m2", "a@example.com")
	m2.Targets = append(m2.Targets, store.MailboxTarget{User: "a@example.com", Mailbox: "Archive/2024"})
	must(t, s.CommitMessages(c, []*store.NewMessage{m1, m2}))
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("m3", "a@example.com"), msg("m4", "b@example.com")}))

	// Every target user got the default mailboxes plus its targets.
	mbs, err := s.ListMailboxes(c, "a@example.com")
	must(t, err)
	var names []string
	uses := map[string]string{}
	for _, m := range mbs {
		names = append(names, m.Name)
		uses[m.Name] = m.SpecialUse
		if m.UIDValidity == 0 || m.UserEmail != "a@example.com" || !m.Subscribed {
			t.Errorf("mailbox %+v: want UIDValidity > 0, owner a, subscribed", m)
		}
	}
	sort.Strings(names)
	if want := []string{"Archive/2024", "Drafts", "INBOX", "Junk", "Sent", "Trash"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("mailboxes of a = %v, want %v", names, want)
	}
	for _, d := range store.DefaultMailboxes {
		if uses[d.Name] != d.SpecialUse {
			t.Errorf("%s special-use %q, want %q", d.Name, uses[d.Name], d.SpecialUse)
		}
	}

	inbox, err := s.ListMessages(c, "a@example.com", "INBOX")
	must(t, err)
	if len(inbox) != 3 {
		t.Fatalf("a's INBOX has %d messages, want 3", len(inbox))
	}
	for i, m := range inbox {
		if m.UID != uint32(i+1) {
			t.Errorf("message %d has UID %d, want %d", i, m.UID, i+1)
		}
		if i > 0 && m.ModSeq <= inbox[i-1].ModSeq {
			t.Errorf("modseq does not increase: %d then %d", inbox[i-1].ModSeq, m.ModSeq)
		}
	}
	if got := inbox[0]; !reflect.DeepEqual(got.Flags, []string{`\Seen`, `$Label1`}) || !got.InternalDate.Equal(received) ||
		got.Size != m1.Size {
		t.Fatalf("first message = %+v; want flags \\Seen $Label1, date %v, size %d", got, received, m1.Size)
	}
	if len(inbox[1].Flags) != 0 {
		t.Errorf("second message has flags %v", inbox[1].Flags)
	}
	box := mailbox(t, s, "a@example.com", "INBOX")
	if box.UIDNext != 4 || box.Messages != 3 || box.HighestModSeq != inbox[2].ModSeq {
		t.Fatalf("INBOX = %+v; want UIDNext 4, 3 messages, HighestModSeq %d", box, inbox[2].ModSeq)
	}
	arch, err := s.ListMessages(c, "a@example.com", "Archive/2024")
	must(t, err)
	if len(arch) != 1 || arch[0].UID != 1 || arch[0].BodyID != inbox[1].BodyID {
		t.Fatalf("Archive/2024 = %+v; want UID 1 sharing m2's body", arch)
	}
	for i, want := range []*store.NewMessage{m1, m2} {
		if got := readBody(t, s, inbox[i].BodyID); !bytes.Equal(got, want.Body) {
			t.Fatalf("body %d = %q, want %q", i, got, want.Body)
		}
	}
	// INBOX matches case-insensitively (RFC 3501 5.1).
	if l, err := s.ListMessages(c, "a@example.com", "inbox"); err != nil || len(l) != 3 {
		t.Fatalf("ListMessages(inbox) = %d, %v", len(l), err)
	}
	// Quota use grew by every copy: m1, m2 twice, m3.
	if got, want := user(t, s, "a@example.com").QuotaBytesUsed, m1.Size+2*m2.Size+msg("m3").Size; got != want {
		t.Fatalf("a's quota_bytes_used = %d, want %d", got, want)
	}
	_, err = s.ListMessages(c, "a@example.com", "Nope")
	wantErr(t, err, store.ErrNotFound, "ListMessages of a missing mailbox")
	_, err = s.OpenBody(c, 1<<40)
	wantErr(t, err, store.ErrNotFound, "OpenBody of a missing body")
}

func testSharedBody(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	users := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"}
	seed(t, s, 0, "a", "b", "c", "d")
	m := msg("shared", users...)
	m.Remote = []string{"x@remote.example", "y@remote.example"}
	must(t, s.CommitMessages(c, []*store.NewMessage{m}))
	var body int64
	for _, u := range users {
		l, err := s.ListMessages(c, u, "INBOX")
		must(t, err)
		if len(l) != 1 {
			t.Fatalf("%s has %d messages", u, len(l))
		}
		if body == 0 {
			body = l[0].BodyID
		}
		if l[0].BodyID != body {
			t.Fatalf("%s's copy has body %d, others %d: stored more than once", u, l[0].BodyID, body)
		}
	}
	q, err := s.ListQueue(c)
	must(t, err)
	if len(q) != 2 || q[0].BodyID != body || q[1].BodyID != body {
		t.Fatalf("queue = %+v, want 2 rows on body %d", q, body)
	}
	// The body outlives users as long as anything points at it.
	for _, u := range users {
		must(t, s.DeleteUser(c, u))
	}
	if got := readBody(t, s, body); !bytes.Equal(got, m.Body) {
		t.Fatalf("body still queued reads %q", got)
	}
}

func testBlobBodies(t *testing.T, open Open) {
	s := get(t, open)
	bs, ok := unwrap(s).(blobStore)
	if !ok {
		t.Skip("backend has no blob directory")
	}
	c := ctx(t)
	seed(t, s, 0, "a", "b")

	// A body the caller wrote to a blob file.
	big := bytes.Repeat([]byte("0123456789abcdef\r\n"), 20000)
	w, err := bs.Blobs().Create()
	must(t, err)
	w.Write(big)
	name, err := w.Commit()
	must(t, err)
	fromBlob := &store.NewMessage{ID: "blob", Size: int64(len(big)), BlobName: name,
		Targets: []store.MailboxTarget{{User: "a@example.com"}, {User: "b@example.com"}}}
	// An inline body above InlineMax, which the store moves to a blob.
	spill := bytes.Repeat([]byte{'s'}, int(bs.InlineMax())+1)
	spilled := &store.NewMessage{ID: "spill", Size: int64(len(spill)), Body: spill,
		Targets: []store.MailboxTarget{{User: "a@example.com"}}}
	small := msg("small", "a@example.com")
	empty := &store.NewMessage{ID: "empty", Body: []byte{}, Targets: []store.MailboxTarget{{User: "a@example.com"}}}
	must(t, s.CommitMessages(c, []*store.NewMessage{fromBlob, spilled, small, empty}))

	l, err := s.ListMessages(c, "a@example.com", "INBOX")
	must(t, err)
	if len(l) != 4 {
		t.Fatalf("INBOX has %d messages, want 4", len(l))
	}
	for i, want := range [][]byte{big, spill, small.Body, {}} {
		got := readBody(t, s, l[i].BodyID)
		if !bytes.Equal(got, want) {
			t.Fatalf("body %d: read %d bytes, want %d identical", i, len(got), len(want))
		}
		if l[i].Size != int64(len(want)) {
			t.Fatalf("message %d size %d, want %d", i, l[i].Size, len(want))
		}
	}
	// Bodies support random access (IMAP partial fetch).
	r, err := s.OpenBody(c, l[0].BodyID)
	must(t, err)
	ra, ok := r.(io.ReaderAt)
	if !ok {
		t.Fatalf("OpenBody returned %T, not an io.ReaderAt", r)
	}
	part := make([]byte, 16)
	if _, err := ra.ReadAt(part, 18); err != nil || string(part) != "0123456789abcdef" {
		t.Fatalf("ReadAt = %q, %v", part, err)
	}
	r.Close()

	if inDatabase(s) {
		// Every body is in the database; the caller's file is its own.
		if n := countBlobs(t, bs); n != 1 {
			t.Fatalf("%d blob files, want 1 (the caller's)", n)
		}
		must(t, bs.Blobs().Remove(name))
		if got := readBody(t, s, l[0].BodyID); !bytes.Equal(got, big) {
			t.Fatal("the body read from the database changed when the caller removed its file")
		}
		must(t, s.DeleteUser(c, "a@example.com"))
		must(t, s.DeleteUser(c, "b@example.com"))
		if _, err := s.OpenBody(c, l[0].BodyID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("body of deleted users: OpenBody = %v, want ErrNotFound", err)
		}
		return
	}
	blobs := countBlobs(t, bs)
	if blobs != 2 {
		t.Fatalf("%d blob files, want 2 (caller's and spilled)", blobs)
	}
	// Deleting the last users of a blob body removes its file.
	must(t, s.DeleteUser(c, "a@example.com"))
	if _, err := bs.Blobs().Open(name); err != nil {
		t.Fatalf("blob still used by b was removed: %v", err)
	}
	if n := countBlobs(t, bs); n != 1 {
		t.Fatalf("%d blob files after a's deletion, want 1", n)
	}
	must(t, s.DeleteUser(c, "b@example.com"))
	if _, err := bs.Blobs().Open(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blob of deleted body: Open = %v, want not-exist", err)
	}
}

func countBlobs(t *testing.T, bs blobStore) int {
	t.Helper()
	n := 0
	must(t, bs.Blobs().Names(t.Context(), func(string, time.Time) error { n++; return nil }))
	return n
}

func testQuota(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a")
	u := user(t, s, "a@example.com")
	m := msg("q1", "a@example.com")
	u.QuotaBytes = 2*m.Size + 1
	must(t, s.UpdateUser(c, u))
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("q1", "a@example.com")}))
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("q2", "a@example.com")}))
	if got := user(t, s, "a@example.com").QuotaBytesUsed; got != 2*m.Size {
		t.Fatalf("quota_bytes_used = %d, want %d", got, 2*m.Size)
	}
	err := s.CommitMessages(c, []*store.NewMessage{msg("q3", "a@example.com")})
	wantErr(t, err, store.ErrQuotaExceeded, "delivery over quota")
	if got := user(t, s, "a@example.com").QuotaBytesUsed; got != 2*m.Size {
		t.Fatalf("quota_bytes_used after refused delivery = %d, want %d", got, 2*m.Size)
	}
	// Exactly filling the quota is allowed.
	exact := &store.NewMessage{ID: "exact", Body: []byte("x"), Size: 1, Targets: []store.MailboxTarget{{User: "a@example.com"}}}
	must(t, s.CommitMessages(c, []*store.NewMessage{exact}))
	// Quota 0 is unlimited.
	u = user(t, s, "a@example.com")
	u.QuotaBytes = 0
	must(t, s.UpdateUser(c, u))
	must(t, s.CommitMessages(c, []*store.NewMessage{msg("q4", "a@example.com")}))
}

func testQuotaRollsBackGroup(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "roomy", "full")
	full := user(t, s, "full@example.com")
	full.QuotaBytes = 10
	must(t, s.UpdateUser(c, full))
	ok := msg("ok", "roomy@example.com")
	ok.Remote = []string{"r@remote.example"}
	group := []*store.NewMessage{ok, msg("too-big", "full@example.com"), msg("ok2", "roomy@example.com")}
	err := s.CommitMessages(c, group)
	wantErr(t, err, store.ErrQuotaExceeded, "group with one over-quota recipient")
	for _, u := range []string{"roomy@example.com", "full@example.com"} {
		if l, err := s.ListMessages(c, u, "INBOX"); err == nil && len(l) > 0 {
			t.Fatalf("%s has %d messages from a failed group", u, len(l))
		}
		if got := user(t, s, u).QuotaBytesUsed; got != 0 {
			t.Fatalf("%s quota_bytes_used = %d after failed group", u, got)
		}
	}
	if q, _ := s.ListQueue(c); len(q) != 0 {
		t.Fatalf("queue has %d rows from a failed group", len(q))
	}
	// Retried one at a time (as callers do), the others go through.
	must(t, s.CommitMessages(c, group[:1]))
	must(t, s.CommitMessages(c, group[2:]))
	if l, err := s.ListMessages(c, "roomy@example.com", "INBOX"); err != nil || len(l) != 2 || l[0].UID != 1 || l[1].UID != 2 {
		t.Fatalf("after retry roomy has %+v, %v; want UIDs 1, 2", l, err)
	}
}

func testQueue(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	before := time.Now().Add(-time.Second)
	m := &store.NewMessage{ID: "out-1", Sender: "a@example.com", Body: []byte("Subject: out\r\n\r\nhi\r\n"),
		Remote: []string{"x@remote.example", "y@other.example"}}
	null := &store.NewMessage{ID: "dsn-1", Sender: "", Body: []byte("bounce"), Remote: []string{"a@remote.example"}}
	must(t, s.CommitMessages(c, []*store.NewMessage{m, null}))
	q, err := s.ListQueue(c)
	must(t, err)
	if len(q) != 3 {
		t.Fatalf("queue has %d rows, want 3", len(q))
	}
	byRcpt := map[string]store.QueueItem{}
	for _, it := range q {
		byRcpt[it.Recipient] = it
		if it.ID == 0 || it.Attempts != 0 || it.Held || it.LastError != "" {
			t.Errorf("queue item %+v: want an ID, no attempts, not held, no error", it)
		}
		if it.NextAttempt.Before(before) || it.NextAttempt.After(time.Now().Add(time.Second)) {
			t.Errorf("next_attempt %v is not now", it.NextAttempt)
		}
		recent(t, it.CreatedAt, "queue created_at")
	}
	x := byRcpt["x@remote.example"]
	if x.MessageID != "out-1" || x.Sender != "a@example.com" || x.BodyID != byRcpt["y@other.example"].BodyID {
		t.Fatalf("queue item = %+v", x)
	}
	if d := byRcpt["a@remote.example"]; d.Sender != "" || d.MessageID != "dsn-1" {
		t.Fatalf("null-sender item = %+v", d)
	}
	if got := readBody(t, s, x.BodyID); !bytes.Equal(got, m.Body) {
		t.Fatalf("queued body = %q", got)
	}
}

func testCommitErrors(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a")
	err := s.CommitMessages(c, []*store.NewMessage{msg("ok", "a@example.com"), msg("x", "nobody@example.com")})
	wantErr(t, err, store.ErrNotFound, "delivery to a missing user")
	if l, err := s.ListMessages(c, "a@example.com", "INBOX"); err == nil && len(l) != 0 {
		t.Fatalf("failed group left %d messages", len(l))
	}
	if err := s.CommitMessages(c, []*store.NewMessage{{ID: "none", Body: []byte("x")}}); err == nil {
		t.Fatal("a message without recipients was accepted")
	}
	both := msg("both", "a@example.com")
	both.BlobName = "0123456789abcdef0123456789abcdef"
	if err := s.CommitMessages(c, []*store.NewMessage{both}); err == nil {
		t.Fatal("a message with both Body and BlobName was accepted")
	}
	missing := &store.NewMessage{ID: "m", BlobName: "0123456789abcdef0123456789abcdef", Size: 3,
		Targets: []store.MailboxTarget{{User: "a@example.com"}}}
	if err := s.CommitMessages(c, []*store.NewMessage{missing}); err == nil {
		t.Fatal("a message naming a missing blob was accepted")
	}
	must(t, s.CommitMessages(c, nil))
}

func testMailboxes(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 0, "a")
	if l, err := s.ListMailboxes(c, "a@example.com"); err != nil || len(l) != 0 {
		t.Fatalf("new user has mailboxes %v, %v", l, err)
	}
	must(t, s.EnsureMailboxes(c, "a@example.com", store.DefaultMailboxes))
	must(t, s.EnsureMailboxes(c, "a@example.com", append(store.DefaultMailboxes,
		store.MailboxSpec{Name: "Archive", SpecialUse: `\Archive`})))
	l, err := s.ListMailboxes(c, "a@example.com")
	must(t, err)
	if len(l) != len(store.DefaultMailboxes)+1 {
		t.Fatalf("mailboxes = %+v", l)
	}
	arch := mailbox(t, s, "a@example.com", "Archive")
	inbox := mailbox(t, s, "a@example.com", "INBOX")
	if arch.SpecialUse != `\Archive` || arch.UIDNext != 1 || arch.Messages != 0 || arch.HighestModSeq == 0 {
		t.Fatalf("Archive = %+v", arch)
	}
	if arch.UIDValidity <= inbox.UIDValidity {
		t.Fatalf("later mailbox UIDVALIDITY %d not above earlier %d", arch.UIDValidity, inbox.UIDValidity)
	}
	wantErr(t, s.EnsureMailboxes(c, "nobody@example.com", store.DefaultMailboxes), store.ErrNotFound,
		"EnsureMailboxes of a missing user")
	// A default mailbox the user deleted comes back at the next ensure
	// (Dovecot's auto-create), with a new UIDVALIDITY.
	mb, ok := unwrap(s).(store.Mailboxes)
	if !ok {
		return
	}
	must(t, mb.DeleteMailbox(c, "a@example.com", "Archive"))
	must(t, s.EnsureMailboxes(c, "a@example.com", []store.MailboxSpec{{Name: "Archive", SpecialUse: `\Archive`}}))
	again := mailbox(t, s, "a@example.com", "Archive")
	if again.UIDValidity <= arch.UIDValidity {
		t.Fatalf("re-created Archive UIDVALIDITY %d not above %d", again.UIDValidity, arch.UIDValidity)
	}
	// So does one renamed away, however recently the user logged in.
	must(t, s.EnsureMailboxes(c, "a@example.com", store.DefaultMailboxes))
	must(t, mb.RenameMailbox(c, "a@example.com", "Trash", "Old trash"))
	must(t, s.EnsureMailboxes(c, "a@example.com", store.DefaultMailboxes))
	mailbox(t, s, "a@example.com", "Trash")
	mailbox(t, s, "a@example.com", "Old trash")
	// A user deleted and made again gets its mailboxes at its first
	// login, though the one before had found them all.
	must(t, s.DeleteUser(c, "a@example.com"))
	seed(t, s, 0, "a")
	must(t, s.EnsureMailboxes(c, "a@example.com", store.DefaultMailboxes))
	if l, err := s.ListMailboxes(c, "a@example.com"); err != nil || len(l) != len(store.DefaultMailboxes) {
		t.Fatalf("mailboxes of the user made again: %d, %v", len(l), err)
	}
}

// testConcurrentCommits delivers from 20 goroutines to overlapping users:
// none may fail (no SQLITE_BUSY, no deadlock) and UIDs stay dense.
func testConcurrentCommits(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	users := []string{"u0@example.com", "u1@example.com", "u2@example.com", "u3@example.com"}
	seed(t, s, 0, "u0", "u1", "u2", "u3")
	const workers, groups, per = 20, 5, 3
	var wg sync.WaitGroup
	errs := make(chan error, workers*groups)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range groups {
				var ms []*store.NewMessage
				for i := range per {
					// Each message goes to two users, in varying order.
					a, b := users[(w+i)%4], users[(w+g+i+1)%4]
					if a == b {
						b = users[(w+g+i+2)%4]
					}
					m := msg(fmt.Sprintf("w%d-g%d-%d", w, g, i), b, a)
					if i == 0 {
						m.Remote = []string{"r@remote.example"}
					}
					ms = append(ms, m)
				}
				if err := s.CommitMessages(c, ms); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent CommitMessages: %v", err)
	}
	total := 0
	var used int64
	for _, u := range users {
		l, err := s.ListMessages(c, u, "INBOX")
		must(t, err)
		for i, m := range l {
			if m.UID != uint32(i+1) {
				t.Fatalf("%s: UIDs not dense: position %d has UID %d", u, i, m.UID)
			}
			if i > 0 && m.ModSeq <= l[i-1].ModSeq {
				t.Fatalf("%s: modseq not increasing at UID %d", u, m.UID)
			}
			used += m.Size
		}
		total += len(l)
		if got := user(t, s, u).QuotaBytesUsed; got != sumSize(l) {
			t.Fatalf("%s quota_bytes_used = %d, messages sum to %d", u, got, sumSize(l))
		}
	}
	if want := workers * groups * per * 2; total != want {
		t.Fatalf("%d copies delivered, want %d", total, want)
	}
	if q, _ := s.ListQueue(c); len(q) != workers*groups {
		t.Fatalf("%d queue rows, want %d", len(q), workers*groups)
	}
}

func sumSize(l []store.MessageInfo) int64 {
	var n int64
	for _, m := range l {
		n += m.Size
	}
	return n
}

func testReopen(t *testing.T, open Open) {
	s := get(t, open)
	c := ctx(t)
	seed(t, s, 1<<20, "a")
	tok := store.Token{UserEmail: "a@example.com", Password: "p"}
	must(t, s.CreateToken(c, &tok))
	m := msg("persist", "a@example.com")
	m.Remote = []string{"r@remote.example"}
	must(t, s.CommitMessages(c, []*store.NewMessage{m}))
	wantUser := user(t, s, "a@example.com")
	must(t, s.Close())

	s2 := get(t, open)
	got, err := s2.GetUser(c, "a@example.com")
	must(t, err)
	if !reflect.DeepEqual(got, wantUser) {
		t.Fatalf("after reopen user = %+v\nwant %+v", *got, *wantUser)
	}
	if _, err := s2.GetToken(c, tok.ID); err != nil {
		t.Fatalf("token after reopen: %v", err)
	}
	l, err := s2.ListMessages(c, "a@example.com", "INBOX")
	must(t, err)
	if len(l) != 1 || !bytes.Equal(readBody(t, s2, l[0].BodyID), m.Body) {
		t.Fatalf("messages after reopen: %+v", l)
	}
	if q, _ := s2.ListQueue(c); len(q) != 1 {
		t.Fatalf("queue after reopen has %d rows", len(q))
	}
	// UIDs continue where they were.
	must(t, s2.CommitMessages(c, []*store.NewMessage{msg("next", "a@example.com")}))
	l, _ = s2.ListMessages(c, "a@example.com", "INBOX")
	if len(l) != 2 || l[1].UID != 2 {
		t.Fatalf("after reopen next UID: %+v", l)
	}
}

func testGarbageCollection(t *testing.T, open Open) {
	s := get(t, open)
	bs, ok1 := unwrap(s).(blobStore)
	gc, ok2 := unwrap(s).(garbageCollector)
	if !ok1 || !ok2 {
		t.Skip("backend has no blob garbage collection")
	}
	c := ctx(t)
	seed(t, s, 0, "a")
	mk := func(old bool) string {
		w, err := bs.Blobs().Create()
		must(t, err)
		w.Write([]byte("blob"))
		name, err := w.Commit()
		must(t, err)
		if old {
			past := time.Now().Add(-2 * time.Hour)
			must(t, os.Chtimes(filepath.Join(bs.Blobs().Path(), name[:2], name), past, past))
		}
		return name
	}
	used, oldOrphan, freshOrphan := mk(true), mk(true), mk(false)
	must(t, s.CommitMessages(c, []*store.NewMessage{{ID: "g", BlobName: used,
		Targets: []store.MailboxTarget{{User: "a@example.com"}}}}))
	must(t, gc.CollectGarbage(c))
	if inDatabase(s) {
		// The body was copied into the database: the old file is an
		// orphan like any other.
		if _, err := bs.Blobs().Open(used); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old copied blob: %v, want removed", err)
		}
	} else if _, err := bs.Blobs().Open(used); err != nil {
		t.Fatalf("referenced blob removed: %v", err)
	}
	if _, err := bs.Blobs().Open(oldOrphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old orphan: %v, want removed", err)
	}
	if _, err := bs.Blobs().Open(freshOrphan); err != nil {
		t.Fatalf("fresh orphan removed (may belong to a delivery in flight): %v", err)
	}
}

// inDatabase reports whether s keeps every body in the database.
func inDatabase(s store.Store) bool {
	h, ok := unwrap(s).(store.BodyHome)
	return ok && h.BodiesInDatabase()
}
