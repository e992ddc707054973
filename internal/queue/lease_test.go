package queue

import (
	"context"
	"errors"
	"testing"
	"time"
)

// renewStore breaks RenewQueueLeases: it fails (a database that cannot be
// reached), or reports none of the entries held (another worker took
// them after the lease ran out).
type renewStore struct {
	Store
	fail, stolen bool
}

func (r *renewStore) RenewQueueLeases(ctx context.Context, owner string, lease time.Duration) ([]int64, error) {
	if r.fail {
		return nil, errors.New("renew: connection refused")
	}
	held, err := r.Store.RenewQueueLeases(ctx, owner, lease)
	if r.stolen {
		return nil, err
	}
	return held, err
}

// TestLeaseLostStopsAttempt: an attempt whose lease renewals fail is
// cancelled before its lease can run out, and one whose entries another
// worker took is cancelled at the next renewal; neither counts an
// attempt, and the transport sees its context end.
func TestLeaseLostStopsAttempt(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   func(Store) Store
	}{
		{"renewal fails", func(s Store) Store { return &renewStore{Store: s, fail: true} }},
		{"lease taken", func(s Store) Store { return &renewStore{Store: s, stolen: true} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.submit("m1", "a@example.com", "x@r.example")
			h.tr.gate = make(chan struct{}) // Deliver waits for its context
			const lease = 900 * time.Millisecond
			h.start(func(o *Options) { o.Store = tc.st(h.st); o.Lease = lease })
			waitUntil(t, "the attempt to start", func() bool { return h.tr.callCount() == 1 })
			waitUntil(t, "the attempt to stop", func() bool { return h.tr.inflightOf("r.example") == 0 })
			h.stop()
			if e := h.entry("x@r.example"); e.Attempts != 0 {
				t.Fatalf("a stopped attempt was counted: %+v", e)
			}
			if n := len(h.tr.delivered); n != 0 {
				t.Fatalf("delivered %d", n)
			}
		})
	}
}
