package store

import (
	"context"
	"time"
)

// Fetch is one remote account polled for a user: Mailu's fetch table
// (models.Fetch), read by its fetchmail container. Password holds the
// remote password sealed by internal/fetch (AES-GCM under a key derived
// from SECRET_KEY): it must be usable, so it cannot be hashed, and the
// store never sees it in clear.
type Fetch struct {
	ID        int64
	UserEmail string
	Protocol  string // "imap" or "pop3"
	Host      string
	Port      int
	TLS       bool // implicit TLS (993, 995); false: no TLS at all, as Mailu
	Username  string
	Password  string // sealed
	Keep      bool   // leave fetched messages on the server
	Scan      bool   // run the inbound spam and virus checks (Mailu: through port 25)
	Folders   []string
	LastCheck time.Time // zero: never
	Error     string    // the last poll's error, "" if it went well
	Meta
}

// Fetches keeps fetched accounts and which remote messages each has
// already delivered. Seen keys are opaque to the store (the poller uses
// "UIDL" for POP3 and "folder/UIDVALIDITY/UID" for IMAP).
type Fetches interface {
	// CreateFetch inserts f and sets f.ID; ErrNotFound if the user does
	// not exist.
	CreateFetch(ctx context.Context, f *Fetch) error
	// UpdateFetch writes f's settings (not LastCheck and Error); a
	// changed host, port, protocol or username forgets the seen keys.
	UpdateFetch(ctx context.Context, f *Fetch) error
	DeleteFetch(ctx context.Context, id int64) error
	GetFetch(ctx context.Context, id int64) (*Fetch, error)
	// ListFetches lists user's accounts, every account for "".
	ListFetches(ctx context.Context, user string) ([]Fetch, error)
	// ClaimFetch leases account id to owner until `until` when it is
	// due (never checked, or last checked before dueBefore) and not
	// leased by another node; it reports whether it did. Two nodes
	// sharing one database never poll one account at once.
	ClaimFetch(ctx context.Context, id int64, owner string, now, dueBefore, until time.Time) (bool, error)
	// FinishFetch records a poll's outcome and drops the lease.
	FinishFetch(ctx context.Context, id int64, at time.Time, errText string) error
	// FetchSeen lists the keys recorded for account id.
	FetchSeen(ctx context.Context, id int64) ([]string, error)
	// AddFetchSeen records key (a no-op if it is there already).
	AddFetchSeen(ctx context.Context, id int64, key string) error
	// ForgetFetchSeen removes keys (the remote message is gone).
	ForgetFetchSeen(ctx context.Context, id int64, keys []string) error
}
