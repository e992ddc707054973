package msgauth

import (
	"context"
	"errors"

	"github.com/petrelmail/petrel/internal/store"
)

// DomainStore is the part of store.Accounts that StoreLookup needs.
type DomainStore interface {
	GetDomain(ctx context.Context, name string) (*store.Domain, error)
	GetAlternative(ctx context.Context, name string) (*store.Alternative, error)
}

// StoreLookup implements DomainLookup over the account store.
type StoreLookup struct {
	s DomainStore
}

var _ DomainLookup = (*StoreLookup)(nil)

// NewStoreLookup returns a DomainLookup backed by s.
func NewStoreLookup(s DomainStore) *StoreLookup { return &StoreLookup{s: s} }

// IsDomain reports whether name is a local domain.
func (l *StoreLookup) IsDomain(ctx context.Context, name string) (bool, error) {
	_, err := l.s.GetDomain(ctx, name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// AlternativeParent returns the domain an alternative belongs to.
func (l *StoreLookup) AlternativeParent(ctx context.Context, name string) (string, bool, error) {
	a, err := l.s.GetAlternative(ctx, name)
	switch {
	case err == nil:
		return a.DomainName, true, nil
	case errors.Is(err, store.ErrNotFound):
		return "", false, nil
	default:
		return "", false, err
	}
}

// IsLocal reports whether name is a local domain or an alternative (the
// domains Mailu's rspamd treats as local for its anti-spoofing rules).
func (l *StoreLookup) IsLocal(ctx context.Context, name string) (bool, error) {
	if ok, err := l.IsDomain(ctx, name); ok || err != nil {
		return ok, err
	}
	_, ok, err := l.AlternativeParent(ctx, name)
	return ok, err
}
