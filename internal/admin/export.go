package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// ExportOptions are config-export's switches.
type ExportOptions struct {
	Full    bool // -f: include attributes that have their default value
	Secrets bool // -s: include password and token hashes and DKIM keys
	// Only are config-export's FILTER arguments: a section ("user") or a
	// section attribute ("user.spam_threshold", "domain.name"). Attributes
	// named here are exported even when default or secret, as in Mailu.
	Only []string
}

// efield is one attribute of an object with what export needs to know.
type efield struct {
	key    string
	val    any
	def    bool // equal to the column default (left out unless Full)
	secret bool // hidden unless Secrets
}

// mailuUserQuota is Mailu's column default for quota_bytes (models.py), which
// is what an import without quota_bytes gets and what export leaves out.
const mailuUserQuota = 1000000000

// Attributes each section knows, for filters and for import (schemas.py).
var sectionFields = map[string][]string{
	"domain": {"name", "alternatives", "comment", "dkim_key", "max_aliases", "max_quota_bytes", "max_users", "signup_enabled", "created_at", "updated_at"},
	"user": {"email", "allow_spoofing", "change_pw_next_login", "comment", "displayed_name", "enable_imap", "enable_pop", "enabled",
		"forward_destination", "forward_enabled", "forward_keep", "global_admin", "manager_of", "password", "quota_bytes",
		"reply_body", "reply_enabled", "reply_enddate", "reply_startdate", "reply_subject", "spam_enabled",
		"spam_mark_as_read", "spam_threshold", "sieve_scripts", "fetches", "tokens", "created_at", "updated_at"},
	"alias": {"email", "comment", "destination", "wildcard", "created_at", "updated_at"},
	"relay": {"name", "comment", "smtp", "created_at", "updated_at"},
}

func metaFields(m store.Meta) []efield {
	f := []efield{{key: "comment", val: m.Comment, def: m.Comment == ""}}
	if !m.CreatedAt.IsZero() {
		f = append(f, efield{key: "created_at", val: dateText(m.CreatedAt)})
	}
	var upd any
	if !m.UpdatedAt.IsZero() {
		upd = dateText(m.UpdatedAt)
	}
	return append(f, efield{key: "updated_at", val: upd})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func domainFields(d *store.Domain, alts []string, dkim string) []efield {
	alts = strList(alts)
	f := []efield{
		{key: "name", val: displayDomain(d.Name)},
		{key: "alternatives", val: alts, def: len(alts) == 0},
		{key: "max_aliases", val: d.MaxAliases, def: d.MaxAliases == -1},
		{key: "max_quota_bytes", val: d.MaxQuotaBytes, def: d.MaxQuotaBytes == 0},
		{key: "max_users", val: d.MaxUsers, def: d.MaxUsers == -1},
		{key: "signup_enabled", val: d.SignupEnabled, def: !d.SignupEnabled},
	}
	if dkim != "" {
		f = append(f, efield{key: "dkim_key", val: literal(dkim), secret: true})
	} else {
		f = append(f, efield{key: "dkim_key", val: "", def: true})
	}
	return append(f, metaFields(d.Meta)...)
}

// userFields are a user row's attributes (manager_of and tokens come from
// other tables and are added by the caller).
func userFields(u *store.User) []efield {
	fwd := make([]string, len(u.ForwardDestination))
	for i, d := range u.ForwardDestination {
		fwd[i] = displayEmail(d)
	}
	f := []efield{
		{key: "email", val: displayEmail(u.Email)},
		{key: "allow_spoofing", val: u.AllowSpoofing, def: !u.AllowSpoofing},
		{key: "change_pw_next_login", val: u.ChangePwNextLogin, def: !u.ChangePwNextLogin},
		{key: "displayed_name", val: u.DisplayedName, def: u.DisplayedName == ""},
		{key: "enable_imap", val: u.EnableIMAP, def: u.EnableIMAP},
		{key: "enable_pop", val: u.EnablePOP, def: u.EnablePOP},
		{key: "enabled", val: u.Enabled, def: u.Enabled},
		{key: "forward_destination", val: fwd, def: len(fwd) == 0},
		{key: "forward_enabled", val: u.ForwardEnabled, def: !u.ForwardEnabled},
		{key: "forward_keep", val: u.ForwardKeep, def: u.ForwardKeep},
		{key: "global_admin", val: u.GlobalAdmin, def: !u.GlobalAdmin},
		{key: "password", val: exportHash(u.Password), secret: true},
		{key: "quota_bytes", val: u.QuotaBytes, def: u.QuotaBytes == mailuUserQuota},
		{key: "reply_body", val: nullable(u.ReplyBody), def: u.ReplyBody == ""},
		{key: "reply_enabled", val: u.ReplyEnabled, def: !u.ReplyEnabled},
		{key: "reply_enddate", val: dateText(u.ReplyEndDate), def: dateText(u.ReplyEndDate) == dateText(store.DefaultReplyEnd)},
		{key: "reply_startdate", val: dateText(u.ReplyStartDate), def: dateText(u.ReplyStartDate) == dateText(store.DefaultReplyStart)},
		{key: "reply_subject", val: nullable(u.ReplySubject), def: u.ReplySubject == ""},
		{key: "spam_enabled", val: u.SpamEnabled, def: u.SpamEnabled},
		{key: "spam_mark_as_read", val: u.SpamMarkAsRead, def: u.SpamMarkAsRead},
		// Mailu's default is a callable (DEFAULT_SPAM_THRESHOLD), so its
		// export always carries spam_threshold.
		{key: "spam_threshold", val: u.SpamThreshold},
	}
	return append(f, metaFields(u.Meta)...)
}

// exportHash strips the obsolete Dovecot {SCHEME} prefix Mailu strips
// (schemas.py PasswordField._serialize).
func exportHash(h string) string {
	if strings.HasPrefix(h, "{") {
		if end := strings.IndexByte(h, '}'); end > 0 {
			switch h[1:end] {
			case "PBKDF2", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "CRYPT":
				return h[end+1:]
			}
		}
	}
	return h
}

func tokenFields(t *store.Token) []efield {
	ips := strList(t.IP)
	f := []efield{
		{key: "id", val: t.ID},
		{key: "ip", val: ips, def: len(ips) == 0},
		{key: "password", val: t.Password, secret: true},
	}
	return append(f, metaFields(t.Meta)...)
}

func aliasFields(a *store.Alias) []efield {
	dst := make([]string, len(a.Destination))
	for i, d := range a.Destination {
		dst[i] = displayEmail(d)
	}
	f := []efield{
		{key: "email", val: displayEmail(a.Email)},
		{key: "destination", val: dst, def: len(dst) == 0},
		{key: "wildcard", val: a.Wildcard, def: !a.Wildcard},
	}
	return append(f, metaFields(a.Meta)...)
}

func relayFields(r *store.Relay) []efield {
	f := []efield{
		{key: "name", val: displayDomain(r.Name)},
		{key: "smtp", val: nullable(r.SMTP), def: r.SMTP == ""},
	}
	return append(f, metaFields(r.Meta)...)
}

// emitter applies ExportOptions to one section's attributes.
type emitter struct {
	full, secrets bool
	only          map[string]bool // attributes asked for by filter; nil = all
}

func (e *emitter) object(fs []efield, pk string) omap {
	m := make(omap, 0, len(fs))
	for _, f := range fs {
		named := e.only != nil && e.only[f.key]
		if e.only != nil && !named {
			continue
		}
		// Mailu always leaves out the timestamps unless asked for by name.
		if (f.key == "created_at" || f.key == "updated_at") && !named {
			continue
		}
		if f.def && !e.full && !named {
			continue
		}
		v := f.val
		if f.secret && !e.secrets && !named {
			v = hidden
		}
		m = append(m, field{Key: f.key, Val: v})
	}
	sortFields(m, pk)
	return m
}

// parseFilters turns config-export's FILTER arguments into the sections to
// export and, per section, the attributes asked for (nil = all).
func parseFilters(only []string) ([]string, map[string]map[string]bool, error) {
	if len(only) == 0 {
		return sectionOrder, map[string]map[string]bool{}, nil
	}
	want := map[string]bool{}
	attrs := map[string]map[string]bool{}
	whole := map[string]bool{}
	for _, f := range only {
		sec, attr, hasAttr := strings.Cut(f, ".")
		known, ok := sectionFields[sec]
		if !ok {
			return nil, nil, errorf(ErrInvalid, "invalid filter: %s (sections are domain, user, alias, relay)", f)
		}
		want[sec] = true
		if !hasAttr {
			whole[sec] = true
			continue
		}
		found := false
		for _, k := range known {
			found = found || k == attr
		}
		if !found {
			return nil, nil, errorf(ErrInvalid, "invalid filter: %s", f)
		}
		if attrs[sec] == nil {
			attrs[sec] = map[string]bool{}
		}
		attrs[sec][attr] = true
	}
	var secs []string
	for _, s := range sectionOrder {
		if want[s] {
			secs = append(secs, s)
		}
		if whole[s] {
			delete(attrs, s)
		}
	}
	return secs, attrs, nil
}

// Export reads the whole configuration into Mailu's config-export document
// (schemas.py MailuSchema): sections domain, user, alias and relay, each
// object's primary key first and the other attributes in alphabetical order,
// attributes at their default left out unless Full, secrets shown as
// <hidden> unless Secrets. Domain names are shown in Unicode, as Mailu does.
//
// Unlike Mailu, which always writes user password hashes, Petrel writes
// password and token hashes only with Secrets; an import keeps an existing
// user's hash when it reads <hidden>.
func (s *Service) Export(ctx context.Context, opt ExportOptions) (*Document, error) {
	secs, attrs, err := parseFilters(opt.Only)
	if err != nil {
		return nil, err
	}
	doc := &Document{}
	for _, sec := range secs {
		e := &emitter{full: opt.Full, secrets: opt.Secrets, only: attrs[sec]}
		var items []omap
		switch sec {
		case "domain":
			items, err = s.exportDomains(ctx, e)
		case "user":
			items, err = s.exportUsers(ctx, e)
		case "alias":
			items, err = s.exportAliases(ctx, e)
		case "relay":
			items, err = s.exportRelays(ctx, e)
		}
		if err != nil {
			return nil, fmt.Errorf("admin: export %s: %w", sec, err)
		}
		if items == nil {
			items = []omap{}
		}
		doc.sections = append(doc.sections, field{Key: sec, Val: items})
	}
	return doc, nil
}

func (s *Service) exportDomains(ctx context.Context, e *emitter) ([]omap, error) {
	ds, err := s.st.ListDomains(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
	alts, err := s.st.ListAlternatives(ctx, "")
	if err != nil {
		return nil, err
	}
	byDomain := map[string][]string{}
	for _, a := range alts {
		byDomain[a.DomainName] = append(byDomain[a.DomainName], displayDomain(a.Name))
	}
	out := make([]omap, 0, len(ds))
	for i := range ds {
		d := &ds[i]
		al := byDomain[d.Name]
		sort.Strings(al)
		key, err := s.readDKIM(ctx, d.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, e.object(domainFields(d, al, key), "name"))
	}
	return out, nil
}

func (s *Service) exportUsers(ctx context.Context, e *emitter) ([]omap, error) {
	us, err := s.st.ListUsers(ctx, "")
	if err != nil {
		return nil, err
	}
	sort.Slice(us, func(i, j int) bool { return us[i].Email < us[j].Email })
	toks, err := s.st.ListTokens(ctx, "")
	if err != nil {
		return nil, err
	}
	byUser := map[string][]store.Token{}
	for _, t := range toks {
		byUser[t.UserEmail] = append(byUser[t.UserEmail], t)
	}
	tokEmit := &emitter{full: e.full, secrets: e.secrets || (e.only != nil && e.only["tokens"])}
	out := make([]omap, 0, len(us))
	for i := range us {
		u := &us[i]
		fs := userFields(u)
		md, err := s.st.ManagedDomains(ctx, u.Email)
		if err != nil {
			return nil, err
		}
		mgr := make([]string, 0, len(md))
		for _, d := range md {
			mgr = append(mgr, displayDomain(d))
		}
		sort.Strings(mgr)
		fs = append(fs, efield{key: "manager_of", val: mgr, def: len(mgr) == 0})
		ut := byUser[u.Email]
		sort.Slice(ut, func(i, j int) bool { return ut[i].ID < ut[j].ID })
		tl := make([]omap, 0, len(ut))
		for j := range ut {
			tl = append(tl, tokEmit.object(tokenFields(&ut[j]), "id"))
		}
		fs = append(fs, efield{key: "tokens", val: tl, def: len(tl) == 0})
		if ss, ok := s.sieveStore(); ok {
			scripts, err := readSieve(ctx, ss, u.Email)
			if err != nil {
				return nil, err
			}
			fs = append(fs, sieveField(scripts))
		}
		if fst, ok := s.fetchStore(); ok {
			l, err := fst.ListFetches(ctx, u.Email)
			if err != nil {
				return nil, err
			}
			sort.Slice(l, func(i, j int) bool { return l[i].ID < l[j].ID })
			fetchEmit := &emitter{full: e.full, secrets: e.secrets || (e.only != nil && e.only["fetches"])}
			fs = append(fs, fetchesField(l, fetchEmit))
		}
		out = append(out, e.object(fs, "email"))
	}
	return out, nil
}

func (s *Service) exportAliases(ctx context.Context, e *emitter) ([]omap, error) {
	as, err := s.st.ListAliases(ctx, "")
	if err != nil {
		return nil, err
	}
	sort.Slice(as, func(i, j int) bool { return as[i].Email < as[j].Email })
	out := make([]omap, 0, len(as))
	for i := range as {
		out = append(out, e.object(aliasFields(&as[i]), "email"))
	}
	return out, nil
}

func (s *Service) exportRelays(ctx context.Context, e *emitter) ([]omap, error) {
	rs, err := s.st.ListRelays(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	out := make([]omap, 0, len(rs))
	for i := range rs {
		out = append(out, e.object(relayFields(&rs[i]), "name"))
	}
	return out, nil
}

// readDKIM returns a domain's DKIM private key (PEM) as it was stored or
// as its file holds it, "" when there is none.
func (s *Service) readDKIM(ctx context.Context, domain string) (string, error) {
	if s.keys == nil {
		return "", nil
	}
	b, err := s.keys.PEM(ctx, domain)
	if errors.Is(err, msgauth.ErrNoKey) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read dkim key: %w", err)
	}
	return string(b), nil
}
