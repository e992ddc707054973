package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.QueueStore = (*Store)(nil)

// queueCols are the columns scanQueueItem reads, in its order; the body
// size comes from a scalar subquery so that UPDATE ... RETURNING can
// return it too (both SQLite and PostgreSQL allow subqueries there).
const queueCols = `id, message_id, sender, recipient, body_id, attempts, next_attempt, last_error, held, created_at,
lease_until, last_attempt, last_code, last_status, last_remote, delay_notified,
(SELECT size FROM body WHERE body.id = queue.body_id), dsn_ret, dsn_envid, dsn_notify, dsn_orcpt, require_tls`

// queueDue is the condition for an entry a worker may claim; the lease
// test's %s is the database clock (dbNow).
const queueDue = `held = ? AND next_attempt <= ? AND (lease_until IS NULL OR lease_until <= %s)`

// dbNow is the database's current time as SQL and its argument, if any.
// Leases are timed by it so that nodes with skewed clocks agree. On
// PostgreSQL that is the server's clock; SQLite runs inside the one
// node, whose clock is the database's.
func (s *Store) dbNow() (string, []any) {
	if s.d.name() == FlavorPostgreSQL {
		return "now()", nil
	}
	return "?", []any{s.d.ts(time.Now())}
}

// dbLeaseEnd is the database's clock plus lease, as SQL and arguments.
func (s *Store) dbLeaseEnd(lease time.Duration) (string, []any) {
	if s.d.name() == FlavorPostgreSQL {
		return "now() + make_interval(secs => ?)", []any{lease.Seconds()}
	}
	return "?", []any{s.d.ts(time.Now().Add(lease))}
}

func scanQueueItem(sc interface{ Scan(...any) error }) (store.QueueItem, error) {
	var q store.QueueItem
	err := sc.Scan(&q.ID, &q.MessageID, &q.Sender, &q.Recipient, &q.BodyID, &q.Attempts,
		scanTime(&q.NextAttempt), &q.LastError, &q.Held, scanTime(&q.CreatedAt),
		scanTime(&q.LeaseUntil), scanTime(&q.LastAttempt), &q.LastCode, &q.LastStatus, &q.LastRemote,
		&q.DelayNotified, &q.Size, &q.DSNRet, &q.DSNEnvID, &q.DSNNotify, &q.DSNORcpt, &q.RequireTLS)
	return q, err
}

// ClaimQueue leases up to limit due entries to owner. On PostgreSQL the
// rows are picked with FOR UPDATE SKIP LOCKED, so concurrent claimers on
// several nodes take disjoint sets without waiting for each other; on
// SQLite the single write connection makes the UPDATE atomic. A read
// first keeps an idle poll from taking the write lock.
func (s *Store) ClaimQueue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.QueueItem, error) {
	if owner == "" {
		return nil, errors.New("sqlstore: claim queue: empty owner")
	}
	if limit <= 0 {
		return nil, nil
	}
	var id int64
	clock, clockArgs := s.dbNow()
	due := fmt.Sprintf(queueDue, clock)
	err := s.readConn().queryRow(ctx, `SELECT id FROM queue WHERE `+due+` LIMIT 1`,
		append([]any{false, s.d.ts(now)}, clockArgs...)...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim queue: %w", err)
	}
	lock := ""
	if s.d.name() == FlavorPostgreSQL {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	end, endArgs := s.dbLeaseEnd(lease)
	q := `UPDATE queue SET lease_owner = ?, lease_until = ` + end + `
WHERE id IN (SELECT id FROM queue WHERE ` + due + ` ORDER BY next_attempt, id LIMIT ?` + lock + `)
RETURNING ` + queueCols
	args := append([]any{owner}, endArgs...)
	args = append(args, false, s.d.ts(now))
	args = append(args, clockArgs...)
	args = append(args, limit)
	var items []store.QueueItem
	err = s.retryTx(ctx, func(c conn) error {
		var err error
		items, err = list(ctx, c, "claim queue", scanQueueItem, q, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim queue: %w", err)
	}
	sort.Slice(items, func(i, j int) bool {
		if !items[i].NextAttempt.Equal(items[j].NextAttempt) {
			return items[i].NextAttempt.Before(items[j].NextAttempt)
		}
		return items[i].ID < items[j].ID
	})
	return items, nil
}

// RenewQueueLeases extends owner's leases by lease from the database's
// clock and returns the ids owner still holds.
func (s *Store) RenewQueueLeases(ctx context.Context, owner string, lease time.Duration) ([]int64, error) {
	end, endArgs := s.dbLeaseEnd(lease)
	var held []int64
	err := s.withTx(ctx, func(c conn) error {
		var err error
		held, err = list(ctx, c, "renew queue leases", scanInt64, `UPDATE queue SET lease_until = `+end+` WHERE lease_owner = ? AND lease_until IS NOT NULL RETURNING id`,
			append(endArgs, owner)...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: renew queue leases: %w", err)
	}
	return held, nil
}

// ReleaseQueueLeases drops owner's leases on ids, or all of them.
func (s *Store) ReleaseQueueLeases(ctx context.Context, owner string, ids []int64) error {
	err := s.withTx(ctx, func(c conn) error {
		const q = `UPDATE queue SET lease_owner = '', lease_until = NULL WHERE lease_owner = ?`
		if len(ids) == 0 {
			_, err := c.exec(ctx, q, owner)
			return err
		}
		for _, chunk := range chunks(ids, gcBatch) {
			args := []any{owner}
			for _, id := range chunk {
				args = append(args, id)
			}
			if _, err := c.exec(ctx, q+` AND id IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: release queue leases: %w", err)
	}
	return nil
}

func chunks(ids []int64, n int) [][]int64 {
	var out [][]int64
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

const sqlDeferQueue = `UPDATE queue SET attempts = attempts + 1, next_attempt = ?, last_attempt = ?,
last_error = ?, last_code = ?, last_status = ?, last_remote = ?, delay_notified = (delay_notified OR ?),
lease_owner = '', lease_until = NULL
WHERE id = ? AND lease_owner = ?`

// UpdateQueue records outcomes in one transaction (one fsync for a whole
// batch of attempts). Rows are touched in id order, the order claims lock
// them in among equal next_attempt values, to keep PostgreSQL deadlocks
// rare; one that happens anyway is retried.
func (s *Store) UpdateQueue(ctx context.Context, owner string, ups []store.QueueUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	ups = append([]store.QueueUpdate(nil), ups...)
	sort.Slice(ups, func(i, j int) bool { return ups[i].ID < ups[j].ID })
	var trashed bool
	var err error
	for attempt := 0; ; attempt++ {
		trashed = false
		err = s.withTx(ctx, func(c conn) error {
			var dels []int64
			var deferStmt *sql.Stmt
			for _, u := range ups {
				if u.Delete {
					dels = append(dels, u.ID)
					continue
				}
				if deferStmt == nil {
					// Prepared once per batch: parsing dominates a small UPDATE.
					st, err := c.tx.PrepareContext(ctx, c.d.rebind(sqlDeferQueue))
					if err != nil {
						return err
					}
					defer st.Close()
					deferStmt = st
				}
				_, err := deferStmt.ExecContext(ctx, s.d.ts(u.NextAttempt), nullTS(s.d, u.LastAttempt), u.LastError,
					u.LastCode, u.LastStatus, u.LastRemote, u.DelayNotified, u.ID, owner)
				if err != nil {
					return fmt.Errorf("defer entry %d: %w", u.ID, mapErr(err))
				}
			}
			for _, chunk := range chunks(dels, gcBatch) {
				args := make([]any, len(chunk))
				for i, id := range chunk {
					args[i] = id
				}
				if _, err := c.exec(ctx, `DELETE FROM queue WHERE id IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
					return fmt.Errorf("delete %d entries: %w", len(chunk), mapErr(err))
				}
			}
			if len(dels) > 0 {
				n, err := count(ctx, c, "read blob trash", `SELECT COUNT(*) FROM (SELECT 1 FROM blob_trash LIMIT 1) t`)
				if err != nil {
					return err
				}
				trashed = n > 0
			}
			return nil
		})
		if !retryable(err) || attempt == 2 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: update queue: %w", err)
	}
	if trashed {
		s.emptyTrash(ctx)
	}
	return nil
}

// ListQueueEntries lists every entry with its delivery state, soonest
// first.
func (s *Store) ListQueueEntries(ctx context.Context) ([]store.QueueItem, error) {
	return list(ctx, s.readConn(), "list queue", scanQueueItem,
		`SELECT `+queueCols+` FROM queue ORDER BY next_attempt, id`)
}

// GetQueueItem returns one entry; store.ErrNotFound if there is none.
func (s *Store) GetQueueItem(ctx context.Context, id int64) (*store.QueueItem, error) {
	q, err := scanQueueItem(s.readConn().queryRow(ctx, `SELECT `+queueCols+` FROM queue WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: queue entry %d: %w", id, mapErr(err))
	}
	return &q, nil
}

// DeleteQueueItem removes an entry (no DSN); its body goes with its last
// reference. store.ErrNotFound if there is none.
func (s *Store) DeleteQueueItem(ctx context.Context, id int64) error {
	err := s.withTx(ctx, func(c conn) error {
		return c.execOne(ctx, `DELETE FROM queue WHERE id = ?`, id)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: delete queue entry %d: %w", id, err)
	}
	s.emptyTrash(ctx)
	return nil
}

// SetQueueHeld holds or releases an entry. store.ErrNotFound if there is
// none.
func (s *Store) SetQueueHeld(ctx context.Context, id int64, held bool) error {
	err := s.withTx(ctx, func(c conn) error {
		return c.execOne(ctx, `UPDATE queue SET held = ? WHERE id = ?`, held, id)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: hold queue entry %d: %w", id, err)
	}
	return nil
}

// FlushQueue makes every entry that is not held due at now. Leased
// entries keep their lease: they are being sent already.
func (s *Store) FlushQueue(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.withTx(ctx, func(c conn) error {
		_, err := c.exec(ctx, `UPDATE queue SET next_attempt = ? WHERE held = ? AND next_attempt > ?`,
			s.d.ts(now), false, s.d.ts(now))
		if err != nil {
			return err
		}
		return c.queryRow(ctx, `SELECT COUNT(*) FROM queue WHERE held = ?`, false).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: flush queue: %w", err)
	}
	return int(n), nil
}
