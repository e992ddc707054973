package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.RateLimits = (*Store)(nil)

// RateHit implements store.RateLimits: one upsert that takes over the row
// only when it has expired, so two nodes recording one member at once
// count it once (the primary key decides), then a count.
func (s *Store) RateHit(ctx context.Context, key, member string, ttl time.Duration) (bool, int, error) {
	var isNew bool
	var n int
	err := s.withTx(ctx, func(c conn) error {
		t := now()
		res, err := c.exec(ctx, `INSERT INTO rate_hit (key, member, expires) VALUES (?, ?, ?)
ON CONFLICT (key, member) DO UPDATE SET expires = excluded.expires WHERE rate_hit.expires <= ?`,
			key, member, s.d.ts(t.Add(ttl)), s.d.ts(t))
		if err != nil {
			return mapErr(err)
		}
		rows, err := res.RowsAffected()
		if err != nil {
			return err
		}
		isNew = rows > 0
		return c.queryRow(ctx, `SELECT COUNT(*) FROM rate_hit WHERE key = ? AND expires > ?`, key, s.d.ts(t)).Scan(&n)
	})
	if err != nil {
		return false, 0, fmt.Errorf("sqlstore: rate hit: %w", err)
	}
	return isNew, n, nil
}

// takeGuard is the key of the row that RateTake locks for key: one row per
// limited key, kept apart from key's own members so that it never counts.
func takeGuard(key string) string { return "take-guard:" + key }

// RateTake implements store.RateLimits. One transaction: an upsert of
// key's guard row, which holds that row's lock until the commit (a row
// lock, as CockroachDB and YugabyteDB take it too; no advisory lock), so
// takers of one key queue there; then, each statement seeing what the
// takers before committed, a count and the insert if under limit. SQLite
// has one writer, so its transactions are serial anyway.
func (s *Store) RateTake(ctx context.Context, key, member string, limit int, ttl time.Duration) (bool, int, error) {
	var taken bool
	var n int
	err := s.withTx(ctx, func(c conn) error {
		t := now()
		// The guard lives as long as the last member it admitted.
		_, err := c.exec(ctx, `INSERT INTO rate_hit (key, member, expires) VALUES (?, '', ?)
ON CONFLICT (key, member) DO UPDATE SET expires = excluded.expires`, takeGuard(key), s.d.ts(t.Add(ttl)))
		if err != nil {
			return mapErr(err)
		}
		var live int
		if err := c.queryRow(ctx, `SELECT COUNT(*) FROM rate_hit WHERE key = ? AND member = ? AND expires > ?`,
			key, member, s.d.ts(t)).Scan(&live); err != nil {
			return err
		}
		if err := c.queryRow(ctx, `SELECT COUNT(*) FROM rate_hit WHERE key = ? AND expires > ?`, key, s.d.ts(t)).Scan(&n); err != nil {
			return err
		}
		if live > 0 {
			taken = true
			return nil
		}
		if n >= limit {
			return nil
		}
		// An expired row of the same member is taken over.
		if _, err := c.exec(ctx, `INSERT INTO rate_hit (key, member, expires) VALUES (?, ?, ?)
ON CONFLICT (key, member) DO UPDATE SET expires = excluded.expires`, key, member, s.d.ts(t.Add(ttl))); err != nil {
			return mapErr(err)
		}
		taken = true
		n++
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("sqlstore: rate take: %w", err)
	}
	return taken, n, nil
}

// RateCount implements store.RateLimits.
func (s *Store) RateCount(ctx context.Context, key string) (int, error) {
	var n int
	// The write pool: a count must see the hit this node just recorded
	// (the read pool of SQLite could lag behind under WAL).
	err := conn{q: s.write, d: s.d}.queryRow(ctx, `SELECT COUNT(*) FROM rate_hit WHERE key = ? AND expires > ?`, key, s.d.ts(now())).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: rate count: %w", err)
	}
	return n, nil
}

// RateSeen implements store.RateLimits.
func (s *Store) RateSeen(ctx context.Context, key, member string) (bool, error) {
	var n int
	err := conn{q: s.write, d: s.d}.queryRow(ctx, `SELECT COUNT(*) FROM rate_hit WHERE key = ? AND member = ? AND expires > ?`,
		key, member, s.d.ts(now())).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlstore: rate seen: %w", err)
	}
	return n > 0, nil
}

// RateMark implements store.RateLimits.
func (s *Store) RateMark(ctx context.Context, key, member string, ttl time.Duration) error {
	err := s.withTx(ctx, func(c conn) error {
		if ttl <= 0 {
			_, err := c.exec(ctx, `DELETE FROM rate_hit WHERE key = ? AND member = ?`, key, member)
			return err
		}
		_, err := c.exec(ctx, `INSERT INTO rate_hit (key, member, expires) VALUES (?, ?, ?)
ON CONFLICT (key, member) DO UPDATE SET expires = excluded.expires`, key, member, s.d.ts(now().Add(ttl)))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: rate mark: %w", err)
	}
	return nil
}

// PruneRates implements store.RateLimits.
func (s *Store) PruneRates(ctx context.Context) (int64, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM rate_hit WHERE expires <= ?`, s.d.ts(now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: prune rate limits: %w", err)
	}
	return n, nil
}
