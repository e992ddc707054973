package app

import (
	"context"
	"testing"

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

	local := msgauth.NewStoreLookup(p.domains)
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
	if _, err := p.domains.GetRelay(ctx, "relay.test"); err == nil {
		t.Fatal("relay.test a relay domain before it exists")
	}
	if err := p.store.CreateRelay(ctx, &store.Relay{Name: "relay.test", SMTP: "mx.relay.test"}); err != nil {
		t.Fatal(err)
	}
	if r, err := p.domains.GetRelay(ctx, "relay.test"); err != nil || r.SMTP != "mx.relay.test" {
		t.Errorf("relay.test right after it was created: %+v, %v", r, err)
	}
}
