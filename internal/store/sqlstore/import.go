package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.Importer = (*Store)(nil)

// PrepareImportMailbox implements store.Importer.
func (s *Store) PrepareImportMailbox(ctx context.Context, spec store.ImportMailbox) (*store.Mailbox, error) {
	name, err := checkName(spec.Name)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: import mailbox: %w", err)
	}
	su, err := checkSpecialUse(spec.SpecialUse)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: import mailbox %q: %w", name, err)
	}
	if spec.UIDValidity == 0 {
		return nil, fmt.Errorf("sqlstore: import mailbox %q: UIDVALIDITY 0", name)
	}
	var mb *store.Mailbox
	err = s.retryTx(ctx, func(c conn) error {
		if err := lockUser(ctx, c, spec.User); err != nil {
			return err
		}
		ids, maxUV, err := mailboxIDs(ctx, c, spec.User)
		if err != nil {
			return err
		}
		if _, ok := ids[name]; !ok {
			if err := createWithParents(ctx, c, spec.User, name, su, ids, maxUV); err != nil {
				return err
			}
		}
		cur, err := getMailbox(ctx, c, spec.User, name)
		if err != nil {
			return err
		}
		if cur.UIDValidity != spec.UIDValidity {
			if cur.Messages > 0 {
				return fmt.Errorf("%q has %d messages under UIDVALIDITY %d, the import brings %d: %w",
					name, cur.Messages, cur.UIDValidity, spec.UIDValidity, store.ErrUIDValidityMismatch)
			}
			// A new UIDVALIDITY starts a new UID space: the expunges
			// remembered under the old one no longer mean anything.
			if _, err := c.exec(ctx, `DELETE FROM expunged WHERE mailbox_id = ?`, cur.ID); err != nil {
				return mapErr(err)
			}
			if _, err := c.exec(ctx, `UPDATE mailbox SET uidvalidity = ?, uidnext = 1, expunged_floor = 0 WHERE id = ?`,
				int64(spec.UIDValidity), cur.ID); err != nil {
				return mapErr(err)
			}
		}
		use := cur.SpecialUse
		if su != "" {
			use = su
		}
		_, err = c.exec(ctx, `UPDATE mailbox SET uidnext = CASE WHEN uidnext < ? THEN ? ELSE uidnext END,
  special_use = ? WHERE id = ?`,
			int64(spec.UIDNext), int64(spec.UIDNext), use, cur.ID)
		if err != nil {
			return mapErr(err)
		}
		// Subscriptions are their own list (migration 0055).
		if spec.Subscribed {
			_, err = c.exec(ctx, `INSERT INTO subscription (user_email, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, spec.User, name)
		} else {
			_, err = c.exec(ctx, `DELETE FROM subscription WHERE user_email = ? AND name = ?`, spec.User, name)
		}
		if err != nil {
			return mapErr(err)
		}
		mb, err = getMailbox(ctx, c, spec.User, name)
		c.changed(spec.User)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: import mailbox %q of %q: %w", name, spec.User, err)
	}
	return mb, nil
}

// importPending is one ImportedMessage ready for the transaction.
type importPending struct {
	m       *store.ImportedMessage
	flags   string
	data    []byte
	blob    string
	fields  *store.HeaderFields
	skipped bool
}

// ImportMessages implements store.Importer. Bodies over InlineMax go to
// blob files before the transaction; the rows of the whole batch share
// one commit.
func (s *Store) ImportMessages(ctx context.Context, mailboxID int64, msgs []store.ImportedMessage) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	ps := make([]importPending, len(msgs))
	var spilled []string
	cleanup := func() {
		for _, n := range spilled {
			s.removeBlob(ctx, n)
		}
	}
	for i := range msgs {
		m := &msgs[i]
		if m.UID == 0 {
			cleanup()
			return 0, fmt.Errorf("sqlstore: import: UID 0")
		}
		fl, err := normFlags(m.Flags)
		if err != nil {
			cleanup()
			return 0, fmt.Errorf("sqlstore: import UID %d: %w", m.UID, err)
		}
		p := importPending{m: m, flags: strings.Join(fl, " "), fields: s.headerFieldsOf(m.Body)}
		if int64(len(m.Body)) > s.inline && !s.chunked(int64(len(m.Body))) {
			n, err := s.spill(ctx, m.Body)
			if err != nil {
				cleanup()
				return 0, fmt.Errorf("sqlstore: import UID %d: %w", m.UID, err)
			}
			p.blob = n
			spilled = append(spilled, n)
		} else {
			p.data = m.Body
			if p.data == nil {
				p.data = []byte{}
			}
		}
		ps[i] = p
	}
	var user string
	added := 0
	err := s.retryTx(ctx, func(c conn) error {
		added = 0
		for i := range ps {
			ps[i].skipped = false
		}
		var err error
		if user, err = mailboxOwner(ctx, c, mailboxID); err != nil {
			return err
		}
		if err := lockUser(ctx, c, user); err != nil {
			return err
		}
		boxes, err := lockMailboxes(ctx, c, mailboxID)
		if err != nil {
			return err
		}
		modseq := boxes[mailboxID].highestModSeq
		lo, hi := ps[0].m.UID, ps[0].m.UID
		for _, p := range ps {
			lo, hi = min(lo, p.m.UID), max(hi, p.m.UID)
		}
		have, err := list(ctx, c, "imported UIDs", scanUID,
			`SELECT uid FROM message WHERE mailbox_id = ? AND uid >= ? AND uid <= ?`, mailboxID, int64(lo), int64(hi))
		if err != nil {
			return err
		}
		seen := make(map[uint32]bool, len(have)+len(ps))
		for _, u := range have {
			seen[u] = true
		}
		t := now()
		var size int64
		for i := range ps {
			p := &ps[i]
			if seen[p.m.UID] {
				p.skipped = true
				continue
			}
			seen[p.m.UID] = true // a UID twice in one batch: the first wins
			n := int64(len(p.m.Body))
			src := bodySrc{data: p.data}
			if p.blob != "" {
				src = bodySrc{blob: p.blob}
			}
			bodyID, err := s.insertBody(ctx, c, n, src, t)
			if err != nil {
				return fmt.Errorf("UID %d: store body: %w", p.m.UID, err)
			}
			if err := insertHeaderFields(ctx, c, bodyID, p.fields); err != nil {
				return fmt.Errorf("UID %d: %w", p.m.UID, err)
			}
			date := p.m.InternalDate
			if date.IsZero() {
				date = t
			}
			modseq++
			if _, err := c.exec(ctx, sqlInsertMessage, mailboxID, int64(p.m.UID), modseq, p.flags, c.d.ts(date), n, bodyID, c.d.ts(t)); err != nil {
				return fmt.Errorf("UID %d: %w", p.m.UID, mapErr(err))
			}
			size += n
			added++
		}
		if added == 0 {
			return nil
		}
		if _, err := c.exec(ctx, `UPDATE mailbox SET highestmodseq = ?, message_count = message_count + ?,
  uidnext = CASE WHEN uidnext <= ? THEN ? ELSE uidnext END WHERE id = ?`,
			modseq, added, int64(hi), int64(hi)+1, mailboxID); err != nil {
			return mapErr(err)
		}
		_, err = c.exec(ctx, `UPDATE "user" SET quota_bytes_used = quota_bytes_used + ? WHERE email = ?`, size, user)
		c.changed(user)
		return mapErr(err)
	})
	if err != nil {
		if !errors.Is(err, store.ErrCommitUnknown) {
			cleanup()
		}
		return 0, fmt.Errorf("sqlstore: import into mailbox %d: %w", mailboxID, err)
	}
	// Blobs of skipped messages are not referenced: remove them now.
	for _, p := range ps {
		if p.skipped && p.blob != "" {
			s.removeBlob(ctx, p.blob)
		}
	}
	var pages int64
	for _, p := range ps {
		if !p.skipped && p.blob == "" {
			pages += int64(len(p.data)) / pageSize
		}
	}
	s.ckpt.committed(pages + int64(added)*3)
	return added, nil
}

// MailboxUIDs implements store.Importer.
func (s *Store) MailboxUIDs(ctx context.Context, mailboxID int64) ([]uint32, error) {
	uids, err := list(ctx, s.readConn(), "mailbox UIDs", scanUID,
		`SELECT uid FROM message WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	slices.Sort(uids)
	return uids, nil
}
