package store

import (
	"context"
	"time"
)

// AutoReplies remembers when each user's auto-reply last answered each
// sender, so that restarts and several nodes sharing one database agree on
// "at most one reply per sender per period" (Mailu: sieve `vacation :days
// 1`, which Dovecot keeps in its per-user duplicate database).
type AutoReplies interface {
	// ClaimAutoReply reports whether user's auto-reply to sender is due at
	// now and, when it is, records it in the same atomic step. It is due
	// when no reply to sender is recorded, the last one is at least
	// period old, or it was sent under another handle (the reply text
	// changed: Dovecot's implicit :handle). Of two concurrent claims for
	// the same user and sender at most one is due. sender is compared as
	// given; callers pass it normalised.
	ClaimAutoReply(ctx context.Context, user, sender, handle string, now time.Time, period time.Duration) (bool, error)
	// PruneAutoReplies forgets the replies recorded before before and
	// returns how many there were.
	PruneAutoReplies(ctx context.Context, before time.Time) (int64, error)
}
