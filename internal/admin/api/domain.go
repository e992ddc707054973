package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/petrelmail/petrel/internal/admin"
	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// validDomain normalises a domain name, or answers 400 with Mailu's text.
func (c *call) validDomain(name, format string) (string, bool) {
	n, err := admin.NormalizeDomain(name)
	if err != nil || !strings.Contains(n, ".") {
		c.msg(http.StatusBadRequest, fmt.Sprintf(format, name))
		return "", false
	}
	return n, true
}

// validEmail normalises an address, or answers 400 with Mailu's text.
func (c *call) validEmail(addr, format string) (string, bool) {
	e, err := admin.NormalizeEmail(addr)
	if err != nil || !strings.Contains(e[strings.LastIndexByte(e, '@'):], ".") {
		c.msg(http.StatusBadRequest, fmt.Sprintf(format, addr))
		return "", false
	}
	return e, true
}

// domain loads a domain for a path parameter, answering 400 or 404.
func (c *call) domain(param string) (*store.Domain, bool) {
	raw := c.param(param)
	n, ok := c.validDomain(raw, "Domain %s is not a valid domain")
	if !ok {
		return nil, false
	}
	d, err := c.api.svc.Domain(c.ctx(), n)
	if !c.found(err, fmt.Sprintf("Domain %s does not exist", raw)) {
		return nil, false
	}
	return d, true
}

// domainJSON is Mailu's DomainGet.
func (a *API) domainJSON(ctx context.Context, d *store.Domain) (obj, error) {
	managers, err := a.svc.Managers(ctx, d.Name)
	if err != nil {
		return nil, err
	}
	alts, err := a.svc.Alternatives(ctx, d.Name)
	if err != nil {
		return nil, err
	}
	altNames := make([]string, len(alts))
	for i, x := range alts {
		altNames[i] = x.Name
	}
	recs, err := a.svc.DNSRecords(ctx, d.Name, a.opts.DNS)
	if err != nil {
		return nil, err
	}
	dns := classify(d.Name, recs)
	return obj{
		{"name", d.Name},
		{"comment", nullable(d.Comment)},
		{"managers", nonNil(managers)},
		{"max_users", d.MaxUsers},
		{"max_aliases", d.MaxAliases},
		{"max_quota_bytes", d.MaxQuotaBytes},
		{"signup_enabled", d.SignupEnabled},
		{"alternatives", altNames},
		{"dns_autoconfig", dns.autoconfig},
		{"dns_mx", nullable(dns.mx)},
		{"dns_spf", nullable(dns.spf)},
		{"dns_dkim", nullable(dns.dkim)},
		{"dns_dmarc", nullable(dns.dmarc)},
		{"dns_dmarc_report", nullable(dns.dmarcReport)},
		{"dns_tlsa", tlsaOrNil(dns.tlsa)},
	}, nil
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func tlsaOrNil(l []string) any {
	if len(l) == 0 {
		return nil // Mailu: None unless a Let's Encrypt flavor
	}
	return l
}

type dnsFields struct {
	mx, spf, dkim, dmarc, dmarcReport string
	autoconfig, tlsa                  []string
}

// classify sorts the records into Mailu's dns_* fields.
func classify(domain string, recs []msgauth.Record) dnsFields {
	var f dnsFields
	f.autoconfig = []string{}
	for _, r := range recs {
		line := r.String()
		switch {
		case r.Type == "MX":
			f.mx = line
		case r.Type == "TXT" && r.Name == domain+".":
			f.spf = line
		case r.Type == "TXT" && strings.Contains(r.Name, "._domainkey."):
			f.dkim = line
		case r.Type == "TXT" && r.Name == "_dmarc."+domain+".":
			f.dmarc = line
		case r.Type == "TXT" && strings.Contains(r.Name, "._report._dmarc."):
			f.dmarcReport = line
		case r.Type == "TLSA":
			f.tlsa = append(f.tlsa, line)
		case r.Type == "SRV", r.Type == "CNAME":
			f.autoconfig = append(f.autoconfig, line)
		}
	}
	return f
}

func (a *API) listDomains(c *call) {
	ds, err := a.svc.Domains(c.ctx())
	if err != nil {
		c.fail(err)
		return
	}
	out := make([]obj, 0, len(ds))
	for i := range ds {
		o, err := a.domainJSON(c.ctx(), &ds[i])
		if err != nil {
			c.fail(err)
			return
		}
		out = append(out, o.skipNone())
	}
	c.json(http.StatusOK, out)
}

// checkAlternatives applies Mailu's checks to the alternatives of a domain
// POST or PATCH, in Mailu's order, answering the client when one fails.
func (c *call) checkAlternatives(alts []string) bool {
	seen := map[string]bool{}
	for _, x := range alts {
		if seen[strings.ToLower(x)] {
			c.msg(http.StatusConflict, "Duplicate alternative domain names in request")
			return false
		}
		seen[strings.ToLower(x)] = true
	}
	for _, x := range alts {
		n, ok := c.validDomain(x, "Alternative domain %s is not a valid domain")
		if !ok {
			return false
		}
		if inUse, err := c.api.nameInUse(c.ctx(), n); err != nil {
			c.fail(err)
			return false
		} else if inUse {
			c.msg(http.StatusConflict, "Duplicate alternative domain name "+x)
			return false
		}
	}
	return true
}

// nameInUse: Mailu common.fqdn_in_use (domain, alternative or relay).
func (a *API) nameInUse(ctx context.Context, name string) (bool, error) {
	for _, get := range []func() error{
		func() error { _, err := a.svc.Domain(ctx, name); return err },
		func() error { _, err := a.svc.Alternative(ctx, name); return err },
		func() error { _, err := a.svc.Relay(ctx, name); return err },
	} {
		err := get()
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}

func (a *API) createDomain(c *call) {
	raw, _ := c.body.str("name")
	name, ok := c.validDomain(raw, "Domain %s is not a valid domain")
	if !ok {
		return
	}
	if inUse, err := a.nameInUse(c.ctx(), name); err != nil {
		c.fail(err)
		return
	} else if inUse {
		c.msg(http.StatusConflict, "Duplicate domain name "+raw)
		return
	}
	alts, _ := c.body.list("alternatives")
	if !c.checkAlternatives(alts) {
		return
	}
	d := admin.NewDomain(name)
	applyDomain(&d, c.body)
	_, err := a.svc.AddDomainWithAlternatives(c.ctx(), d, alts)
	if err != nil && !errors.Is(err, admin.ErrDKIMKey) {
		c.fail(err)
		return
	}
	if err != nil {
		a.log.Warn("domain created without a DKIM key", "domain", name, "err", err)
	}
	c.msg(http.StatusOK, fmt.Sprintf("Domain %s has been created", raw))
}

// applyDomain copies the settable fields present in b.
func applyDomain(d *store.Domain, b body) {
	if v, ok := b.str("comment"); ok {
		d.Comment = v
	}
	if v, ok := b.integer("max_users"); ok {
		d.MaxUsers = int(v)
	}
	if v, ok := b.integer("max_aliases"); ok {
		d.MaxAliases = int(v)
	}
	if v, ok := b.integer("max_quota_bytes"); ok {
		d.MaxQuotaBytes = v
	}
	if v, ok := b.boolean("signup_enabled"); ok {
		d.SignupEnabled = v
	}
}

func (a *API) getDomain(c *call) {
	d, ok := c.domain("domain")
	if !ok {
		return
	}
	o, err := a.domainJSON(c.ctx(), d)
	if err != nil {
		c.fail(err)
		return
	}
	c.json(http.StatusOK, o)
}

func (a *API) updateDomain(c *call) {
	d, ok := c.domain("domain")
	if !ok {
		return
	}
	alts, _ := c.body.list("alternatives")
	if !c.checkAlternatives(alts) {
		return
	}
	if err := a.svc.PatchDomain(c.ctx(), d.Name, func(d *store.Domain) { applyDomain(d, c.body) }, alts); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Domain %s has been updated", c.param("domain")))
}

func (a *API) deleteDomain(c *call) {
	d, ok := c.domain("domain")
	if !ok {
		return
	}
	if err := a.svc.DeleteDomain(c.ctx(), d.Name); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Domain %s has been deleted", c.param("domain")))
}

func (a *API) generateDKIM(c *call) {
	d, ok := c.domain("domain")
	if !ok {
		return
	}
	if _, err := a.svc.RegenerateDKIM(c.ctx(), d.Name); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("DKIM/DMARC keys have been generated for domain %s", c.param("domain")))
}

func (a *API) listManagers(c *call) {
	d, ok := c.domain("domain")
	if !ok {
		return
	}
	ms, err := a.svc.Managers(c.ctx(), d.Name)
	if err != nil {
		c.fail(err)
		return
	}
	c.json(http.StatusOK, obj{{"managers", nonNil(ms)}})
}

// managerTarget checks the email and domain of a manager call in Mailu's
// order: email syntax, domain syntax, domain exists, user exists.
func (c *call) managerTarget(email string) (*store.Domain, string, bool) {
	e, ok := c.validEmail(email, "Invalid email address %s")
	if !ok {
		return nil, "", false
	}
	d, ok := c.domain("domain")
	if !ok {
		return nil, "", false
	}
	if _, err := c.api.svc.User(c.ctx(), e); !c.found(err, fmt.Sprintf("User %s does not exist", email)) {
		return nil, "", false
	}
	return d, e, true
}

func (a *API) createManager(c *call) {
	raw, _ := c.body.str("user_email")
	d, e, ok := c.managerTarget(raw)
	if !ok {
		return
	}
	err := a.svc.AddManager(c.ctx(), d.Name, e)
	if errors.Is(err, store.ErrExists) {
		c.msg(http.StatusConflict, fmt.Sprintf("User %s is already a manager of the domain %s ", raw, d.Name))
		return
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("User %s has been added as manager of the domain %s ", raw, d.Name))
}

func (a *API) findManager(c *call) {
	raw := c.param("email")
	d, e, ok := c.managerTarget(raw)
	if !ok {
		return
	}
	is, err := a.svc.IsManager(c.ctx(), d.Name, e)
	if err != nil {
		c.fail(err)
		return
	}
	if !is {
		c.msg(http.StatusNotFound, fmt.Sprintf("User %s is not a manager of the domain %s", raw, d.Name))
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("User %s is a manager of the domain %s", raw, d.Name))
}

func (a *API) deleteManager(c *call) {
	raw := c.param("email")
	d, e, ok := c.managerTarget(raw)
	if !ok {
		return
	}
	err := a.svc.RemoveManager(c.ctx(), d.Name, e)
	if !c.found(err, fmt.Sprintf("User %s is not a manager of the domain %s", raw, d.Name)) {
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("User %s has been removed as a manager of the domain %s ", raw, d.Name))
}

func (a *API) listDomainUsers(c *call) {
	d, ok := c.domain("domain")
	if !ok {
		return
	}
	us, err := a.svc.Users(c.ctx(), d.Name)
	if err != nil {
		c.fail(err)
		return
	}
	out := make([]obj, len(us))
	for i := range us {
		out[i] = userJSON(&us[i]) // Mailu marshals this list without skip_none
	}
	c.json(http.StatusOK, out)
}

func alternativeJSON(x *store.Alternative) obj {
	return obj{{"name", x.Name}, {"domain", x.DomainName}}
}

func (a *API) listAlternatives(c *call) {
	alts, err := a.svc.Alternatives(c.ctx(), "")
	if err != nil {
		c.fail(err)
		return
	}
	out := make([]obj, len(alts))
	for i := range alts {
		out[i] = alternativeJSON(&alts[i])
	}
	c.json(http.StatusOK, out)
}

func (a *API) createAlternative(c *call) {
	rawName, _ := c.body.str("name")
	rawDomain, _ := c.body.str("domain")
	name, ok := c.validDomain(rawName, "Alternative domain %s is not a valid domain")
	if !ok {
		return
	}
	dn, ok := c.validDomain(rawDomain, "Domain %s is not a valid domain")
	if !ok {
		return
	}
	if _, err := a.svc.Domain(c.ctx(), dn); !c.found(err, fmt.Sprintf("Domain %s does not exist", rawDomain)) {
		return
	}
	_, err := a.svc.CreateAlternative(c.ctx(), name, dn)
	if errors.Is(err, store.ErrNameInUse) || errors.Is(err, store.ErrExists) {
		c.msg(http.StatusConflict, "Duplicate alternative domain name "+rawName)
		return
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Alternative %s for domain %s has been created", rawName, rawDomain))
}

// alternative loads the {alt} parameter, answering 400 or 404.
func (c *call) alternative() (*store.Alternative, bool) {
	raw := c.param("alt")
	n, ok := c.validDomain(raw, "Alternative domain %s is not a valid domain")
	if !ok {
		return nil, false
	}
	x, err := c.api.svc.Alternative(c.ctx(), n)
	if !c.found(err, fmt.Sprintf("Alternative domain %s does not exist", raw)) {
		return nil, false
	}
	return x, true
}

func (a *API) getAlternative(c *call) {
	x, ok := c.alternative()
	if !ok {
		return
	}
	c.json(http.StatusOK, alternativeJSON(x))
}

func (a *API) deleteAlternative(c *call) {
	x, ok := c.alternative()
	if !ok {
		return
	}
	if err := a.svc.DeleteAlternative(c.ctx(), x.Name); err != nil {
		c.fail(err)
		return
	}
	c.msg(http.StatusOK, fmt.Sprintf("Alternative %s for domain %s has been deleted", c.param("alt"), x.DomainName))
}
