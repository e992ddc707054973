package sqlstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// The queue operations, on SQLite and (with PETREL_TEST_PG_DSN) on
// PostgreSQL, in the style of the storetest conformance suite.

type queueFlavor struct {
	name string
	mk   func(tb testing.TB) Options
}

func queueFlavors(t *testing.T) []queueFlavor {
	fl := []queueFlavor{{"sqlite", sqliteOptions}}
	if testingPG() {
		fl = append(fl, queueFlavor{"postgresql", pgOptions})
	} else {
		t.Log("PostgreSQL queue tests skipped: PETREL_TEST_PG_DSN not set")
	}
	return fl
}

func testingPG() bool { return os.Getenv("PETREL_TEST_PG_DSN") != "" }

func runQueueTests(t *testing.T, fn func(t *testing.T, open func() *Store)) {
	for _, f := range queueFlavors(t) {
		t.Run(f.name, func(t *testing.T) {
			o := newOpener(f.mk)
			fn(t, func() *Store {
				s := o.openStore(t)
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// queueMsg commits one message from sender to the remote rcpts and
// returns its queue entries in id order.
func queueMsg(t *testing.T, s *Store, id, sender string, body []byte, rcpts ...string) []store.QueueItem {
	t.Helper()
	m := &store.NewMessage{ID: id, Sender: sender, Body: body, Size: int64(len(body)), Remote: rcpts}
	if err := s.CommitMessages(t.Context(), []*store.NewMessage{m}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListQueueEntries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []store.QueueItem
	for _, q := range all {
		if q.MessageID == id {
			out = append(out, q)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) != len(rcpts) {
		t.Fatalf("message %s has %d queue entries, want %d", id, len(out), len(rcpts))
	}
	return out
}

func ids(items []store.QueueItem) []int64 {
	out := make([]int64, len(items))
	for i, q := range items {
		out[i] = q.ID
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func claim(t *testing.T, s *Store, owner string, now time.Time, lease time.Duration, limit int) []store.QueueItem {
	t.Helper()
	got, err := s.ClaimQueue(t.Context(), owner, now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimQueue(%s): %v", owner, err)
	}
	return got
}

func getItem(t *testing.T, s *Store, id int64) *store.QueueItem {
	t.Helper()
	q, err := s.GetQueueItem(t.Context(), id)
	if err != nil {
		t.Fatalf("GetQueueItem(%d): %v", id, err)
	}
	return q
}

func TestQueueClaimLease(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		body := []byte("Subject: hi\r\n\r\nhello\r\n")
		a := queueMsg(t, s, "m1", "a@example.com", body, "x@one.example", "y@one.example", "z@two.example")
		b := queueMsg(t, s, "m2", "", body, "w@one.example")
		now := time.Now().Add(time.Second)

		// Leases are timed by the database's clock, whatever now says.
		const lease = 2 * time.Second
		leasedAt := time.Now()
		got := claim(t, s, "A", now, lease, 2)
		if fmt.Sprint(ids(got)) != fmt.Sprint(ids(a[:2])) {
			t.Fatalf("first claim (limit 2) = %v, want the two oldest %v", ids(got), ids(a[:2]))
		}
		for _, q := range got {
			if q.Size != int64(len(body)) || q.MessageID != "m1" || q.Sender != "a@example.com" {
				t.Errorf("claimed %+v: want size %d of m1 from a@example.com", q, len(body))
			}
			if d := q.LeaseUntil.Sub(leasedAt); d < lease-time.Second || d > lease+5*time.Second {
				t.Errorf("lease until %v, %v after the claim, want about %v", q.LeaseUntil, d, lease)
			}
		}
		rest := claim(t, s, "B", now, lease, 10)
		bLeasedAt := time.Now() // B's leases end last (a loaded machine is slow between claims)
		if want := []int64{a[2].ID, b[0].ID}; fmt.Sprint(ids(rest)) != fmt.Sprint(want) {
			t.Fatalf("second claim = %v, want the unleased %v", ids(rest), want)
		}
		if got := claim(t, s, "C", now, time.Minute, 10); len(got) != 0 {
			t.Fatalf("everything is leased, yet C claimed %v", ids(got))
		}
		// Not yet due: entries queued now are due now, not before.
		if got := claim(t, s, "D", now.Add(-time.Hour), time.Minute, 10); len(got) != 0 {
			t.Fatalf("claimed %v before they were due", ids(got))
		}
		// A clock far ahead does not take a lease that is still running.
		if got := claim(t, s, "E", now.Add(time.Hour), time.Minute, 10); len(got) != 0 {
			t.Fatalf("a node with a clock an hour ahead claimed leased entries %v", ids(got))
		}
		// A crashed worker's expired lease makes its entries due again.
		time.Sleep(time.Until(bLeasedAt.Add(lease + 100*time.Millisecond)))
		again := claim(t, s, "C", now, time.Minute, 10)
		if len(again) != 4 {
			t.Fatalf("after the leases expired C claimed %v, want all 4", ids(again))
		}
		e, err := s.ListQueueEntries(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range e {
			if q.Attempts != 0 {
				t.Errorf("a claim counted an attempt: %+v", q)
			}
		}
		if _, err := s.ClaimQueue(t.Context(), "", now, 0, 1); err == nil {
			t.Error("ClaimQueue with an empty owner succeeded")
		}
	})
}

func TestQueueUpdateOutcomes(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		c := t.Context()
		body := []byte("Subject: out\r\n\r\nbody\r\n")
		q := queueMsg(t, s, "m1", "a@example.com", body, "x@r.example", "y@r.example", "z@r.example")
		now := time.Now().Add(time.Second)
		claim(t, s, "W", now, time.Minute, 10)
		// z's lease is lost to V (as when W stalls past its lease).
		must(t, s.ReleaseQueueLeases(c, "W", []int64{q[2].ID}))
		if got := claim(t, s, "V", now, time.Minute, 10); len(got) != 1 || got[0].ID != q[2].ID {
			t.Fatalf("V claimed %v, want z", ids(got))
		}

		next := now.Add(5 * time.Minute)
		err := s.UpdateQueue(c, "W", []store.QueueUpdate{
			{ID: q[0].ID, Delete: true},
			{ID: q[1].ID, NextAttempt: next, LastAttempt: now, LastError: "451 4.7.1 try later",
				LastCode: 451, LastStatus: "4.7.1", LastRemote: "mx.r.example", DelayNotified: true},
			// Another worker took z's lease meanwhile: W's deferral must not apply.
			{ID: q[2].ID, NextAttempt: next, LastError: "stale"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetQueueItem(c, q[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delivered entry still there: %v", err)
		}
		y := getItem(t, s, q[1].ID)
		if y.Attempts != 1 || !y.NextAttempt.Equal(roundTS(next)) || !y.LastAttempt.Equal(roundTS(now)) ||
			y.LastError != "451 4.7.1 try later" || y.LastCode != 451 || y.LastStatus != "4.7.1" ||
			y.LastRemote != "mx.r.example" || !y.DelayNotified || !y.LeaseUntil.IsZero() {
			t.Fatalf("deferred entry = %+v", y)
		}
		// The flag is never cleared by a later deferral.
		claim(t, s, "W", next, time.Minute, 10)
		must(t, s.UpdateQueue(c, "W", []store.QueueUpdate{{ID: q[1].ID, NextAttempt: next.Add(time.Hour)}}))
		if y := getItem(t, s, q[1].ID); y.Attempts != 2 || !y.DelayNotified {
			t.Fatalf("second deferral: %+v", y)
		}

		// W's late deferral of z is ignored: V holds it.
		z := getItem(t, s, q[2].ID)
		if z.Attempts != 0 || z.LastError != "" || z.LeaseUntil.IsZero() {
			t.Fatalf("z deferred by a worker without a lease: %+v", z)
		}
		// The body stays while an entry uses it, and goes with the last.
		if _, err := s.OpenBody(c, q[1].BodyID); err != nil {
			t.Fatalf("body gone while still queued: %v", err)
		}
		must(t, s.UpdateQueue(c, "X", []store.QueueUpdate{{ID: q[1].ID, Delete: true}, {ID: q[2].ID, Delete: true}}))
		if _, err := s.OpenBody(c, q[1].BodyID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("body of a finished message: %v, want ErrNotFound", err)
		}
		// Deleting what is gone already is not an error (two outcomes for one entry).
		must(t, s.UpdateQueue(c, "X", []store.QueueUpdate{{ID: q[1].ID, Delete: true}}))
	})
}

func TestQueueSharedAndBlobBodies(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		c := t.Context()
		must(t, s.CreateDomain(c, &store.Domain{Name: "example.com", MaxUsers: -1, MaxAliases: -1}))
		u := store.NewUser("local", "example.com", 0, 80)
		must(t, s.CreateUser(c, &u))
		big := bytes.Repeat([]byte("0123456789abcdef"), 600) // over InlineMax (4096): a blob file
		m := &store.NewMessage{ID: "big", Sender: "local@example.com", Body: big, Size: int64(len(big)),
			Targets: []store.MailboxTarget{{User: u.Email}}, Remote: []string{"x@r.example"}}
		must(t, s.CommitMessages(c, []*store.NewMessage{m}))
		big2 := append([]byte("X"), big...)
		m2 := &store.NewMessage{ID: "big2", Sender: "local@example.com", Body: big2, Size: int64(len(big2)),
			Remote: []string{"y@r.example"}}
		must(t, s.CommitMessages(c, []*store.NewMessage{m2}))
		q, err := s.ListQueueEntries(c)
		must(t, err)
		if len(q) != 2 || q[0].Size != int64(len(big)) || q[1].Size != int64(len(big2)) {
			t.Fatalf("queue = %+v", q)
		}
		l1, l2 := largeOf(t, s, q[0].BodyID), largeOf(t, s, q[1].BodyID)

		// The mailbox copy keeps the first body; the second goes with its entry.
		must(t, s.DeleteQueueItem(c, q[0].ID))
		must(t, s.DeleteQueueItem(c, q[1].ID))
		if _, err := s.OpenBody(c, q[0].BodyID); err != nil {
			t.Fatalf("body still in a mailbox was removed: %v", err)
		}
		if !l1.exists(t, s) {
			t.Fatal("large body of a message in a mailbox was removed")
		}
		if l2.exists(t, s) {
			t.Fatal("large body of a deleted entry was not removed")
		}
		if err := s.DeleteQueueItem(c, q[1].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}

		// The same through UpdateQueue (a delivered entry).
		m3 := &store.NewMessage{ID: "big3", Sender: "local@example.com", Body: big2, Size: int64(len(big2)),
			Remote: []string{"z@r.example"}}
		must(t, s.CommitMessages(c, []*store.NewMessage{m3}))
		q3 := claim(t, s, "W", time.Now().Add(time.Second), time.Minute, 10)
		if len(q3) != 1 {
			t.Fatalf("claimed %d", len(q3))
		}
		l3 := largeOf(t, s, q3[0].BodyID)
		must(t, s.UpdateQueue(c, "W", []store.QueueUpdate{{ID: q3[0].ID, Delete: true}}))
		if l3.exists(t, s) {
			t.Fatal("large body of a delivered entry was not removed")
		}
	})
}

func TestQueueAdmin(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		c := t.Context()
		body := []byte("Subject: x\r\n\r\nx\r\n")
		q := queueMsg(t, s, "m1", "a@example.com", body, "x@r.example", "y@r.example", "z@r.example")
		now := time.Now().Add(time.Second)

		must(t, s.SetQueueHeld(c, q[0].ID, true))
		if !getItem(t, s, q[0].ID).Held {
			t.Fatal("hold did not stick")
		}
		got := claim(t, s, "W", now, time.Minute, 10)
		if fmt.Sprint(ids(got)) != fmt.Sprint(ids(q[1:])) {
			t.Fatalf("claimed %v, want %v (a held entry is never claimed)", ids(got), ids(q[1:]))
		}
		// Defer both into the future; flush makes the non-held ones due.
		future := now.Add(time.Hour)
		must(t, s.UpdateQueue(c, "W", []store.QueueUpdate{{ID: q[1].ID, NextAttempt: future}, {ID: q[2].ID, NextAttempt: future}}))
		if got := claim(t, s, "W", now, time.Minute, 10); len(got) != 0 {
			t.Fatalf("claimed %v before their time", ids(got))
		}
		n, err := s.FlushQueue(c, now)
		must(t, err)
		if n != 2 {
			t.Fatalf("FlushQueue = %d, want 2 (the held entry stays)", n)
		}
		if y := getItem(t, s, q[1].ID); !y.NextAttempt.Equal(roundTS(now)) || y.Attempts != 1 {
			t.Fatalf("flushed entry = %+v", y)
		}
		got = claim(t, s, "W", now, time.Minute, 10)
		if fmt.Sprint(ids(got)) != fmt.Sprint(ids(q[1:])) {
			t.Fatalf("after flush claimed %v, want %v", ids(got), ids(q[1:]))
		}
		// A flush leaves leased (in-flight) entries alone.
		if _, err := s.FlushQueue(c, now); err != nil {
			t.Fatal(err)
		}
		if got := claim(t, s, "V", now, time.Minute, 10); len(got) != 0 {
			t.Fatalf("flush broke leases: V claimed %v", ids(got))
		}

		// Release: claimable again, with its schedule.
		must(t, s.SetQueueHeld(c, q[0].ID, false))
		if got := claim(t, s, "W", now, time.Minute, 10); len(got) != 1 || got[0].ID != q[0].ID {
			t.Fatalf("after release claimed %v", ids(got))
		}

		for _, err := range []error{s.SetQueueHeld(c, 999999, true), s.DeleteQueueItem(c, 999999)} {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("unknown id: %v, want ErrNotFound", err)
			}
		}
		if _, err := s.GetQueueItem(c, 999999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetQueueItem(unknown): %v", err)
		}
		must(t, s.DeleteQueueItem(c, q[0].ID))
		l, err := s.ListQueueEntries(c)
		must(t, err)
		if fmt.Sprint(ids(l)) != fmt.Sprint(ids(q[1:])) {
			t.Fatalf("after delete: %v", ids(l))
		}
	})
}

func TestQueueLeaseRenewRelease(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		s := open()
		c := t.Context()
		q := queueMsg(t, s, "m1", "a@example.com", []byte("x"), "x@r.example", "y@r.example", "z@r.example")
		now := time.Now().Add(time.Second)
		claim(t, s, "W", now, time.Minute, 10)

		held, err := s.RenewQueueLeases(c, "W", time.Hour)
		must(t, err)
		if len(held) != 3 {
			t.Fatalf("renewal holds %v, want all 3", held)
		}
		if got := claim(t, s, "V", now.Add(30*time.Minute), time.Minute, 10); len(got) != 0 {
			t.Fatalf("renewed leases were claimed: %v", ids(got))
		}
		must(t, s.ReleaseQueueLeases(c, "W", []int64{q[0].ID}))
		must(t, s.ReleaseQueueLeases(c, "V", nil)) // not V's: no effect
		if got := claim(t, s, "V", now, time.Minute, 10); len(got) != 1 || got[0].ID != q[0].ID {
			t.Fatalf("after releasing one: V claimed %v", ids(got))
		}
		must(t, s.ReleaseQueueLeases(c, "W", nil))
		got := claim(t, s, "V", now, time.Minute, 10)
		if fmt.Sprint(ids(got)) != fmt.Sprint(ids(q[1:])) {
			t.Fatalf("after releasing all of W's: V claimed %v", ids(got))
		}
		for _, it := range got {
			if it.Attempts != 0 {
				t.Errorf("a released lease counted an attempt: %+v", it)
			}
		}
	})
}

// TestQueueConcurrentClaims: workers on two Store instances (two nodes on
// one database) claim and finish concurrently; every entry is claimed
// exactly once.
func TestQueueConcurrentClaims(t *testing.T) {
	runQueueTests(t, func(t *testing.T, open func() *Store) {
		nodes := []*Store{open(), open()}
		c := t.Context()
		const msgs, rcpts = 60, 4
		var all []*store.NewMessage
		for i := range msgs {
			m := &store.NewMessage{ID: fmt.Sprint("m", i), Sender: "a@example.com", Body: []byte("x")}
			for j := range rcpts {
				m.Remote = append(m.Remote, fmt.Sprintf("r%d@d%d.example", j, i%3))
			}
			all = append(all, m)
		}
		must(t, nodes[0].CommitMessages(c, all))
		now := time.Now().Add(time.Second)

		var mu sync.Mutex
		seen := map[int64]string{}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := nodes[w%2]
				owner := fmt.Sprint("worker-", w)
				for {
					got, err := s.ClaimQueue(c, owner, now, time.Minute, 7)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					var ups []store.QueueUpdate
					mu.Lock()
					for _, q := range got {
						if prev, dup := seen[q.ID]; dup {
							errs <- fmt.Errorf("entry %d claimed by %s and %s", q.ID, prev, owner)
						}
						seen[q.ID] = owner
						ups = append(ups, store.QueueUpdate{ID: q.ID, Delete: true})
					}
					mu.Unlock()
					if err := s.UpdateQueue(c, owner, ups); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if len(seen) != msgs*rcpts {
			t.Fatalf("%d entries delivered, want %d", len(seen), msgs*rcpts)
		}
		left, err := nodes[1].ListQueueEntries(c)
		must(t, err)
		if len(left) != 0 {
			t.Fatalf("%d entries left", len(left))
		}
	})
}
