package admin

import (
	"context"
	"errors"

	"github.com/petrelmail/petrel/internal/store"
)

// Partial updates for the REST API (Mailu's PATCH: only the fields sent
// change) and the web UI's edit forms. Each reads, changes and writes in
// one transaction, so nothing changes when any part fails.

// normAlternatives validates alternative names for a domain: each a valid
// domain name, none repeated, none the domain itself.
func normAlternatives(domain string, alts []string) ([]string, error) {
	out := make([]string, 0, len(alts))
	seen := map[string]bool{}
	for _, a := range alts {
		n, err := normDomain(a)
		if err != nil {
			return nil, errorf(ErrInvalid, "alternative domain %q is not a valid domain", a)
		}
		if seen[n] || n == domain {
			// Mailu api/v1/domain.py: 409 "Duplicate alternative domain names in request".
			return nil, errorf(store.ErrNameInUse, "duplicate alternative domain names in request")
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// AddDomainWithAlternatives creates d and its alternatives in one
// transaction (Mailu API POST /domain with "alternatives"), then d's DKIM
// key. A name already used by a domain, an alternative or a relay fails
// with store.ErrNameInUse (or store.ErrExists for d itself).
func (s *Service) AddDomainWithAlternatives(ctx context.Context, d store.Domain, alts []string) (*store.Domain, error) {
	if err := validateDomain(&d); err != nil {
		return nil, err
	}
	names, err := normAlternatives(d.Name, alts)
	if err != nil {
		return nil, err
	}
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		if err := createDomain(ctx, tx, &d); err != nil {
			return err
		}
		return addAlternatives(ctx, tx, d.Name, names)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("domain created", "domain", d.Name, "alternatives", len(names))
	return &d, s.newDomainKeys(ctx, d.Name)
}

func addAlternatives(ctx context.Context, tx store.Accounts, domain string, names []string) error {
	for _, n := range names {
		if err := nameFree(ctx, tx, n); err != nil {
			return err
		}
		if err := tx.CreateAlternative(ctx, &store.Alternative{Name: n, DomainName: domain}); err != nil {
			return err
		}
	}
	return nil
}

// PatchDomain applies change to domain name and adds alternatives to it,
// in one transaction (Mailu API PATCH /domain/<d>: alternatives are added,
// never removed). change must not rename the domain.
func (s *Service) PatchDomain(ctx context.Context, name string, change func(*store.Domain), alts []string) error {
	n, err := normDomain(name)
	if err != nil {
		return err
	}
	names, err := normAlternatives(n, alts)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		d, err := getDomain(ctx, tx, n)
		if err != nil {
			return err
		}
		change(d)
		d.Name = n
		if err := validateDomain(d); err != nil {
			return err
		}
		if err := tx.UpdateDomain(ctx, d); err != nil {
			return err
		}
		return addAlternatives(ctx, tx, n, names)
	})
}

// PatchUser applies change to user email and, when password is not "",
// sets it, in one transaction. change must not rename the user; the
// password hash and quota_bytes_used are kept unless a password is given.
// A new quota is checked against the domain's max_quota_bytes.
func (s *Service) PatchUser(ctx context.Context, email string, change func(*store.User), password string) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	var hash string
	var sc store.ScramCredentials
	if password != "" {
		if _, err := getUser(ctx, s.st, e); err != nil {
			return err // no bcrypt round for a typo
		}
		if hash, err = s.hash(password); err != nil {
			return err
		}
		sc = s.scram(password)
	}
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := getUser(ctx, tx, e)
		if err != nil {
			return err
		}
		u := *old
		u.ForwardDestination = append([]string(nil), old.ForwardDestination...)
		change(&u)
		u.Email, u.Localpart, u.DomainName = old.Email, old.Localpart, old.DomainName
		u.Password, u.QuotaBytesUsed, u.CreatedAt = old.Password, old.QuotaBytesUsed, old.CreatedAt
		if err := validateUser(&u); err != nil {
			return err
		}
		if u.ForwardEnabled && len(u.ForwardDestination) == 0 {
			return errorf(ErrInvalid, "forward_enabled needs at least one forward_destination")
		}
		if u.QuotaBytes != old.QuotaBytes {
			d, err := getDomain(ctx, tx, u.DomainName)
			if err != nil {
				return err
			}
			if err := s.checkQuota(d, &u); err != nil {
				return err
			}
		}
		if err := tx.UpdateUser(ctx, &u); err != nil {
			return err
		}
		if hash != "" {
			if err := tx.SetPasswordHash(ctx, e, hash); err != nil {
				return err
			}
			return tx.SetScram(ctx, e, hash, sc)
		}
		return nil
	})
	if err == nil {
		s.log.Info("user updated", "user", e, "password_changed", hash != "")
	}
	return err
}

// PatchAlias applies change to alias email in one transaction. change must
// not rename the alias.
func (s *Service) PatchAlias(ctx context.Context, email string, change func(*store.Alias)) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := tx.GetAlias(ctx, e)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorf(store.ErrNotFound, "alias %s does not exist", e)
			}
			return err
		}
		a := *old
		a.Destination = append([]string(nil), old.Destination...)
		change(&a)
		a.Email, a.Localpart, a.DomainName, a.CreatedAt = old.Email, "", "", old.CreatedAt
		if err := validateAlias(&a); err != nil {
			return err
		}
		return tx.UpdateAlias(ctx, &a)
	})
}

// PatchRelay applies change to relay name in one transaction.
func (s *Service) PatchRelay(ctx context.Context, name string, change func(*store.Relay)) error {
	n, err := normDomain(name)
	if err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := tx.GetRelay(ctx, n)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorf(store.ErrNotFound, "relay %s does not exist", n)
			}
			return err
		}
		r := *old
		change(&r)
		r.Name, r.CreatedAt = n, old.CreatedAt
		if err := validateRelay(&r); err != nil {
			return err
		}
		return tx.UpdateRelay(ctx, &r)
	})
}
