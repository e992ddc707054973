package inbound

import (
	"context"
	"errors"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

// TestCheckQuotaFromRoute: Resolve carries every mailbox's quota (aliases
// included), so CheckQuota reads no user again; a route made elsewhere,
// without them, still gets the users' own.
func TestCheckQuotaFromRoute(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	f.domain("example.com")
	f.user("full@example.com", func(u *store.User) { u.QuotaBytes, u.QuotaBytesUsed = 1000, 1000 })
	f.user("room@example.com", func(u *store.User) { u.QuotaBytes, u.QuotaBytesUsed = 1000, 10 })
	f.alias("team@example.com", false, "full@example.com", "room@example.com")
	r := NewRouter(RouterOptions{Accounts: f})

	team, err := r.Resolve(ctx, "team@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if team.Quota["full@example.com"] != (Quota{Bytes: 1000, Used: 1000}) || team.Quota["room@example.com"] != (Quota{Bytes: 1000, Used: 10}) {
		t.Fatalf("route quotas %+v", team.Quota)
	}
	full, err := r.Resolve(ctx, "full@example.com")
	if err != nil {
		t.Fatal(err)
	}
	before := f.calls.Load()
	if err := r.CheckQuota(ctx, team, 100); err != nil {
		t.Errorf("team: %v, want room in one mailbox", err)
	}
	if err := r.CheckQuota(ctx, full, 100); !errors.Is(err, ErrMailboxFull) {
		t.Errorf("full: %v, want ErrMailboxFull", err)
	}
	if err := r.CheckQuota(ctx, team, 5000); !errors.Is(err, ErrTooBigForQuota) {
		t.Errorf("team, 5000 bytes: %v, want ErrTooBigForQuota", err)
	}
	if n := f.calls.Load() - before; n != 0 {
		t.Errorf("CheckQuota made %d look-ups, want none", n)
	}

	bare := Route{Kind: RouteLocal, Rcpt: "full@example.com", Mailboxes: []string{"full@example.com"}}
	if err := r.CheckQuota(ctx, bare, 100); !errors.Is(err, ErrMailboxFull) {
		t.Errorf("route without quotas: %v, want ErrMailboxFull from the user row", err)
	}
	if n := f.calls.Load() - before; n != 1 {
		t.Errorf("route without quotas: %d look-ups, want 1", n)
	}
}
