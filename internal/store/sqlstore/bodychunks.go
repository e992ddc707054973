package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/petrelmail/petrel/internal/store"
)

// chunkSize is the size of one body_chunk row: large enough that a 5 MiB
// message is 20 rows, small enough that a reader holds little and that
// PostgreSQL keeps each value well under its 1 GB field limit.
const chunkSize = 256 << 10

// bodySrc is what one body row is made from: exactly one of data (in
// memory), blob (a committed blob file the row names; SQLite) and file (a
// spooled blob file whose bytes are copied into body_chunk rows;
// PostgreSQL, the file stays its owner's).
type bodySrc struct {
	data []byte
	blob string
	file string
}

// chunked reports whether bodies of size go into body_chunk rows: on
// PostgreSQL every body over InlineMax, so that every node reads it.
func (s *Store) chunked(size int64) bool {
	return s.objs == nil && s.d.name() == FlavorPostgreSQL && size > s.inline
}

// insertBody inserts a body row from src and returns its id. A chunked
// body is streamed into body_chunk rows chunkSize at a time within the
// caller's transaction: its COMMIT is the durability point, as the blob
// file's fsync is on SQLite.
func (s *Store) insertBody(ctx context.Context, c conn, size int64, src bodySrc, t time.Time) (int64, error) {
	var id int64
	if src.file == "" && !s.chunked(int64(len(src.data))) {
		var data, name any
		if src.blob != "" {
			name = src.blob
		} else {
			data = src.data
			if src.data == nil {
				data = []byte{}
			}
		}
		err := c.queryRow(ctx, sqlInsertBody, size, data, name, c.d.ts(t)).Scan(&id)
		return id, mapErr(err)
	}
	if err := c.queryRow(ctx, sqlInsertBody, size, nil, nil, c.d.ts(t)).Scan(&id); err != nil {
		return 0, mapErr(err)
	}
	var err error
	if src.file != "" {
		err = s.insertChunksFromFile(ctx, c, id, size, src.file)
	} else {
		err = insertChunks(ctx, c, id, src.data)
	}
	return id, err
}

const sqlInsertChunk = `INSERT INTO body_chunk (body_id, off, data) VALUES (?, ?, ?)`

func insertChunks(ctx context.Context, c conn, id int64, data []byte) error {
	for off := 0; off < len(data); off += chunkSize {
		end := min(off+chunkSize, len(data))
		if _, err := c.exec(ctx, sqlInsertChunk, id, off, data[off:end]); err != nil {
			return fmt.Errorf("store body chunk: %w", mapErr(err))
		}
	}
	return nil
}

// insertChunksFromFile copies a spooled blob file into chunks with one
// buffer, so a large message never sits in memory whole.
func (s *Store) insertChunksFromFile(ctx context.Context, c conn, id, size int64, name string) error {
	f, err := s.blobs.Open(name)
	if err != nil {
		return fmt.Errorf("store body: %w", err)
	}
	defer f.Close()
	buf := make([]byte, chunkSize)
	var off int64
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if _, err := c.exec(ctx, sqlInsertChunk, id, off, buf[:n]); err != nil {
				return fmt.Errorf("store body chunk: %w", mapErr(err))
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("store body: %w", err)
		}
	}
	if off != size {
		return fmt.Errorf("store body: blob %s has %d bytes, want %d", name, off, size)
	}
	return nil
}

// chunkReader reads a chunked body one chunk per query on the read pool,
// keeping the last chunk for the sequential reads IMAP and the queue do.
// It is an io.ReadCloser, io.ReaderAt and io.Seeker like a blob file.
type chunkReader struct {
	s    *Store
	ctx  context.Context
	id   int64
	size int64

	mu   sync.Mutex
	pos  int64  // for Read and Seek
	off  int64  // offset of buf
	buf  []byte // the chunk last read
	have bool
}

func (s *Store) openChunks(ctx context.Context, id, size int64) *chunkReader {
	// The body outlives the call that opened it (an IMAP FETCH streams
	// it later), so only the context's values are kept, not its end.
	return &chunkReader{s: s, ctx: context.WithoutCancel(ctx), id: id, size: size}
}

// chunk loads the chunk holding offset p: the one with the largest
// offset not above p.
func (r *chunkReader) chunk(p int64) error {
	if r.have && p >= r.off && p < r.off+int64(len(r.buf)) {
		return nil
	}
	var off int64
	var data []byte
	err := r.s.readConn().queryRow(r.ctx, `SELECT off, data FROM body_chunk WHERE body_id = ? AND off <= ? ORDER BY off DESC LIMIT 1`,
		r.id, p).Scan(&off, &data)
	if err != nil {
		err = mapErr(err)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("sqlstore: body %d has no chunk at %d: %w", r.id, p, err)
		}
		return fmt.Errorf("sqlstore: read body %d: %w", r.id, err)
	}
	if p >= off+int64(len(data)) {
		return fmt.Errorf("sqlstore: body %d: chunks end at %d before %d: %w", r.id, off+int64(len(data)), p, store.ErrNotFound)
	}
	r.off, r.buf, r.have = off, data, true
	return nil
}

// ReadAt implements io.ReaderAt.
func (r *chunkReader) ReadAt(p []byte, at int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readAt(p, at)
}

func (r *chunkReader) readAt(p []byte, at int64) (int, error) {
	if at < 0 {
		return 0, errors.New("sqlstore: negative offset")
	}
	n := 0
	for n < len(p) {
		if at >= r.size {
			return n, io.EOF
		}
		if err := r.chunk(at); err != nil {
			return n, err
		}
		c := copy(p[n:], r.buf[at-r.off:])
		n += c
		at += int64(c)
	}
	return n, nil
}

// Read implements io.Reader.
func (r *chunkReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pos >= r.size {
		return 0, io.EOF
	}
	// One chunk at most per call, like a file read.
	if err := r.chunk(r.pos); err != nil {
		return 0, err
	}
	n := copy(p, r.buf[r.pos-r.off:])
	r.pos += int64(n)
	return n, nil
}

// Seek implements io.Seeker.
func (r *chunkReader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("sqlstore: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("sqlstore: negative position")
	}
	r.pos = offset
	return offset, nil
}

// Stat-like size, for callers that ask.
func (r *chunkReader) Size() int64 { return r.size }

// Close implements io.Closer; the reader holds no connection.
func (r *chunkReader) Close() error {
	r.mu.Lock()
	r.buf, r.have = nil, false
	r.mu.Unlock()
	return nil
}

var _ store.BodyHome = (*Store)(nil)

// BodiesInDatabase implements store.BodyHome: true on PostgreSQL and
// with an S3 bucket, where a spooled body is copied and the file stays
// the caller's.
func (s *Store) BodiesInDatabase() bool { return s.objs != nil || s.d.name() == FlavorPostgreSQL }
