package app

import (
	"context"

	"github.com/petrelmail/petrel/internal/inbound"
	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/domaincache"
	"github.com/petrelmail/petrel/internal/store/sqlstore"
)

// newDomainCache puts a domaincache in front of the store's domain
// look-ups, dropped whenever a domain, alternative or relay domain
// changes here or on another node. Every inbound message asks two or
// three of them: without the cache they were about 14 % of port 25's
// CPU (docs/benchmarks.md).
func (p *parts) newDomainCache() *domaincache.Cache {
	c := domaincache.New(p.store, 0)
	p.onClose(p.store.OnConfigChange(func(topic, _ string) {
		if topic == sqlstore.TopicDomain || topic == "" {
			c.Forget()
		}
	}))
	return c
}

// cachedAccounts is the store with the domain cache in front of the
// router's domain look-ups.
type cachedAccounts struct {
	inbound.Accounts
	domains *domaincache.Cache
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
