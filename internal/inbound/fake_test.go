package inbound

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/petrelmail/petrel/internal/store"
)

// fakeAccounts is an in-memory Accounts for unit tests. Keys are the
// normalised names, as the real store keeps them.
type fakeAccounts struct {
	domains map[string]store.Domain
	alts    map[string]store.Alternative
	relays  map[string]store.Relay
	users   map[string]store.User
	aliases map[string]store.Alias
	calls   atomic.Int64
	fail    string // a name whose look-up fails with errBackend
}

var errBackend = errors.New("backend down")

func newFake() *fakeAccounts {
	return &fakeAccounts{
		domains: map[string]store.Domain{},
		alts:    map[string]store.Alternative{},
		relays:  map[string]store.Relay{},
		users:   map[string]store.User{},
		aliases: map[string]store.Alias{},
	}
}

func (f *fakeAccounts) domain(name string) { f.domains[name] = store.Domain{Name: name} }
func (f *fakeAccounts) alternative(name, domain string) {
	f.alts[name] = store.Alternative{Name: name, DomainName: domain}
}
func (f *fakeAccounts) relay(name string) { f.relays[name] = store.Relay{Name: name} }

func (f *fakeAccounts) user(email string, mod ...func(*store.User)) {
	local, domain, _ := strings.Cut(email, "@")
	u := store.NewUser(local, domain, 0, 80)
	for _, m := range mod {
		m(&u)
	}
	f.users[email] = u
}

func (f *fakeAccounts) alias(email string, wildcard bool, dest ...string) {
	i := strings.LastIndexByte(email, '@')
	f.aliases[email] = store.Alias{Email: email, Localpart: email[:i], DomainName: email[i+1:], Wildcard: wildcard, Destination: dest}
}

func forward(keep bool, dest ...string) func(*store.User) {
	return func(u *store.User) {
		u.ForwardEnabled = true
		u.ForwardKeep = keep
		u.ForwardDestination = dest
	}
}

func (f *fakeAccounts) check(name string) error {
	f.calls.Add(1)
	if f.fail != "" && name == f.fail {
		return errBackend
	}
	return nil
}

func (f *fakeAccounts) GetDomain(_ context.Context, name string) (*store.Domain, error) {
	if err := f.check(name); err != nil {
		return nil, err
	}
	if d, ok := f.domains[name]; ok {
		return &d, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeAccounts) GetAlternative(_ context.Context, name string) (*store.Alternative, error) {
	if err := f.check(name); err != nil {
		return nil, err
	}
	if a, ok := f.alts[name]; ok {
		return &a, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeAccounts) GetRelay(_ context.Context, name string) (*store.Relay, error) {
	if err := f.check(name); err != nil {
		return nil, err
	}
	if r, ok := f.relays[name]; ok {
		return &r, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeAccounts) GetUser(_ context.Context, email string) (*store.User, error) {
	if err := f.check(email); err != nil {
		return nil, err
	}
	if u, ok := f.users[email]; ok {
		u.ForwardDestination = append([]string(nil), u.ForwardDestination...)
		return &u, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeAccounts) GetAlias(_ context.Context, email string) (*store.Alias, error) {
	if err := f.check(email); err != nil {
		return nil, err
	}
	if a, ok := f.aliases[email]; ok {
		a.Destination = append([]string(nil), a.Destination...)
		return &a, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeAccounts) ListWildcardAliases(_ context.Context, domain string) ([]store.Alias, error) {
	if err := f.check("wildcards:" + domain); err != nil {
		return nil, err
	}
	var out []store.Alias
	for _, a := range f.aliases {
		if a.Wildcard && a.DomainName == domain {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}
