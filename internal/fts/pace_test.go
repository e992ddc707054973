package fts

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// TestIndexerPause: the wait after a batch is Yield times the batch's
// time while users' work went on since the last batch at busyRate or
// more, bounded by maxYield, and nothing when it did not (or without
// Activity).
func TestIndexerPause(t *testing.T) {
	var work uint64
	ix := NewIndexer(IndexerOptions{Store: &memStore{}, Extract: readAll, Activity: func() uint64 { return work }})
	ix.looked = time.Now()
	if got := ix.pause(10 * time.Millisecond); got != 0 {
		t.Errorf("idle: pause %v, want 0", got)
	}
	work++
	if got, want := ix.pause(10*time.Millisecond), DefaultYield*10*time.Millisecond; got != want {
		t.Errorf("busy: pause %v, want %v", got, want)
	}
	if got := ix.pause(10 * time.Millisecond); got != 0 {
		t.Errorf("no work since the last batch: pause %v, want 0", got)
	}
	work += 5
	if got := ix.pause(time.Minute); got != maxYield {
		t.Errorf("busy after a long batch: pause %v, want %v", got, maxYield)
	}
	// A trickle: two commands in the ten seconds since the last look.
	ix.looked = time.Now().Add(-10 * time.Second)
	work += 2
	if got := ix.pause(time.Second); got != 0 {
		t.Errorf("a trickle of work: pause %v, want 0", got)
	}
	plain := NewIndexer(IndexerOptions{Store: &memStore{}, Extract: readAll})
	if got := plain.pause(time.Second); got != 0 {
		t.Errorf("without Activity: pause %v, want 0", got)
	}
}

// slowStore is a memStore whose batches take a while, safe to read
// while the indexer runs.
type slowStore struct {
	memStore
	mu      sync.Mutex
	indexed int
}

func (s *slowStore) PutFullText(_ context.Context, docs []store.FullTextDoc, _ []string) error {
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexed += len(docs)
	return nil
}

func (s *slowStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.indexed
}

// TestIndexerYieldsToUsers: while users' work goes on, Run waits after
// each batch instead of starting the next at once; once it stops, the
// indexer catches up.
func TestIndexerYieldsToUsers(t *testing.T) {
	st := &slowStore{memStore: memStore{bodies: map[int64]string{}}}
	for id := int64(1); id <= 10; id++ {
		st.bodies[id] = fmt.Sprintf("message %d", id)
	}
	// While working is set, much of users' work is done between any two
	// looks.
	var work atomic.Uint64
	var working atomic.Bool
	working.Store(true)
	activity := func() uint64 {
		if working.Load() {
			return work.Add(1000)
		}
		return work.Load()
	}
	ix := NewIndexer(IndexerOptions{Store: st, Extract: readAll, Batch: 1, Yield: 100,
		Activity: activity, Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { ix.Run(ctx); close(done) }()
	// Each 20 ms batch is followed by a wait of 100 times that (capped at
	// maxYield): in 300 ms at most one batch can have run, where ten
	// would without the user.
	time.Sleep(300 * time.Millisecond)
	if n := st.count(); n > 1 {
		t.Errorf("%d bodies indexed while the user worked, want at most 1", n)
	}
	working.Store(false)
	cancel()
	<-done

	// Without work going on, the same indexer runs batch after batch.
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go ix.Run(ctx2)
	deadline := time.Now().Add(20 * time.Second)
	for st.count() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := st.count(); n != 10 {
		t.Errorf("%d of 10 bodies indexed once the user stopped", n)
	}
}

func readAll(r io.ReaderAt, size int64) (string, error) {
	buf := make([]byte, size)
	_, err := r.ReadAt(buf, 0)
	return string(buf), err
}
