package msgauth

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/petrelmail/petrel/internal/store"
)

type fakeStore struct {
	domains map[string]bool
	alts    map[string]string
	err     error
}

func (f fakeStore) GetDomain(_ context.Context, name string) (*store.Domain, error) {
	if f.err != nil {
		return nil, f.err
	}
	if !f.domains[name] {
		return nil, fmt.Errorf("domain %s: %w", name, store.ErrNotFound)
	}
	return &store.Domain{Name: name}, nil
}

func (f fakeStore) GetAlternative(_ context.Context, name string) (*store.Alternative, error) {
	if f.err != nil {
		return nil, f.err
	}
	p, ok := f.alts[name]
	if !ok {
		return nil, fmt.Errorf("alternative %s: %w", name, store.ErrNotFound)
	}
	return &store.Alternative{Name: name, DomainName: p}, nil
}

func TestStoreLookup(t *testing.T) {
	ctx := t.Context()
	l := NewStoreLookup(fakeStore{domains: map[string]bool{"example.com": true}, alts: map[string]string{"alt.example": "example.com"}})
	if ok, err := l.IsDomain(ctx, "example.com"); !ok || err != nil {
		t.Errorf("IsDomain(example.com) = %v, %v", ok, err)
	}
	if ok, err := l.IsDomain(ctx, "alt.example"); ok || err != nil {
		t.Errorf("IsDomain(alt.example) = %v, %v", ok, err)
	}
	if p, ok, err := l.AlternativeParent(ctx, "alt.example"); p != "example.com" || !ok || err != nil {
		t.Errorf("AlternativeParent(alt.example) = %q, %v, %v", p, ok, err)
	}
	if _, ok, err := l.AlternativeParent(ctx, "example.com"); ok || err != nil {
		t.Errorf("AlternativeParent(example.com) = %v, %v", ok, err)
	}
	down := errors.New("db down")
	bad := NewStoreLookup(fakeStore{err: down})
	if _, err := bad.IsDomain(ctx, "x.example"); !errors.Is(err, down) {
		t.Errorf("IsDomain error %v", err)
	}
	if _, _, err := bad.AlternativeParent(ctx, "x.example"); !errors.Is(err, down) {
		t.Errorf("AlternativeParent error %v", err)
	}
}
