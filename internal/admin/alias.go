package admin

import (
	"context"
	"errors"

	"github.com/petrelmail/petrel/internal/store"
)

func validateAlias(a *store.Alias) error {
	var err error
	if a.Localpart != "" || a.DomainName != "" {
		a.Email, a.Localpart, a.DomainName, err = joinEmail(a.Localpart, a.DomainName)
	} else {
		a.Email, a.Localpart, a.DomainName, err = normEmail(a.Email)
	}
	if err != nil {
		return err
	}
	if a.Destination, err = normDestinations(a.Destination, "destination"); err != nil {
		return err
	}
	if len(a.Destination) == 0 {
		return errorf(ErrInvalid, "alias %s needs at least one destination", a.Email)
	}
	return checkComment(a.Comment)
}

// CreateAlias creates localpart@domain -> destinations. With wildcard the
// local part is a SQL LIKE pattern (% and _; %@domain is a catch-all).
// The domain must exist; see AddAlias for more control.
func (s *Service) CreateAlias(ctx context.Context, localpart, domain string, destinations []string, wildcard bool) (*store.Alias, error) {
	return s.AddAlias(ctx, store.Alias{Localpart: localpart, DomainName: domain, Destination: destinations, Wildcard: wildcard}, CreateOptions{})
}

// AddAlias creates a with every field as given. In one transaction it checks
// that the address is neither a user nor an alias and that the domain's
// max_aliases allows one more (Mailu: ui/views/aliases.py).
func (s *Service) AddAlias(ctx context.Context, a store.Alias, opt CreateOptions) (*store.Alias, error) {
	if err := validateAlias(&a); err != nil {
		return nil, err
	}
	newDomain := false
	err := s.st.InTx(ctx, func(tx store.Accounts) error {
		d, created, err := ensureDomain(ctx, tx, a.DomainName, opt.CreateDomain)
		newDomain = created
		if err != nil {
			return err
		}
		if err := emailFree(ctx, tx, a.Email); err != nil {
			return err
		}
		if d.MaxAliases >= 0 {
			n, err := tx.CountAliases(ctx, d.Name)
			if err != nil {
				return err
			}
			if n >= d.MaxAliases {
				return errorf(store.ErrLimit, "domain %s has reached max_aliases (%d)", d.Name, d.MaxAliases)
			}
		}
		return tx.CreateAlias(ctx, &a)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("alias created", "alias", a.Email, "wildcard", a.Wildcard)
	if newDomain {
		return &a, s.newDomainKeys(ctx, a.DomainName)
	}
	return &a, nil
}

// UpdateAlias replaces an existing alias's destinations, wildcard flag and
// comment.
func (s *Service) UpdateAlias(ctx context.Context, a store.Alias) error {
	if err := validateAlias(&a); err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx store.Accounts) error {
		old, err := tx.GetAlias(ctx, a.Email)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(store.ErrNotFound, "alias %s does not exist", a.Email)
		} else if err != nil {
			return err
		}
		a.CreatedAt = old.CreatedAt
		return tx.UpdateAlias(ctx, &a)
	})
}

// DeleteAlias removes an alias (flask mailu alias-delete).
func (s *Service) DeleteAlias(ctx context.Context, email string) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	err = s.st.InTx(ctx, func(tx store.Accounts) error {
		if _, err := tx.GetAlias(ctx, e); errors.Is(err, store.ErrNotFound) {
			return errorf(store.ErrNotFound, "alias %s does not exist", e)
		} else if err != nil {
			return err
		}
		return tx.DeleteAlias(ctx, e)
	})
	if err == nil {
		s.log.Info("alias deleted", "alias", e)
	}
	return err
}
