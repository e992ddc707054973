package sqlstore

import (
	"context"
	"fmt"
	"slices"
)

// expungeBatch bounds the UIDs of one DELETE (SQLite allows 32766 bound
// parameters, PostgreSQL 65535).
const expungeBatch = 500

// ExpungeMessages deletes the messages with the given UIDs from one of
// user's mailboxes in one transaction (POP3 UPDATE state, IMAP EXPUNGE):
// quota_bytes_used drops by their sizes (never below zero), the
// mailbox's highestmodseq goes up by one (RFC 7162 3.2.7: an expunge is a
// change), and bodies left without a message or queue row go through the
// refcount triggers; their blob files are removed after the commit. UIDs
// not in the mailbox, for example already expunged by another session,
// are ignored. store.ErrNotFound if the mailbox does not exist.
//
// The expunged UIDs are not recorded: QRESYNC (RFC 7162 3.2.5.2) may then
// only answer VANISHED (EARLIER) with every UID the client asks about that
// no longer exists, which the RFC allows.
//
// Lock order (PostgreSQL), as CommitMessages: the user row, then the
// mailbox row.
func (s *Store) ExpungeMessages(ctx context.Context, user, mailbox string, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	uids = slices.Clone(uids)
	slices.Sort(uids)
	uids = slices.Compact(uids)

	var n int
	var err error
	for attempt := 0; ; attempt++ {
		err = s.withTx(ctx, func(c conn) error {
			var e error
			n, e = expunge(ctx, c, user, mailboxName(mailbox), uids)
			return e
		})
		if !retryable(err) || attempt == 2 {
			break
		}
		s.log.Debug("expunge transaction retried", "err", err)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: expunge %d messages from %q of %q: %w", len(uids), mailbox, user, err)
	}
	if n > 0 {
		s.emptyTrash(ctx)
	}
	return nil
}

// expunge deletes uids (sorted, unique) and returns how many were there.
func expunge(ctx context.Context, c conn, user, mailbox string, uids []uint32) (int, error) {
	// Reading the row takes its lock first (PostgreSQL).
	var used int64
	err := c.queryRow(ctx, `SELECT quota_bytes_used FROM "user" WHERE email = ?`+c.d.forUpdate(), user).Scan(&used)
	if err != nil {
		return 0, fmt.Errorf("user: %w", mapErr(err))
	}
	var id int64
	err = c.queryRow(ctx, `SELECT id FROM mailbox WHERE user_email = ? AND name = ?`+c.d.forUpdate(), user, mailbox).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("mailbox: %w", mapErr(err))
	}

	n := 0
	var freed int64
	for chunk := range slices.Chunk(uids, expungeBatch) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, id)
		for _, u := range chunk {
			args = append(args, int64(u))
		}
		rows, err := c.query(ctx, `DELETE FROM message WHERE mailbox_id = ? AND uid IN (`+placeholders(len(chunk))+`) RETURNING size`, args...)
		if err != nil {
			return 0, fmt.Errorf("delete messages: %w", mapErr(err))
		}
		for rows.Next() {
			var size int64
			if err := rows.Scan(&size); err != nil {
				rows.Close()
				return 0, fmt.Errorf("delete messages: %w", err)
			}
			freed += size
			n++
		}
		err = rows.Err()
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("delete messages: %w", mapErr(err))
		}
	}
	if n == 0 {
		return 0, nil
	}
	_, err = c.exec(ctx, `UPDATE "user" SET quota_bytes_used = CASE WHEN quota_bytes_used > ? THEN quota_bytes_used - ? ELSE 0 END
WHERE email = ?`, freed, freed, user)
	if err != nil {
		return 0, fmt.Errorf("lower quota_bytes_used: %w", mapErr(err))
	}
	_, err = c.exec(ctx, `UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = ?`, id)
	if err != nil {
		return 0, fmt.Errorf("bump highestmodseq: %w", mapErr(err))
	}
	return n, nil
}
