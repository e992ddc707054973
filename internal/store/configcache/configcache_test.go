package configcache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// countingStore knows example.test, alt.test (an alternative of it),
// relay.test and the user a@example.test, counts the look-ups that reach
// it, and fails for broken.test.
type countingStore struct {
	calls  int
	during func() // runs inside a look-up
}

func (s *countingStore) look(name, want string) error {
	s.calls++
	if s.during != nil {
		s.during()
	}
	switch name {
	case "broken.test":
		return errors.New("connection lost")
	case want:
		return nil
	}
	return fmt.Errorf("no %s: %w", name, store.ErrNotFound)
}

func (s *countingStore) GetDomain(_ context.Context, name string) (*store.Domain, error) {
	if err := s.look(name, "example.test"); err != nil {
		return nil, err
	}
	return &store.Domain{Name: name, MaxUsers: -1}, nil
}

func (s *countingStore) GetAlternative(_ context.Context, name string) (*store.Alternative, error) {
	if err := s.look(name, "alt.test"); err != nil {
		return nil, err
	}
	return &store.Alternative{Name: name, DomainName: "example.test"}, nil
}

func (s *countingStore) GetRelay(_ context.Context, name string) (*store.Relay, error) {
	if err := s.look(name, "relay.test"); err != nil {
		return nil, err
	}
	return &store.Relay{Name: name, SMTP: "mx.relay.test"}, nil
}

func (s *countingStore) GetUser(_ context.Context, email string) (*store.User, error) {
	if err := s.look(email, "a@example.test"); err != nil {
		return nil, err
	}
	return &store.User{Email: email, Password: "{BLF-CRYPT}hash", Enabled: true}, nil
}

func TestCacheAnswersFromMemory(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{}
	c := New(s, time.Minute)
	for range 3 {
		if d, err := c.GetDomain(ctx, "example.test"); err != nil || d.Name != "example.test" {
			t.Fatalf("GetDomain = %+v, %v", d, err)
		}
		if _, err := c.GetDomain(ctx, "foreign.test"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetDomain(foreign) err = %v, want ErrNotFound", err)
		}
		if a, err := c.GetAlternative(ctx, "alt.test"); err != nil || a.DomainName != "example.test" {
			t.Fatalf("GetAlternative = %+v, %v", a, err)
		}
		if r, err := c.GetRelay(ctx, "relay.test"); err != nil || r.SMTP != "mx.relay.test" {
			t.Fatalf("GetRelay = %+v, %v", r, err)
		}
	}
	if s.calls != 4 {
		t.Errorf("the store was asked %d times, want 4 (once per name)", s.calls)
	}
	for range 3 {
		if u, err := c.GetUser(ctx, "a@example.test"); err != nil || u.Email != "a@example.test" || !u.Enabled {
			t.Fatalf("GetUser = %+v, %v", u, err)
		}
		if _, err := c.GetUser(ctx, "nobody@example.test"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetUser(nobody) err = %v, want ErrNotFound", err)
		}
	}
	if s.calls != 6 {
		t.Errorf("the store was asked %d times, want 6 (once per name and user)", s.calls)
	}
	u, _ := c.GetUser(ctx, "a@example.test")
	u.Enabled = false
	if u2, _ := c.GetUser(ctx, "a@example.test"); !u2.Enabled {
		t.Error("a caller's change of a user reached the cache")
	}
	// Each caller gets its own copy.
	d, _ := c.GetDomain(ctx, "example.test")
	d.MaxUsers = 7
	if d2, _ := c.GetDomain(ctx, "example.test"); d2.MaxUsers != -1 {
		t.Errorf("a caller's change reached the cache: MaxUsers %d", d2.MaxUsers)
	}
}

func TestCacheExpiresAndForgets(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{}
	c := New(s, time.Second)
	now := time.Now()
	c.now = func() time.Time { return now }
	c.GetDomain(ctx, "example.test")
	now = now.Add(999 * time.Millisecond)
	c.GetDomain(ctx, "example.test")
	if s.calls != 1 {
		t.Fatalf("asked %d times within the TTL, want 1", s.calls)
	}
	now = now.Add(time.Millisecond)
	c.GetDomain(ctx, "example.test")
	if s.calls != 2 {
		t.Fatalf("asked %d times after the TTL, want 2", s.calls)
	}
	c.Forget()
	c.GetDomain(ctx, "example.test")
	if s.calls != 3 {
		t.Fatalf("asked %d times after Forget, want 3", s.calls)
	}
}

// TestCacheForgetsOneUser: a user's change drops that user's answer
// (found or not) and no other, and no domain's.
func TestCacheForgetsOneUser(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{}
	c := New(s, time.Minute)
	ask := func() {
		c.GetUser(ctx, "a@example.test")
		c.GetUser(ctx, "b@example.test")
		c.GetDomain(ctx, "example.test")
	}
	ask()
	c.ForgetUser("b@example.test")
	ask()
	if s.calls != 4 {
		t.Fatalf("asked %d times, want 4: only b@example.test again", s.calls)
	}
	c.ForgetUser("a@example.test")
	ask()
	if s.calls != 5 {
		t.Fatalf("asked %d times, want 5: only a@example.test again", s.calls)
	}
	c.Forget()
	ask()
	if s.calls != 8 {
		t.Fatalf("asked %d times after Forget, want 8: everything again", s.calls)
	}
}

func TestCacheKeepsNoErrors(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{}
	c := New(s, time.Minute)
	for range 2 {
		if _, err := c.GetDomain(ctx, "broken.test"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want the store's error", err)
		}
	}
	if s.calls != 2 {
		t.Errorf("asked %d times, want 2: a failure must not be kept", s.calls)
	}
}

// TestCacheForgetDuringLookup: an answer read before a change and
// returned after it is not kept, so the next look-up sees the change.
func TestCacheForgetDuringLookup(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{}
	c := New(s, time.Minute)
	s.during = c.Forget // the domain changes while the store answers
	c.GetDomain(ctx, "foreign.test")
	s.during = nil
	c.GetDomain(ctx, "foreign.test")
	if s.calls != 2 {
		t.Errorf("asked %d times, want 2: the answer from before the change was kept", s.calls)
	}
}

func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	c := New(&countingStore{}, time.Minute)
	for i := range maxNames + 10 {
		c.GetDomain(ctx, fmt.Sprintf("d%d.test", i))
	}
	if n := len(c.domains); n > maxNames {
		t.Errorf("%d names kept, want at most %d", n, maxNames)
	}
}
