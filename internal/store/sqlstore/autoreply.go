package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.AutoReplies = (*Store)(nil)

// claimAutoReply inserts the (user, sender) row, or moves it to now when
// the last reply is old enough or had another handle. The conditional
// upsert is one statement on both dialects: SQLite's single writer runs it
// alone, and on PostgreSQL a concurrent claim waits for the row lock and
// then re-checks the WHERE against the row the first one wrote (READ
// COMMITTED), so exactly one of them changes a row.
const claimAutoReply = `INSERT INTO autoreply_sent (user_email, sender, handle, sent_at) VALUES (?, ?, ?, ?)
ON CONFLICT (user_email, sender) DO UPDATE SET handle = excluded.handle, sent_at = excluded.sent_at
WHERE autoreply_sent.sent_at <= ? OR autoreply_sent.handle <> excluded.handle`

// ClaimAutoReply implements store.AutoReplies. A user that does not exist
// (any more) gives store.ErrNotFound.
func (s *Store) ClaimAutoReply(ctx context.Context, user, sender, handle string, now time.Time, period time.Duration) (bool, error) {
	if user == "" || sender == "" {
		return false, errors.New("sqlstore: claim auto-reply: empty user or sender")
	}
	var n int64
	var err error
	for attempt := 0; ; attempt++ {
		err = s.withTx(ctx, func(c conn) error {
			res, err := c.exec(ctx, claimAutoReply, user, sender, handle, s.d.ts(now), s.d.ts(now.Add(-period)))
			if err != nil {
				return mapErr(err)
			}
			n, err = res.RowsAffected()
			return err
		})
		if !retryable(err) || attempt == 2 {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("sqlstore: claim auto-reply of %s to %s: %w", user, sender, err)
	}
	return n > 0, nil
}

// PruneAutoReplies implements store.AutoReplies.
func (s *Store) PruneAutoReplies(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM autoreply_sent WHERE sent_at < ?`, s.d.ts(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: prune auto-replies: %w", err)
	}
	return n, nil
}
