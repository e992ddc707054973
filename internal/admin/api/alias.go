package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/store"
)

func aliasJSON(x *store.Alias) obj {
	return obj{{"email", x.Email}, {"destination", nonNil(x.Destination)}, {"comment", nullable(x.Comment)}, {"wildcard", x.Wildcard}}
}

func (a *API) listAliases(c *call) {
	as, err := a.svc.Aliases(c.ctx(), "")
	if err != nil {
		c.fail(err)
		return
	}
	out := make([]obj, len(as))
	for i := range as {
		out[i] = aliasJSON(&as[i]).skipNone()
	}
	c.json(http.StatusOK, out)
}

// destinations checks alias destinations as Mailu does: each a valid
// address (400) of an existing local user (404).
func (c *call) destinations(dests []string) bool {
	for _, d := range dests {
		e, ok := c.validEmail(d, "Provided destination email address %s is not a valid email address")
		if !ok {
			return false
		}
		if _, err := c.api.svc.User(c.ctx(), e); !c.found(err, fmt.Sprintf("Provided destination email address %s does not exist", d)) {
			return false
		}
	}
	return true
}

func (a *API) createAlias(c *call) {
	raw, _ := c.body.str("email")
	email, ok := c.validEmail(raw, "Provided alias %s is not a valid email address")
	if !ok {
		return
	}
	local, domain, _ := strings.Cut(email, "@")
	d, err := a.svc.Domain(c.ctx(), domain)
	if !c.found(err, fmt.Sprintf("Domain %s does not exist (%s)", domain, raw)) {
		return
	}
	if d.MaxAliases != -1 {
		as, err := a.svc.Aliases(c.ctx(), d.Name)
		if err != nil {
			c.fail(err)
			return
		}
		if len(as) >= d.MaxAliases {
			c.msg(http.StatusConflict, "Too many aliases for domain "+domain)
			return
		}
	}
	dests, _ := c.body.list("destination")
	if !c.destinations(dests) {
		return
	}
	x := store.Alias{Localpart: local, DomainName: domain, Destination: dests}
	x.Comment, _ = c.body.str("comment")
	x.Wildcard, _ = c.body.boolean("wildcard")
	_, err = a.svc.AddAlias(c.ctx(), x, admin.CreateOptions{})
	switch {
	case errors.Is(err, store.ErrExists):
		c.msg(http.StatusConflict, "Duplicate alias "+raw)
		return
	case errors.Is(err, store.ErrLimit):
		c.msg(http.StatusConflict, "Too many aliases for domain "+domain)
		return
	case err != nil:
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Alias %s to destination(s) %s has been created", raw, pyList(dests)))
}

// alias loads the {alias} parameter, answering 400 or 404.
func (c *call) alias() (*store.Alias, bool) {
	raw := c.param("alias")
	e, ok := c.validEmail(raw, "Provided alias (email address) %s is not a valid email address")
	if !ok {
		return nil, false
	}
	x, err := c.api.svc.Alias(c.ctx(), e)
	if !c.found(err, fmt.Sprintf("Alias %s cannot be found", raw)) {
		return nil, false
	}
	return x, true
}

func (a *API) getAlias(c *call) {
	x, ok := c.alias()
	if !ok {
		return
	}
	c.json(http.StatusOK, aliasJSON(x))
}

func (a *API) updateAlias(c *call) {
	x, ok := c.alias()
	if !ok {
		return
	}
	dests, hasDests := c.body.list("destination")
	if hasDests && !c.destinations(dests) {
		return
	}
	err := a.svc.PatchAlias(c.ctx(), x.Email, func(x *store.Alias) {
		if v, ok := c.body.str("comment"); ok {
			x.Comment = v
		}
		if hasDests {
			x.Destination = dests
		}
		if v, ok := c.body.boolean("wildcard"); ok {
			x.Wildcard = v
		}
	})
	if err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Alias %s has been updated", c.param("alias")))
}

func (a *API) deleteAlias(c *call) {
	x, ok := c.alias()
	if !ok {
		return
	}
	if err := a.svc.DeleteAlias(c.ctx(), x.Email); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Alias %s has been deleted", c.param("alias")))
}

// domainAliases lists the aliases of a domain (Mailu: GET
// /alias/destination/<domain>; despite the path it filters by the alias's
// domain).
func (a *API) domainAliases(c *call) {
	raw := c.param("domain")
	n, ok := c.validDomain(raw, "Domain %s is not a valid domain")
	if !ok {
		return
	}
	as, err := a.svc.Aliases(c.ctx(), n)
	if !c.found(err, fmt.Sprintf("Domain %s cannot be found", raw)) {
		return
	}
	out := make([]obj, len(as))
	for i := range as {
		out[i] = aliasJSON(&as[i])
	}
	c.json(http.StatusOK, out)
}

// availableDomains lists the names of every domain (Mailu master:
// /alias/domains/available, for picking an alias's domain).
func (a *API) availableDomains(c *call) {
	ds, err := a.svc.Domains(c.ctx())
	if err != nil {
		c.fail(err)
		return
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	c.json(http.StatusOK, names)
}

func relayJSON(r *store.Relay) obj {
	return obj{{"name", r.Name}, {"smtp", nullable(r.SMTP)}, {"comment", nullable(r.Comment)}}
}

func (a *API) listRelays(c *call) {
	rs, err := a.svc.Relays(c.ctx())
	if err != nil {
		c.fail(err)
		return
	}
	out := make([]obj, len(rs))
	for i := range rs {
		out[i] = relayJSON(&rs[i]).skipNone()
	}
	c.json(http.StatusOK, out)
}

func (a *API) createRelay(c *call) {
	raw, _ := c.body.str("name")
	name, ok := c.validDomain(raw, "Relayed domain %s is not a valid domain")
	if !ok {
		return
	}
	if inUse, err := a.nameInUse(c.ctx(), name); err != nil {
		c.fail(err)
		return
	} else if inUse {
		c.msg(http.StatusConflict, "Duplicate domain "+raw)
		return
	}
	r := store.Relay{Name: name}
	r.SMTP, _ = c.body.str("smtp")
	r.Comment, _ = c.body.str("comment")
	_, err := a.svc.CreateRelay(c.ctx(), r)
	if errors.Is(err, store.ErrNameInUse) {
		c.msg(http.StatusConflict, "Duplicate domain "+raw)
		return
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Relayed domain %s has been created", raw))
}

// relay loads the {name} parameter, answering 400 or 404.
func (c *call) relay() (*store.Relay, bool) {
	raw := c.param("name")
	n, ok := c.validDomain(raw, "Relayed domain %s is not a valid domain")
	if !ok {
		return nil, false
	}
	r, err := c.api.svc.Relay(c.ctx(), n)
	if !c.found(err, fmt.Sprintf("Relayed domain %s cannot be found", raw)) {
		return nil, false
	}
	return r, true
}

func (a *API) getRelay(c *call) {
	r, ok := c.relay()
	if !ok {
		return
	}
	c.json(http.StatusOK, relayJSON(r))
}

func (a *API) updateRelay(c *call) {
	r, ok := c.relay()
	if !ok {
		return
	}
	err := a.svc.PatchRelay(c.ctx(), r.Name, func(r *store.Relay) {
		if v, ok := c.body.str("smtp"); ok {
			r.SMTP = v
		}
		if v, ok := c.body.str("comment"); ok {
			r.Comment = v
		}
	})
	if err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Relayed domain %s has been updated", c.param("name")))
}

func (a *API) deleteRelay(c *call) {
	r, ok := c.relay()
	if !ok {
		return
	}
	if err := a.svc.DeleteRelay(c.ctx(), r.Name); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Relayed domain %s has been deleted", c.param("name")))
}
