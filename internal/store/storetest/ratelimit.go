package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// testRateLimits checks shared rate-limit rows: a member counts once while
// live, concurrent hits of one member count once, marks replace their
// deadline, and expired rows stop counting and are pruned.
func testRateLimits(t *testing.T, open Open) {
	s, ok := unwrap(get(t, open)).(store.RateLimits)
	if !ok {
		t.Skip("backend has no rate-limit storage")
	}
	c := ctx(t)
	if n, err := s.RateCount(c, "k"); err != nil || n != 0 {
		t.Fatalf("RateCount(empty) = %d, %v", n, err)
	}
	isNew, n, err := s.RateHit(c, "k", "a", time.Hour)
	must(t, err)
	if !isNew || n != 1 {
		t.Fatalf("first hit = %v, %d; want new, 1", isNew, n)
	}
	isNew, n, err = s.RateHit(c, "k", "a", time.Hour)
	must(t, err)
	if isNew || n != 1 {
		t.Fatalf("repeat hit = %v, %d; want not new, 1", isNew, n)
	}
	var wg sync.WaitGroup
	news := make(chan bool, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			isNew, _, err := s.RateHit(c, "k", "b", time.Hour)
			if err != nil {
				t.Error(err)
			}
			news <- isNew
		}()
	}
	wg.Wait()
	close(news)
	fresh := 0
	for v := range news {
		if v {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("8 concurrent hits of one member: %d were new, want 1", fresh)
	}
	if n, _ := s.RateCount(c, "k"); n != 2 {
		t.Fatalf("RateCount = %d, want 2", n)
	}
	if ok, _ := s.RateSeen(c, "k", "b"); !ok {
		t.Fatal("RateSeen(b) = false")
	}
	if ok, _ := s.RateSeen(c, "other", "b"); ok {
		t.Fatal("RateSeen under another key = true")
	}

	// An expired member stops counting, is new again, and is pruned.
	_, _, err = s.RateHit(c, "short", "x", time.Millisecond)
	must(t, err)
	must(t, s.RateMark(c, "mark", "m", time.Millisecond))
	time.Sleep(5 * time.Millisecond) // past a 1 ms deadline; not a synchronisation
	if n, _ := s.RateCount(c, "short"); n != 0 {
		t.Fatalf("expired member still counts: %d", n)
	}
	if ok, _ := s.RateSeen(c, "mark", "m"); ok {
		t.Fatal("expired mark still seen")
	}
	pruned, err := s.PruneRates(c)
	must(t, err)
	if pruned != 2 {
		t.Fatalf("PruneRates = %d, want 2", pruned)
	}
	if isNew, n, _ := s.RateHit(c, "short", "x", time.Hour); !isNew || n != 1 {
		t.Fatalf("hit after expiry = %v, %d; want new, 1", isNew, n)
	}
	// A mark is replaced, and removed with ttl <= 0.
	must(t, s.RateMark(c, "mark", "m", time.Hour))
	must(t, s.RateMark(c, "mark", "m", time.Hour))
	if ok, _ := s.RateSeen(c, "mark", "m"); !ok {
		t.Fatal("mark not seen")
	}
	must(t, s.RateMark(c, "mark", "m", 0))
	if ok, _ := s.RateSeen(c, "mark", "m"); ok {
		t.Fatal("mark removed with ttl 0 still seen")
	}
}
