package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/petrelmail/petrel/internal/store"
)

var _ store.Mailboxes = (*Store)(nil)

// maxMailboxName bounds a mailbox name in bytes (Dovecot's limit is
// similar); a longer one is ErrMailboxInvalid.
const maxMailboxName = 1000

// normName makes the INBOX part of a stored name canonical: INBOX is
// case-insensitive (RFC 9051 5.1), also as the first level of a
// hierarchy ("inbox/x" is "INBOX/x"); every other name is case-sensitive.
func normName(name string) string {
	first, rest, sub := strings.Cut(name, "/")
	if !strings.EqualFold(first, "INBOX") || first == "INBOX" {
		return name
	}
	if sub {
		return "INBOX/" + rest
	}
	return "INBOX"
}

// checkName validates a name a mailbox is to get and normalises it. "/"
// is the hierarchy delimiter, so a name may not start or end with it or
// have an empty level; CR, LF, NUL and other controls cannot be sent
// back to a client, and % and * are LIST wildcards (RFC 9051 5.1).
func checkName(name string) (string, error) {
	bad := name == "" || len(name) > maxMailboxName || !utf8.ValidString(name) ||
		strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//")
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '%' || r == '*' {
			bad = true
		}
	}
	if bad {
		return "", fmt.Errorf("%q: %w", name, store.ErrMailboxInvalid)
	}
	return normName(name), nil
}

// parents returns the superior names of name, outermost first
// ("a/b/c" -> "a", "a/b").
func parents(name string) []string {
	var out []string
	for i := range len(name) {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	return out
}

// specialUses are the RFC 6154 attributes CREATE may set (RFC 6154 3).
var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`}

func checkSpecialUse(su string) (string, error) {
	if su == "" {
		return "", nil
	}
	for _, s := range specialUses {
		if strings.EqualFold(s, su) {
			return s, nil
		}
	}
	return "", fmt.Errorf("special use %q: %w", su, store.ErrMailboxInvalid)
}

// mailboxCols selects a store.Mailbox from mailbox m (scanMailbox).
const mailboxCols = `m.id, m.user_email, m.name, m.special_use,
  EXISTS (SELECT 1 FROM subscription s WHERE s.user_email = m.user_email AND s.name = m.name),
  m.uidvalidity, m.uidnext, m.highestmodseq,
  m.message_count, m.recent_uid`

func scanMailbox(sc interface{ Scan(...any) error }) (store.Mailbox, error) {
	var m store.Mailbox
	var uv, un, ru int64
	err := sc.Scan(&m.ID, &m.UserEmail, &m.Name, &m.SpecialUse, &m.Subscribed, &uv, &un, &m.HighestModSeq, &m.Messages, &ru)
	m.UIDValidity, m.UIDNext, m.RecentUID = uint32(uv), uint32(un), uint32(ru)
	return m, err
}

func getMailbox(ctx context.Context, c conn, user, name string) (*store.Mailbox, error) {
	m, err := scanMailbox(c.queryRow(ctx, `SELECT `+mailboxCols+` FROM mailbox m WHERE m.user_email = ? AND m.name = ?`, user, name))
	if err != nil {
		return nil, mapErr(err)
	}
	return &m, nil
}

func getMailboxByID(ctx context.Context, c conn, id int64) (*store.Mailbox, error) {
	m, err := scanMailbox(c.queryRow(ctx, `SELECT `+mailboxCols+` FROM mailbox m WHERE m.id = ?`, id))
	if err != nil {
		return nil, mapErr(err)
	}
	return &m, nil
}

// GetMailbox returns one of user's mailboxes with its message count;
// store.ErrNotFound if there is none.
func (s *Store) GetMailbox(ctx context.Context, user, name string) (*store.Mailbox, error) {
	m, err := getMailbox(ctx, s.readConn(), user, normName(name))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: mailbox %q of %q: %w", name, user, err)
	}
	return m, nil
}

// retryTx runs fn in a write transaction, again (three tries in all)
// after a PostgreSQL deadlock or serialization failure, which rolls the
// whole transaction back. fn must reset whatever it returns through
// captured variables.
func (s *Store) retryTx(ctx context.Context, fn func(c conn) error) error {
	return s.retry(ctx, s.withTx, fn)
}

// retryTxRelaxed is retryTx with withTxRelaxed's commit: for changes to
// mail already stored (flags, expunge, copy and move), which a power
// failure may undo but never half-apply (see withTxRelaxed).
func (s *Store) retryTxRelaxed(ctx context.Context, fn func(c conn) error) error {
	return s.retry(ctx, s.withTxRelaxed, fn)
}

// retry runs fn in transactions begun by tx until it commits, fails for
// good or has been tried three times.
func (s *Store) retry(ctx context.Context, tx func(context.Context, func(c conn) error) error, fn func(c conn) error) error {
	for attempt := 0; ; attempt++ {
		err := tx(ctx, fn)
		if !retryable(err) || attempt == 2 {
			return err
		}
		s.log.Debug("transaction retried", "err", err)
	}
}

// lockUser takes user's row lock (PostgreSQL; SQLite's single writer
// already excludes other writers), the first lock of every transaction
// that changes a user's mailboxes. store.ErrNotFound if there is no user.
func lockUser(ctx context.Context, c conn, user string) error {
	var email string
	err := c.queryRow(ctx, `SELECT email FROM "user" WHERE email = ?`+c.d.forUpdate(), user).Scan(&email)
	if err != nil {
		return fmt.Errorf("user %q: %w", user, mapErr(err))
	}
	return nil
}

// lockedBox is a mailbox row locked in a write transaction.
type lockedBox struct {
	id, uidValidity, highestModSeq int64
	user                           string
}

// lockMailboxes locks the mailbox rows ids in id order (the lock order
// after the user row) and returns them by id; store.ErrNotFound unless
// all of them exist.
func lockMailboxes(ctx context.Context, c conn, ids ...int64) (map[int64]lockedBox, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := c.query(ctx, `SELECT id, user_email, uidvalidity, highestmodseq FROM mailbox WHERE id IN (`+
		placeholders(len(ids))+`) ORDER BY id`+c.d.forUpdate(), args...)
	if err != nil {
		return nil, fmt.Errorf("lock mailboxes: %w", mapErr(err))
	}
	defer rows.Close()
	out := make(map[int64]lockedBox, len(ids))
	for rows.Next() {
		var b lockedBox
		if err := rows.Scan(&b.id, &b.user, &b.uidValidity, &b.highestModSeq); err != nil {
			return nil, fmt.Errorf("lock mailboxes: %w", err)
		}
		out[b.id] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock mailboxes: %w", mapErr(err))
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("mailbox %d: %w", id, store.ErrNotFound)
		}
	}
	return out, nil
}

// mailboxOwner returns the user of mailbox id, read without a lock (the
// owner of a mailbox never changes), so that a transaction can lock the
// user row before the mailbox row.
func mailboxOwner(ctx context.Context, c conn, id int64) (string, error) {
	var user string
	if err := c.queryRow(ctx, `SELECT user_email FROM mailbox WHERE id = ?`, id).Scan(&user); err != nil {
		return "", fmt.Errorf("mailbox %d: %w", id, mapErr(err))
	}
	return user, nil
}

// nextUIDValidity is the UIDVALIDITY for mailboxes created at t: the
// time, but above every current mailbox of user (maxUV) and every deleted
// one (user.last_uidvalidity), so that no name ever gets an old value
// back (RFC 9051 2.3.1.1).
func nextUIDValidity(ctx context.Context, c conn, user string, t time.Time, maxUV int64) (int64, error) {
	var last int64
	err := c.queryRow(ctx, `SELECT last_uidvalidity FROM "user" WHERE email = ?`, user).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w", user, mapErr(err))
	}
	return max(max(t.Unix(), maxUV+1, last+1)&0xFFFFFFFF, 1), nil // nz-number
}

// insertMailboxes creates names (which must not exist) with the given
// special uses, all with one new UIDVALIDITY.
func insertMailboxes(ctx context.Context, c conn, user string, names, uses []string, maxUV int64) error {
	if len(names) == 0 {
		return nil
	}
	t := now()
	uv, err := nextUIDValidity(ctx, c, user, t, maxUV)
	if err != nil {
		return err
	}
	for i, n := range names {
		_, err := c.exec(ctx, `INSERT INTO mailbox (user_email, name, special_use, uidvalidity, uidnext, highestmodseq, created_at)
VALUES (?, ?, ?, ?, 1, 1, ?)`, user, n, uses[i], uv, c.d.ts(t))
		if err != nil {
			return fmt.Errorf("create mailbox %q: %w", n, mapErr(err))
		}
	}
	return nil
}

// createWithParents creates name and whichever of its superiors user
// lacks (RFC 9051 6.3.4, 6.3.6: the server SHOULD create them). existing
// are user's mailboxes.
func createWithParents(ctx context.Context, c conn, user, name, specialUse string, existing map[string]int64, maxUV int64) error {
	var names, uses []string
	for _, p := range parents(name) {
		if _, ok := existing[p]; !ok {
			names, uses = append(names, p), append(uses, "")
		}
	}
	names, uses = append(names, name), append(uses, specialUse)
	return insertMailboxes(ctx, c, user, names, uses, maxUV)
}

// CreateMailbox creates name, and its missing superiors, for user (RFC
// 9051 6.3.4) and returns it. store.ErrMailboxExists if it exists,
// store.ErrMailboxInvalid for a name or special use that is not allowed,
// store.ErrNotFound if the user does not exist.
func (s *Store) CreateMailbox(ctx context.Context, user, name, specialUse string) (*store.Mailbox, error) {
	n, err := checkName(name)
	if err == nil {
		specialUse, err = checkSpecialUse(specialUse)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: create mailbox of %q: %w", user, err)
	}
	var mb *store.Mailbox
	err = s.retryTx(ctx, func(c conn) error {
		if err := lockUser(ctx, c, user); err != nil {
			return err
		}
		ids, maxUV, err := mailboxIDs(ctx, c, user)
		if err != nil {
			return err
		}
		if _, ok := ids[n]; ok {
			return store.ErrMailboxExists
		}
		if err := createWithParents(ctx, c, user, n, specialUse, ids, maxUV); err != nil {
			return err
		}
		mb, err = getMailbox(ctx, c, user, n)
		c.changed(user)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: create mailbox %q of %q: %w", name, user, err)
	}
	return mb, nil
}

// DeleteMailbox deletes one of user's mailboxes with its messages (quota
// released, bodies nothing else uses deleted, expunge records dropped).
// INBOX cannot be deleted (RFC 9051 6.3.4): store.ErrMailboxInvalid. A
// mailbox with inferiors is refused with store.ErrMailboxHasChildren:
// Petrel has no \Noselect mailboxes, and RFC 9051 6.3.4 forbids removing
// the inferiors (Dovecot refuses the same way).
func (s *Store) DeleteMailbox(ctx context.Context, user, name string) error {
	n := normName(name)
	if n == "INBOX" {
		return fmt.Errorf("sqlstore: delete INBOX of %q: %w", user, store.ErrMailboxInvalid)
	}
	var freed bool
	err := s.retryTx(ctx, func(c conn) error {
		if err := lockUser(ctx, c, user); err != nil {
			return err
		}
		ids, _, err := mailboxIDs(ctx, c, user)
		if err != nil {
			return err
		}
		id, ok := ids[n]
		if !ok {
			return store.ErrNotFound
		}
		for other := range ids {
			if strings.HasPrefix(other, n+"/") {
				return store.ErrMailboxHasChildren
			}
		}
		box, err := lockMailboxes(ctx, c, id)
		if err != nil {
			return err
		}
		var size int64
		var count int
		err = c.queryRow(ctx, `SELECT COALESCE(SUM(size), 0), COUNT(*) FROM message WHERE mailbox_id = ?`, id).Scan(&size, &count)
		if err != nil {
			return fmt.Errorf("mailbox size: %w", err)
		}
		if _, err := c.exec(ctx, `DELETE FROM message WHERE mailbox_id = ?`, id); err != nil {
			return fmt.Errorf("delete messages: %w", mapErr(err))
		}
		if _, err := c.exec(ctx, `DELETE FROM mailbox WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete mailbox: %w", mapErr(err))
		}
		uv := box[id].uidValidity
		_, err = c.exec(ctx, `UPDATE "user" SET
  quota_bytes_used = CASE WHEN quota_bytes_used > ? THEN quota_bytes_used - ? ELSE 0 END,
  last_uidvalidity = CASE WHEN last_uidvalidity < ? THEN ? ELSE last_uidvalidity END
WHERE email = ?`, size, size, uv, uv, user)
		if err != nil {
			return fmt.Errorf("release quota: %w", mapErr(err))
		}
		freed = count > 0
		c.changed(user)
		return nil
	})
	s.ensured.forget(user) // after the commit (ensured.go), whatever its outcome
	if err != nil {
		return fmt.Errorf("sqlstore: delete mailbox %q of %q: %w", name, user, err)
	}
	if freed {
		s.releaseNow(ctx)
	}
	return nil
}

// RenameMailbox renames one of user's mailboxes and its inferiors (RFC
// 9051 6.3.6), creating missing superiors of the new name. The mailboxes
// keep their ids, UIDs and UIDVALIDITY. Renaming INBOX instead moves all
// of INBOX's messages to a new mailbox (new UIDs there, expunged from
// INBOX) and leaves INBOX and its inferiors in place.
// store.ErrMailboxExists if the new name (or a renamed inferior's) is
// taken, store.ErrMailboxInvalid for a bad new name or one inside the
// mailbox itself, store.ErrNotFound if from does not exist.
func (s *Store) RenameMailbox(ctx context.Context, user, from, to string) error {
	f := normName(from)
	t, err := checkName(to)
	switch {
	case err != nil:
	case t == "INBOX" || t == f:
		err = store.ErrMailboxExists
	case strings.HasPrefix(t, f+"/"):
		err = fmt.Errorf("%q is inside %q: %w", to, from, store.ErrMailboxInvalid)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: rename mailbox %q of %q: %w", from, user, err)
	}
	err = s.retryTx(ctx, func(c conn) error {
		if err := lockUser(ctx, c, user); err != nil {
			return err
		}
		ids, maxUV, err := mailboxIDs(ctx, c, user)
		if err != nil {
			return err
		}
		if _, ok := ids[f]; !ok {
			return store.ErrNotFound
		}
		if _, ok := ids[t]; ok {
			return store.ErrMailboxExists
		}
		c.changed(user)
		if f == "INBOX" {
			return renameInbox(ctx, c, user, ids, t, maxUV)
		}
		return renameTree(ctx, c, user, ids, f, t, maxUV)
	})
	s.ensured.forget(user) // after the commit (ensured.go), whatever its outcome
	if err != nil {
		return fmt.Errorf("sqlstore: rename mailbox %q of %q to %q: %w", from, user, to, err)
	}
	if f == "INBOX" {
		s.bodies.wake() // INBOX's messages moved: their body_unref rows
	}
	return nil
}

// renameTree renames f and its inferiors to t.
func renameTree(ctx context.Context, c conn, user string, ids map[string]int64, f, t string, maxUV int64) error {
	renamed := map[int64]string{} // id -> new name
	for name, id := range ids {
		if name != f && !strings.HasPrefix(name, f+"/") {
			continue
		}
		nn := t + strings.TrimPrefix(name, f)
		if _, ok := ids[nn]; ok && nn != f && !strings.HasPrefix(nn, f+"/") {
			return fmt.Errorf("%q: %w", nn, store.ErrMailboxExists)
		}
		renamed[id] = nn
	}
	order := sortedKeys(renamed)
	// Lock the rows in id order before changing them.
	if _, err := lockMailboxes(ctx, c, order...); err != nil {
		return err
	}
	// With inferiors, an old and a new name can coincide ("b/a" -> "b"
	// turns "b/a/a" into "b/a"): park every row on a unique name first.
	if len(order) > 1 {
		for _, id := range order {
			if _, err := c.exec(ctx, `UPDATE mailbox SET name = ? WHERE id = ?`, "\x01rename\x01"+strconv.FormatInt(id, 10), id); err != nil {
				return fmt.Errorf("rename: %w", mapErr(err))
			}
		}
	}
	for _, id := range order {
		if _, err := c.exec(ctx, `UPDATE mailbox SET name = ? WHERE id = ?`, renamed[id], id); err != nil {
			return fmt.Errorf("rename to %q: %w", renamed[id], mapErr(err))
		}
	}
	if err := renameSubscriptions(ctx, c, user, f, t); err != nil {
		return err
	}
	// Superiors of the new name that are missing (none of them can be
	// one of the renamed mailboxes: t is not inside f).
	var names, uses []string
	for _, p := range parents(t) {
		if _, ok := ids[p]; !ok {
			names, uses = append(names, p), append(uses, "")
		}
	}
	return insertMailboxes(ctx, c, user, names, uses, maxUV)
}

// renameSubscriptions moves the subscriptions of f and its inferiors to
// their new names, as Dovecot does on RENAME, so that a renamed folder
// stays visible in clients that show subscribed folders only.
func renameSubscriptions(ctx context.Context, c conn, user, f, t string) error {
	var names []string
	rows, err := c.query(ctx, `SELECT name FROM subscription WHERE user_email = ? AND (name = ? OR substr(name, 1, ?) = ?)`,
		user, f, len(f)+1, f+"/")
	if err != nil {
		return fmt.Errorf("subscriptions of %q: %w", f, mapErr(err))
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// All old names go first: a new name can be another's old one
	// ("b/a" -> "b" turns "b/a/a" into "b/a").
	for _, n := range names {
		if _, err := c.exec(ctx, `DELETE FROM subscription WHERE user_email = ? AND name = ?`, user, n); err != nil {
			return fmt.Errorf("unsubscribe %q: %w", n, mapErr(err))
		}
	}
	for _, n := range names {
		nn := t + strings.TrimPrefix(n, f)
		if _, err := c.exec(ctx, `INSERT INTO subscription (user_email, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, user, nn); err != nil {
			return fmt.Errorf("subscribe %q: %w", nn, mapErr(err))
		}
	}
	return nil
}

// renameInbox creates t (and its superiors) and moves every message of
// INBOX there (RFC 9051 6.3.6), in UID order. Quota is unchanged: the
// messages only change mailbox.
func renameInbox(ctx context.Context, c conn, user string, ids map[string]int64, t string, maxUV int64) error {
	if err := createWithParents(ctx, c, user, t, "", ids, maxUV); err != nil {
		return err
	}
	var toID int64
	if err := c.queryRow(ctx, `SELECT id FROM mailbox WHERE user_email = ? AND name = ?`, user, t).Scan(&toID); err != nil {
		return fmt.Errorf("new mailbox %q: %w", t, mapErr(err))
	}
	inbox := ids["INBOX"]
	if _, err := lockMailboxes(ctx, c, inbox, toID); err != nil {
		return err
	}
	msgs, err := listMessages(ctx, c, inbox, 0)
	if err != nil || len(msgs) == 0 {
		return err
	}
	if _, err := insertCopies(ctx, c, msgs, toID); err != nil {
		return err
	}
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	_, err = deleteMessages(ctx, c, user, inbox, uids, false)
	return err
}

// SetSubscribed adds name to user's subscriptions or removes it (RFC 9051
// 6.3.7, 6.3.8). The list is the user's own: a name needs no mailbox, and
// subscribing twice or unsubscribing a name not listed changes nothing.
func (s *Store) SetSubscribed(ctx context.Context, user, name string, subscribed bool) error {
	n := normName(name)
	err := s.withTx(ctx, func(c conn) error {
		c.changed(user) // NOTIFY SubscriptionChange (RFC 5465 5.5)
		if !subscribed {
			_, err := c.exec(ctx, `DELETE FROM subscription WHERE user_email = ? AND name = ?`, user, n)
			return err
		}
		_, err := c.exec(ctx, `INSERT INTO subscription (user_email, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, user, n)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: subscribe %q of %q: %w", name, user, mapErr(err))
	}
	return nil
}

// ClaimRecent moves the mailbox's recent_uid up to upTo and returns where
// it was: the caller's \Recent messages are those from there.
//
// \Recent is advisory (RFC 3501 2.3.2; IMAP4rev2 dropped it), so the
// claim is not worth an fsync: it commits without one (withTxRelaxed), and
// a crash may hand the same messages to one more session as \Recent. A
// mailbox whose recent_uid is already at upTo (no new mail since the last
// SELECT) does not queue for the writer at all, and the sessions of one
// mailbox that see the same new mail at once claim one at a time, so
// that all but the first find it claimed with a read.
func (s *Store) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	claimed := func() bool {
		var seen int64
		err := s.readConn().queryRow(ctx, `SELECT recent_uid FROM mailbox WHERE id = ?`, mailboxID).Scan(&seen)
		return err == nil && seen >= int64(upTo)
	}
	if claimed() {
		return upTo, nil
	}
	mu := &s.claimLocks[uint64(mailboxID)%uint64(len(s.claimLocks))]
	mu.Lock()
	defer mu.Unlock()
	if claimed() { // by the session that held the lock before us
		return upTo, nil
	}
	from := int64(upTo)
	err := s.withTxRelaxed(ctx, func(c conn) error {
		var cur int64
		err := c.queryRow(ctx, `SELECT recent_uid FROM mailbox WHERE id = ?`+c.d.forUpdate(), mailboxID).Scan(&cur)
		if err != nil {
			return mapErr(err)
		}
		if cur >= int64(upTo) {
			return nil
		}
		from = cur
		_, err = c.exec(ctx, `UPDATE mailbox SET recent_uid = ? WHERE id = ?`, int64(upTo), mailboxID)
		return err
	})
	if err != nil {
		return upTo, fmt.Errorf("sqlstore: claim recent of mailbox %d: %w", mailboxID, err)
	}
	return uint32(from), nil
}

// Subscriptions lists user's subscribed names in order, with or without
// a mailbox.
func (s *Store) Subscriptions(ctx context.Context, user string) ([]string, error) {
	return list(ctx, s.readConn(), "list subscriptions", func(sc interface{ Scan(...any) error }) (string, error) {
		var n string
		err := sc.Scan(&n)
		return n, err
	}, `SELECT name FROM subscription WHERE user_email = ? ORDER BY name`, user)
}

// Quota returns user's quota_bytes_used and quota_bytes (0: unlimited);
// store.ErrNotFound if there is no such user.
func (s *Store) Quota(ctx context.Context, user string) (used, limit int64, err error) {
	err = s.readConn().queryRow(ctx, `SELECT quota_bytes_used, quota_bytes FROM "user" WHERE email = ?`, user).Scan(&used, &limit)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlstore: quota of %q: %w", user, mapErr(err))
	}
	return used, limit, nil
}

// readTx runs fn in a read-only transaction on the read pool, so that its
// queries see one snapshot (SQLite WAL: from the first read; PostgreSQL:
// REPEATABLE READ).
func (s *Store) readTx(ctx context.Context, fn func(c conn) error) error {
	opt := &sql.TxOptions{ReadOnly: true}
	if s.d.name() == FlavorPostgreSQL {
		opt.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.read.BeginTx(ctx, opt)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(conn{q: tx, rtx: tx, d: s.d, stmts: s.readStmts, count: &s.queries}); err != nil {
		return err
	}
	return tx.Commit()
}
