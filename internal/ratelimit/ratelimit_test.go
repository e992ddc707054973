package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestMovingWindow walks one key through a 3/hour window step by step.
func TestMovingWindow(t *testing.T) {
	type step struct {
		advance time.Duration
		op      string // "hit", "test", "count"
		want    any
	}
	steps := []step{
		{0, "test", true},
		{0, "hit", true},                  // t=0
		{10 * time.Minute, "hit", true},   // t=10m
		{10 * time.Minute, "hit", true},   // t=20m
		{0, "count", 3},                   //
		{0, "test", false},                // full
		{0, "hit", false},                 // refused, not recorded
		{39 * time.Minute, "test", false}, // t=59m: all three still in window
		{time.Minute, "count", 3},         // t=60m: the t=0 hit is exactly Per old: still counts (limits: >=)
		{0, "test", false},                //
		{time.Nanosecond, "count", 2},     // t=60m+1ns: the t=0 hit has left
		{0, "test", true},                 //
		{0, "hit", true},                  // t=60m+1ns recorded
		{0, "hit", false},                 //
		{10 * time.Minute, "count", 2},    // t=70m+1ns: the t=10m hit is 60m+1ns old: gone
		{50 * time.Minute, "count", 1},    // t=120m+1ns: only the t=60m+1ns hit remains (60m old)
		{time.Nanosecond, "count", 0},     //
	}
	c := newClock()
	l := New(Rate{Count: 3, Per: time.Hour}, c.now)
	for i, s := range steps {
		c.add(s.advance)
		var got any
		switch s.op {
		case "hit":
			got = l.Hit("k")
		case "test":
			got = l.Test("k")
		case "count":
			got = l.Count("k")
		}
		if got != s.want {
			t.Fatalf("step %d (%s at %v): got %v, want %v", i, s.op, c.now().Sub(newClock().now()), got, s.want)
		}
	}
	if n := l.Len(); n != 0 {
		t.Errorf("expired key still tracked: Len=%d", n)
	}
}

func TestKeysIndependent(t *testing.T) {
	c := newClock()
	l := New(Rate{Count: 1, Per: time.Minute}, c.now)
	if !l.Hit("a") || l.Hit("a") {
		t.Fatal("a: first hit must pass, second fail")
	}
	if !l.Test("b") || !l.Hit("b") {
		t.Fatal("b is limited by a's hits")
	}
}

func TestHitDistinct(t *testing.T) {
	c := newClock()
	l := New(Rate{Count: 2, Per: time.Hour}, c.now)
	type step struct {
		advance     time.Duration
		member      string
		wantAllowed bool
		wantNew     bool
		wantCount   int
	}
	steps := []step{
		{0, "alice", true, true, 1},
		{0, "alice", true, false, 1}, // repeat: not counted
		{time.Minute, "alice", true, false, 1},
		{0, "bob", true, true, 2},
		{0, "bob", false, false, 2},  // repeat of a member when full: reports the key is full
		{0, "carol", false, true, 2}, // new member over the limit: refused, not recorded
		{0, "carol", false, false, 2},
		// alice was first seen at t=0; at t=60m her dedup entry expires (TTL),
		// and her hit is exactly Per old: still counted.
		{59 * time.Minute, "alice", false, true, 2},
		{time.Nanosecond, "dave", true, true, 2}, // alice's t=0 hit has left: dave fits
	}
	for i, s := range steps {
		c.add(s.advance)
		allowed, isNew := l.HitDistinct("net", s.member)
		if allowed != s.wantAllowed || isNew != s.wantNew {
			t.Fatalf("step %d %s: (allowed, new) = (%v, %v), want (%v, %v)", i, s.member, allowed, isNew, s.wantAllowed, s.wantNew)
		}
		if n := l.Count("net"); n != s.wantCount {
			t.Fatalf("step %d %s: count %d, want %d", i, s.member, n, s.wantCount)
		}
	}
	// The same member under another key is another member.
	if allowed, isNew := l.HitDistinct("other", "alice"); !allowed || !isNew {
		t.Errorf("member leaked across keys: %v %v", allowed, isNew)
	}
}

// TestSweep: expired windows and members are dropped, not just ignored.
func TestSweep(t *testing.T) {
	c := newClock()
	l := New(Rate{Count: 5, Per: time.Minute}, c.now)
	for i := range 100 {
		l.HitDistinct(fmt.Sprintf("k%d", i), "m")
	}
	if l.windows.len() != 100 || l.members.len() != 100 {
		t.Fatalf("tracked %d windows %d members", l.windows.len(), l.members.len())
	}
	c.add(30 * time.Second)
	l.Hit("late")
	c.add(31 * time.Second) // first 100 are 61s old, "late" 31s
	l.Sweep()
	if l.windows.len() != 1 || l.members.len() != 0 {
		t.Fatalf("after sweep: %d windows %d members, want 1 and 0", l.windows.len(), l.members.len())
	}
	if l.Len() != 1 || l.Count("late") != 1 {
		t.Fatal("live key lost in sweep")
	}
}

// TestCap: at MaxKeys the least recently hit key is evicted.
func TestCap(t *testing.T) {
	c := newClock()
	l := New(Rate{Count: 1, Per: time.Hour}, c.now, MaxKeys(3))
	for _, k := range []string{"a", "b", "c"} {
		l.Hit(k)
		c.add(time.Second)
	}
	l.Hit("d") // evicts a
	if l.Len() != 3 {
		t.Fatalf("Len=%d, want 3", l.Len())
	}
	if l.Count("a") != 0 || l.Count("b") != 1 || l.Count("d") != 1 {
		t.Fatalf("wrong key evicted: a=%d b=%d d=%d", l.Count("a"), l.Count("b"), l.Count("d"))
	}
	if !l.Hit("a") { // a starts again from zero
		t.Fatal("evicted key still limited")
	}
	// Members have their own cap.
	m := New(Rate{Count: 10, Per: time.Hour}, c.now, MaxKeys(2))
	m.HitDistinct("k", "x")
	m.HitDistinct("k", "y")
	m.HitDistinct("k", "z") // evicts member x
	if m.members.len() != 2 {
		t.Fatalf("members %d, want 2", m.members.len())
	}
	if _, isNew := m.HitDistinct("k", "x"); !isNew {
		t.Error("evicted member x still remembered")
	}
	if _, isNew := m.HitDistinct("k", "z"); isNew {
		t.Error("member z forgotten")
	}
}

func TestDisabledRate(t *testing.T) {
	for _, r := range []Rate{{0, time.Hour}, {5, 0}, {-1, time.Hour}} {
		l := New(r, nil)
		for range 10 {
			if !l.Hit("k") {
				t.Fatalf("%+v limited", r)
			}
		}
		if a, n := l.HitDistinct("k", "m"); !a || !n {
			t.Fatalf("%+v: HitDistinct %v %v", r, a, n)
		}
		if !l.Test("k") || l.Count("k") != 0 || l.Len() != 0 {
			t.Fatalf("%+v remembered something", r)
		}
	}
}

func TestExemptions(t *testing.T) {
	c := newClock()
	e := NewExemptions(c.now)
	if e.IsExempt("1.2.3.4") {
		t.Fatal("exempt before Exempt")
	}
	e.Exempt("1.2.3.4", time.Hour)
	c.add(59 * time.Minute)
	if !e.IsExempt("1.2.3.4") || e.IsExempt("1.2.3.5") {
		t.Fatal("wrong exemption state at 59m")
	}
	e.Exempt("1.2.3.4", time.Hour) // renewed: now until 119m
	c.add(time.Hour - time.Nanosecond)
	if !e.IsExempt("1.2.3.4") {
		t.Fatal("renewal did not extend the deadline")
	}
	c.add(time.Nanosecond)
	if e.IsExempt("1.2.3.4") || e.Len() != 0 {
		t.Fatal("exemption outlived its deadline")
	}
	e.Exempt("x", time.Hour)
	e.Exempt("x", 0)
	if e.IsExempt("x") {
		t.Fatal("Exempt(key, 0) did not remove it")
	}
}

func TestExemptionsCap(t *testing.T) {
	c := newClock()
	e := NewExemptions(c.now, MaxKeys(2))
	e.Exempt("a", time.Hour)
	e.Exempt("b", time.Hour)
	e.Exempt("a", time.Hour) // a is now the most recent
	e.Exempt("c", time.Hour) // evicts b
	if !e.IsExempt("a") || e.IsExempt("b") || !e.IsExempt("c") || e.Len() != 2 {
		t.Fatalf("a=%v b=%v c=%v len=%d", e.IsExempt("a"), e.IsExempt("b"), e.IsExempt("c"), e.Len())
	}
	// A shorter exemption behind a longer one still ends on time.
	e.Exempt("short", time.Minute)
	c.add(2 * time.Minute)
	if e.IsExempt("short") {
		t.Fatal("short exemption outlived its deadline")
	}
}

// TestConcurrent is for -race: many goroutines on one limiter never exceed
// the limit.
func TestConcurrent(t *testing.T) {
	l := New(Rate{Count: 50, Per: time.Hour}, nil)
	churn := New(Rate{Count: 3, Per: time.Hour}, nil, MaxKeys(16))
	e := NewExemptions(nil, MaxKeys(16))
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if l.Hit("shared") {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
				churn.HitDistinct(fmt.Sprintf("k%d", i%20), fmt.Sprint(g))
				e.Exempt(fmt.Sprint(i%20), time.Minute)
				e.IsExempt(fmt.Sprint(i))
			}
		}()
	}
	wg.Wait()
	if accepted != 50 {
		t.Fatalf("accepted %d hits, want exactly 50", accepted)
	}
	if churn.Len() > 16 || churn.members.len() > 16 || e.Len() > 16 {
		t.Fatalf("cap exceeded: %d %d %d", churn.Len(), churn.members.len(), e.Len())
	}
}

// TestSeen: Seen reports remembered members without counting anything,
// forgets them with the window, and a disabled limiter remembers nothing.
func TestSeen(t *testing.T) {
	c := newClock()
	l := New(Rate{Count: 2, Per: time.Hour}, c.now)
	if l.Seen("net", "alice") {
		t.Fatal("seen before any hit")
	}
	l.HitDistinct("net", "alice")
	if !l.Seen("net", "alice") || l.Seen("net", "bob") || l.Seen("other", "alice") {
		t.Fatal("Seen wrong after one hit")
	}
	if l.Count("net") != 1 {
		t.Fatal("Seen counted")
	}
	c.add(time.Hour)
	if l.Seen("net", "alice") {
		t.Fatal("member outlived the window")
	}
	d := New(Rate{}, c.now)
	d.HitDistinct("net", "alice")
	if d.Seen("net", "alice") {
		t.Fatal("disabled limiter remembered")
	}
}

// TestPruneGate: the first caller prunes, the next ones within Every do
// not, and the first one after Every does again.
func TestPruneGate(t *testing.T) {
	g := &PruneGate{Every: 10 * time.Minute}
	t0 := time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)
	if !g.Due(t0) {
		t.Fatal("first call not due")
	}
	if g.Due(t0) || g.Due(t0.Add(9*time.Minute)) {
		t.Fatal("due again within Every")
	}
	if !g.Due(t0.Add(10 * time.Minute)) {
		t.Fatal("not due after Every")
	}
	if g.Due(t0.Add(15 * time.Minute)) {
		t.Fatal("due 5 minutes after the second prune")
	}
}
