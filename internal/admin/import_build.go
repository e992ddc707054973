package admin

import (
	"context"
	"sort"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// userState is a user with what hangs off it.
type userState struct {
	u        store.User
	managers map[string]bool // domains the user manages
	tokens   []store.Token   // ID 0 = to be created
	// sieve is the user's whole set of Sieve scripts when sieveSet;
	// else the import leaves the scripts as they are.
	sieve    []sieveScript
	sieveSet bool
	// fetches are the user's whole set of fetched accounts when
	// fetchSet (ID 0 = to be created); else they stay as they are.
	fetches  []store.Fetch
	fetchSet bool
}

// state is the whole configuration, as it is or as the import wants it.
type state struct {
	domains map[string]*store.Domain
	alts    map[string]string // alternative -> domain
	relays  map[string]*store.Relay
	users   map[string]*userState
	aliases map[string]*store.Alias
}

func newState() *state {
	return &state{
		domains: map[string]*store.Domain{},
		alts:    map[string]string{},
		relays:  map[string]*store.Relay{},
		users:   map[string]*userState{},
		aliases: map[string]*store.Alias{},
	}
}

func loadState(ctx context.Context, tx store.Accounts) (*state, error) {
	st := newState()
	ds, err := tx.ListDomains(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		st.domains[ds[i].Name] = &ds[i]
	}
	as, err := tx.ListAlternatives(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		st.alts[a.Name] = a.DomainName
	}
	rs, err := tx.ListRelays(ctx)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		st.relays[rs[i].Name] = &rs[i]
	}
	us, err := tx.ListUsers(ctx, "")
	if err != nil {
		return nil, err
	}
	for i := range us {
		st.users[us[i].Email] = &userState{u: us[i], managers: map[string]bool{}}
	}
	ts, err := tx.ListTokens(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if u := st.users[t.UserEmail]; u != nil {
			u.tokens = append(u.tokens, t)
		}
	}
	for _, u := range st.users {
		sort.Slice(u.tokens, func(i, j int) bool { return u.tokens[i].ID < u.tokens[j].ID })
	}
	for d := range st.domains {
		ms, err := tx.ListManagers(ctx, d)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if u := st.users[m]; u != nil {
				u.managers[d] = true
			}
		}
	}
	al, err := tx.ListAliases(ctx, "")
	if err != nil {
		return nil, err
	}
	for i := range al {
		st.aliases[al[i].Email] = &al[i]
	}
	return st, nil
}

func (us *userState) clone() *userState {
	c := &userState{u: us.u, managers: make(map[string]bool, len(us.managers)), sieveSet: us.sieveSet, fetchSet: us.fetchSet}
	c.sieve = append([]sieveScript(nil), us.sieve...)
	c.fetches = append([]store.Fetch(nil), us.fetches...)
	c.u.ForwardDestination = append([]string(nil), us.u.ForwardDestination...)
	for d := range us.managers {
		c.managers[d] = true
	}
	for _, t := range us.tokens {
		t.IP = append([]string(nil), t.IP...)
		c.tokens = append(c.tokens, t)
	}
	return c
}

func (st *state) clone() *state {
	c := newState()
	for k, v := range st.domains {
		d := *v
		c.domains[k] = &d
	}
	for k, v := range st.alts {
		c.alts[k] = v
	}
	for k, v := range st.relays {
		r := *v
		c.relays[k] = &r
	}
	for k, v := range st.users {
		c.users[k] = v.clone()
	}
	for k, v := range st.aliases {
		a := *v
		a.Destination = append([]string(nil), v.Destination...)
		c.aliases[k] = &a
	}
	return c
}

// dropDomain deletes a domain and what depends on it, as the store's
// cascade will.
func (st *state) dropDomain(name string) {
	delete(st.domains, name)
	for a, d := range st.alts {
		if d == name {
			delete(st.alts, a)
		}
	}
	for e, u := range st.users {
		if u.u.DomainName == name {
			delete(st.users, e)
		}
		delete(u.managers, name)
	}
	for e, a := range st.aliases {
		if a.DomainName == name {
			delete(st.aliases, e)
		}
	}
}

func (st *state) altsOf(domain string) []string {
	var out []string
	for a, d := range st.alts {
		if d == domain {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// build computes the configuration the import asks for.
func (im *importer) build(old *state, sections map[string][]patch) *state {
	want := newState()
	if im.opt.Update {
		want = old.clone()
	}
	im.buildDomains(old, want, sections["domain"])
	im.buildUsers(old, want, sections["user"])
	im.buildAliases(old, want, sections["alias"])
	im.buildRelays(old, want, sections["relay"])
	im.checkRefs(want)
	return want
}

func (im *importer) buildDomains(old, want *state, patches []patch) {
	mentioned := map[string]bool{}
	prune := false
	for _, p := range patches {
		switch {
		case p.prune:
			prune = true
			continue
		case p.del:
			if want.domains[p.key] == nil {
				im.fail(p.path+".-name", "Item to delete not found: %q.", p.key)
				continue
			}
			want.dropDomain(p.key)
			continue
		}
		mentioned[p.key] = true
		var d store.Domain
		if cur := want.domains[p.key]; cur != nil && im.opt.Update {
			d = *cur
		} else {
			d = NewDomain(p.key)
			if o := old.domains[p.key]; o != nil {
				d.CreatedAt = o.CreatedAt
			}
		}
		defs := domainFields(&store.Domain{Name: p.key, MaxUsers: -1, MaxAliases: -1}, nil, "")
		for _, k := range sortedKeys(p.fields) {
			v := p.fields[k]
			path := p.path + "." + k
			if k == "name" || k == "-name" {
				continue
			}
			key, reset, ok := im.attr(k, v, path)
			if !ok {
				continue
			}
			if reset {
				v = defaultOf(defs, key)
			}
			var err error
			switch key {
			case "alternatives":
				im.setAlternatives(want, p.key, v, im.opt.Update && !reset, path)
			case "dkim_key":
				im.setDKIM(p.key, v, path)
			case "comment":
				d.Comment, err = asString(v)
			case "max_users", "max_aliases", "max_quota_bytes":
				var n int64
				if n, err = asInt(v); err == nil {
					switch key {
					case "max_users":
						d.MaxUsers = int(n)
					case "max_aliases":
						d.MaxAliases = int(n)
					default:
						d.MaxQuotaBytes = n
					}
				}
			case "signup_enabled":
				d.SignupEnabled, err = asBool(v)
			default:
				if !ignored[key] {
					im.fail(path, "Unknown field.")
				}
			}
			if err != nil {
				im.fail(path, "%s.", capital(err.Error()))
			}
		}
		if err := validateDomain(&d); err != nil {
			im.failErr(p.path, err)
			continue
		}
		want.domains[p.key] = &d
	}
	if prune {
		for name := range want.domains {
			if !mentioned[name] {
				want.dropDomain(name)
			}
		}
	}
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (im *importer) setAlternatives(want *state, domain string, v any, merge bool, path string) {
	final := im.mergeList(want.altsOf(domain), v, merge, normDomain, path)
	for _, a := range want.altsOf(domain) {
		delete(want.alts, a)
	}
	for _, a := range final {
		if other, ok := want.alts[a]; ok && other != domain {
			im.fail(path, "alternative %s already belongs to domain %s", a, other)
			continue
		}
		want.alts[a] = domain
	}
}

func (im *importer) buildUsers(old, want *state, patches []patch) {
	mentioned := map[string]bool{}
	prune := false
	for _, p := range patches {
		switch {
		case p.prune:
			prune = true
			continue
		case p.del:
			if want.users[p.key] == nil {
				im.fail(p.path+".-email", "Item to delete not found: %q.", p.key)
				continue
			}
			delete(want.users, p.key)
			continue
		}
		mentioned[p.key] = true
		local, dom := splitEmail(p.key)
		cur := want.users[p.key]
		var us *userState
		if cur != nil && im.opt.Update {
			us = cur.clone()
		} else {
			// Replacing: a user listed without sieve_scripts has none,
			// as with every attribute left out.
			us = &userState{u: store.NewUser(local, dom, mailuUserQuota, im.s.opt.DefaultSpamThreshold), managers: map[string]bool{}, sieveSet: true,
				fetchSet: im.s.opt.FetchSealer != nil} // without the key fetches are left alone
			if o := old.users[p.key]; o != nil {
				us.u.CreatedAt, us.u.QuotaBytesUsed = o.u.CreatedAt, o.u.QuotaBytesUsed
			}
		}
		prev := ""
		if o := old.users[p.key]; o != nil {
			prev = o.u.Password
		}
		hashIt := false
		if hv, ok := p.fields["hash_password"]; ok {
			var err error
			if hashIt, err = asBool(hv); err != nil {
				im.fail(p.path+".hash_password", "Not a valid boolean.")
			}
		}
		if pv, ok := p.fields["password"]; ok {
			if h, ok := im.importHash(pv, hashIt, prev, p.path+".password", false); ok {
				us.u.Password = h
			}
		} else if cur == nil || !im.opt.Update {
			im.fail(p.path+".password", "Missing data for required field.")
		}
		fresh := store.NewUser(local, dom, mailuUserQuota, im.s.opt.DefaultSpamThreshold)
		defs := userFields(&fresh)
		var oldTokens []store.Token
		if o := old.users[p.key]; o != nil {
			oldTokens = o.tokens
		}
		for _, k := range sortedKeys(p.fields) {
			v := p.fields[k]
			path := p.path + "." + k
			if k == "email" || k == "-email" || k == "password" || k == "hash_password" {
				continue
			}
			key, reset, ok := im.attr(k, v, path)
			if !ok {
				continue
			}
			if reset {
				if key == "password" {
					im.fail(path, "Field has no default value.")
					continue
				}
				v = defaultOf(defs, key)
			}
			merge := im.opt.Update && !reset
			var err error
			if b := userBool(&us.u, key); b != nil {
				*b, err = asBool(v)
			} else if s := userString(&us.u, key); s != nil {
				*s, err = asString(v)
			} else {
				switch key {
				case "quota_bytes":
					us.u.QuotaBytes, err = asInt(v)
				case "spam_threshold":
					var n int64
					n, err = asInt(v)
					us.u.SpamThreshold = int(n)
				case "reply_startdate":
					us.u.ReplyStartDate, err = asDate(v)
				case "reply_enddate":
					us.u.ReplyEndDate, err = asDate(v)
				case "forward_destination":
					us.u.ForwardDestination = im.mergeList(us.u.ForwardDestination, v, merge, NormalizeEmail, path)
				case "manager_of":
					final := im.mergeList(keysOf(us.managers), v, merge, normDomain, path)
					us.managers = map[string]bool{}
					for _, d := range final {
						us.managers[d] = true
					}
				case "tokens":
					if reset {
						v = nil
					}
					im.setTokens(us, oldTokens, v, merge, path)
				case "sieve_scripts":
					if reset {
						v = nil
					}
					im.setSieve(us, v, path)
				case "fetches":
					if reset {
						v = nil
					}
					im.setFetches(us, v, path)
				default:
					if !ignored[key] {
						im.fail(path, "Unknown field.")
					}
				}
			}
			if err != nil {
				im.fail(path, "%s.", capital(err.Error()))
			}
		}
		if err := validateUser(&us.u); err != nil {
			im.failErr(p.path, err)
			continue
		}
		want.users[p.key] = us
	}
	if prune {
		for e := range want.users {
			if !mentioned[e] {
				delete(want.users, e)
			}
		}
	}
}

func splitEmail(e string) (local, domain string) {
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] == '@' {
			return e[:i], e[i+1:]
		}
	}
	return e, ""
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (im *importer) buildAliases(old, want *state, patches []patch) {
	mentioned := map[string]bool{}
	prune := false
	for _, p := range patches {
		switch {
		case p.prune:
			prune = true
			continue
		case p.del:
			if want.aliases[p.key] == nil {
				im.fail(p.path+".-email", "Item to delete not found: %q.", p.key)
				continue
			}
			delete(want.aliases, p.key)
			continue
		}
		mentioned[p.key] = true
		local, dom := splitEmail(p.key)
		var a store.Alias
		if cur := want.aliases[p.key]; cur != nil && im.opt.Update {
			a = *cur
			a.Destination = append([]string(nil), cur.Destination...)
		} else {
			a = store.Alias{Email: p.key, Localpart: local, DomainName: dom}
			if o := old.aliases[p.key]; o != nil {
				a.CreatedAt = o.CreatedAt
			}
		}
		for _, k := range sortedKeys(p.fields) {
			v := p.fields[k]
			path := p.path + "." + k
			if k == "email" || k == "-email" {
				continue
			}
			key, reset, ok := im.attr(k, v, path)
			if !ok {
				continue
			}
			if reset {
				v = defaultOf(aliasFields(&store.Alias{}), key)
			}
			var err error
			switch key {
			case "comment":
				a.Comment, err = asString(v)
			case "wildcard":
				a.Wildcard, err = asBool(v)
			case "destination":
				a.Destination = im.mergeList(a.Destination, v, im.opt.Update && !reset, NormalizeEmail, path)
			default:
				if !ignored[key] {
					im.fail(path, "Unknown field.")
				}
			}
			if err != nil {
				im.fail(path, "%s.", capital(err.Error()))
			}
		}
		if err := validateImportedAlias(&a); err != nil {
			im.failErr(p.path, err)
			continue
		}
		want.aliases[p.key] = &a
	}
	if prune {
		for e := range want.aliases {
			if !mentioned[e] {
				delete(want.aliases, e)
			}
		}
	}
}

// validateImportedAlias is validateAlias without the need for a
// destination: Mailu's model allows an empty list.
func validateImportedAlias(a *store.Alias) error {
	var err error
	if a.Destination, err = normDestinations(a.Destination, "destination"); err != nil {
		return err
	}
	return checkComment(a.Comment)
}

func (im *importer) buildRelays(old, want *state, patches []patch) {
	mentioned := map[string]bool{}
	prune := false
	for _, p := range patches {
		switch {
		case p.prune:
			prune = true
			continue
		case p.del:
			if want.relays[p.key] == nil {
				im.fail(p.path+".-name", "Item to delete not found: %q.", p.key)
				continue
			}
			delete(want.relays, p.key)
			continue
		}
		mentioned[p.key] = true
		var r store.Relay
		if cur := want.relays[p.key]; cur != nil && im.opt.Update {
			r = *cur
		} else {
			r = store.Relay{Name: p.key}
			if o := old.relays[p.key]; o != nil {
				r.CreatedAt = o.CreatedAt
			}
		}
		for _, k := range sortedKeys(p.fields) {
			v := p.fields[k]
			path := p.path + "." + k
			if k == "name" || k == "-name" {
				continue
			}
			key, reset, ok := im.attr(k, v, path)
			if !ok {
				continue
			}
			if reset {
				v = nil
			}
			var err error
			switch key {
			case "comment":
				r.Comment, err = asString(v)
			case "smtp":
				r.SMTP, err = asString(v)
			default:
				if !ignored[key] {
					im.fail(path, "Unknown field.")
				}
			}
			if err != nil {
				im.fail(path, "%s.", capital(err.Error()))
			}
		}
		if err := validateRelay(&r); err != nil {
			im.failErr(p.path, err)
			continue
		}
		want.relays[p.key] = &r
	}
	if prune {
		for n := range want.relays {
			if !mentioned[n] {
				delete(want.relays, n)
			}
		}
	}
}

// checkRefs verifies what the store's keys will demand of the result:
// users, aliases and managers point at existing domains, and no name is
// two things at once.
func (im *importer) checkRefs(want *state) {
	where := func(kind, key string) string {
		if p, ok := im.paths[kind+":"+key]; ok {
			return p
		}
		return kind
	}
	for _, e := range sortedMapKeys(want.users) {
		us := want.users[e]
		if want.domains[us.u.DomainName] == nil {
			im.fail(where("user", e)+".email", "domain %s does not exist", us.u.DomainName)
		}
		for _, d := range keysOf(us.managers) {
			if want.domains[d] == nil {
				im.fail(where("user", e)+".manager_of", "domain %s does not exist", d)
			}
		}
	}
	for _, e := range sortedMapKeys(want.aliases) {
		a := want.aliases[e]
		if want.domains[a.DomainName] == nil {
			im.fail(where("alias", e)+".email", "domain %s does not exist", a.DomainName)
		}
		if want.users[e] != nil {
			im.fail(where("alias", e)+".email", "%s is already a user", e)
		}
	}
	for _, a := range sortedMapKeys(want.alts) {
		d := want.alts[a]
		if want.domains[a] != nil {
			im.fail(where("domain", d)+".alternatives", "%s is already a domain", a)
		}
		if want.relays[a] != nil {
			im.fail(where("domain", d)+".alternatives", "%s is already a relayed domain", a)
		}
	}
	for _, r := range sortedMapKeys(want.relays) {
		if want.domains[r] != nil {
			im.fail(where("relay", r)+".name", "%s is already a domain", r)
		}
	}
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
