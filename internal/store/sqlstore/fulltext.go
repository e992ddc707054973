package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/petrelmail/petrel/internal/store"
)

// The full-text index (migrations 0140 and 0210, docs/search.md): SQLite
// FTS5 (body_fts, contentless, with body_fts_done marking indexed bodies)
// and PostgreSQL posting lists (body_fts_post, fulltext_pg.go; a body_fts
// row is the mark). Both keep body_fts_term, the vocabulary.

var _ store.FullTextIndex = (*Store)(nil)

func (s *Store) pg() bool { return s.d.name() == FlavorPostgreSQL }

// ftsDone is the table whose row says a body is indexed.
func (s *Store) ftsDone() string {
	if s.pg() {
		return "body_fts"
	}
	return "body_fts_done"
}

// ftsWithAttachments narrows "d is the body's index row" to rows that
// hold attachments when the reader wants them.
func ftsWithAttachments(want bool) string {
	if want {
		return " AND d.attachments"
	}
	return ""
}

// Mailboxes whose messages are not indexed (Mailu: fts_autoindex_exclude
// = \Junk, \Trash); SEARCH reads them.
const ftsExcludeJunk, ftsExcludeTrash = `\Junk`, `\Trash`

// PendingFullText implements store.FullTextIndex.
func (s *Store) PendingFullText(ctx context.Context, user string, attachments bool, afterID int64, limit int) ([]int64, error) {
	q := `SELECT b.id FROM body b
WHERE b.id > ? AND NOT EXISTS (SELECT 1 FROM ` + s.ftsDone() + ` d WHERE d.body_id = b.id` + ftsWithAttachments(attachments) + `)
AND EXISTS (SELECT 1 FROM message m JOIN mailbox x ON x.id = m.mailbox_id
    WHERE m.body_id = b.id AND x.special_use <> ? AND x.special_use <> ?`
	args := []any{afterID, ftsExcludeJunk, ftsExcludeTrash}
	if user != "" {
		q += ` AND x.user_email = ?`
		args = append(args, user)
	}
	q += `)
ORDER BY b.id LIMIT ?`
	args = append(args, limit)
	ids, err := list(ctx, s.readConn(), "pending full text", scanInt64, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	return ids, nil
}

// PutFullText implements store.FullTextIndex: one transaction for the
// batch and its new vocabulary.
func (s *Store) PutFullText(ctx context.Context, docs []store.FullTextDoc, vocab []string) error {
	if len(docs) == 0 && len(vocab) == 0 {
		return nil
	}
	var err error
	// A body the releaser deletes between the SELECT and the foreign key
	// check fails the insert (PostgreSQL: 23503); the next attempt skips it.
	for attempt := 0; attempt < 3; attempt++ {
		err = s.retryTx(ctx, func(c conn) error {
			if s.pg() {
				// The vocabulary gets every term with its list.
				return putDocsPG(ctx, c, docs)
			}
			for _, d := range docs {
				if err := s.putDoc(ctx, c, d); err != nil {
					return err
				}
			}
			return s.putVocab(ctx, c, vocab)
		})
		if !errors.Is(err, store.ErrNotFound) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: store full text: %w", err)
	}
	return nil
}

// putDoc writes d into SQLite's FTS5 table.
func (s *Store) putDoc(ctx context.Context, c conn, d store.FullTextDoc) error {
	res, err := c.exec(ctx, `INSERT INTO body_fts_done (body_id, text_bytes, attachments)
SELECT id, ?, ? FROM body WHERE id = ? ON CONFLICT (body_id) DO UPDATE
SET text_bytes = excluded.text_bytes, attachments = excluded.attachments
WHERE excluded.attachments AND NOT body_fts_done.attachments`, d.Bytes, d.Attachments, d.BodyID)
	if err != nil {
		return mapErr(err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // gone, or indexed already
	}
	// A row without attachments is replaced.
	if _, err := c.exec(ctx, `DELETE FROM body_fts WHERE rowid = ?`, d.BodyID); err != nil {
		return mapErr(err)
	}
	_, err = c.exec(ctx, `INSERT INTO body_fts (rowid, doc) VALUES (?, ?)`, d.BodyID, strings.Join(d.Terms, " "))
	return mapErr(err)
}

// putVocab adds new terms to SQLite's vocabulary.
func (s *Store) putVocab(ctx context.Context, c conn, vocab []string) error {
	const chunk = 5000
	for len(vocab) > 0 {
		part := vocab[:min(chunk, len(vocab))]
		vocab = vocab[len(part):]
		b, err := json.Marshal(part)
		if err != nil {
			return err
		}
		_, err = c.exec(ctx, `INSERT INTO body_fts_term (term) SELECT value FROM json_each(?) WHERE true ON CONFLICT (term) DO NOTHING`, string(b))
		if err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// FullTextTerms implements store.FullTextIndex with a scan of the
// vocabulary, which is far smaller than the text.
func (s *Store) FullTextTerms(ctx context.Context, sub string, minLen, limit int) ([]string, error) {
	q := `SELECT term FROM body_fts_term WHERE instr(term, ?) > 0 OR length(CAST(term AS BLOB)) >= ? LIMIT ?`
	if s.pg() {
		q = `SELECT term FROM body_fts_term WHERE strpos(term, ?) > 0 OR octet_length(term) >= ? LIMIT ?`
	}
	terms, err := list(ctx, s.readConn(), "full-text terms", func(sc interface{ Scan(...any) error }) (string, error) {
		var t string
		err := sc.Scan(&t)
		return t, err
	}, q, sub, minLen, limit+1)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	return terms, nil
}

// ftsQueryText writes q in FTS5's query language. Terms hold only
// letters, digits and marks (internal/fts), but are quoted regardless.
func ftsQueryText(q store.FullTextQuery) string {
	var b strings.Builder
	for i, group := range q {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteByte('(')
		for j, t := range group {
			if j > 0 {
				b.WriteString(" OR ")
			}
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(t.Text, `"`, `""`))
			b.WriteByte('"')
			if t.Prefix {
				b.WriteString(" *")
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// FullTextMatch implements store.FullTextIndex: the index first, then
// the mailbox's messages of the bodies it found.
func (s *Store) FullTextMatch(ctx context.Context, mailboxID int64, q store.FullTextQuery) ([]int64, error) {
	if !s.pg() {
		q = asciiTokens(q)
	}
	for _, g := range q {
		if len(g) == 0 {
			return nil, nil // a group no term can satisfy
		}
	}
	if s.pg() {
		return s.matchPostingsPG(ctx, mailboxID, q)
	}
	return s.bodyIDs(ctx, "full-text match", `SELECT m.body_id FROM body_fts CROSS JOIN message m ON m.body_id = body_fts.rowid
WHERE body_fts MATCH ? AND m.mailbox_id = ?`, ftsQueryText(q), mailboxID)
}

// asciiTokens drops the terms FTS5's ascii tokenizer would split (an
// ASCII byte other than a letter or digit): the index cannot hold them,
// since the indexer writes terms separated by spaces. internal/fts never
// makes such terms; this keeps a query from becoming a phrase, which
// detail=none refuses.
func asciiTokens(q store.FullTextQuery) store.FullTextQuery {
	out := make(store.FullTextQuery, len(q))
	for i, g := range q {
		out[i] = make([]store.FullTextTerm, 0, len(g))
		for _, t := range g {
			if !strings.ContainsFunc(t.Text, func(r rune) bool {
				return r < 0x80 && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
			}) && t.Text != "" {
				out[i] = append(out[i], t)
			}
		}
	}
	return out
}

// FullTextUnindexed implements store.FullTextIndex.
func (s *Store) FullTextUnindexed(ctx context.Context, mailboxID int64, attachments bool, fromUID uint32, fn func(uid uint32, bodyID int64)) error {
	rows, err := s.readConn().query(ctx, `SELECT m.uid, m.body_id FROM message m
WHERE m.mailbox_id = ? AND m.uid >= ? AND NOT EXISTS (SELECT 1 FROM `+s.ftsDone()+` d WHERE d.body_id = m.body_id`+
		ftsWithAttachments(attachments)+`) ORDER BY m.uid`, mailboxID, int64(fromUID))
	if err != nil {
		return fmt.Errorf("sqlstore: full-text unindexed: %w", mapErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var uid, body int64
		if err := rows.Scan(&uid, &body); err != nil {
			return fmt.Errorf("sqlstore: full-text unindexed: %w", err)
		}
		fn(uint32(uid), body)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlstore: full-text unindexed: %w", mapErr(err))
	}
	return nil
}

// FullTextEpoch implements store.FullTextIndex.
func (s *Store) FullTextEpoch(ctx context.Context) (int64, error) {
	var e int64
	if err := s.readConn().queryRow(ctx, `SELECT epoch FROM body_fts_epoch WHERE id = 1`).Scan(&e); err != nil {
		return 0, fmt.Errorf("sqlstore: full-text epoch: %w", mapErr(err))
	}
	return e, nil
}

func (s *Store) bodyIDs(ctx context.Context, what, q string, args ...any) ([]int64, error) {
	ids, err := list(ctx, s.readConn(), what, scanInt64, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	return ids, nil
}

// DropFullText implements store.FullTextIndex.
func (s *Store) DropFullText(ctx context.Context, user string) (int64, error) {
	var n int64
	err := s.retryTx(ctx, func(c conn) error {
		n = 0
		of := ""
		var args []any
		if user != "" {
			of = ` WHERE body_id IN (SELECT m.body_id FROM message m JOIN mailbox x ON x.id = m.mailbox_id WHERE x.user_email = ?)`
			args = append(args, user)
		}
		if s.pg() && user == "" {
			// Before the epoch's row lock, which a batch takes after it.
			if err := lockPostings(ctx, c); err != nil {
				return err
			}
		}
		// The epoch first: a reader that sees the rows gone sees it changed.
		if _, err := c.exec(ctx, `UPDATE body_fts_epoch SET epoch = epoch + 1 WHERE id = 1`); err != nil {
			return mapErr(err)
		}
		res, err := c.exec(ctx, `DELETE FROM `+s.ftsDone()+of, args...)
		if err != nil {
			return mapErr(err)
		}
		n, _ = res.RowsAffected()
		if s.pg() {
			// A user's lists keep their ids until CompactFullText; readers
			// skip bodies without a body_fts row.
			if user != "" {
				return nil
			}
			_, err = c.exec(ctx, `DELETE FROM body_fts_post`)
			if err == nil {
				// The vocabulary holds the lists' heads; its terms stay.
				_, err = c.exec(ctx, `UPDATE body_fts_term SET ids = '', last_id = 0 WHERE last_id <> 0`)
			}
			if err == nil {
				_, err = c.exec(ctx, `UPDATE body_fts_epoch SET posted = 0 WHERE id = 1`)
			}
			return mapErr(err)
		}
		if user == "" {
			_, err = c.exec(ctx, `INSERT INTO body_fts (body_fts) VALUES ('delete-all')`)
		} else {
			_, err = c.exec(ctx, `DELETE FROM body_fts WHERE rowid IN (SELECT m.body_id FROM message m JOIN mailbox x ON x.id = m.mailbox_id WHERE x.user_email = ?)`, user)
		}
		return mapErr(err)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: drop full text: %w", err)
	}
	return n, nil
}

// FullTextStatus implements store.FullTextIndex.
func (s *Store) FullTextStatus(ctx context.Context) (store.FullTextStatus, error) {
	var st store.FullTextStatus
	c := s.readConn()
	done := s.ftsDone()
	err := c.queryRow(ctx, `SELECT count(*), coalesce(sum(text_bytes), 0) FROM `+done).Scan(&st.Indexed, &st.TextBytes)
	if err != nil {
		return st, fmt.Errorf("sqlstore: full-text status: %w", mapErr(err))
	}
	err = c.queryRow(ctx, `SELECT
  coalesce(sum(CASE WHEN EXISTS (SELECT 1 FROM message m JOIN mailbox x ON x.id = m.mailbox_id
      WHERE m.body_id = b.id AND x.special_use <> ? AND x.special_use <> ?) THEN 1 ELSE 0 END), 0),
  count(*)
FROM body b WHERE NOT EXISTS (SELECT 1 FROM `+done+` d WHERE d.body_id = b.id)
AND EXISTS (SELECT 1 FROM message m WHERE m.body_id = b.id)`, ftsExcludeJunk, ftsExcludeTrash).Scan(&st.Pending, &st.Excluded)
	if err != nil {
		return st, fmt.Errorf("sqlstore: full-text status: %w", mapErr(err))
	}
	st.Excluded -= st.Pending
	var size sql.NullInt64
	if s.pg() {
		err = c.queryRow(ctx, `SELECT pg_total_relation_size('body_fts') + pg_total_relation_size('body_fts_post') + pg_total_relation_size('body_fts_term')`).Scan(&size)
	} else {
		// dbstat may be missing from a build: then the size is unknown.
		err = c.queryRow(ctx, `SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'body_fts%'`).Scan(&size)
	}
	if err == nil {
		st.IndexBytes = size.Int64
	}
	return st, nil
}
