package dnsres

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// clock is a settable time for the cache.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestCacheExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c := newCache(10, time.Minute, 10*time.Second, clk.now)
	notFound := &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}
	c.put("hit", []string{"a.test"}, nil)
	c.put("miss", nil, notFound)
	c.put("servfail", nil, &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true})
	c.put("timeout", nil, &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true})
	c.put("other", nil, errors.New("context canceled"))

	tests := []struct {
		key   string
		after time.Duration // since the puts
		hit   bool
	}{
		{"hit", 0, true},
		{"hit", 59 * time.Second, true},
		{"hit", time.Minute, false},
		{"miss", 0, true},
		{"miss", 9 * time.Second, true},
		{"miss", 10 * time.Second, false},
		{"servfail", 0, false},
		{"timeout", 0, false},
		{"other", 0, false},
		{"never", 0, false},
	}
	start := clk.t
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s+%v", tt.key, tt.after), func(t *testing.T) {
			clk.t = start.Add(tt.after)
			e, ok := c.get(tt.key)
			if ok != tt.hit {
				t.Fatalf("get(%q) after %v: hit = %v, want %v", tt.key, tt.after, ok, tt.hit)
			}
			if !ok {
				return
			}
			switch tt.key {
			case "hit":
				if e.err != nil || !slices.Equal(e.vals, []string{"a.test"}) {
					t.Errorf("hit = %v, %v", e.vals, e.err)
				}
			case "miss":
				if !IsNotFound(e.err) || e.vals != nil {
					t.Errorf("miss = %v, %v; want the not-found error", e.vals, e.err)
				}
			}
		})
	}
	clk.t = start.Add(time.Hour)
	c.get("hit")
	c.get("miss")
	if n := c.len(); n != 0 {
		t.Errorf("%d entries left after expiry, want 0", n)
	}
}

// The caller's slices are its own: changing them does not change the cache.
func TestCacheCopies(t *testing.T) {
	c := newCache(10, time.Minute, time.Second, time.Now)
	in := []string{"a.test"}
	c.put("k", in, nil)
	in[0] = "changed"
	e, _ := c.get("k")
	e.vals[0] = "changed too"
	if e, _ := c.get("k"); e.vals[0] != "a.test" {
		t.Errorf("cached value = %q, want a.test", e.vals[0])
	}
}

func TestCacheBound(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c := newCache(100, time.Minute, 10*time.Second, clk.now)
	for i := range 1000 {
		c.put(fmt.Sprint("k", i), []string{"v"}, nil)
		if n := c.len(); n > 100 {
			t.Fatalf("%d entries after %d puts, want at most 100", n, i+1)
		}
	}
	// The newest entry always goes in.
	if _, ok := c.get("k999"); !ok {
		t.Error("the last entry put is missing")
	}
	// Expired entries make room before live ones are dropped.
	clk.advance(2 * time.Minute)
	c.put("fresh", []string{"v"}, nil)
	if n := c.len(); n != 1 {
		t.Errorf("%d entries after a put into a cache of expired ones, want 1", n)
	}
	// Overwriting a key does not evict another one.
	c2 := newCache(2, time.Minute, time.Second, clk.now)
	c2.put("a", []string{"1"}, nil)
	c2.put("b", []string{"1"}, nil)
	c2.put("a", []string{"2"}, nil)
	if _, ok := c2.get("b"); !ok {
		t.Error("re-putting a evicted b")
	}
	if e, _ := c2.get("a"); !slices.Equal(e.vals, []string{"2"}) {
		t.Errorf("a = %v, want [2]", e.vals)
	}
}

func TestCacheKeys(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:DB8::1", "2001:db8::1"},
	} {
		if got, ok := addrKey(tt.in); !ok || got != tt.want {
			t.Errorf("addrKey(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
	if _, ok := addrKey("not-an-ip"); ok {
		t.Error("addrKey accepted a name")
	}
	if got := hostKey("Mail.Example.TEST."); got != "mail.example.test" {
		t.Errorf("hostKey = %q", got)
	}
}
