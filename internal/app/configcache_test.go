package app

import (
	"context"
	"net/netip"
	"testing"

	"github.com/petrelmail/petrel/internal/auth"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// TestDomainCacheWiring: the inbound path's domain look-ups come from the
// cache, and every change of a domain, alternative or relay domain drops
// it at once, so a domain created after a look-up found nothing is local
// for the next message.
func TestDomainCacheWiring(t *testing.T) {
	ctx := context.Background()
	_, p := testParts(t, nil)
	addDomain(t, p)
	u := store.NewUser("bob", "example.test", 0, 80)
	if err := p.store.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}

	resolve := func() uint64 {
		before := p.store.Queries()
		if _, err := p.router.Resolve(ctx, "bob@example.test"); err != nil {
			t.Fatal(err)
		}
		return p.store.Queries() - before
	}
	first, second := resolve(), resolve()
	if second >= first {
		t.Errorf("the second look-up of bob@example.test ran %d statements, the first %d: the domain was not cached", second, first)
	}

	local := msgauth.NewStoreLookup(p.lookups)
	isLocal := func(name string) bool {
		ok, err := local.IsLocal(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if isLocal("new.test") || isLocal("alias.test") {
		t.Fatal("new.test or alias.test local before they exist")
	}
	if err := p.store.CreateDomain(ctx, &store.Domain{Name: "new.test", MaxUsers: -1, MaxAliases: -1}); err != nil {
		t.Fatal(err)
	}
	if !isLocal("new.test") {
		t.Error("new.test not local right after it was created")
	}
	if err := p.store.CreateAlternative(ctx, &store.Alternative{Name: "alias.test", DomainName: "new.test"}); err != nil {
		t.Fatal(err)
	}
	if !isLocal("alias.test") {
		t.Error("alias.test not local right after it was created")
	}
	if err := p.store.DeleteAlternative(ctx, "alias.test"); err != nil {
		t.Fatal(err)
	}
	if isLocal("alias.test") {
		t.Error("alias.test still local after it was deleted")
	}
	if _, err := p.lookups.GetRelay(ctx, "relay.test"); err == nil {
		t.Fatal("relay.test a relay domain before it exists")
	}
	if err := p.store.CreateRelay(ctx, &store.Relay{Name: "relay.test", SMTP: "mx.relay.test"}); err != nil {
		t.Fatal(err)
	}
	if r, err := p.lookups.GetRelay(ctx, "relay.test"); err != nil || r.SMTP != "mx.relay.test" {
		t.Errorf("relay.test right after it was created: %+v, %v", r, err)
	}
}

// TestUserCacheWiring: logins read their user from the cache, and a
// change of the user (password, disabled, SCRAM credentials stored by a
// login) counts at the very next login.
func TestUserCacheWiring(t *testing.T) {
	ctx := context.Background()
	_, p := testParts(t, nil)
	addDomain(t, p)
	const email = "bob@example.test"
	login := func(pw string) (statements uint64, err error) {
		before := p.store.Queries()
		_, err = p.auth.Authenticate(ctx, auth.Attempt{Username: email, Password: auth.Secret(pw),
			Protocol: "imap", Port: 993, Remote: netip.MustParseAddr("192.0.2.1")})
		return p.store.Queries() - before, err
	}
	// A login before the user exists is refused, and that answer is
	// kept; creating the user drops it.
	if _, err := login("first secret"); err == nil {
		t.Fatal("a login as a user that does not exist yet succeeded")
	}
	u := store.NewUser("bob", "example.test", 0, 80)
	h, err := auth.HashPassword("first secret", 4)
	if err != nil {
		t.Fatal(err)
	}
	u.Password = h
	if err := p.store.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	if _, err := login("first secret"); err != nil {
		t.Fatalf("first login right after the user was created: %v", err)
	}
	// That login stored the user's SCRAM credentials; the next SCRAM
	// login must see them.
	if got, err := p.lookups.GetUser(ctx, email); err != nil || !got.Scram.Valid() {
		t.Fatalf("the cached user after the first login has no SCRAM credentials (%v)", err)
	}
	if n, err := login("first secret"); err != nil || n != 0 {
		t.Fatalf("a second login ran %d statements (%v), want 0: its user was not cached", n, err)
	}

	h2, err := auth.HashPassword("second secret", 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.SetPasswordHash(ctx, email, h2); err != nil {
		t.Fatal(err)
	}
	if _, err := login("first secret"); err == nil {
		t.Fatal("the old password still works right after the change")
	}
	if _, err := login("second secret"); err != nil {
		t.Fatalf("the new password refused right after the change: %v", err)
	}

	cur, err := p.store.GetUser(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	cur.Enabled = false
	if err := p.store.UpdateUser(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := login("second secret"); err == nil {
		t.Fatal("a disabled user logged in right after being disabled")
	}
}
