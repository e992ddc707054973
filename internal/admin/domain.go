package admin

import (
	"context"
	"errors"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// Limits are a domain's caps (Mailu: domain.max_users, max_aliases,
// max_quota_bytes).
type Limits struct {
	MaxUsers      int   // -1 = unlimited; 0 = no users allowed (Mailu: max_users != -1)
	MaxAliases    int   // -1 = unlimited
	MaxQuotaBytes int64 // 0 = unlimited
}

// DefaultLimits are Mailu's column defaults: unlimited.
func DefaultLimits() Limits { return Limits{MaxUsers: -1, MaxAliases: -1, MaxQuotaBytes: 0} }

func (l Limits) validate() error {
	if l.MaxUsers < -1 {
		return errorf(ErrInvalid, "max_users must be -1 (unlimited) or more, not %d", l.MaxUsers)
	}
	if l.MaxAliases < -1 {
		return errorf(ErrInvalid, "max_aliases must be -1 (unlimited) or more, not %d", l.MaxAliases)
	}
	if l.MaxQuotaBytes < 0 {
		return errorf(ErrInvalid, "max_quota_bytes must be 0 (unlimited) or more, not %d", l.MaxQuotaBytes)
	}
	return nil
}

// NewDomain returns a domain with Mailu's defaults. The name is not checked
// yet; AddDomain does that.
func NewDomain(name string) store.Domain {
	l := DefaultLimits()
	return store.Domain{Name: name, MaxUsers: l.MaxUsers, MaxAliases: l.MaxAliases, MaxQuotaBytes: l.MaxQuotaBytes}
}

func validateDomain(d *store.Domain) error {
	n, err := normDomain(d.Name)
	if err != nil {
		return err
	}
	d.Name = n
	if err := (Limits{d.MaxUsers, d.MaxAliases, d.MaxQuotaBytes}).validate(); err != nil {
		return err
	}
	return checkComment(d.Comment)
}

// CreateDomain creates domain name with the given limits (flask mailu domain).
// It fails with store.ErrExists when the domain exists and with
// store.ErrNameInUse when the name is an alternative or a relay.
func (s *Service) CreateDomain(ctx context.Context, name string, lim Limits) (*store.Domain, error) {
	d := NewDomain(name)
	d.MaxUsers, d.MaxAliases, d.MaxQuotaBytes = lim.MaxUsers, lim.MaxAliases, lim.MaxQuotaBytes
	return s.AddDomain(ctx, d)
}

// AddDomain creates d with every field as given (REST API, web UI), and
// then its DKIM key. When only the key fails, the domain is returned with
// an error wrapping ErrDKIMKey.
func (s *Service) AddDomain(ctx context.Context, d store.Domain) (*store.Domain, error) {
	if err := validateDomain(&d); err != nil {
		return nil, err
	}
	err := s.st.InTx(ctx, func(tx store.Accounts) error {
		return createDomain(ctx, tx, &d)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("domain created", "domain", d.Name)
	return &d, s.newDomainKeys(ctx, d.Name)
}

func createDomain(ctx context.Context, tx store.Accounts, d *store.Domain) error {
	if _, err := tx.GetDomain(ctx, d.Name); err == nil {
		return errorf(store.ErrExists, "domain %s already exists", d.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := nameFree(ctx, tx, d.Name); err != nil {
		return err
	}
	return tx.CreateDomain(ctx, d)
}

// ensureDomain returns domain name, creating it with default limits when it
// is missing and create is true (Mailu's manage.py does that for admin,
// user, user-import and alias). created says whether it did; the caller
// gives the new domain its DKIM key after commit (newDomainKeys).
func ensureDomain(ctx context.Context, tx store.Accounts, name string, create bool) (d *store.Domain, created bool, err error) {
	d, err = tx.GetDomain(ctx, name)
	if err == nil {
		return d, false, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	if !create {
		return nil, false, errorf(store.ErrNotFound, "domain %s does not exist", name)
	}
	nd := NewDomain(name)
	if err := createDomain(ctx, tx, &nd); err != nil {
		return nil, false, err
	}
	return &nd, true, nil
}

// SetLimits changes a domain's limits (flask mailu setlimits).
func (s *Service) SetLimits(ctx context.Context, name string, lim Limits) error {
	n, err := normDomain(name)
	if err != nil {
		return err
	}
	if err := lim.validate(); err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		d, err := getDomain(ctx, tx, n)
		if err != nil {
			return err
		}
		d.MaxUsers, d.MaxAliases, d.MaxQuotaBytes = lim.MaxUsers, lim.MaxAliases, lim.MaxQuotaBytes
		return tx.UpdateDomain(ctx, d)
	})
}

// UpdateDomain replaces an existing domain's fields with d's.
func (s *Service) UpdateDomain(ctx context.Context, d store.Domain) error {
	if err := validateDomain(&d); err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := getDomain(ctx, tx, d.Name)
		if err != nil {
			return err
		}
		d.CreatedAt = old.CreatedAt
		return tx.UpdateDomain(ctx, &d)
	})
}

// DeleteDomain deletes a domain with its users, aliases, alternatives and
// managers.
func (s *Service) DeleteDomain(ctx context.Context, name string) error {
	n, err := normDomain(name)
	if err != nil {
		return err
	}
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := getDomain(ctx, tx, n); err != nil {
			return err
		}
		return tx.DeleteDomain(ctx, n)
	})
	if err == nil {
		s.log.Info("domain deleted", "domain", n)
	}
	return err
}

// managerEmail turns setmanager's USER argument into an address: a bare
// local part means a user of that domain (Mailu: user_name@domain_name).
func managerEmail(domain, user string) (string, error) {
	if strings.Contains(user, "@") {
		return NormalizeEmail(user)
	}
	e, _, _, err := joinEmail(user, domain)
	return e, err
}

// SetManager lets user manage domain (flask mailu setmanager). user is an
// address or a local part of domain. Adding an existing manager is a no-op.
func (s *Service) SetManager(ctx context.Context, domain, user string) error {
	d, err := normDomain(domain)
	if err != nil {
		return err
	}
	email, err := managerEmail(d, user)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := getDomain(ctx, tx, d); err != nil {
			return err
		}
		if _, err := getUser(ctx, tx, email); err != nil {
			return err
		}
		return addManager(ctx, tx, d, email)
	})
}

func addManager(ctx context.Context, tx store.Accounts, domain, email string) error {
	ms, err := tx.ListManagers(ctx, domain)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m == email {
			return nil
		}
	}
	return tx.AddManager(ctx, domain, email)
}

// RemoveManager takes a user's right to manage a domain away.
func (s *Service) RemoveManager(ctx context.Context, domain, user string) error {
	d, err := normDomain(domain)
	if err != nil {
		return err
	}
	email, err := managerEmail(d, user)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		ms, err := tx.ListManagers(ctx, d)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m == email {
				return tx.RemoveManager(ctx, d, email)
			}
		}
		return errorf(store.ErrNotFound, "%s is not a manager of %s", email, d)
	})
}

// CreateAlternative makes name an alternative of domain: x@name is x@domain.
func (s *Service) CreateAlternative(ctx context.Context, name, domain string) (*store.Alternative, error) {
	n, err := normDomain(name)
	if err != nil {
		return nil, err
	}
	d, err := normDomain(domain)
	if err != nil {
		return nil, err
	}
	a := store.Alternative{Name: n, DomainName: d}
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := getDomain(ctx, tx, d); err != nil {
			return err
		}
		if err := nameFree(ctx, tx, n); err != nil {
			return err
		}
		return tx.CreateAlternative(ctx, &a)
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// DeleteAlternative removes an alternative domain.
func (s *Service) DeleteAlternative(ctx context.Context, name string) error {
	n, err := normDomain(name)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := tx.GetAlternative(ctx, n); errors.Is(err, store.ErrNotFound) {
			return errorf(store.ErrNotFound, "alternative %s does not exist", n)
		} else if err != nil {
			return err
		}
		return tx.DeleteAlternative(ctx, n)
	})
}

func validateRelay(r *store.Relay) error {
	n, err := normDomain(r.Name)
	if err != nil {
		return err
	}
	r.Name = n
	r.SMTP = strings.TrimSpace(r.SMTP)
	if len(r.SMTP) > maxRelaySMTP {
		return errorf(ErrInvalid, "relay transport %q is longer than %d characters", r.SMTP, maxRelaySMTP)
	}
	// Mailu: postfix.py transport syntax; no blanks or commas in any form.
	if strings.ContainsAny(r.SMTP, " \t\r\n,;") {
		return errorf(ErrInvalid, "invalid relay transport %q", r.SMTP)
	}
	return checkComment(r.Comment)
}

// CreateRelay adds a relayed domain (Mailu: relay).
func (s *Service) CreateRelay(ctx context.Context, r store.Relay) (*store.Relay, error) {
	if err := validateRelay(&r); err != nil {
		return nil, err
	}
	err := s.st.InTx(ctx, func(tx store.Accounts) error {
		if err := nameFree(ctx, tx, r.Name); err != nil {
			return err
		}
		return tx.CreateRelay(ctx, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateRelay changes an existing relay's transport and comment.
func (s *Service) UpdateRelay(ctx context.Context, r store.Relay) error {
	if err := validateRelay(&r); err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := tx.GetRelay(ctx, r.Name)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(store.ErrNotFound, "relay %s does not exist", r.Name)
		} else if err != nil {
			return err
		}
		r.CreatedAt = old.CreatedAt
		return tx.UpdateRelay(ctx, &r)
	})
}

// DeleteRelay removes a relayed domain.
func (s *Service) DeleteRelay(ctx context.Context, name string) error {
	n, err := normDomain(name)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := tx.GetRelay(ctx, n); errors.Is(err, store.ErrNotFound) {
			return errorf(store.ErrNotFound, "relay %s does not exist", n)
		} else if err != nil {
			return err
		}
		return tx.DeleteRelay(ctx, n)
	})
}
