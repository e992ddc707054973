package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// ExpungedKeep is how many expunge records PruneExpunged keeps per
// mailbox by default: enough for any client that synchronises now and
// then; one that comes back later gets a full resync (ChangesSince).
const ExpungedKeep = 10000

// DeliveryKeyAge is how long delivery keys are kept; a delivery re-runs
// within seconds of an unknown COMMIT outcome.
const DeliveryKeyAge = 24 * time.Hour

// PruneExpunged bounds the expunged table: of each mailbox with more than
// keep records, the oldest go (whole modseqs at a time), and the
// mailbox's expunged_floor rises to the highest modseq removed, so that
// ChangesSince never answers a client older than that with a partial
// list. It returns the records removed.
func (s *Store) PruneExpunged(ctx context.Context, keep int) (int, error) {
	if keep < 1 {
		keep = 1
	}
	ids, err := list(ctx, s.readConn(), "expunged to prune", scanInt64, `SELECT mailbox_id FROM expunged GROUP BY mailbox_id HAVING COUNT(*) > ?`, keep)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: prune expunged: %w", err)
	}
	removed := 0
	for _, id := range ids {
		var n int64
		err := s.retryTx(ctx, func(c conn) error {
			if _, err := lockMailboxes(ctx, c, id); err != nil {
				return err
			}
			var cut int64
			err := c.queryRow(ctx, `SELECT modseq FROM expunged WHERE mailbox_id = ? ORDER BY modseq DESC LIMIT 1 OFFSET ?`,
				id, keep).Scan(&cut)
			if err != nil {
				return mapErr(err)
			}
			res, err := c.exec(ctx, `DELETE FROM expunged WHERE mailbox_id = ? AND modseq <= ?`, id, cut)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			_, err = c.exec(ctx, `UPDATE mailbox SET expunged_floor = ? WHERE id = ? AND expunged_floor < ?`, cut, id, cut)
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			continue // the mailbox went, or another node pruned it
		}
		if err != nil {
			return removed, fmt.Errorf("sqlstore: prune expunged of mailbox %d: %w", id, err)
		}
		removed += int(n)
	}
	return removed, nil
}

// PruneDeliveryKeys removes delivery keys recorded before before.
func (s *Store) PruneDeliveryKeys(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM delivery_key WHERE created_at < ?`, c.d.ts(before))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: prune delivery keys: %w", err)
	}
	return int(n), nil
}

// Maintain runs the periodic clean-up every node may run (they do not get
// in each other's way): unreferenced blob files, old expunge records and
// delivery keys.
func (s *Store) Maintain(ctx context.Context) error {
	gcErr := s.CollectGarbage(ctx)
	n, err := s.PruneExpunged(ctx, ExpungedKeep)
	if err != nil {
		return err
	}
	k, err := s.PruneDeliveryKeys(ctx, time.Now().Add(-DeliveryKeyAge))
	if err != nil {
		return err
	}
	if n+k > 0 {
		s.log.Info("database pruned", "expunged", n, "delivery_keys", k)
	}
	return gcErr
}
