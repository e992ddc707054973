package sqlstore

import (
	"context"
	"fmt"
	"slices"
)

// ExpungeMessages deletes the messages with the given UIDs from one of
// user's mailboxes in one transaction (POP3 UPDATE state, IMAP EXPUNGE):
// quota_bytes_used drops by their sizes (never below zero), the
// mailbox's highestmodseq goes up by one (RFC 7162 3.2.7: an expunge is a
// change). The commit is relaxed (withTxRelaxed). Bodies left without a
// message or queue row are released after it, off the caller's path, in
// a FULL commit that makes the expunge durable too (bodyrelease.go). UIDs
// not in the mailbox, for example already expunged by another session,
// are ignored. store.ErrNotFound if the mailbox does not exist.
//
// The expunged UIDs are recorded with the new modseq (deleteMessages), so
// that QRESYNC (RFC 7162 3.2.5.2) reports them as VANISHED, and Watch
// fires after the commit.
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
	err := s.retryTxRelaxed(ctx, func(c conn) error {
		var e error
		n, e = expunge(ctx, c, user, mailboxName(mailbox), uids)
		if n > 0 {
			c.changed(user)
		}
		return e
	})
	if err != nil {
		return fmt.Errorf("sqlstore: expunge %d messages from %q of %q: %w", len(uids), mailbox, user, err)
	}
	if n > 0 {
		s.bodies.wake()
	}
	return nil
}

// expunge deletes uids (sorted, unique) and returns how many were there.
func expunge(ctx context.Context, c conn, user, mailbox string, uids []uint32) (int, error) {
	// Reading the row takes its lock first (PostgreSQL).
	if err := lockUser(ctx, c, user); err != nil {
		return 0, err
	}
	var id int64
	err := c.queryRow(ctx, `SELECT id FROM mailbox WHERE user_email = ? AND name = ?`+c.d.forUpdate(), user, mailbox).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("mailbox: %w", mapErr(err))
	}

	gone, err := deleteMessages(ctx, c, user, id, uids, true)
	return len(gone), err
}
