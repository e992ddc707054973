package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
	"github.com/petrelmail/petrel/internal/store/bucket"
)

// The statements of a delivery, prepared once per connection on SQLite
// (PostgreSQL's driver caches prepared statements itself).
const (
	sqlQuotaAdd = `UPDATE "user" SET quota_bytes_used = quota_bytes_used + ? WHERE email = ?
RETURNING quota_bytes, quota_bytes_used`
	sqlMailboxIDs = `SELECT id, name, uidvalidity FROM mailbox WHERE user_email = ?`
	sqlAllocUIDs  = `UPDATE mailbox SET uidnext = uidnext + ?, message_count = message_count + ?,
  highestmodseq = highestmodseq + ? WHERE id = ? RETURNING uidnext, highestmodseq`
	sqlInsertBody    = `INSERT INTO body (size, data, blob_name, refs, created_at) VALUES (?, ?, ?, 0, ?) RETURNING id`
	sqlInsertMessage = `INSERT INTO message (mailbox_id, uid, modseq, flags, internal_date, size, body_id, save_date)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	sqlInsertQueue = `INSERT INTO queue (message_id, sender, recipient, body_id, attempts, next_attempt, last_error, held, created_at,
dsn_ret, dsn_envid, dsn_notify, dsn_orcpt, require_tls)
VALUES (?, ?, ?, ?, 0, ?, '', ?, ?, ?, ?, ?, ?, ?)`
)

func hotQueries() []string {
	return []string{sqlQuotaAdd, sqlMailboxIDs, sqlAllocUIDs, sqlInsertBody, sqlInsertMessage, sqlInsertQueue, sqlInsertHeaderFields}
}

// allocUIDs reserves n UIDs in mailbox id for n messages the caller
// inserts in the same transaction, counts them in its message_count and
// raises its highestmodseq by modseqs. It returns the first UID and the
// new highestmodseq.
func allocUIDs(ctx context.Context, c conn, id, n, modseqs int64) (first, highest int64, err error) {
	var uidnext int64
	if err := c.queryRow(ctx, sqlAllocUIDs, n, n, modseqs, id).Scan(&uidnext, &highest); err != nil {
		return 0, 0, fmt.Errorf("allocate UIDs in mailbox %d: %w", id, mapErr(err))
	}
	if uidnext-1 > 0xFFFFFFFF {
		return 0, 0, fmt.Errorf("mailbox %d: UIDs exhausted", id) // RFC 9051 2.3.1.1: 32 bits
	}
	return uidnext - n, highest, nil
}

// pending is one NewMessage checked and ready for the transaction.
type pending struct {
	m       *store.NewMessage
	size    int64
	data    []byte              // inline body, or nil
	blob    string              // blob name, or ""
	file    string              // PostgreSQL: spooled blob copied into chunks, or ""
	spilled bool                // CommitMessages wrote the blob itself
	fields  *store.HeaderFields // searchable header fields, nil when not indexed
}

// mbKey names one mailbox of one user.
type mbKey struct{ user, name string }

// mailboxName normalises a delivery target: "" and any case of INBOX are
// INBOX (RFC 3501 5.1: INBOX is case-insensitive), also as the first
// level of a hierarchy (normName).
func mailboxName(n string) string {
	if n == "" {
		return "INBOX"
	}
	return normName(n)
}

// CommitMessages stores msgs in one transaction, so one fsync covers the
// whole group. Per message the body is inserted once; every target user
// gets DefaultMailboxes and the target mailbox if missing, the next UID
// and a new modseq in that mailbox, and its quota_bytes_used raised;
// every Remote recipient gets a queue row due now. If a user's quota
// (quota_bytes > 0) would be exceeded the whole group fails with
// store.ErrQuotaExceeded and nothing is stored.
//
// Inline bodies larger than InlineMax are written to a blob file first.
// A BlobName must name a blob already committed to Blobs(); it is not
// removed when the group fails (the caller owns it, and GC sweeps it).
//
// Lock order (PostgreSQL): user rows in email order, then mailbox rows in
// id order; other writers that touch both must follow it.
func (s *Store) CommitMessages(ctx context.Context, msgs []*store.NewMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	ps, err := s.prepare(ctx, msgs)
	if err == nil {
		// A PostgreSQL deadlock (say with a DeleteDomain locking users in
		// another order) rolls the group back whole, so it can just run
		// again.
		err = s.retryTx(ctx, func(c conn) error {
			for _, m := range msgs {
				for _, tg := range m.Targets {
					c.changed(tg.User)
				}
			}
			return s.commitGroup(ctx, c, ps)
		})
	}
	if err != nil {
		// After a COMMIT whose reply was lost the group may be stored:
		// the blobs stay, and CollectGarbage removes them later if no
		// body row names them.
		if !errors.Is(err, store.ErrCommitUnknown) {
			for _, p := range ps {
				if p.spilled {
					s.removeBlob(ctx, p.blob)
				}
			}
		}
		return fmt.Errorf("sqlstore: commit %d messages: %w", len(msgs), err)
	}
	var pages int64
	for _, p := range ps {
		// The body (when inline), then per copy the message row and
		// its two index entries.
		if p.blob == "" {
			pages += p.size / pageSize
		}
		pages += 3 * int64(len(p.m.Targets)+len(p.m.Remote))
	}
	s.ckpt.committed(pages)
	return nil
}

// prepare validates msgs and moves oversized inline bodies to blob files.
func (s *Store) prepare(ctx context.Context, msgs []*store.NewMessage) ([]pending, error) {
	ps := make([]pending, 0, len(msgs))
	for _, m := range msgs {
		p := pending{m: m, size: m.Size}
		if len(m.Targets) == 0 && len(m.Remote) == 0 {
			return ps, fmt.Errorf("message %s has no recipients", m.ID)
		}
		switch {
		case m.BlobName != "" && m.Body != nil:
			return ps, fmt.Errorf("message %s has both Body and BlobName", m.ID)
		case m.BlobName != "":
			fi, err := s.blobs.Stat(m.BlobName)
			if err != nil {
				return ps, fmt.Errorf("message %s: %w", m.ID, err)
			}
			if s.objs != nil && fi.Size() <= s.inline {
				// The file stays the caller's (BodiesInDatabase).
				b, err := s.readSmallFile(m.BlobName)
				if err != nil {
					return ps, fmt.Errorf("message %s: %w", m.ID, err)
				}
				p.data, p.size = b, int64(len(b))
			} else if s.objs != nil || s.d.name() == FlavorPostgreSQL {
				// Copied into the database or the bucket: the file stays
				// the caller's.
				p.file = m.BlobName
				p.size = fi.Size()
			} else {
				p.blob = m.BlobName
				if p.size <= 0 {
					p.size = fi.Size()
				}
			}
		case int64(len(m.Body)) > s.inline && !s.chunked(int64(len(m.Body))):
			name, err := s.spill(ctx, m.Body)
			if err != nil {
				return ps, fmt.Errorf("message %s: %w", m.ID, err)
			}
			p.blob, p.spilled = name, true
			p.size = int64(len(m.Body))
		default:
			p.data = m.Body
			if p.data == nil {
				p.data = []byte{}
			}
			p.size = int64(len(m.Body))
		}
		if len(m.Targets) > 0 {
			// Outside the transaction: the header is parsed while no
			// lock is held.
			switch {
			case p.file != "":
				p.fields = s.headerFieldsOfBlob(p.file)
			case p.blob != "" && !p.spilled:
				p.fields = s.headerFieldsOfBlob(p.blob)
			case p.data != nil:
				p.fields = s.headerFieldsOf(p.data)
			default:
				p.fields = s.headerFieldsOf(m.Body)
			}
		}
		if p.file != "" && s.objs != nil {
			// Stored before the transaction: the PUT has completed
			// when the row that names the object commits.
			name, err := s.putObjectFromFile(ctx, p.file, p.size)
			if err != nil {
				return ps, fmt.Errorf("message %s: %w", m.ID, err)
			}
			p.file, p.blob, p.spilled = "", name, true
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func (s *Store) spill(ctx context.Context, body []byte) (string, error) {
	if s.objs != nil {
		return s.putObject(ctx, bytes.NewReader(body), int64(len(body)))
	}
	w, err := s.blobs.Create()
	if err != nil {
		return "", err
	}
	defer w.Abort()
	if _, err := w.Write(body); err != nil {
		return "", err
	}
	return w.Commit()
}

// skipDelivered records the DeliveryKeys of ps and returns ps without the
// messages whose key was already recorded: a run whose COMMIT outcome was
// unknown stored them. One statement for the whole group.
//
// Only PostgreSQL needs the keys: there a COMMIT's reply can be lost after
// the server committed. SQLite runs in-process and its commit's result is
// the database's own answer, so it skips the write (a quarter of the
// delivery rate in BenchmarkDeliverParallel on a loaded machine).
func skipDelivered(ctx context.Context, c conn, ps []pending, t time.Time) ([]pending, error) {
	if c.d.name() != FlavorPostgreSQL {
		return ps, nil
	}
	var args []any
	for _, p := range ps {
		if p.m.DeliveryKey != "" {
			args = append(args, p.m.DeliveryKey, c.d.ts(t))
		}
	}
	if len(args) == 0 {
		return ps, nil
	}
	q := `INSERT INTO delivery_key (id, created_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?), ", len(args)/2), ", ") +
		` ON CONFLICT (id) DO NOTHING RETURNING id`
	fresh, err := list(ctx, c, "record delivery keys", scanString, q, args...)
	if err != nil {
		return nil, err
	}
	if len(fresh) == len(args)/2 {
		return ps, nil
	}
	isNew := make(map[string]bool, len(fresh))
	for _, k := range fresh {
		isNew[k] = true
	}
	out := make([]pending, 0, len(fresh))
	for _, p := range ps {
		if p.m.DeliveryKey == "" || isNew[p.m.DeliveryKey] {
			out = append(out, p)
			delete(isNew, p.m.DeliveryKey) // a key twice in one group: once
		}
	}
	return out, nil
}

// skipFetched records the fetched keys of ps (fetch_seen) and returns ps
// without the messages whose key was there already: a poller that died
// after storing them, before it could learn so, fetched them again. The
// copies of one delivery (Sieve's per-user variants) share a key and are
// kept or left out together.
func skipFetched(ctx context.Context, c conn, ps []pending) ([]pending, error) {
	fresh := map[store.FetchedKey]bool{}
	var out []pending // nil until something is left out
	for i, p := range ps {
		keep := true
		if fk := p.m.Fetched; fk != nil {
			isNew, done := fresh[*fk]
			if !done {
				keys, err := list(ctx, c, "record fetched key", scanString,
					`INSERT INTO fetch_seen (fetch_id, key) VALUES (?, ?) ON CONFLICT (fetch_id, key) DO NOTHING RETURNING key`,
					fk.FetchID, fk.Key)
				if err != nil {
					// A foreign key failure (the account was deleted
					// meanwhile) maps to ErrNotFound: nothing written, so
					// the deliverer retries the group's other messages
					// without this one.
					return nil, fmt.Errorf("message %s: %w", p.m.ID, mapErr(err))
				}
				isNew = len(keys) > 0
				fresh[*fk] = isNew
			}
			keep = isNew
		}
		switch {
		case !keep && out == nil:
			out = append(make([]pending, 0, len(ps)), ps[:i]...)
		case keep && out != nil:
			out = append(out, p)
		}
	}
	if out == nil {
		return ps, nil
	}
	return out, nil
}

func (s *Store) commitGroup(ctx context.Context, c conn, ps []pending) error {
	t := now()
	ps, err := skipDelivered(ctx, c, ps, t)
	if err != nil {
		return err
	}
	if ps, err = skipFetched(ctx, c, ps); err != nil {
		return err
	}

	// Quota first: it takes the user row locks, in a fixed order.
	need := map[string]int64{}
	names := map[string]map[string]bool{}
	for _, p := range ps {
		for _, tg := range p.m.Targets {
			need[tg.User] += p.size
			if names[tg.User] == nil {
				names[tg.User] = map[string]bool{}
			}
			names[tg.User][mailboxName(tg.Mailbox)] = true
		}
	}
	users := sortedKeys(need)
	for _, u := range users {
		var quota, used int64
		err := c.queryRow(ctx, sqlQuotaAdd, need[u], u).Scan(&quota, &used)
		if err != nil {
			return fmt.Errorf("user %q: %w", u, mapErr(err))
		}
		if quota > 0 && used > quota {
			return fmt.Errorf("user %q: %d of %d bytes used, %d more: %w",
				u, used-need[u], quota, need[u], &store.QuotaError{User: u})
		}
	}

	// Mailboxes: every target user has the defaults and its targets.
	ids := map[mbKey]int64{}
	for _, u := range users {
		specs := append([]store.MailboxSpec(nil), store.DefaultMailboxes...)
		for _, n := range sortedKeys(names[u]) {
			if !isDefaultMailbox(n) {
				specs = append(specs, store.MailboxSpec{Name: n})
			}
		}
		got, err := ensureMailboxes(ctx, c, u, specs, t)
		if err != nil {
			return err
		}
		for n, id := range got {
			ids[mbKey{u, n}] = id
		}
	}

	// UIDs and modseqs: one UPDATE per mailbox reserves the whole range.
	copies := map[int64]int64{}
	for _, p := range ps {
		for _, tg := range p.m.Targets {
			copies[ids[mbKey{tg.User, mailboxName(tg.Mailbox)}]]++
		}
	}
	type alloc struct{ uid, modseq int64 }
	next := map[int64]*alloc{}
	for _, id := range sortedKeys(copies) {
		n := copies[id]
		first, hms, err := allocUIDs(ctx, c, id, n, n)
		if err != nil {
			return err
		}
		next[id] = &alloc{uid: first, modseq: hms - n + 1}
	}

	for _, p := range ps {
		bodyID, err := s.insertBody(ctx, c, p.size, bodySrc{data: p.data, blob: p.blob, file: p.file}, t)
		if err != nil {
			return fmt.Errorf("message %s: store body: %w", p.m.ID, mapErr(err))
		}
		if err := insertHeaderFields(ctx, c, bodyID, p.fields); err != nil {
			return fmt.Errorf("message %s: %w", p.m.ID, err)
		}
		date := p.m.ReceivedAt
		if date.IsZero() {
			date = t
		}
		for _, tg := range p.m.Targets {
			id := ids[mbKey{tg.User, mailboxName(tg.Mailbox)}]
			a := next[id]
			_, err := c.exec(ctx, sqlInsertMessage, id, a.uid, a.modseq, strings.Join(tg.Flags, " "), c.d.ts(date), p.size, bodyID, c.d.ts(t))
			if err != nil {
				return fmt.Errorf("message %s: deliver to %s: %w", p.m.ID, tg.User, mapErr(err))
			}
			a.uid++
			a.modseq++
		}
		for _, rcpt := range p.m.Remote {
			var ret, envid string
			var rd store.RcptDSN
			if d := p.m.DSN; d != nil {
				ret, envid, rd = d.Ret, d.EnvID, d.Rcpts[rcpt]
			}
			_, err := c.exec(ctx, sqlInsertQueue, p.m.ID, p.m.Sender, rcpt, bodyID, c.d.ts(t), false, c.d.ts(t),
				ret, envid, rd.Notify, rd.ORcpt, p.m.RequireTLS)
			if err != nil {
				return fmt.Errorf("message %s: queue for %s: %w", p.m.ID, rcpt, mapErr(err))
			}
		}
	}
	return nil
}

func isDefaultMailbox(name string) bool {
	for _, d := range store.DefaultMailboxes {
		if d.Name == name {
			return true
		}
	}
	return false
}

func sortedKeys[K string | int64, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// ensureMailboxes creates the specs user lacks and returns the ids of all
// of user's mailboxes by name.
func ensureMailboxes(ctx context.Context, c conn, user string, specs []store.MailboxSpec, t time.Time) (map[string]int64, error) {
	ids, maxUV, err := mailboxIDs(ctx, c, user)
	if err != nil {
		return nil, err
	}
	// A new mailbox's UIDVALIDITY is the time, and above every other of
	// the user's, deleted ones included, so a name re-created later never
	// reuses an old value (RFC 3501 2.3.1.1).
	var uv int64
	added := false
	for _, sp := range specs {
		name := mailboxName(sp.Name)
		if _, ok := ids[name]; ok {
			continue
		}
		if uv == 0 {
			if uv, err = nextUIDValidity(ctx, c, user, t, maxUV); err != nil {
				return nil, err
			}
		}
		_, err := c.exec(ctx, `INSERT INTO mailbox (user_email, name, special_use, uidvalidity, uidnext, highestmodseq, created_at)
VALUES (?, ?, ?, ?, 1, 1, ?) ON CONFLICT (user_email, name) DO NOTHING`,
			user, name, sp.SpecialUse, uv, c.d.ts(t))
		if err != nil {
			return nil, fmt.Errorf("create mailbox %q of %q: %w", name, user, mapErr(err))
		}
		// The mailboxes made for the user (INBOX, Sent, Junk, ...) come
		// subscribed, as Mailu's Dovecot autosubscribes them.
		_, err = c.exec(ctx, `INSERT INTO subscription (user_email, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, user, name)
		if err != nil {
			return nil, fmt.Errorf("subscribe %q of %q: %w", name, user, mapErr(err))
		}
		added = true
	}
	if added {
		if ids, _, err = mailboxIDs(ctx, c, user); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func mailboxIDs(ctx context.Context, c conn, user string) (map[string]int64, int64, error) {
	rows, err := c.query(ctx, sqlMailboxIDs, user)
	if err != nil {
		return nil, 0, fmt.Errorf("mailboxes of %q: %w", user, err)
	}
	defer rows.Close()
	ids := map[string]int64{}
	var maxUV int64
	for rows.Next() {
		var id, uv int64
		var name string
		if err := rows.Scan(&id, &name, &uv); err != nil {
			return nil, 0, fmt.Errorf("mailboxes of %q: %w", user, err)
		}
		ids[name] = id
		maxUV = max(maxUV, uv)
	}
	return ids, maxUV, rows.Err()
}

// EnsureMailboxes creates whichever of specs user does not have yet;
// store.ErrNotFound if the user does not exist.
func (s *Store) EnsureMailboxes(ctx context.Context, user string, specs []store.MailboxSpec) error {
	// Every IMAP and POP3 login calls this: the answer of an earlier
	// login, else a read, answers the usual case (all there) without
	// taking the write lock; the transaction checks again.
	known, gen := s.ensured.has(user, specs)
	if known {
		return nil
	}
	if ids, _, err := mailboxIDs(ctx, s.readConn(), user); err == nil && hasMailboxes(ids, specs) {
		s.ensured.add(user, specs, gen)
		return nil
	}
	err := s.withTx(ctx, func(c conn) error {
		_, err := ensureMailboxes(ctx, c, user, specs, now())
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: ensure mailboxes of %q: %w", user, err)
	}
	s.ensured.add(user, specs, gen)
	return nil
}

func hasMailboxes(ids map[string]int64, specs []store.MailboxSpec) bool {
	for _, sp := range specs {
		if _, ok := ids[mailboxName(sp.Name)]; !ok {
			return false
		}
	}
	return true
}

// ListMailboxes lists user's mailboxes by name, with message counts.
func (s *Store) ListMailboxes(ctx context.Context, user string) ([]store.Mailbox, error) {
	return list(ctx, s.readConn(), "list mailboxes", scanMailbox,
		`SELECT `+mailboxCols+` FROM mailbox m WHERE m.user_email = ? ORDER BY m.name`, user)
}

// ListMessages lists a mailbox's messages in UID order; store.ErrNotFound
// if the mailbox does not exist.
func (s *Store) ListMessages(ctx context.Context, user, mailbox string) ([]store.MessageInfo, error) {
	c := s.readConn()
	var id int64
	err := c.queryRow(ctx, `SELECT id FROM mailbox WHERE user_email = ? AND name = ?`, user, mailboxName(mailbox)).Scan(&id)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: mailbox %q of %q: %w", mailbox, user, mapErr(err))
	}
	return list(ctx, c, "list messages", func(sc interface{ Scan(...any) error }) (store.MessageInfo, error) {
		var m store.MessageInfo
		var uid int64
		var flags string
		err := sc.Scan(&m.MailboxID, &uid, &m.ModSeq, &flags, scanTime(&m.InternalDate), &m.Size, &m.BodyID)
		m.UID = uint32(uid)
		m.Flags = strings.Fields(flags)
		return m, err
	}, `SELECT `+c.d.messageCols()+` FROM message WHERE mailbox_id = ? ORDER BY uid`, id)
}

// inlineBody is an in-database body as a ReadCloser.
type inlineBody struct{ *bytes.Reader }

func (inlineBody) Close() error { return nil }

// OpenBody returns a stored body; store.ErrNotFound if there is none. The
// reader also implements io.ReaderAt and io.Seeker, and must be closed.
func (s *Store) OpenBody(ctx context.Context, bodyID int64) (io.ReadCloser, error) {
	var data []byte
	var name sql.NullString
	var size int64
	err := s.readConn().queryRow(ctx, `SELECT data, blob_name, size FROM body WHERE id = ?`, bodyID).Scan(&data, &name, &size)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open body %d: %w", bodyID, mapErr(err))
	}
	if data == nil && !name.Valid {
		return s.openChunks(ctx, bodyID, size), nil
	}
	if !name.Valid {
		return inlineBody{bytes.NewReader(data)}, nil
	}
	if bucket.IsName(name.String) {
		r, _, err := s.openBlob(ctx, name.String)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: open body %d: %w", bodyID, err)
		}
		return r, nil
	}
	f, err := s.blobs.Open(name.String)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, blob.ErrBadName) {
		return nil, fmt.Errorf("sqlstore: open body %d: %w: %w", bodyID, store.ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open body %d: %w", bodyID, err)
	}
	return f, nil
}

// ListQueue lists every outbound queue entry, soonest first.
func (s *Store) ListQueue(ctx context.Context) ([]store.QueueItem, error) {
	return list(ctx, s.readConn(), "list queue", func(sc interface{ Scan(...any) error }) (store.QueueItem, error) {
		var q store.QueueItem
		err := sc.Scan(&q.ID, &q.MessageID, &q.Sender, &q.Recipient, &q.BodyID, &q.Attempts,
			scanTime(&q.NextAttempt), &q.LastError, &q.Held, scanTime(&q.CreatedAt))
		return q, err
	}, `SELECT id, message_id, sender, recipient, body_id, attempts, next_attempt, last_error, held, created_at
FROM queue ORDER BY next_attempt, id`)
}
