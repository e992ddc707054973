package sqlstore

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/store"
)

const imapUser = "alice@example.test"

// imapFixture opens a store with alice (quota bytes, 0 = unlimited) and
// her default mailboxes.
func imapFixture(t *testing.T, o *opener, quota int64) *Store {
	t.Helper()
	s := o.openStore(t)
	t.Cleanup(func() { s.Close() })
	expungeFixture(t, s, "alice")
	if quota > 0 {
		u, err := s.GetUser(t.Context(), imapUser)
		must(t, err)
		u.QuotaBytes = quota
		must(t, s.UpdateUser(t.Context(), u))
	}
	must(t, s.EnsureMailboxes(t.Context(), imapUser, store.DefaultMailboxes))
	return s
}

func box(t *testing.T, s *Store, name string) *store.Mailbox {
	t.Helper()
	m, err := s.GetMailbox(t.Context(), imapUser, name)
	must(t, err)
	return m
}

func add(t *testing.T, s *Store, mailbox string, body []byte) uint32 {
	t.Helper()
	uid, _, err := s.AppendMessage(t.Context(), &store.NewAppend{User: imapUser, Mailbox: mailbox, Body: body})
	must(t, err)
	return uid
}

type expungeRow struct {
	UID    uint32
	ModSeq uint64
}

func expungeRows(t *testing.T, s *Store, id int64) []expungeRow {
	t.Helper()
	rows, err := list(t.Context(), s.readConn(), "expunged", func(sc interface{ Scan(...any) error }) (expungeRow, error) {
		var r expungeRow
		err := sc.Scan(&r.UID, &r.ModSeq)
		return r, err
	}, `SELECT uid, modseq FROM expunged WHERE mailbox_id = ? ORDER BY uid`, id)
	must(t, err)
	return rows
}

func TestExpungeRecords(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		inbox := box(t, s, "INBOX")
		for i := range 6 {
			add(t, s, "INBOX", []byte(fmt.Sprint("message ", i)))
		}
		_, err := s.ExpungeByID(ctx, inbox.ID, []uint32{1, 2})
		must(t, err)
		m1 := box(t, s, "INBOX").HighestModSeq
		must(t, s.ExpungeMessages(ctx, imapUser, "inbox", []uint32{3}))
		m2 := box(t, s, "INBOX").HighestModSeq
		_, _, _, err = s.CopyMessages(ctx, inbox.ID, []uint32{4}, box(t, s, "Trash").ID, true)
		must(t, err)
		m3 := box(t, s, "INBOX").HighestModSeq
		want := []expungeRow{{1, m1}, {2, m1}, {3, m2}, {4, m3}}
		if got := expungeRows(t, s, inbox.ID); !reflect.DeepEqual(got, want) {
			t.Fatalf("expunged rows %+v, want %+v", got, want)
		}
		if !(m1 < m2 && m2 < m3) {
			t.Fatalf("expunge modseqs %d %d %d not increasing", m1, m2, m3)
		}
		// The records go with their mailbox, and with their user.
		x, err := s.CreateMailbox(ctx, imapUser, "X", "")
		must(t, err)
		add(t, s, "X", []byte("x"))
		_, err = s.ExpungeByID(ctx, x.ID, nil)
		must(t, err)
		_, err = s.ExpungeByID(ctx, x.ID, []uint32{1})
		must(t, err)
		if len(expungeRows(t, s, x.ID)) != 1 {
			t.Fatal("expunge of X not recorded")
		}
		must(t, s.DeleteMailbox(ctx, imapUser, "X"))
		if n := len(expungeRows(t, s, x.ID)); n != 0 {
			t.Fatalf("%d expunge rows outlive their mailbox", n)
		}
		must(t, s.DeleteUser(ctx, imapUser))
		if n := len(expungeRows(t, s, inbox.ID)); n != 0 {
			t.Fatalf("%d expunge rows outlive their user", n)
		}
	})
}

func bodyRefs(t *testing.T, s *Store, id int64) int {
	t.Helper()
	var n int
	err := s.readConn().queryRow(t.Context(), `SELECT refs FROM body WHERE id = ?`, id).Scan(&n)
	if errors.Is(mapErr(err), store.ErrNotFound) {
		return 0
	}
	must(t, err)
	return n
}

func blobCount(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	must(t, s.Blobs().Names(t.Context(), func(string, time.Time) error { n++; return nil }))
	return n
}

func TestCopyBodyRefs(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		big := bytes.Repeat([]byte("blob line\r\n"), 1000) // over the tests' InlineMax
		add(t, s, "INBOX", big)
		inbox, trash := box(t, s, "INBOX"), box(t, s, "Trash")
		orig := listMsgs(t, s, inbox.ID)[0]
		if bodyRefs(t, s, orig.BodyID) != 1 || largeBodies(t, s) != 1 {
			t.Fatalf("after append: refs %d, %d large bodies", bodyRefs(t, s, orig.BodyID), largeBodies(t, s))
		}
		_, _, _, err := s.CopyMessages(ctx, inbox.ID, []uint32{1}, trash.ID, false)
		must(t, err)
		_, _, _, err = s.CopyMessages(ctx, inbox.ID, []uint32{1}, inbox.ID, false)
		must(t, err)
		if bodyRefs(t, s, orig.BodyID) != 3 || largeBodies(t, s) != 1 {
			t.Fatalf("after two copies: refs %d, %d large bodies", bodyRefs(t, s, orig.BodyID), largeBodies(t, s))
		}
		if used, _, _ := s.Quota(ctx, imapUser); used != 3*int64(len(big)) {
			t.Fatalf("quota used %d, want %d", used, 3*len(big))
		}
		_, err = s.ExpungeByID(ctx, inbox.ID, []uint32{1, 2})
		must(t, err)
		s.releaseNow(ctx) // what the background releaser does
		if bodyRefs(t, s, orig.BodyID) != 1 || largeBodies(t, s) != 1 {
			t.Fatal("expunging two of three copies lost the body")
		}
		must(t, s.DeleteMailbox(ctx, imapUser, "Trash"))
		if bodyRefs(t, s, orig.BodyID) != 0 || largeBodies(t, s) != 0 {
			t.Fatalf("after the last copy went: refs %d, %d large bodies", bodyRefs(t, s, orig.BodyID), largeBodies(t, s))
		}
		if used, _, _ := s.Quota(ctx, imapUser); used != 0 {
			t.Fatalf("quota used %d after everything went", used)
		}
	})
}

func listMsgs(t *testing.T, s *Store, id int64) []store.MessageInfo {
	t.Helper()
	l, err := s.ListMessagesByID(t.Context(), id)
	must(t, err)
	return l
}

func TestAppendBlobCleanup(t *testing.T) {
	s := imapFixture(t, newOpener(sqliteOptions), 10000)
	ctx := t.Context()
	big := bytes.Repeat([]byte{'b'}, 6000) // a blob: over InlineMax
	_, _, err := s.AppendMessage(ctx, &store.NewAppend{User: imapUser, Mailbox: "INBOX", Body: append(big, big...)})
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("append over quota = %v", err)
	}
	_, _, err = s.AppendMessage(ctx, &store.NewAppend{User: imapUser, Mailbox: "Nope", Body: big})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("append to a missing mailbox = %v", err)
	}
	if n := blobCount(t, s); n != 0 {
		t.Fatalf("%d blob files left by failed appends", n)
	}
}

func TestWatchStopUnsubscribes(t *testing.T) {
	s := imapFixture(t, newOpener(sqliteOptions), 0)
	var stops []func()
	for range 50 {
		_, stop := s.Watch("Alice@Example.test") // case does not matter
		stops = append(stops, stop)
	}
	if n := s.watchers.watchers(imapUser); n != 50 {
		t.Fatalf("%d watchers, want 50", n)
	}
	for _, stop := range stops {
		stop()
		stop()
	}
	if n := s.watchers.watchers(imapUser); n != 0 || len(s.watchers.subs) != 0 {
		t.Fatalf("%d watchers (%d users) left after stop", n, len(s.watchers.subs))
	}
	// A watcher nobody reads never holds up writers.
	ch, stop := s.Watch(imapUser)
	defer stop()
	for i := range 30 {
		add(t, s, "INBOX", []byte(fmt.Sprint(i)))
	}
	if len(ch) != 1 {
		t.Fatalf("%d signals pending, want 1", len(ch))
	}
}

// TestIMAPLockOrder runs every kind of writer against two mailboxes of
// one user at once. On PostgreSQL, a writer taking the row locks out of
// order (user, then mailboxes by id) would deadlock; the run must end
// without errors and with the quota equal to the stored sizes.
func TestIMAPLockOrder(t *testing.T) {
	flavors(t, func(t *testing.T, o *opener) {
		s := imapFixture(t, o, 0)
		ctx := t.Context()
		a, b := box(t, s, "INBOX"), box(t, s, "Trash")
		for range 4 {
			add(t, s, "INBOX", []byte("seed a"))
			add(t, s, "Trash", []byte("seed b"))
		}
		const rounds = 15
		var wg sync.WaitGroup
		errs := make(chan error, 16*rounds)
		run := func(fn func(i int) error) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					if err := fn(i); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		first := func(id int64) []uint32 {
			l, err := s.ListMessagesByID(ctx, id)
			if err != nil || len(l) == 0 {
				return nil
			}
			return []uint32{l[0].UID, l[len(l)-1].UID}
		}
		run(func(int) error { _, _, _, err := s.CopyMessages(ctx, a.ID, first(a.ID), b.ID, false); return err })
		run(func(int) error { _, _, _, err := s.CopyMessages(ctx, b.ID, first(b.ID), a.ID, true); return err })
		run(func(int) error { _, _, _, err := s.CopyMessages(ctx, a.ID, first(a.ID), b.ID, true); return err })
		run(func(i int) error {
			_, err := s.StoreFlags(ctx, &store.FlagUpdate{MailboxID: b.ID, UIDs: first(b.ID), Op: store.FlagsAdd, Flags: []string{fmt.Sprint("$k", i)}})
			return err
		})
		run(func(i int) error {
			_, _, err := s.AppendMessage(ctx, &store.NewAppend{User: imapUser, Mailbox: "Trash", Body: []byte(fmt.Sprint("append ", i))})
			return err
		})
		run(func(i int) error {
			return s.CommitMessages(ctx, []*store.NewMessage{{ID: fmt.Sprint(i), Body: []byte("delivered"),
				Targets: []store.MailboxTarget{{User: imapUser}, {User: imapUser, Mailbox: "Trash"}}}})
		})
		run(func(int) error {
			u := first(b.ID)
			if len(u) == 0 {
				return nil
			}
			_, err := s.ExpungeByID(ctx, b.ID, u[:1])
			return err
		})
		run(func(int) error {
			u := first(a.ID)
			if len(u) == 0 {
				return nil
			}
			return s.ExpungeMessages(ctx, imapUser, "INBOX", u[1:])
		})
		run(func(i int) error {
			if _, err := s.CreateMailbox(ctx, imapUser, fmt.Sprint("tmp/", i), ""); err != nil {
				return err
			}
			return s.DeleteMailbox(ctx, imapUser, fmt.Sprint("tmp/", i))
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var sum int64
		for _, id := range []int64{a.ID, b.ID} {
			l := listMsgs(t, s, id)
			seen := map[uint32]bool{}
			for _, m := range l {
				if seen[m.UID] {
					t.Fatalf("mailbox %d: UID %d twice", id, m.UID)
				}
				seen[m.UID] = true
				sum += m.Size
			}
		}
		if used, _, _ := s.Quota(ctx, imapUser); used != sum {
			t.Fatalf("quota used %d, messages sum to %d", used, sum)
		}
		// Every body's refs match the rows that use it.
		var bad int
		// (refs less the decrements still waiting in body_unref).
		err := s.readConn().queryRow(ctx, `SELECT COUNT(*) FROM body b WHERE b.refs - (SELECT COUNT(*) FROM body_unref u WHERE u.body_id = b.id) <>
  (SELECT COUNT(*) FROM message m WHERE m.body_id = b.id) + (SELECT COUNT(*) FROM queue q WHERE q.body_id = b.id)`).Scan(&bad)
		must(t, err)
		if bad != 0 {
			t.Fatalf("%d bodies with a wrong refcount", bad)
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"inbox", "INBOX"},
		{"Inbox/Sub", "INBOX/Sub"},
		{"INBOXES", "INBOXES"},
		{"inboxes/x", "inboxes/x"},
		{"Sent", "Sent"},
		{"a/b/c", "a/b/c"},
		{"Entwürfe", "Entwürfe"},
		{"with space", "with space"},
		{"", ""},
		{"/a", ""},
		{"a/", ""},
		{"a//b", ""},
		{"a\r\nb", ""},
		{"a\x00", ""},
		{"a%", ""},
		{"a*", ""},
		{"\xc3", ""},
	} {
		got, err := checkName(tc.in)
		if tc.want == "" {
			if !errors.Is(err, store.ErrMailboxInvalid) {
				t.Errorf("checkName(%q) = %q, %v; want ErrMailboxInvalid", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("checkName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got := parents("a/b/c"); !reflect.DeepEqual(got, []string{"a", "a/b"}) {
		t.Errorf("parents(a/b/c) = %q", got)
	}
}

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"INBOX", "inbox/x", "a/b", "a//b", "/", "%", "x\ny", "Entwürfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := checkName(name)
		if err != nil {
			if !errors.Is(err, store.ErrMailboxInvalid) {
				t.Fatalf("checkName(%q): %v is not ErrMailboxInvalid", name, err)
			}
			return
		}
		if got == "" || !utf8.ValidString(got) || strings.ContainsAny(got, "\r\n\x00%*") ||
			strings.HasPrefix(got, "/") || strings.HasSuffix(got, "/") || strings.Contains(got, "//") {
			t.Fatalf("checkName(%q) accepted %q", name, got)
		}
		if !strings.EqualFold(got, name) {
			t.Fatalf("checkName(%q) = %q changed more than case", name, got)
		}
		if again, err := checkName(got); err != nil || again != got {
			t.Fatalf("checkName not idempotent: %q -> %q -> %q, %v", name, got, again, err)
		}
	})
}

func TestNormFlags(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		bad  bool
	}{
		{in: nil, want: []string{}},
		{in: []string{`\seen`, `\ANSWERED`, `\flagged`, `\deleted`, `\DRAFT`}, want: []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}},
		{in: []string{"$Label1", "$label1", `\Seen`, `\seen`}, want: []string{"$Label1", `\Seen`}},
		{in: []string{`\Recent`, "NonJunk"}, want: []string{"NonJunk"}},
		{in: []string{`\Custom`}, want: []string{`\Custom`}},
		{in: []string{"a b"}, bad: true},
		{in: []string{""}, bad: true},
		{in: []string{`\`}, bad: true},
		{in: []string{`a\b`}, bad: true},
		{in: []string{"ümlaut"}, bad: true},
		{in: []string{"x]"}, bad: true},
		{in: []string{"{3}"}, bad: true},
	} {
		got, err := normFlags(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("normFlags(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("normFlags(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	old := []string{`\Seen`, "$A"}
	for _, tc := range []struct {
		op   store.FlagOp
		fl   []string
		want []string
	}{
		{store.FlagsAdd, []string{"$a", `\Draft`}, []string{`\Seen`, "$A", `\Draft`}},
		{store.FlagsRemove, []string{"$a"}, []string{`\Seen`}},
		{store.FlagsReplace, []string{`\Draft`}, []string{`\Draft`}},
	} {
		if got := applyFlags(old, tc.op, tc.fl); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("applyFlags(%v, %d, %v) = %v, want %v", old, tc.op, tc.fl, got, tc.want)
		}
	}
	if !reflect.DeepEqual(old, []string{`\Seen`, "$A"}) {
		t.Fatal("applyFlags changed its input")
	}
}

func FuzzNormFlags(f *testing.F) {
	f.Add(`\Seen`, "$Label")
	f.Add(`\recent`, `\SEEN`)
	f.Add("a b", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := normFlags([]string{a, b})
		if err != nil {
			return
		}
		for i, fl := range got {
			if fl == "" || strings.ContainsAny(fl, " \t\r\n()\"{%*]") || strings.EqualFold(fl, `\Recent`) {
				t.Fatalf("normFlags(%q, %q) kept %q", a, b, fl)
			}
			for _, other := range got[i+1:] {
				if strings.EqualFold(fl, other) {
					t.Fatalf("normFlags(%q, %q) = %q has duplicates", a, b, got)
				}
			}
		}
		// Stored flags are joined by spaces and split again unchanged.
		if back := strings.Fields(strings.Join(got, " ")); len(back) != len(got) {
			t.Fatalf("flags %q do not survive storage", got)
		}
		if again, err := normFlags(got); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("normFlags not idempotent: %q -> %q, %v", got, again, err)
		}
	})
}
