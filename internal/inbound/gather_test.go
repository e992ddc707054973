package inbound

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store/blob"
)

// gatherHarness is a Deliverer on a gated memStore whose committer may
// gather for a minute, so the tests decide who arrives when.
func gatherHarness(t *testing.T) (*Deliverer, *memStore) {
	t.Helper()
	st := newMemStore()
	st.gate = make(chan struct{})
	st.entered = make(chan int, 8)
	blobs, err := blob.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDeliverer(DelivererOptions{Store: st, Blobs: blobs})
	d.gatherWait = func(time.Duration) time.Duration { return time.Minute }
	d.Start(context.Background())
	t.Cleanup(func() { close(st.gate); d.Close() })
	return d, st
}

// deliverAsync delivers sp and reports the outcome on the returned channel.
func deliverAsync(d *Deliverer, id string, sp *Spool) chan error {
	done := make(chan error, 1)
	go func() {
		sp.Write([]byte("Subject: " + id + "\r\n\r\nbody\r\n"))
		done <- d.Deliver(context.Background(), env(id, toBox("u@example.com")), sp)
	}()
	return done
}

func openSpool(t *testing.T, d *Deliverer) *Spool {
	t.Helper()
	sp, err := d.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func waitDelivered(t *testing.T, id string, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not delivered", id)
	}
}

// gatherOne sets the scene of the gather tests: a's group has committed,
// b waits for the committer, and the returned spool is still being
// written. It returns b's outcome and that spool.
func gatherOne(t *testing.T, d *Deliverer, st *memStore) (bDone chan error, arriving *Spool) {
	t.Helper()
	a := deliverAsync(d, "a", openSpool(t, d))
	if n := nextGroup(t, st); n != 1 {
		t.Fatalf("first group of %d", n)
	}
	// While a commits: b is handed over, the other is still arriving.
	b, arriving := openSpool(t, d), openSpool(t, d)
	bDone = deliverAsync(d, "b", b)
	for d.pendingCount() < 1 {
		time.Sleep(time.Millisecond)
	}
	st.gate <- struct{}{}
	waitDelivered(t, "a", a)
	// Without gathering, the committer would now take b alone.
	time.Sleep(50 * time.Millisecond)
	return bDone, arriving
}

// TestGatherWaitsForArriving: a message still being written when the
// committer is free joins the group of the one already waiting.
func TestGatherWaitsForArriving(t *testing.T) {
	d, st := gatherHarness(t)
	bDone, c := gatherOne(t, d, st)
	cDone := deliverAsync(d, "c", c)
	if n := nextGroup(t, st); n != 2 {
		t.Fatalf("group of %d after a, want b and c together", n)
	}
	st.gate <- struct{}{}
	waitDelivered(t, "b", bDone)
	waitDelivered(t, "c", cDone)
	if n := d.spooling.Load(); n != 0 {
		t.Errorf("%d spools still counted", n)
	}
}

// TestGatherStopsWhenNothingComes: a message whose spool is aborted (the
// client went away) no longer holds the group back, and a group with
// nothing else on its way does not wait at all.
func TestGatherStopsWhenNothingComes(t *testing.T) {
	d, st := gatherHarness(t)
	bDone, gone := gatherOne(t, d, st)
	gone.Abort()
	gone.Abort() // twice: counted once
	if n := nextGroup(t, st); n != 1 {
		t.Fatalf("group of %d, want b alone", n)
	}
	st.gate <- struct{}{}
	waitDelivered(t, "b", bDone)

	// Nothing on its way: straight to the commit (the gather window is a
	// minute, the test's limit 30 s).
	c := deliverAsync(d, "c", openSpool(t, d))
	nextGroup(t, st)
	st.gate <- struct{}{}
	waitDelivered(t, "c", c)
	if n := d.spooling.Load(); n != 0 {
		t.Errorf("%d spools still counted", n)
	}
}

func (d *Deliverer) pendingCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}

// nextGroup is the size of the next group the store is handed; the
// gather window is a minute, so 30 s without one is a failure.
func nextGroup(t *testing.T, st *memStore) int {
	t.Helper()
	select {
	case n := <-st.entered:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no group committed within 30 s")
		return 0
	}
}
