package store

import (
	"context"
	"errors"
	"time"
)

// Sieve script errors. Backends wrap them with %w.
var (
	// ErrSieveActive: the active script cannot be deleted (RFC 5804 2.10).
	ErrSieveActive = errors.New("sieve script is active")
	// ErrSieveMaxScripts: a new script would pass SieveLimits.MaxScripts.
	ErrSieveMaxScripts = errors.New("too many sieve scripts")
	// ErrSieveMaxSize: the script is larger than SieveLimits.MaxSize.
	ErrSieveMaxSize = errors.New("sieve script too large")
	// ErrSieveMaxStorage: the user's scripts together would pass
	// SieveLimits.MaxStorage.
	ErrSieveMaxStorage = errors.New("sieve script storage full")
)

// SieveLimits bounds one user's scripts (Dovecot: sieve_max_script_size,
// sieve_quota_max_scripts, sieve_quota_max_storage). Zero or negative
// means no limit.
type SieveLimits struct {
	MaxScripts int
	MaxSize    int64 // one script, in octets
	MaxStorage int64 // all scripts of the user, in octets
}

// SieveScriptInfo is one script in a listing.
type SieveScriptInfo struct {
	Name      string
	Active    bool
	Size      int64
	UpdatedAt time.Time
}

// SieveScripts stores each user's named Sieve scripts (RFC 5804), at most
// one of them active. Scripts are deleted with their user. Names are
// compared as given (octet for octet); callers validate them.
type SieveScripts interface {
	// SieveActiveScript returns the user's active script, or ErrNotFound
	// when the user has none (or does not exist).
	SieveActiveScript(ctx context.Context, email string) (name string, script []byte, err error)
	// ListSieveScripts lists the user's scripts by name.
	ListSieveScripts(ctx context.Context, email string) ([]SieveScriptInfo, error)
	// GetSieveScript returns one script; ErrNotFound when there is none.
	GetSieveScript(ctx context.Context, email, name string) ([]byte, error)
	// PutSieveScript creates the script, or replaces it keeping its active
	// state, unless that would pass lim (ErrSieveMaxSize,
	// ErrSieveMaxScripts, ErrSieveMaxStorage); the check and the write
	// are one transaction. ErrNotFound when the user does not exist.
	PutSieveScript(ctx context.Context, email, name string, script []byte, lim SieveLimits) error
	// SieveHaveSpace reports, with the errors PutSieveScript would give,
	// whether a script of size octets could be stored under name now
	// (RFC 5804 2.5 HAVESPACE).
	SieveHaveSpace(ctx context.Context, email, name string, size int64, lim SieveLimits) error
	// DeleteSieveScript deletes an inactive script; ErrSieveActive for
	// the active one, ErrNotFound when there is none.
	DeleteSieveScript(ctx context.Context, email, name string) error
	// RenameSieveScript renames a script, keeping its active state;
	// ErrNotFound when oldName does not exist, ErrExists when newName does.
	RenameSieveScript(ctx context.Context, email, oldName, newName string) error
	// SetActiveSieveScript makes name the one active script, or with
	// name "" deactivates all; ErrNotFound when name does not exist.
	SetActiveSieveScript(ctx context.Context, email, name string) error
}
