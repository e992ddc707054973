package store

import (
	"context"
	"time"
)

// DKIMKey is one domain's DKIM private key as the store keeps it.
type DKIMKey struct {
	Domain   string // IDNA A-label, lower case
	Selector string
	// Sealed is the PEM key sealed by internal/secret: the store never
	// sees the key itself.
	Sealed []byte
	// Version grows on every PutDKIMKey of the same (domain, selector), so
	// a cache of the parsed key can tell that it is stale.
	Version  int64
	Modified time.Time
}

// DKIMKeys keeps DKIM private keys in the store, so that every node
// sharing one database signs with the same keys.
type DKIMKeys interface {
	// GetDKIMKey returns the key; ErrNotFound when there is none.
	GetDKIMKey(ctx context.Context, domain, selector string) (*DKIMKey, error)
	// DKIMKeyVersion returns the key's Version without its data, for a
	// cache check per message; ErrNotFound when there is none.
	DKIMKeyVersion(ctx context.Context, domain, selector string) (int64, error)
	// PutDKIMKey creates or replaces the key and returns its new Version.
	PutDKIMKey(ctx context.Context, domain, selector string, sealed []byte) (int64, error)
	// DeleteDKIMKey removes the key; ErrNotFound when there was none.
	DeleteDKIMKey(ctx context.Context, domain, selector string) error
}
