package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// deleteMessages deletes uids (sorted, unique) from mailbox id, whose row
// the caller has locked after user's. The mailbox gets one new modseq
// (RFC 7162 3.2.7: an expunge is a change) and every deleted UID is
// recorded with it in expunged, for QRESYNC's VANISHED (RFC 7162
// 3.2.5.2). With release, quota_bytes_used drops by their sizes (never
// below zero); a move leaves it alone. The delete trigger queues each
// message's body for release (bodyrelease.go). It returns the UIDs that
// were there, ascending.
func deleteMessages(ctx context.Context, c conn, user string, id int64, uids []uint32, release bool) ([]uint32, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	// One statement for the whole list (issue 19: 40 chunks of 500 cost
	// PostgreSQL a plan and a round trip each); the bodies are released
	// later (bodyrelease.go).
	var gone []uint32
	var freed int64
	rows, err := c.query(ctx, `DELETE FROM message WHERE mailbox_id = ? AND uid IN `+c.d.intSet()+` RETURNING uid, size`,
		id, c.d.intSetArg(uids))
	if err != nil {
		return nil, fmt.Errorf("delete messages: %w", mapErr(err))
	}
	for rows.Next() {
		var uid, size int64
		if err := rows.Scan(&uid, &size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("delete messages: %w", err)
		}
		gone = append(gone, uint32(uid))
		freed += size
	}
	err = rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("delete messages: %w", mapErr(err))
	}
	if len(gone) == 0 {
		return nil, nil
	}
	slices.Sort(gone)
	if release {
		_, err := c.exec(ctx, `UPDATE "user" SET quota_bytes_used = CASE WHEN quota_bytes_used > ? THEN quota_bytes_used - ? ELSE 0 END
WHERE email = ?`, freed, freed, user)
		if err != nil {
			return nil, fmt.Errorf("lower quota_bytes_used: %w", mapErr(err))
		}
	}
	var modseq int64
	err = c.queryRow(ctx, `UPDATE mailbox SET highestmodseq = highestmodseq + 1, message_count = message_count - ?
WHERE id = ? RETURNING highestmodseq`, len(gone), id).Scan(&modseq)
	if err != nil {
		return nil, fmt.Errorf("bump highestmodseq: %w", mapErr(err))
	}
	// WHERE true: SQLite needs it before an upsert's ON CONFLICT.
	_, err = c.exec(ctx, `INSERT INTO expunged (mailbox_id, uid, modseq) SELECT ?, v, ? FROM `+c.d.intSet()+
		` AS gone WHERE true ON CONFLICT (mailbox_id, uid) DO NOTHING`, id, modseq, c.d.intSetArg(gone))
	if err != nil {
		return nil, fmt.Errorf("record expunges: %w", mapErr(err))
	}
	return gone, nil
}

// deletedUIDsQuery finds the messages of a mailbox that may be flagged
// \Deleted (the flags are then checked word by word). The predicate is
// written into the statement, not bound: both stores use the partial
// index message_deleted (migration 0200) only for a query with the
// predicate it was made with.
const deletedUIDsQuery = `SELECT uid, flags FROM message WHERE mailbox_id = ? AND LOWER(flags) LIKE '%\deleted%' ESCAPE '!' ORDER BY uid`

// deletedUIDs returns the UIDs of mailbox id's messages flagged \Deleted.
// The LIKE only narrows the rows (case-insensitively, through LOWER, as
// delivery may store flags in any case; '!' as the escape leaves the
// backslash literal in both databases); the flag is checked exactly here.
func deletedUIDs(ctx context.Context, c conn, id int64) ([]uint32, error) {
	type row struct {
		uid   int64
		flags string
	}
	rows, err := list(ctx, c, "find deleted messages", func(sc interface{ Scan(...any) error }) (row, error) {
		var r row
		err := sc.Scan(&r.uid, &r.flags)
		return r, err
	}, deletedUIDsQuery, id)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, r := range rows {
		if hasFlag(strings.Fields(r.flags), `\Deleted`) {
			out = append(out, uint32(r.uid))
		}
	}
	return out, nil
}

// ExpungeByID expunges messages from mailbox id in one transaction: the
// given UIDs, or every message flagged \Deleted when uids is nil (RFC
// 9051 6.4.3 EXPUNGE, CLOSE). The UIDs are expunged whatever their flags:
// for RFC 4315 UID EXPUNGE the caller passes only the \Deleted ones. As
// ExpungeMessages: quota released, one new modseq, a relaxed commit,
// bodies freed after a FULL one (bodyrelease.go); each
// expunged UID is recorded for QRESYNC. It returns the UIDs expunged,
// ascending. store.ErrNotFound if the mailbox does not exist.
//
// Lock order: the user row, then the mailbox row.
func (s *Store) ExpungeByID(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	return s.expungeByID(ctx, mailboxID, uids, false)
}

// ExpungeDeleted expunges those of uids that carry \Deleted inside the
// transaction, after the mailbox row is locked: StoreFlags takes the same
// lock, so a flag change of another session or node is either already
// committed and seen, or waits (RFC 4315 2.1).
func (s *Store) ExpungeDeleted(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	return s.expungeByID(ctx, mailboxID, uids, true)
}

func (s *Store) expungeByID(ctx context.Context, mailboxID int64, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	all := uids == nil
	uids = sortedUnique(uids)
	if all || onlyDeleted {
		// Nothing \Deleted is the usual EXPUNGE when several sessions
		// share a mailbox (another one removed the messages first): a
		// read says so without queueing for the writer. A message
		// flagged after this read is the next EXPUNGE's, as if this one
		// had run first.
		none, err := s.noneDeleted(ctx, mailboxID, uids, onlyDeleted)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: expunge from mailbox %d: %w", mailboxID, err)
		}
		if none {
			return nil, nil
		}
	}
	var user string
	var gone []uint32
	err := s.retryTxRelaxed(ctx, func(c conn) error {
		gone = nil
		var err error
		if user, err = mailboxOwner(ctx, c, mailboxID); err != nil {
			return err
		}
		if err := lockUser(ctx, c, user); err != nil {
			return err
		}
		if _, err := lockMailboxes(ctx, c, mailboxID); err != nil {
			return err
		}
		which := uids
		if all || onlyDeleted {
			deleted, err := deletedUIDs(ctx, c, mailboxID)
			if err != nil {
				return err
			}
			which = deleted
			if onlyDeleted {
				which = intersectSorted(deleted, uids)
			}
		}
		gone, err = deleteMessages(ctx, c, user, mailboxID, which, true)
		if len(gone) > 0 {
			c.changed(user)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: expunge from mailbox %d: %w", mailboxID, err)
	}
	if len(gone) > 0 {
		s.bodies.wake()
	}
	return gone, nil
}

// noneDeleted reports whether mailbox id has no \Deleted message (among
// uids when onlyDeleted); store.ErrNotFound if the mailbox is missing.
func (s *Store) noneDeleted(ctx context.Context, id int64, uids []uint32, onlyDeleted bool) (bool, error) {
	c := s.readConn()
	deleted, err := deletedUIDs(ctx, c, id)
	if err != nil {
		return false, err
	}
	if onlyDeleted {
		deleted = intersectSorted(deleted, uids)
	}
	if len(deleted) > 0 {
		return false, nil
	}
	_, err = mailboxOwner(ctx, c, id)
	return err == nil, err
}

// ChangesSince reports, from one snapshot, mailbox id as it is now, its
// messages with a modseq above modseq (new or with changed flags; all of
// them when modseq is 0) and the UIDs expunged after modseq (RFC 7162
// CONDSTORE, QRESYNC; IDLE polls it). store.ErrNotFound if the mailbox
// does not exist.
func (s *Store) ChangesSince(ctx context.Context, mailboxID int64, modseq uint64) (*store.Changes, error) {
	return s.changes(ctx, mailboxID, modseq, func(c conn) ([]store.MessageInfo, error) {
		return listMessages(ctx, c, mailboxID, modseq)
	})
}

// ChangesPage is ChangesSince with at most limit changed messages, in
// (modseq, UID) order, those after the key after (store.ChangePager).
// Every page walks the modseq index from where the last one stopped, so
// a poll after one change reads one row and the pages of a STORE 1:* on
// 100,000 messages read each row once, without a sort.
func (s *Store) ChangesPage(ctx context.Context, mailboxID int64, modseq uint64, after store.ChangeKey, limit int) (*store.Changes, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: changes of mailbox %d: page limit %d", mailboxID, limit)
	}
	if after == (store.ChangeKey{}) {
		return s.pollOrChanges(ctx, mailboxID, modseq, limit) // changes_poll.go
	}
	if after.ModSeq <= modseq {
		return nil, fmt.Errorf("sqlstore: changes of mailbox %d: page key modseq %d not above %d", mailboxID, after.ModSeq, modseq)
	}
	// Later pages only check that the mailbox is still there: the first
	// page brought the rest of the mailbox's row.
	var ch store.Changes
	err := s.readTx(ctx, func(c conn) error {
		var id int64
		if err := c.queryRow(ctx, `SELECT id FROM mailbox WHERE id = ?`, mailboxID).Scan(&id); err != nil {
			return mapErr(err)
		}
		var err error
		ch.Changed, err = list(ctx, c, "list messages", messageScanner(), sqlChangesNextPage(c.d, limit),
			mailboxID, clampModSeq(after.ModSeq), int64(after.UID))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: changes of mailbox %d: %w", mailboxID, err)
	}
	return &ch, nil
}

// The queries of ChangesPage's first and later pages: ranges of the
// index on (mailbox_id, modseq, uid) (on SQLite message_modseq, whose
// entries end with the primary key's uid; migration 0102), read in its
// order.
//
// The limit is written into the text, not bound: this SQLite plans
// an ORDER BY ... LIMIT with the bound value and so prepares such a
// statement again at every execution, which cost 7 % of Petrel's CPU
// under imaptest's stress load (these run at every poll). A caller uses
// one page size, so the statement cache holds one text per page size.
func sqlChangesFirstPage(d dialect, limit int) string {
	return `SELECT ` + d.messageCols() + ` FROM message WHERE mailbox_id = ? AND modseq > ? ORDER BY modseq, uid LIMIT ` + strconv.Itoa(limit)
}

func sqlChangesNextPage(d dialect, limit int) string {
	return `SELECT ` + d.messageCols() + ` FROM message WHERE mailbox_id = ? AND (modseq, uid) > (?, ?) ORDER BY modseq, uid LIMIT ` + strconv.Itoa(limit)
}

// changes reads, in one snapshot, the mailbox, the messages changed
// (listed by changed) and the UIDs expunged after modseq.
func (s *Store) changes(ctx context.Context, mailboxID int64, modseq uint64, changed func(c conn) ([]store.MessageInfo, error)) (*store.Changes, error) {
	var ch store.Changes
	err := s.readTx(ctx, func(c conn) error {
		mb, err := getMailboxByID(ctx, c, mailboxID)
		if err != nil {
			return err
		}
		ch.Mailbox = *mb
		if modseq >= mb.HighestModSeq {
			// Every change (flags, a new message, an expunge) raises
			// highestmodseq: a client at it has nothing to learn. This
			// is the idle poll, one query instead of three.
			return nil
		}
		if ch.Changed, err = changed(c); err != nil {
			return err
		}
		// One query: the UIDs expunged after modseq, and a row of -1
		// first when rows the client needs may have been pruned
		// (PruneExpunged's floor is above its modseq).
		ms := clampModSeq(modseq)
		gone, err := list(ctx, c, "list expunged", scanInt64, `SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?
UNION ALL SELECT -1 FROM mailbox WHERE id = ? AND expunged_floor > ?
ORDER BY 1`, mailboxID, ms, mailboxID, ms)
		if err != nil {
			return err
		}
		if len(gone) > 0 && gone[0] < 0 {
			// Every UID the client may know of that is gone (RFC 7162
			// 3.2.5.2 lets VANISHED name UIDs it never saw).
			ch.Expunged, err = missingUIDs(ctx, c, mailboxID, ch.Mailbox.UIDNext)
			return err
		}
		for _, u := range gone {
			ch.Expunged = append(ch.Expunged, uint32(u))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: changes of mailbox %d: %w", mailboxID, err)
	}
	return &ch, nil
}

// intersectSorted returns the values in both ascending lists (UIDs,
// body ids).
func intersectSorted[T cmp.Ordered](a, b []T) []T {
	var out []T
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

func scanUID(sc interface{ Scan(...any) error }) (uint32, error) {
	var u int64
	err := sc.Scan(&u)
	return uint32(u), err
}

// missingUIDs lists the UIDs below uidnext that are not in mailbox id.
func missingUIDs(ctx context.Context, c conn, id int64, uidnext uint32) ([]uint32, error) {
	present, err := list(ctx, c, "list UIDs", scanUID, `SELECT uid FROM message WHERE mailbox_id = ? ORDER BY uid`, id)
	if err != nil {
		return nil, err
	}
	var out []uint32
	next := uint32(1)
	for _, u := range append(present, uidnext) {
		for ; next < u; next++ {
			out = append(out, next)
		}
		next = u + 1
	}
	return out, nil
}
