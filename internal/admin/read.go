package admin

import (
	"context"
	"errors"
	"slices"

	"github.com/petrelmail/petrel/internal/msgauth"
	"github.com/petrelmail/petrel/internal/store"
)

// The read use cases the REST API and the web UI share. Names are
// normalised (IDNA, lower case) first, so a Unicode domain finds its
// A-label row; errors carry ErrInvalid or store.ErrNotFound with a message.

// Domain returns one domain.
func (s *Service) Domain(ctx context.Context, name string) (*store.Domain, error) {
	n, err := normDomain(name)
	if err != nil {
		return nil, err
	}
	return getDomain(ctx, s.st, n)
}

// Domains lists every domain.
func (s *Service) Domains(ctx context.Context) ([]store.Domain, error) {
	return s.st.ListDomains(ctx)
}

// Alternative returns one alternative domain.
func (s *Service) Alternative(ctx context.Context, name string) (*store.Alternative, error) {
	n, err := normDomain(name)
	if err != nil {
		return nil, err
	}
	a, err := s.st.GetAlternative(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(store.ErrNotFound, "alternative %s does not exist", n)
	}
	return a, err
}

// Alternatives lists the alternatives of domain, or all when domain is "".
func (s *Service) Alternatives(ctx context.Context, domain string) ([]store.Alternative, error) {
	if domain == "" {
		return s.st.ListAlternatives(ctx, "")
	}
	d, err := s.Domain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return s.st.ListAlternatives(ctx, d.Name)
}

// Relay returns one relayed domain.
func (s *Service) Relay(ctx context.Context, name string) (*store.Relay, error) {
	n, err := normDomain(name)
	if err != nil {
		return nil, err
	}
	r, err := s.st.GetRelay(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(store.ErrNotFound, "relay %s does not exist", n)
	}
	return r, err
}

// Relays lists every relayed domain.
func (s *Service) Relays(ctx context.Context) ([]store.Relay, error) {
	return s.st.ListRelays(ctx)
}

// User returns one user.
func (s *Service) User(ctx context.Context, email string) (*store.User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	return getUser(ctx, s.st, e)
}

// Users lists the users of domain (which must exist), or all when domain
// is "".
func (s *Service) Users(ctx context.Context, domain string) ([]store.User, error) {
	if domain == "" {
		return s.st.ListUsers(ctx, "")
	}
	d, err := s.Domain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return s.st.ListUsers(ctx, d.Name)
}

// Alias returns one alias.
func (s *Service) Alias(ctx context.Context, email string) (*store.Alias, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	a, err := s.st.GetAlias(ctx, e)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(store.ErrNotFound, "alias %s does not exist", e)
	}
	return a, err
}

// Aliases lists the aliases of domain (which must exist), or all when
// domain is "".
func (s *Service) Aliases(ctx context.Context, domain string) ([]store.Alias, error) {
	if domain == "" {
		return s.st.ListAliases(ctx, "")
	}
	d, err := s.Domain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return s.st.ListAliases(ctx, d.Name)
}

// Token returns one application token (its hash included; callers never
// show it).
func (s *Service) Token(ctx context.Context, id int64) (*store.Token, error) {
	t, err := s.st.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(store.ErrNotFound, "token %d does not exist", id)
	}
	return t, err
}

// Tokens lists the tokens of user (who must exist), or all when user is "".
func (s *Service) Tokens(ctx context.Context, user string) ([]store.Token, error) {
	if user == "" {
		return s.st.ListTokens(ctx, "")
	}
	u, err := s.User(ctx, user)
	if err != nil {
		return nil, err
	}
	return s.st.ListTokens(ctx, u.Email)
}

// Managers lists the managers of domain, which must exist.
func (s *Service) Managers(ctx context.Context, domain string) ([]string, error) {
	d, err := s.Domain(ctx, domain)
	if err != nil {
		return nil, err
	}
	return s.st.ListManagers(ctx, d.Name)
}

// IsManager reports whether user manages domain; both must exist.
func (s *Service) IsManager(ctx context.Context, domain, user string) (bool, error) {
	ms, err := s.Managers(ctx, domain)
	if err != nil {
		return false, err
	}
	u, err := s.User(ctx, user)
	if err != nil {
		return false, err
	}
	return slices.Contains(ms, u.Email), nil
}

// AddManager makes user a manager of domain; unlike SetManager it fails
// with store.ErrExists when they already are (Mailu API: 409).
func (s *Service) AddManager(ctx context.Context, domain, user string) error {
	d, err := normDomain(domain)
	if err != nil {
		return err
	}
	e, err := NormalizeEmail(user)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := getDomain(ctx, tx, d); err != nil {
			return err
		}
		if _, err := getUser(ctx, tx, e); err != nil {
			return err
		}
		ms, err := tx.ListManagers(ctx, d)
		if err != nil {
			return err
		}
		if slices.Contains(ms, e) {
			return errorf(store.ErrExists, "user %s is already a manager of the domain %s", e, d)
		}
		return tx.AddManager(ctx, d, e)
	})
}

// DNSOptions are the server settings the suggested records follow.
type DNSOptions struct {
	Hostnames          []string // HOSTNAMES; the first is the MX and SRV target
	ServerDomain       string   // DOMAIN
	DMARCRUA, DMARCRUF string   // DMARC_RUA, DMARC_RUF local parts
	Ports              []int    // PORTS
	TLS                bool     // TLS_FLAVOR is not notls
	// Served are the ports serve answers on (config.ServedPorts); SRV and
	// autoconfig records are suggested only for them. Nil: Mailu's rules.
	Served []int
}

// DNSRecords returns the records to publish for a domain or an alternative
// (Mailu: Domain.dns_*), the same as `petrel dns` prints.
func (s *Service) DNSRecords(ctx context.Context, name string, opt DNSOptions) ([]msgauth.Record, error) {
	info, err := s.DKIM(ctx, name)
	if err != nil {
		return nil, err
	}
	return msgauth.Records(msgauth.RecordsOptions{
		Domain:       info.Domain,
		Hostnames:    opt.Hostnames,
		ServerDomain: opt.ServerDomain,
		DMARCRUA:     opt.DMARCRUA,
		DMARCRUF:     opt.DMARCRUF,
		DKIMSelector: info.Selector,
		DKIMRecord:   info.Record,
		Ports:        opt.Ports,
		Served:       opt.Served,
		TLS:          opt.TLS,
		// No TLSA: Petrel does not fetch Let's Encrypt certificates yet
		// (see cli dns).
	})
}
