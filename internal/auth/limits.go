package auth

import (
	"context"
	"time"

	"github.com/petrelmail/petrel/internal/ratelimit"
)

// Limiter is the moving-window counter store failed logins go to (Mailu:
// the `limits` MovingWindowRateLimiter in redis). MemoryLimiter adapts
// the per-process *ratelimit.Limiter; a store shared by several nodes
// (PostgreSQL) implements it directly. Errors mean the store could not be
// reached.
type Limiter interface {
	// Test reports whether one more hit of key would be allowed.
	Test(ctx context.Context, key string) (bool, error)
	// Hit records a hit of key if allowed and reports whether it was.
	Hit(ctx context.Context, key string) (bool, error)
	// HitDistinct counts member once per window for key (Mailu's dedup
	// keys); isNew reports that member had not been seen.
	HitDistinct(ctx context.Context, key, member string) (allowed, isNew bool, err error)
}

// ExemptionStore remembers IPs that skip limiting after a successful login
// (Mailu: "exempt-<ip>").
type ExemptionStore interface {
	Exempt(ctx context.Context, key string, d time.Duration) error
	IsExempt(ctx context.Context, key string) (bool, error)
}

// MemoryLimiter adapts an in-memory limiter to Limiter.
func MemoryLimiter(l *ratelimit.Limiter) Limiter { return memLimiter{l} }

// MemoryExemptions adapts an in-memory exemption store to ExemptionStore.
func MemoryExemptions(e *ratelimit.Exemptions) ExemptionStore { return memExemptions{e} }

type memLimiter struct{ l *ratelimit.Limiter }

func (m memLimiter) Test(_ context.Context, key string) (bool, error) { return m.l.Test(key), nil }

func (m memLimiter) Hit(_ context.Context, key string) (bool, error) { return m.l.Hit(key), nil }

func (m memLimiter) HitDistinct(_ context.Context, key, member string) (bool, bool, error) {
	a, n := m.l.HitDistinct(key, member)
	return a, n, nil
}

type memExemptions struct{ e *ratelimit.Exemptions }

func (m memExemptions) Exempt(_ context.Context, key string, d time.Duration) error {
	m.e.Exempt(key, d)
	return nil
}

func (m memExemptions) IsExempt(_ context.Context, key string) (bool, error) {
	return m.e.IsExempt(key), nil
}
