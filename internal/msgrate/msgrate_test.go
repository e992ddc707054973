package msgrate

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{Flavor: "sqlite",
		Path: filepath.Join(dir, "main.db"), BlobDir: filepath.Join(dir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// limiter is what smtpd asks of both implementations.
type limiter interface {
	Take(ctx context.Context, key string) (string, bool, error)
	Settle(ctx context.Context, key, ticket string, sent bool) error
}

// send takes a place and settles it; it returns whether the message went.
func send(t *testing.T, l limiter, key string, sent bool) bool {
	t.Helper()
	ticket, ok, err := l.Take(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return false
	}
	if err := l.Settle(t.Context(), key, ticket, sent); err != nil {
		t.Fatal(err)
	}
	return sent
}

// Two Shared limiters on one store (two nodes) meet one limit; an unsent
// message gives its place back; logins are counted apart.
func TestSharedOneLimitForTwoNodes(t *testing.T) {
	st := openStore(t)
	rate := ratelimit.Rate{Count: 3, Per: time.Hour}
	nodes := []*Shared{NewShared(st, rate), NewShared(st, rate)}
	if send(t, nodes[0], "alice@example.test", false) {
		t.Fatal("an unsent message went")
	}
	got := 0
	for i := range 6 {
		if send(t, nodes[i%2], "alice@example.test", true) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("two nodes let %d messages through, want 3 (the unsent one must not count)", got)
	}
	if !send(t, nodes[1], "bob@example.test", true) {
		t.Fatal("bob is limited by alice's messages")
	}
	// A place held from MAIL on counts for the other node at once.
	ticket, ok, err := nodes[0].Take(t.Context(), "carol@example.test")
	if err != nil || !ok {
		t.Fatalf("Take = %v, %v", ok, err)
	}
	for range 2 {
		send(t, nodes[1], "carol@example.test", true)
	}
	if _, ok, _ := nodes[1].Take(t.Context(), "carol@example.test"); ok {
		t.Fatal("node B passed the limit while node A held a place")
	}
	if err := nodes[0].Settle(t.Context(), "carol@example.test", ticket, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := nodes[1].Take(t.Context(), "carol@example.test"); !ok {
		t.Fatal("a place given back was not free")
	}
}

type failingStore struct{ Store }

var errDown = errors.New("database down")

func (failingStore) RateTake(context.Context, string, string, int, time.Duration) (bool, int, error) {
	return false, 0, errDown
}
func (failingStore) PruneRates(context.Context) (int64, error) { return 0, errDown }

// A store error reaches the caller (smtpd answers 451), never a pass.
func TestSharedStoreError(t *testing.T) {
	l := NewShared(failingStore{}, ratelimit.Rate{Count: 3, Per: time.Hour})
	if _, ok, err := l.Take(t.Context(), "alice@example.test"); !errors.Is(err, errDown) || ok {
		t.Fatalf("Take = %v, %v; want not ok, errDown", ok, err)
	}
}

// Memory counts sent messages only, as smtpd did before msgrate.
func TestMemory(t *testing.T) {
	l := NewMemory(ratelimit.Rate{Count: 2, Per: time.Hour}, nil)
	send(t, l, "alice@example.test", false)
	got := 0
	for range 4 {
		if send(t, l, "alice@example.test", true) {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("%d messages went, want 2", got)
	}
}
