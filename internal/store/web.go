package store

import (
	"context"
	"time"
)

// WebSession is one signed-in browser of the web admin. The cookie holds
// a random secret; the store keeps only its SHA-256 (ID), so a copy of the
// database does not sign anyone in. Sessions live in the store so that
// every node sharing one database knows them, and so that a password
// change or sign-out revokes them everywhere.
type WebSession struct {
	ID        string // hex SHA-256 of the cookie's secret
	UserEmail string
	CSRF      string // per-session token every form carries
	// Stage: "" = signed in; "totp" = password checked, second factor due.
	Stage string
	// Remember: "remember me" was ticked; the idle timeout (SESSION_TIMEOUT)
	// does not apply, only ExpiresAt (PERMANENT_SESSION_LIFETIME).
	Remember  bool
	CreatedAt time.Time
	SeenAt    time.Time // last request: the idle timeout counts from here
	ExpiresAt time.Time // absolute end (PERMANENT_SESSION_LIFETIME)
}

// TOTP is a user's RFC 6238 second factor for the web sign-in.
type TOTP struct {
	UserEmail string
	Secret    string // base32, no padding
	Enabled   bool   // false while enrolment waits for the first code
	LastStep  int64  // last time step accepted: a code is good once
	// Failures counts wrong codes since FailedAt (a window the caller
	// chooses); a good code resets it.
	Failures  int
	FailedAt  time.Time
	CreatedAt time.Time
}

// StatDelta adds N to counter Name in the hour starting at Hour.
type StatDelta struct {
	Name string
	Hour time.Time // truncated to the hour, UTC
	N    int64
}

// StatPoint is one hour of one counter.
type StatPoint struct {
	Hour time.Time
	N    int64
}

// QueueSummary is the size and age of the outbound queue.
type QueueSummary struct {
	Entries int
	Held    int
	Oldest  time.Time // zero when the queue is empty
}

// Web is what the web admin keeps besides the account model: sessions,
// second factors, hourly counters for the status page, and paged lists
// that stay fast with many users.
type Web interface {
	CreateWebSession(ctx context.Context, s *WebSession) error
	// GetWebSession returns ErrNotFound for an unknown id.
	GetWebSession(ctx context.Context, id string) (*WebSession, error)
	// TouchWebSession sets SeenAt (the idle timeout restarts).
	TouchWebSession(ctx context.Context, id string, seen time.Time) error
	SetWebSessionStage(ctx context.Context, id, stage string) error
	DeleteWebSession(ctx context.Context, id string) error
	// DeleteUserWebSessions signs user out everywhere except session
	// except ("" = everywhere).
	DeleteUserWebSessions(ctx context.Context, user, except string) error
	// PruneWebSessions deletes sessions past their end or idle since
	// before idle, and returns how many.
	PruneWebSessions(ctx context.Context, now, idleBefore time.Time) (int64, error)

	// GetTOTP returns ErrNotFound when user has no second factor.
	GetTOTP(ctx context.Context, user string) (*TOTP, error)
	// SetTOTP creates or replaces user's second factor.
	SetTOTP(ctx context.Context, t *TOTP) error
	DeleteTOTP(ctx context.Context, user string) error
	// UseTOTPStep records step as used when it is later than the last one
	// and reports whether it was (RFC 6238 5.2: a code is accepted once);
	// it also clears the failure count.
	UseTOTPStep(ctx context.Context, user string, step int64) (bool, error)
	// TOTPFailed counts a wrong code of user at now and returns the wrong
	// codes in the current window (which starts anew when the last one
	// began before now-window).
	TOTPFailed(ctx context.Context, user string, now time.Time, window time.Duration) (int, error)

	// AddStats adds the deltas to the hourly counters in one transaction.
	AddStats(ctx context.Context, ds []StatDelta) error
	// Stats returns counter name's hours from since on, oldest first;
	// hours without events are absent.
	Stats(ctx context.Context, name string, since time.Time) ([]StatPoint, error)
	// PruneStats forgets hours before before.
	PruneStats(ctx context.Context, before time.Time) error

	// ListUsersPage lists at most limit users of domain ("" = all) whose
	// address sorts after after and starts with prefix, ordered by address.
	ListUsersPage(ctx context.Context, domain, prefix, after string, limit int) ([]User, error)
	// ListAliasesPage is ListUsersPage for aliases.
	ListAliasesPage(ctx context.Context, domain, prefix, after string, limit int) ([]Alias, error)
	// ListGlobalAdmins lists the addresses of the global admins.
	ListGlobalAdmins(ctx context.Context) ([]string, error)
	// QueueSummary counts the outbound queue and finds its oldest entry.
	QueueSummary(ctx context.Context) (QueueSummary, error)
}
