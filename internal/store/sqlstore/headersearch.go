package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/petrelmail/petrel/internal/store"
)

// The searchable header fields per body (migration 0050, body_search):
// written with the body at delivery and APPEND when the Store has an
// indexer, filled in later by the reader (store.HeaderSearch) otherwise.

var _ store.HeaderSearch = (*Store)(nil)

// maxIndexedHeader is how much of a body the store looks at for its
// header block; a longer header is left to the reader's backfill, which
// reads the whole block.
const maxIndexedHeader = 64 << 10

const sqlInsertHeaderFields = `INSERT INTO body_search (body_id, subject, from_addr, to_addr, cc_addr, bcc_addr, message_id)
VALUES (?, ?, ?, ?, ?, ?, ?)`

// headerColumns names the body_search column of each store.HeaderField
// (a fixed list: no name from outside reaches the SQL).
var headerColumns = [store.NumHeaderFields]string{
	store.FieldSubject:   "subject",
	store.FieldFrom:      "from_addr",
	store.FieldTo:        "to_addr",
	store.FieldCc:        "cc_addr",
	store.FieldBcc:       "bcc_addr",
	store.FieldMessageID: "message_id",
}

// SetHeaderIndexer makes deliveries and APPENDs store the searchable
// header fields that fn computes (nil stops it). The app sets it once,
// before serving.
func (s *Store) SetHeaderIndexer(fn store.HeaderIndexer) {
	if fn == nil {
		s.indexer.Store(nil)
		return
	}
	s.indexer.Store(&fn)
}

// headerFieldsOf runs the indexer on the header block of body (nil
// without an indexer, or when no header end is found in the first
// maxIndexedHeader bytes).
func (s *Store) headerFieldsOf(body []byte) *store.HeaderFields {
	fn := s.indexer.Load()
	if fn == nil {
		return nil
	}
	h := headerBlock(body)
	if h == nil {
		return nil
	}
	return (*fn)(h)
}

// headerFieldsOfBlob is headerFieldsOf for a body in a blob file.
func (s *Store) headerFieldsOfBlob(name string) *store.HeaderFields {
	if s.indexer.Load() == nil {
		return nil
	}
	f, err := s.blobs.Open(name)
	if err != nil {
		return nil // the commit reports it
	}
	defer f.Close()
	buf := make([]byte, maxIndexedHeader)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil
	}
	return s.headerFieldsOf(buf[:n])
}

// headerBlock returns b's header block up to and including the empty
// line (RFC 5322 2.1), or all of b when it has no body; nil when the
// header runs past maxIndexedHeader.
func headerBlock(b []byte) []byte {
	limit := min(len(b), maxIndexedHeader)
	if len(b) > 0 && (b[0] == '\n' || bytes.HasPrefix(b, []byte("\r\n"))) {
		return b[:0]
	}
	if i := bytes.Index(b[:limit], []byte("\n\r\n")); i >= 0 {
		j := bytes.Index(b[:limit], []byte("\n\n"))
		if j >= 0 && j < i {
			return b[:j+2]
		}
		return b[:i+3]
	}
	if j := bytes.Index(b[:limit], []byte("\n\n")); j >= 0 {
		return b[:j+2]
	}
	if len(b) <= maxIndexedHeader {
		return b
	}
	return nil
}

// headerArgs are the INSERT arguments of f for body id: NULL for a field
// too long to keep.
func headerArgs(id int64, f *store.HeaderFields) []any {
	args := make([]any, 0, 1+store.NumHeaderFields)
	args = append(args, id)
	for i := range f.Value {
		if f.Long[i] || len(f.Value[i]) > store.MaxHeaderFieldLen {
			args = append(args, nil)
		} else {
			args = append(args, f.Value[i])
		}
	}
	return args
}

// insertHeaderFields stores f for body id inside a delivery transaction.
func insertHeaderFields(ctx context.Context, c conn, id int64, f *store.HeaderFields) error {
	if f == nil {
		return nil
	}
	if _, err := c.exec(ctx, sqlInsertHeaderFields, headerArgs(id, f)...); err != nil {
		return fmt.Errorf("store header fields: %w", mapErr(err))
	}
	return nil
}

// HeaderColumn implements store.HeaderSearch: one query over the
// mailbox's messages joined with their bodies' fields.
func (s *Store) HeaderColumn(ctx context.Context, mailboxID int64, field store.HeaderField, fromUID uint32,
	fn func(uid uint32, bodyID int64, value string, ok, stored bool) error) error {
	if field < 0 || field >= store.NumHeaderFields {
		return fmt.Errorf("sqlstore: header column %d: no such field", field)
	}
	q := `SELECT m.uid, m.body_id, s.body_id IS NOT NULL, s.` + headerColumns[field] + `
FROM message m LEFT JOIN body_search s ON s.body_id = m.body_id
WHERE m.mailbox_id = ? AND m.uid >= ? ORDER BY m.uid`
	rows, err := s.readConn().query(ctx, q, mailboxID, int64(fromUID))
	if err != nil {
		return fmt.Errorf("sqlstore: header column of mailbox %d: %w", mailboxID, mapErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var uid, body int64
		var stored bool
		var v sql.NullString
		if err := rows.Scan(&uid, &body, &stored, &v); err != nil {
			return fmt.Errorf("sqlstore: header column of mailbox %d: %w", mailboxID, err)
		}
		if err := fn(uint32(uid), body, v.String, v.Valid, stored); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlstore: header column of mailbox %d: %w", mailboxID, mapErr(err))
	}
	return nil
}

// PutHeaderFields implements store.HeaderSearch. Bodies that are gone
// are skipped (the INSERT selects from body), existing rows kept.
func (s *Store) PutHeaderFields(ctx context.Context, fields map[int64]*store.HeaderFields) error {
	if len(fields) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(fields))
	for id := range fields {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	const q = `INSERT INTO body_search (body_id, subject, from_addr, to_addr, cc_addr, bcc_addr, message_id)
SELECT id, ?, ?, ?, ?, ?, ? FROM body WHERE id = ?
ON CONFLICT (body_id) DO NOTHING`
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		part := ids[:n]
		ids = ids[n:]
		var err error
		// A body the releaser deletes between the SELECT and the foreign
		// key check fails the insert (PostgreSQL: 23503, ErrNotFound); the
		// next attempt no longer sees it.
		for attempt := 0; attempt < 3; attempt++ {
			err = s.retryTx(ctx, func(c conn) error {
				for _, id := range part {
					args := headerArgs(id, fields[id])
					args = append(args[1:], id)
					if _, err := c.exec(ctx, q, args...); err != nil {
						return mapErr(err)
					}
				}
				return nil
			})
			if !errors.Is(err, store.ErrNotFound) {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("sqlstore: store header fields: %w", err)
		}
	}
	return nil
}
