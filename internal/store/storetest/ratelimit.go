package storetest

import (
	"fmt"
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

// testRateTake checks RateTake, the counter behind a shared
// MESSAGE_RATELIMIT: at most limit live members per key, a live member
// taken again is not counted twice, a removed or expired member frees its
// place, and concurrent takers never record more than the limit together.
func testRateTake(t *testing.T, open Open) {
	s, ok := unwrap(get(t, open)).(store.RateLimits)
	if !ok {
		t.Skip("backend has no rate-limit storage")
	}
	c := ctx(t)
	for i, want := range []bool{true, true, false} {
		taken, n, err := s.RateTake(c, "msg", fmt.Sprint("m", i), 2, time.Hour)
		must(t, err)
		if taken != want || n != min(i+1, 2) {
			t.Fatalf("take %d = %v, %d; want %v, %d", i, taken, n, want, min(i+1, 2))
		}
	}
	if taken, n, err := s.RateTake(c, "msg", "m0", 2, time.Hour); err != nil || !taken || n != 2 {
		t.Fatalf("retake of a live member = %v, %d, %v; want taken, 2", taken, n, err)
	}
	if n, _ := s.RateCount(c, "msg"); n != 2 {
		t.Fatalf("RateCount after takes = %d, want 2 (the guard row must not count)", n)
	}
	if taken, _, _ := s.RateTake(c, "other", "m9", 2, time.Hour); !taken {
		t.Fatal("another key is limited by the first key's members")
	}
	// A place given back (RateMark with ttl 0) can be taken again.
	must(t, s.RateMark(c, "msg", "m1", 0))
	if taken, n, err := s.RateTake(c, "msg", "m3", 2, time.Hour); err != nil || !taken || n != 2 {
		t.Fatalf("take after a release = %v, %d, %v; want taken, 2", taken, n, err)
	}
	// An expired member frees its place.
	_, _, err := s.RateTake(c, "short", "a", 1, time.Millisecond)
	must(t, err)
	time.Sleep(5 * time.Millisecond) // past a 1 ms deadline; not a synchronisation
	if taken, _, err := s.RateTake(c, "short", "b", 1, time.Hour); err != nil || !taken {
		t.Fatalf("take after expiry = %v, %v; want taken", taken, err)
	}

	// Rounds of 16 concurrent takers of distinct members, released
	// together, limit 3: exactly 3 win each round.
	const rounds, takers, limit = 8, 16, 3
	for r := range rounds {
		key := fmt.Sprint("race", r)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wins := make(chan bool, takers)
		for i := range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				taken, n, err := s.RateTake(c, key, fmt.Sprint("r", i), limit, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if n > limit {
					t.Errorf("round %d taker %d saw %d members, over the limit %d", r, i, n, limit)
				}
				wins <- taken
			}()
		}
		close(start)
		wg.Wait()
		close(wins)
		won := 0
		for w := range wins {
			if w {
				won++
			}
		}
		if won != limit {
			t.Fatalf("round %d: %d concurrent takers with limit %d: %d taken", r, takers, limit, won)
		}
		if n, _ := s.RateCount(c, key); n != limit {
			t.Fatalf("round %d: RateCount after the race = %d, want %d", r, n, limit)
		}
	}
}
