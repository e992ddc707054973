package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// ClaimFullText implements store.FullTextClaimer. On PostgreSQL it takes
// the bodies of ids that no other indexer holds (or whose claim has
// expired) for owner until ttl from now, and returns those, ascending.
// SQLite has one indexer: every id is its own.
func (s *Store) ClaimFullText(ctx context.Context, owner string, ids []int64, ttl time.Duration) ([]int64, error) {
	if !s.pg() || len(ids) == 0 {
		return ids, nil
	}
	var got []int64
	err := s.withTx(ctx, func(c conn) error {
		// Claims of indexed or deleted bodies stay until they expire;
		// sweep those long gone (the index on until keeps it cheap).
		if _, err := c.exec(ctx, `DELETE FROM body_fts_claim WHERE until < now() - interval '10 minutes'`); err != nil {
			return err
		}
		var err error
		got, err = list(ctx, c, "claim full text", scanInt64, `INSERT INTO body_fts_claim (body_id, owner, until)
SELECT id, ?, now() + ?::interval FROM unnest(?::bigint[]) AS t(id)
ON CONFLICT (body_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
    WHERE body_fts_claim.until < now() OR body_fts_claim.owner = excluded.owner
RETURNING body_id`, owner, fmt.Sprintf("%d milliseconds", ttl.Milliseconds()), ids)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim full text: %w", err)
	}
	slices.Sort(got)
	return got, nil
}
