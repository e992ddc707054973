package app

import (
	"context"

	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/configcache"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// newConfigCache puts a configcache in front of the store's domain and
// user look-ups. A change of a domain, alternative or relay domain, here
// or on another node, drops every answer (deleting a domain deletes its
// users); a user's change drops that user. Every inbound message asks two
// or three domain look-ups: without the cache they were about 14 % of port
// 25's CPU (docs/benchmarks.md). Every login asks for its user: 9 % of the
// CPU of a TLS login in bench/imap.sh's logins case.
func (p *parts) newConfigCache() *configcache.Cache {
	c := configcache.New(p.store, 0)
	p.onClose(p.store.OnConfigChange(func(topic, key string) {
		switch topic {
		case sqlstore.TopicUser:
			c.ForgetUser(key)
		case sqlstore.TopicDomain, "":
			c.Forget()
		}
	}))
	return c
}

// cachedAccounts is the store with the cache in front of the router's
// domain look-ups. Its user look-ups go to the store: the router reads
// the quota used, which every delivery changes.
type cachedAccounts struct {
	inbound.Accounts
	domains *configcache.Cache
}

func (a cachedAccounts) GetDomain(ctx context.Context, name string) (*store.Domain, error) {
	return a.domains.GetDomain(ctx, name)
}

func (a cachedAccounts) GetAlternative(ctx context.Context, name string) (*store.Alternative, error) {
	return a.domains.GetAlternative(ctx, name)
}

func (a cachedAccounts) GetRelay(ctx context.Context, name string) (*store.Relay, error) {
	return a.domains.GetRelay(ctx, name)
}

// cachedUsers is the store with the cache in front of the
// authenticator's user look-up; the rest of the store (SetScram,
// UpdateToken, ListTokens) is reached as it is.
type cachedUsers struct {
	*sqlstore.Store
	users *configcache.Cache
}

func (u cachedUsers) GetUser(ctx context.Context, email string) (*store.User, error) {
	return u.users.GetUser(ctx, email)
}
