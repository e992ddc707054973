package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// AppendMessages stores msgs in one of user's mailboxes in a single
// transaction (RFC 3502 MULTIAPPEND: all or none): quota for their sum,
// consecutive UIDs and one modseq. It returns the UIDs in the order of
// msgs and the mailbox's UIDVALIDITY; each msgs[i].BodyID is set.
// store.ErrNotFound if the user or mailbox does not exist. AppendMessage
// stays the one-message path: it allocates less.
func (s *Store) AppendMessages(ctx context.Context, user, mailbox string, msgs []*store.NewAppend) (uids []uint32, uidValidity uint32, err error) {
	fail := func(err error) ([]uint32, uint32, error) {
		return nil, 0, fmt.Errorf("sqlstore: append %d messages to %q of %q: %w", len(msgs), mailbox, user, err)
	}
	if len(msgs) == 0 {
		return fail(errors.New("no messages"))
	}
	type prepared struct {
		flags  string
		date   time.Time
		src    bodySrc
		size   int64
		fields *store.HeaderFields
	}
	ps := make([]prepared, len(msgs))
	var spilled []string
	removeSpilled := func() {
		for _, n := range spilled {
			s.removeBlob(ctx, n)
		}
	}
	var total int64
	for i, a := range msgs {
		flags, err := normFlags(a.Flags)
		if err != nil {
			removeSpilled()
			return fail(err)
		}
		p := prepared{flags: strings.Join(flags, " "), date: a.InternalDate, size: int64(len(a.Body)),
			src: bodySrc{data: a.Body}, fields: s.headerFieldsOf(a.Body)}
		if p.size > s.inline && !s.chunked(p.size) {
			n, err := s.spill(ctx, a.Body)
			if err != nil {
				removeSpilled()
				return fail(err)
			}
			p.src = bodySrc{blob: n}
			spilled = append(spilled, n)
		}
		if p.date.IsZero() {
			p.date = now()
		}
		total += p.size
		ps[i] = p
	}
	name := normName(mailbox)
	n := int64(len(msgs))
	// As AppendMessage: on PostgreSQL a key (with the first UID) makes a
	// re-run after a lost COMMIT reply find the stored messages.
	useKey := s.d.name() == FlavorPostgreSQL
	key := ""
	if useKey {
		key = store.NewDeliveryKey()
	}
	rerun := false
	var first, uv int64
	bodyIDs := make([]int64, len(msgs))
	fn := func(c conn) error {
		c.changed(user)
		t := now()
		if rerun {
			res, err := c.exec(ctx, `INSERT INTO delivery_key (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, key, c.d.ts(t))
			if err != nil {
				return fmt.Errorf("delivery key: %w", mapErr(err))
			}
			if k, err := res.RowsAffected(); err != nil || k == 0 {
				var mid int64
				err := c.queryRow(ctx, `SELECT k.uid, k.mailbox_id, m.uidvalidity FROM delivery_key k
JOIN mailbox m ON m.id = k.mailbox_id WHERE k.id = ?`, key).Scan(&first, &mid, &uv)
				if err != nil {
					return fmt.Errorf("delivery key: %w", mapErr(err))
				}
				for i := range bodyIDs {
					// 0 if the message was expunged since.
					bodyIDs[i] = 0
					_ = c.queryRow(ctx, `SELECT body_id FROM message WHERE mailbox_id = ? AND uid = ?`, mid, first+int64(i)).Scan(&bodyIDs[i])
				}
				return nil
			}
		}
		var quota, used int64
		if err := c.queryRow(ctx, sqlQuotaAdd, total, user).Scan(&quota, &used); err != nil {
			return fmt.Errorf("user: %w", mapErr(err))
		}
		if quota > 0 && used > quota {
			return fmt.Errorf("%d of %d bytes used, %d more: %w", used-total, quota, total, store.ErrQuotaExceeded)
		}
		var id int64
		err := c.queryRow(ctx, `SELECT id, uidvalidity FROM mailbox WHERE user_email = ? AND name = ?`, user, name).Scan(&id, &uv)
		if err != nil {
			return fmt.Errorf("mailbox: %w", mapErr(err))
		}
		var modseq int64
		first, modseq, err = allocUIDs(ctx, c, id, n, 1)
		if err != nil {
			return err
		}
		if useKey {
			if rerun {
				_, err = c.exec(ctx, `UPDATE delivery_key SET mailbox_id = ?, uid = ? WHERE id = ?`, id, first, key)
			} else {
				_, err = c.exec(ctx, `INSERT INTO delivery_key (id, mailbox_id, uid, created_at) VALUES (?, ?, ?, ?)`, key, id, first, c.d.ts(t))
			}
			if err != nil {
				return fmt.Errorf("delivery key: %w", mapErr(err))
			}
		}
		for i, p := range ps {
			bodyID, err := s.insertBody(ctx, c, p.size, p.src, t)
			if err != nil {
				return fmt.Errorf("store body: %w", err)
			}
			if err := insertHeaderFields(ctx, c, bodyID, p.fields); err != nil {
				return err
			}
			if _, err := c.exec(ctx, sqlInsertMessage, id, first+int64(i), modseq, p.flags, c.d.ts(p.date), p.size, bodyID, c.d.ts(t)); err != nil {
				return fmt.Errorf("store message: %w", mapErr(err))
			}
			bodyIDs[i] = bodyID
		}
		return nil
	}
	err = s.retryTx(ctx, fn)
	unknown := errors.Is(err, store.ErrCommitUnknown)
	for i := 0; useKey && i < 3 && errors.Is(err, store.ErrCommitUnknown); i++ {
		s.log.Warn("multiappend: commit outcome unknown, running again", "user", user, "err", err)
		rerun = true
		time.Sleep(time.Duration(i) * 200 * time.Millisecond)
		err = s.retryTx(ctx, fn)
	}
	if err != nil {
		// After a lost COMMIT reply the bodies may be stored; garbage
		// collection removes them later if no body row names them.
		if !unknown {
			removeSpilled()
		}
		return fail(err)
	}
	uids = make([]uint32, len(msgs))
	for i, a := range msgs {
		uids[i] = uint32(first + int64(i))
		a.BodyID = bodyIDs[i]
	}
	return uids, uint32(uv), nil
}

// MessageByUID returns the message with uid in mailbox id;
// store.ErrNotFound if there is none (RFC 4469 CATENATE's URLs name
// one message).
func (s *Store) MessageByUID(ctx context.Context, mailboxID int64, uid uint32) (*store.MessageInfo, error) {
	m, err := scanMessage(s.readConn().queryRow(ctx, `SELECT `+s.d.messageCols()+` FROM message WHERE mailbox_id = ? AND uid = ?`, mailboxID, uid))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: message %d of mailbox %d: %w", uid, mailboxID, mapErr(err))
	}
	return &m, nil
}
