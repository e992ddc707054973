package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// The poll: the first page of ChangesPage, which every IMAP session
// asks for after each command while something changed (sync.go in
// imapd). It was a read transaction of three statements (the mailbox,
// the changed messages, the expunged UIDs) plus BEGIN and COMMIT: five
// round trips to PostgreSQL, and on SQLite the cost of five statements
// where the rows themselves are a few. One statement reads a snapshot
// of its own in both databases, so the three reads are one UNION ALL
// here, each row tagged with what it is.
//
// The columns are shared by position, with the same type in every
// branch (PostgreSQL requires it; a NULL is cast to it):
//
//	 1 kind: pollMailbox, pollMessage or pollExpunged
//	 2 mailbox id        | message mailbox_id | expunged uid
//	 3 uidvalidity       | uid
//	 4 uidnext           | modseq
//	 5 highestmodseq     | size
//	 6 message_count     | body_id
//	 7 recent_uid        |
//	 8                   | flags
//	 9                   | internal_date
//	10 user_email, 11 name, 12 special_use, 13 subscribed,
//	14 whether expunged rows the caller needs may have been pruned
//	   (PruneExpunged's floor is above its modseq)
const (
	pollMailbox = iota
	pollMessage
	pollExpunged
)

// sqlPoll is the statement; its arguments are pollArgs. The limit is in
// the text for the reason sqlChangesFirstPage gives.
func sqlPoll(d dialect, limit int) string {
	date, ts := `internal_date`, `CAST(NULL AS TIMESTAMPTZ)`
	if d.name() != FlavorPostgreSQL {
		// As messageCols: the text timeScanner reads.
		date, ts = `CAST(internal_date AS TEXT)`, `CAST(NULL AS TEXT)`
	}
	const (
		i = `CAST(NULL AS BIGINT)`
		t = `CAST(NULL AS TEXT)`
		b = `CAST(NULL AS BOOLEAN)`
	)
	return `SELECT ` + strconv.Itoa(pollMailbox) + `, m.id, m.uidvalidity, m.uidnext, m.highestmodseq, m.message_count, m.recent_uid,
  ` + t + `, ` + ts + `, m.user_email, m.name, m.special_use,
  EXISTS (SELECT 1 FROM subscription s WHERE s.user_email = m.user_email AND s.name = m.name),
  m.expunged_floor > ?
FROM mailbox m WHERE m.id = ?
UNION ALL
SELECT * FROM (SELECT ` + strconv.Itoa(pollMessage) + ` AS k, mailbox_id, uid, modseq, size, body_id, ` + i + `, flags, ` + date + `,
  ` + t + `, ` + t + `, ` + t + `, ` + b + `, ` + b + `
  FROM message WHERE mailbox_id = ? AND modseq > ? ORDER BY modseq, uid LIMIT ` + strconv.Itoa(limit) + `) p
UNION ALL
SELECT ` + strconv.Itoa(pollExpunged) + `, uid, ` + i + `, ` + i + `, ` + i + `, ` + i + `, ` + i + `, ` + t + `, ` + ts + `,
  ` + t + `, ` + t + `, ` + t + `, ` + b + `, ` + b + `
FROM expunged WHERE mailbox_id = ? AND modseq > ?`
}

func pollArgs(mailboxID int64, modseq uint64) []any {
	ms := clampModSeq(modseq)
	return []any{ms, mailboxID, mailboxID, ms, mailboxID, ms}
}

// pollRow is one row of sqlPoll, scanned.
type pollRow struct {
	kind                          int64
	a, b, c, d, e, f              sql.NullInt64
	flags, user, name, specialUse sql.NullString
	date                          time.Time
	subscribed, pruned            sql.NullBool
}

// poll is ChangesPage's first page in one statement (see above). ok is
// false when expunged rows the caller needs were pruned: the caller then
// reads the changes in a transaction (changes), which lists the missing
// UIDs from the same snapshot.
func (s *Store) poll(ctx context.Context, mailboxID int64, modseq uint64, limit int) (ch *store.Changes, ok bool, err error) {
	rows, err := s.readConn().query(ctx, sqlPoll(s.d, limit), pollArgs(mailboxID, modseq)...)
	if err != nil {
		return nil, false, mapErr(err)
	}
	defer rows.Close()
	ch = &store.Changes{}
	found, pruned := false, false
	fl := flagLists{}
	var r pollRow
	for rows.Next() {
		if err := rows.Scan(&r.kind, &r.a, &r.b, &r.c, &r.d, &r.e, &r.f, &r.flags, scanTime(&r.date),
			&r.user, &r.name, &r.specialUse, &r.subscribed, &r.pruned); err != nil {
			return nil, false, err
		}
		switch r.kind {
		case pollMailbox:
			found, pruned = true, r.pruned.Bool
			ch.Mailbox = store.Mailbox{ID: r.a.Int64, UserEmail: r.user.String, Name: r.name.String,
				SpecialUse: r.specialUse.String, Subscribed: r.subscribed.Bool,
				UIDValidity: uint32(r.b.Int64), UIDNext: uint32(r.c.Int64), HighestModSeq: uint64(r.d.Int64),
				Messages: int(r.e.Int64), RecentUID: uint32(r.f.Int64)}
		case pollMessage:
			m := store.MessageInfo{MailboxID: r.a.Int64, UID: uint32(r.b.Int64), ModSeq: uint64(r.c.Int64),
				InternalDate: r.date, Size: r.d.Int64, BodyID: r.e.Int64}
			if r.flags.String != "" {
				m.Flags = fl.get(r.flags.String)
			}
			ch.Changed = append(ch.Changed, m)
		case pollExpunged:
			ch.Expunged = append(ch.Expunged, uint32(r.a.Int64))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, mapErr(err)
	}
	if !found {
		return nil, false, store.ErrNotFound
	}
	if modseq >= ch.Mailbox.HighestModSeq {
		// Every change raises highestmodseq: nothing to learn.
		ch.Changed, ch.Expunged = nil, nil
		return ch, true, nil
	}
	if pruned {
		return nil, false, nil
	}
	// A compound SELECT has no order of its own: the page is put back in
	// its (modseq, uid) order, the expunged UIDs in theirs.
	slices.SortFunc(ch.Changed, func(x, y store.MessageInfo) int {
		return cmp.Or(cmp.Compare(x.ModSeq, y.ModSeq), cmp.Compare(x.UID, y.UID))
	})
	slices.Sort(ch.Expunged)
	return ch, true, nil
}

// pollOrChanges is ChangesPage's first page: the one-statement poll, or
// the transaction when it cannot answer.
func (s *Store) pollOrChanges(ctx context.Context, mailboxID int64, modseq uint64, limit int) (*store.Changes, error) {
	ch, ok, err := s.poll(ctx, mailboxID, modseq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: changes of mailbox %d: %w", mailboxID, err)
	}
	if ok {
		return ch, nil
	}
	return s.firstPageTx(ctx, mailboxID, modseq, limit)
}

// firstPageTx is ChangesPage's first page read in a transaction.
func (s *Store) firstPageTx(ctx context.Context, mailboxID int64, modseq uint64, limit int) (*store.Changes, error) {
	return s.changes(ctx, mailboxID, modseq, func(c conn) ([]store.MessageInfo, error) {
		return list(ctx, c, "list messages", messageScanner(), sqlChangesFirstPage(c.d, limit), mailboxID, clampModSeq(modseq))
	})
}
