package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// AppendMessage stores a message in one of a.User's mailboxes (RFC 9051
// 6.3.12) in one transaction: quota first (store.ErrQuotaExceeded, and
// nothing is stored), then the next UID and a new modseq, as delivery
// does. Bodies over InlineMax go to a blob file. It returns the UID and
// the mailbox's UIDVALIDITY (RFC 4315 APPENDUID). store.ErrNotFound if
// the user or the mailbox does not exist (IMAP answers [TRYCREATE]).
//
// Lock order: the user row (quota), then the mailbox row.
func (s *Store) AppendMessage(ctx context.Context, a *store.NewAppend) (uid, uidValidity uint32, err error) {
	flags, err := normFlags(a.Flags)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlstore: append to %q of %q: %w", a.Mailbox, a.User, err)
	}
	name := normName(a.Mailbox)
	size := int64(len(a.Body))
	src := bodySrc{data: a.Body}
	var blobName any
	if size > s.inline && !s.chunked(size) {
		n, err := s.spill(ctx, a.Body)
		if err != nil {
			return 0, 0, fmt.Errorf("sqlstore: append to %q of %q: %w", a.Mailbox, a.User, err)
		}
		src, blobName = bodySrc{blob: n}, n
	}
	date := a.InternalDate
	if date.IsZero() {
		date = now()
	}
	fields := s.headerFieldsOf(a.Body)
	// On PostgreSQL a COMMIT's reply can be lost after the server
	// committed. The append then records a key with its UID in the same
	// transaction, and a re-run takes the key first (waiting for a first
	// run still in flight): a key already there means the message is
	// stored, and where. SQLite's commit errors are the database's own
	// answer, so it needs no key (and saves the write).
	useKey := s.d.name() == FlavorPostgreSQL
	key := ""
	if useKey {
		key = store.NewDeliveryKey()
	}
	rerun, done := false, false
	var u, uv, bid int64
	fn := func(c conn) error {
		done = false
		t := now()
		if rerun {
			res, err := c.exec(ctx, `INSERT INTO delivery_key (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, key, c.d.ts(t))
			if err != nil {
				return fmt.Errorf("delivery key: %w", mapErr(err))
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				// The body id is 0 if the message was expunged since.
				err := c.queryRow(ctx, `SELECT k.uid, m.uidvalidity, COALESCE(msg.body_id, 0) FROM delivery_key k
JOIN mailbox m ON m.id = k.mailbox_id LEFT JOIN message msg ON msg.mailbox_id = k.mailbox_id AND msg.uid = k.uid
WHERE k.id = ?`, key).Scan(&u, &uv, &bid)
				if err != nil {
					return fmt.Errorf("delivery key: %w", mapErr(err))
				}
				done = true // the first run stored it
				return nil
			}
		}
		var quota, used int64
		if err := c.queryRow(ctx, sqlQuotaAdd, size, a.User).Scan(&quota, &used); err != nil {
			return fmt.Errorf("user: %w", mapErr(err))
		}
		if quota > 0 && used > quota {
			return fmt.Errorf("%d of %d bytes used, %d more: %w", used-size, quota, size, store.ErrQuotaExceeded)
		}
		var id int64
		err := c.queryRow(ctx, `SELECT id, uidvalidity FROM mailbox WHERE user_email = ? AND name = ?`, a.User, name).Scan(&id, &uv)
		if err != nil {
			return fmt.Errorf("mailbox: %w", mapErr(err))
		}
		var modseq int64
		u, modseq, err = allocUIDs(ctx, c, id, 1, 1)
		if err != nil {
			return err
		}
		bodyID, err := s.insertBody(ctx, c, size, src, t)
		if err != nil {
			return fmt.Errorf("store body: %w", err)
		}
		if err := insertHeaderFields(ctx, c, bodyID, fields); err != nil {
			return err
		}
		args := []any{id, u, modseq, strings.Join(flags, " "), c.d.ts(date), size, bodyID, c.d.ts(t)}
		q := sqlInsertMessage
		switch {
		case useKey && !rerun:
			// One round trip for the message and its key.
			q = `WITH k AS (INSERT INTO delivery_key (id, mailbox_id, uid, created_at) VALUES (?, ?, ?, ?)) ` + sqlInsertMessage
			args = append([]any{key, id, u, c.d.ts(t)}, args...)
		case useKey:
			if _, err := c.exec(ctx, `UPDATE delivery_key SET mailbox_id = ?, uid = ? WHERE id = ?`, id, u, key); err != nil {
				return fmt.Errorf("delivery key: %w", mapErr(err))
			}
		}
		if _, err = c.exec(ctx, q, args...); err != nil {
			return fmt.Errorf("store message: %w", mapErr(err))
		}
		bid = bodyID
		return nil
	}
	run := fn
	fn = func(c conn) error {
		c.changed(a.User) // a rerun that finds the message stored still wakes
		return run(c)
	}
	err = s.retryTx(ctx, fn)
	unknown := errors.Is(err, store.ErrCommitUnknown)
	for i := 0; useKey && i < 3 && errors.Is(err, store.ErrCommitUnknown); i++ {
		s.log.Warn("append: commit outcome unknown, running again", "user", a.User, "err", err)
		rerun = true
		time.Sleep(time.Duration(i) * 200 * time.Millisecond)
		err = s.retryTx(ctx, fn)
	}
	if err != nil {
		// After a COMMIT whose reply was lost the message may be stored:
		// its body stays, and CollectGarbage removes it later if no body
		// row names it.
		if n, ok := blobName.(string); ok && !unknown {
			s.removeBlob(ctx, n)
		}
		return 0, 0, fmt.Errorf("sqlstore: append to %q of %q: %w", a.Mailbox, a.User, err)
	}
	if done {
		s.log.Info("append: stored by the run whose commit outcome was unknown", "user", a.User, "uid", u)
	}
	a.BodyID = bid
	return uint32(u), uint32(uv), nil
}

// ListMessagesByID lists the messages of mailbox id in UID order;
// store.ErrNotFound if the mailbox does not exist.
func (s *Store) ListMessagesByID(ctx context.Context, mailboxID int64) ([]store.MessageInfo, error) {
	c := s.readConn()
	l, err := listMessages(ctx, c, mailboxID, 0)
	if err == nil && len(l) == 0 {
		_, err = mailboxOwner(ctx, c, mailboxID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list messages of mailbox %d: %w", mailboxID, err)
	}
	return l, nil
}

// EachMessageByID is ListMessagesByID without the list: fn gets each
// message of mailbox id in UID order (m is valid only during the call),
// so that a caller keeping its own compact form of a large mailbox does
// not hold a second, larger copy (store.MessageStreamer).
func (s *Store) EachMessageByID(ctx context.Context, mailboxID int64, fn func(m *store.MessageInfo)) error {
	c := s.readConn()
	rows, err := c.query(ctx, `SELECT `+c.d.messageCols()+` FROM message WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return fmt.Errorf("sqlstore: list messages of mailbox %d: %w", mailboxID, mapErr(err))
	}
	defer rows.Close()
	scan := messageScanner()
	n := 0
	for rows.Next() {
		m, err := scan(rows)
		if err != nil {
			return fmt.Errorf("sqlstore: list messages of mailbox %d: %w", mailboxID, err)
		}
		fn(&m)
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlstore: list messages of mailbox %d: %w", mailboxID, mapErr(err))
	}
	if n == 0 {
		if _, err := mailboxOwner(ctx, c, mailboxID); err != nil {
			return fmt.Errorf("sqlstore: list messages of mailbox %d: %w", mailboxID, err)
		}
	}
	return nil
}

// insertCopies adds msgs (in UID order) to mailbox toID with the next
// UIDs and one new modseq, sharing their bodies, and returns the new
// UIDs. The caller holds the mailbox's lock and settles the quota.
func insertCopies(ctx context.Context, c conn, msgs []store.MessageInfo, toID int64) ([]uint32, error) {
	n := int64(len(msgs))
	uid, modseq, err := allocUIDs(ctx, c, toID, n, 1)
	if err != nil {
		return nil, err
	}
	dst := make([]uint32, len(msgs))
	saved := c.d.ts(now()) // RFC 8514: a copy or move is saved anew
	for i, m := range msgs {
		_, err := c.exec(ctx, sqlInsertMessage, toID, uid, modseq, strings.Join(m.Flags, " "),
			c.d.ts(m.InternalDate), m.Size, m.BodyID, saved)
		if err != nil {
			return nil, fmt.Errorf("copy message %d to mailbox %d: %w", m.UID, toID, mapErr(err))
		}
		dst[i] = uint32(uid)
		uid++
	}
	return dst, nil
}

// CopyMessages copies the messages uids of mailbox fromID to mailbox
// toID of the same user in one transaction (RFC 9051 6.4.7), in UID
// order: flags and internal date are kept, the copies share the stored
// body, get the next UIDs of toID and one new modseq. A copy is charged
// to the quota (store.ErrQuotaExceeded, and nothing is copied). With move
// (RFC 6851) the sources are expunged in the same transaction, recorded
// for QRESYNC, and the quota is unchanged. UIDs not in fromID are
// skipped. It returns the source UIDs found, the new UIDs in the same
// order and toID's UIDVALIDITY (RFC 4315 COPYUID). store.ErrNotFound if
// a mailbox does not exist or the two belong to different users.
//
// Lock order: the user row, then both mailbox rows in id order. The
// commit is relaxed (withTxRelaxed): the bodies are already durable.
func (s *Store) CopyMessages(ctx context.Context, fromID int64, uids []uint32, toID int64, move bool) (src, dst []uint32, uidValidity uint32, err error) {
	uids = sortedUnique(uids)
	var user string
	err = s.retryTxRelaxed(ctx, func(c conn) error {
		src, dst = nil, nil
		var err error
		if user, err = mailboxOwner(ctx, c, fromID); err != nil {
			return err
		}
		if err := lockUser(ctx, c, user); err != nil {
			return err
		}
		boxes, err := lockMailboxes(ctx, c, fromID, toID)
		if err != nil {
			return err
		}
		if boxes[toID].user != user {
			return fmt.Errorf("mailbox %d is not %q's: %w", toID, user, store.ErrNotFound)
		}
		uidValidity = uint32(boxes[toID].uidValidity)
		msgs, err := messagesByUID(ctx, c, fromID, uids)
		if err != nil || len(msgs) == 0 {
			return err
		}
		if !move {
			var need, quota, used int64
			for _, m := range msgs {
				need += m.Size
			}
			if err := c.queryRow(ctx, sqlQuotaAdd, need, user).Scan(&quota, &used); err != nil {
				return fmt.Errorf("user: %w", mapErr(err))
			}
			if quota > 0 && used > quota {
				return fmt.Errorf("%d of %d bytes used, %d more: %w", used-need, quota, need, store.ErrQuotaExceeded)
			}
		}
		if dst, err = insertCopies(ctx, c, msgs, toID); err != nil {
			return err
		}
		src = make([]uint32, len(msgs))
		for i, m := range msgs {
			src[i] = m.UID
		}
		if move {
			_, err = deleteMessages(ctx, c, user, fromID, src, false)
		}
		c.changed(user)
		return err
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("sqlstore: copy from mailbox %d to %d: %w", fromID, toID, err)
	}
	if len(src) > 0 {
		if move {
			s.bodies.wake() // the sources' body_unref rows
		}
	}
	return src, dst, uidValidity, nil
}

// SaveDates reads save_date for UIDs minUID..maxUID of the mailbox; rows
// without one (saved before migration 0105) are left out.
func (s *Store) SaveDates(ctx context.Context, mailboxID int64, minUID, maxUID uint32) (map[uint32]time.Time, error) {
	rows, err := s.readConn().query(ctx, `SELECT uid, save_date FROM message
WHERE mailbox_id = ? AND uid >= ? AND uid <= ? AND save_date IS NOT NULL`, mailboxID, int64(minUID), int64(maxUID))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: save dates of mailbox %d: %w", mailboxID, mapErr(err))
	}
	defer rows.Close()
	out := map[uint32]time.Time{}
	for rows.Next() {
		var uid int64
		var t time.Time
		if err := rows.Scan(&uid, scanTime(&t)); err != nil {
			return nil, fmt.Errorf("sqlstore: save dates of mailbox %d: %w", mailboxID, err)
		}
		out[uint32(uid)] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: save dates of mailbox %d: %w", mailboxID, mapErr(err))
	}
	return out, nil
}
