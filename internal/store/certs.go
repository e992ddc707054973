package store

import (
	"context"
	"time"
)

// CertEntry is one key of the certificate store as listed or stated.
type CertEntry struct {
	Key      string
	Size     int64
	Modified time.Time
	// Terminal is false for a "directory": a prefix of stored keys that
	// is not itself a key.
	Terminal bool
}

// CertStorage keeps certificates, their keys and ACME state (accounts,
// challenge tokens, renewal metadata) as a small key-value tree with
// "/"-separated keys, plus named leases that serialise issuance. It lives
// in the store so that every node sharing one database serves the same
// certificate and any node can answer an ACME challenge.
type CertStorage interface {
	// PutCert creates or replaces key.
	PutCert(ctx context.Context, key string, value []byte) error
	// GetCert returns key's value; ErrNotFound when absent.
	GetCert(ctx context.Context, key string) ([]byte, error)
	// DeleteCert removes key and every key under key + "/"; ErrNotFound
	// when there was neither.
	DeleteCert(ctx context.Context, key string) error
	// StatCert describes key, or the directory key when keys exist under
	// it; ErrNotFound when neither.
	StatCert(ctx context.Context, key string) (CertEntry, error)
	// ListCerts lists the keys directly under prefix ("" = top level):
	// stored keys and directories, sorted. With recursive it lists every
	// stored key below prefix instead. ErrNotFound when there is none.
	ListCerts(ctx context.Context, prefix string, recursive bool) ([]string, error)

	// TryCertLock takes the lease name for owner until until, when it is
	// free, expired, or already owner's (which extends it), and reports
	// whether owner now holds it. A row, not an advisory lock, so that it
	// works on PostgreSQL-compatible distributed engines too.
	TryCertLock(ctx context.Context, name, owner string, until time.Time) (bool, error)
	// UnlockCert gives up owner's lease name; a lease owner no longer holds
	// is left alone.
	UnlockCert(ctx context.Context, name, owner string) error
}
