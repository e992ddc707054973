package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/petrelmail/petrel/internal/store"
	"github.com/petrelmail/petrel/internal/store/blob"
	"github.com/petrelmail/petrel/internal/store/bucket"
)

// bodyBatchSize bounds the ids of one query (SQLite's default limit of
// host parameters is 32766; PostgreSQL's 65535) and the inline bytes held
// at once (a few MB of typical mail).
const bodyBatchSize = 256

var _ store.BodyBatch = (*Store)(nil)

// ReadBodies reads bodies by id, bodyBatchSize per query on the read
// pool, the same on both dialects. Blob bodies are opened one at a time
// while fn runs; a blob whose file is gone is skipped like a missing id
// (its message was expunged), as OpenBody reports it ErrNotFound.
func (s *Store) ReadBodies(ctx context.Context, ids []int64, fn func(id int64, r io.ReaderAt, size int64) error) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), bodyBatchSize)]
		ids = ids[len(chunk):]
		if err := s.readBodies(ctx, chunk, fn); err != nil {
			return err
		}
	}
	return nil
}

type batchBody struct {
	id   int64
	data []byte
	name sql.NullString
	size int64
}

func (s *Store) readBodies(ctx context.Context, ids []int64, fn func(id int64, r io.ReaderAt, size int64) error) error {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	// Rows are collected first so that fn never runs with a read
	// connection held.
	bodies, err := list(ctx, s.readConn(), "read bodies", func(sc interface{ Scan(...any) error }) (batchBody, error) {
		var b batchBody
		err := sc.Scan(&b.id, &b.data, &b.name, &b.size)
		return b, err
	}, `SELECT id, data, blob_name, size FROM body WHERE id IN (`+placeholders(len(ids))+`)`, args...)
	if err != nil {
		return fmt.Errorf("sqlstore: read bodies: %w", err)
	}
	for _, b := range bodies {
		if b.data == nil && !b.name.Valid {
			if err := fn(b.id, s.openChunks(ctx, b.id, b.size), b.size); err != nil {
				return err
			}
			continue
		}
		if !b.name.Valid {
			if err := fn(b.id, bytes.NewReader(b.data), int64(len(b.data))); err != nil {
				return err
			}
			continue
		}
		if bucket.IsName(b.name.String) {
			r, size, err := s.openBlob(ctx, b.name.String)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("sqlstore: read body %d: %w", b.id, err)
			}
			err = fn(b.id, r, size)
			r.Close()
			if err != nil {
				return err
			}
			continue
		}
		if err := s.withBlob(b.id, b.name.String, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) withBlob(id int64, name string, fn func(id int64, r io.ReaderAt, size int64) error) error {
	f, err := s.blobs.Open(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, blob.ErrBadName) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlstore: read body %d: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sqlstore: read body %d: %w", id, err)
	}
	return fn(id, f, fi.Size())
}
