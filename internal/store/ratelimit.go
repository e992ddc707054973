package store

import (
	"context"
	"time"
)

// RateLimits keeps rate-limit state in the store, so that several nodes
// sharing one database enforce one limit (else an attacker gets N times
// the limit from N nodes). A key counts its live members: a member
// counts from the hit that recorded it until ttl later.
type RateLimits interface {
	// RateHit records member under key for ttl unless it is already
	// live, and returns whether it was new and the key's live members
	// after it.
	RateHit(ctx context.Context, key, member string, ttl time.Duration) (isNew bool, count int, err error)
	// RateCount returns the live members of key.
	RateCount(ctx context.Context, key string) (int, error)
	// RateTake records member under key for ttl if key has fewer than
	// limit live members, atomically: callers racing on one key (on any
	// node) never record more than limit between them. A member already
	// live counts as taken again. It returns whether member is recorded
	// and the key's live members after the call.
	RateTake(ctx context.Context, key, member string, limit int, ttl time.Duration) (taken bool, count int, err error)
	// RateSeen reports whether member is live under key.
	RateSeen(ctx context.Context, key, member string) (bool, error)
	// RateMark sets member's deadline under key to now+ttl, replacing a
	// live one (an exemption renewed); ttl <= 0 removes it.
	RateMark(ctx context.Context, key, member string, ttl time.Duration) error
	// PruneRates deletes expired rows and returns how many.
	PruneRates(ctx context.Context) (int64, error)
}
