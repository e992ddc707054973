package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// newMsgCommands makes the caches FETCH and SEARCH share. New makes one
// per Server, so they live exactly as long as the server, without
// package state.
func newMsgCommands() *msgCommands {
	return &msgCommands{
		cache:   newStructCache(defaultCacheEntries, defaultCacheBytes),
		headers: newHeaderCache(defaultHeaderCacheBytes),
		columns: newColumnCache(defaultColumnCacheBytes),
	}
}

// messageCommands are FETCH, SEARCH, SORT and THREAD (and their UID
// forms) on m's caches, merged into the command table by commandTable.
func messageCommands(m *msgCommands) map[string]commandSpec {
	return map[string]commandSpec{
		"FETCH":      {states: selectedOnly, run: m.fetch, noExpunge: true},
		"UID FETCH":  {states: selectedOnly, run: m.fetch},
		"SEARCH":     {states: selectedOnly, run: m.search, noExpunge: true},
		"UID SEARCH": {states: selectedOnly, run: m.search},
		"SORT":       {states: selectedOnly, run: m.sort, noExpunge: true},
		"UID SORT":   {states: selectedOnly, run: m.sort},
		"THREAD":     {states: selectedOnly, run: m.thread, noExpunge: true},
		"UID THREAD": {states: selectedOnly, run: m.thread},
		// RFC 5267 4.3.5; the contexts are SEARCH's and SORT's.
		"CANCELUPDATE": {states: selectedOnly, run: cmdCancelUpdate},
	}
}

// msgCommands runs FETCH and SEARCH.
type msgCommands struct {
	cache   *structCache
	headers *headerCache
	columns *columnCache // stored header fields for SEARCH (search_columns.go)
	fts     ftsFloors    // full-text search (search_fts.go)
}

// forget drops the cached structures and header blocks of bodies whose
// messages were expunged. An entry never goes stale, but one whose
// message is gone would only age out: under a load that appends and
// expunges all day, the caches would fill to their bounds with mail
// nobody can fetch. A body another message still holds (COPY, MOVE) is
// parsed again when next fetched.
func (m *msgCommands) forget(bodies []int64) {
	if len(bodies) == 0 {
		return
	}
	m.cache.c.removeAll(bodies)
	m.headers.c.removeAll(bodies)
}

// need is how much of a message a FETCH or SEARCH needs.
type need int

const (
	needNothing   need = iota // flags, UID, size, dates
	needHeader                // ENVELOPE, header and whole-message sections
	needStructure             // BODYSTRUCTURE, BODY, part sections, body search
)

// openedBody is one message opened for FETCH or SEARCH.
type openedBody struct {
	r      io.ReaderAt // nil when only a cached structure was needed
	size   int64
	closer io.Closer
	st     *imapmsg.Structure
}

func (b *openedBody) Close() {
	if b.closer != nil {
		_ = b.closer.Close()
	}
}

// wantBytes is which of a message's bytes a command reads.
type wantBytes int

const (
	bytesNone   wantBytes = iota // none: a cached structure is enough
	bytesHeader                  // only the root's header block (HEADER, HEADER.FIELDS, header SEARCH)
	bytesAll                     // any of the message
)

// open returns what a command needs of msg: the cached structure when it
// is enough (ENVELOPE, BODYSTRUCTURE), the cached header block when only
// that is read, otherwise the stored body as an io.ReaderAt and its
// structure (parsed once and cached per body).
func (m *msgCommands) open(s *session, msg *store.MessageInfo, n need, want wantBytes) (*openedBody, error) {
	ob := &openedBody{size: msg.Size}
	if n == needNothing && want == bytesNone {
		return ob, nil
	}
	if st := m.cache.get(msg.BodyID); st != nil && (n < needStructure || !st.Shallow) {
		ob.st, ob.size = st, st.Size
		if want == bytesNone {
			return ob, nil
		}
	}
	if n < needStructure || ob.st != nil {
		if h, hst := m.headers.get(msg.BodyID); h != nil {
			if ob.st == nil {
				ob.st, ob.size = hst, hst.Size
			}
			if want == bytesNone || want == bytesHeader {
				// Header sections are windows on [0, BodyOffset), which
				// is exactly the cached block.
				ob.r = bytes.NewReader(h)
				return ob, nil
			}
		}
	}
	rc, err := s.srv.opts.Store.OpenBody(s.ctx, msg.BodyID)
	if err != nil {
		return nil, err
	}
	ob.closer = rc
	r, size, err := readerAt(rc, msg.Size)
	if err != nil {
		ob.Close()
		return nil, err
	}
	ob.r, ob.size = r, size
	if n == needNothing || (ob.st != nil && ob.st.Size == size) {
		m.cacheHeader(msg.BodyID, ob)
		return ob, nil
	}
	if n == needHeader {
		ob.st, err = imapmsg.ParseHeader(r, size)
	} else {
		ob.st, err = imapmsg.Parse(r, size)
	}
	if err != nil {
		ob.Close()
		return nil, err
	}
	m.cache.put(msg.BodyID, ob.st)
	m.cacheHeader(msg.BodyID, ob)
	return ob, nil
}

// cacheHeader keeps the header block of an opened body, if it has a
// structure of the same size and the block is not too large.
func (m *msgCommands) cacheHeader(id int64, ob *openedBody) {
	if ob.st == nil || ob.st.Size != ob.size {
		return
	}
	hlen := ob.st.Root.BodyOffset
	if hlen > maxCachedHeader {
		return
	}
	if h, _ := m.headers.get(id); h != nil {
		return
	}
	h := make([]byte, hlen)
	if n, _ := ob.r.ReadAt(h, 0); int64(n) != hlen {
		return // a read failure shows up where the bytes are used
	}
	m.headers.put(id, h, ob.st)
}

// readerAt gives random access to a stored body: the store's readers
// implement io.ReaderAt (a file or an in-memory body); anything else is
// read into memory. The size is the body's own, which RFC822.SIZE
// (MessageInfo.Size) should equal.
func readerAt(rc io.ReadCloser, size int64) (io.ReaderAt, int64, error) {
	if ra, ok := rc.(io.ReaderAt); ok {
		switch v := rc.(type) {
		case interface{ Size() int64 }: // *bytes.Reader
			return ra, v.Size(), nil
		case interface{ Stat() (fs.FileInfo, error) }: // *os.File
			if fi, err := v.Stat(); err == nil {
				return ra, fi.Size(), nil
			}
		}
		return ra, size, nil
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, 0, fmt.Errorf("reading body: %w", err)
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

// isExpungedBody reports a body that is gone because its message was
// expunged elsewhere (RFC 5530 EXPUNGEISSUED).
func isExpungedBody(err error) bool { return errors.Is(err, store.ErrNotFound) }
