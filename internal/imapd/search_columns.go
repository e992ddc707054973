package imapd

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// Bounds of the header column cache: bytes over all columns (a
// 100,000-message mailbox's Subject column is some 5 MB), and what one
// message costs beyond its text (UID and offset).
const (
	defaultColumnCacheBytes = 16 << 20
	columnEntryCost         = 8
	columnOverhead          = 256
	backfillChunk           = 256
)

// columnCache keeps, per mailbox and stored header field, the field's
// search text for every message (store.HeaderSearch), shared by the
// sessions of a Server, so that SEARCH SUBJECT, FROM, TO, CC, BCC and
// HEADER Message-ID compare in memory instead of reading each header
// block. Bodies never change and UIDs are never reused in a mailbox, so
// a column only grows: a search first loads the messages with UIDs above
// those it has. Expunged messages stay in it until it is evicted; SEARCH
// only looks up the UIDs of its view.
type columnCache struct{ c *lru[*column] }

// column is one mailbox's values of one field, in UID order: value i is
// data[offs[i]:offs[i+1]]. Entries are only appended, under mu; a
// snapshot of the slices taken under mu stays valid without it.
type column struct {
	mu          sync.Mutex
	mailbox     int64
	field       store.HeaderField
	uidValidity uint32
	next        uint32 // every UID below next is in the column (or expunged)
	uids        []uint32
	offs        []uint32
	data        []byte
	missing     map[uint32]bool // UIDs whose value is not stored (too long): read the header
}

func (col *column) cost() int64 {
	return int64(len(col.data)) + columnEntryCost*int64(len(col.uids)) + columnOverhead
}

// colSnap is a read-only view of a column at one moment.
type colSnap struct {
	uids    []uint32
	offs    []uint32
	data    []byte
	missing map[uint32]bool
	i       int // cursor: lookups come in ascending UID order
}

// value returns the stored text of uid, the column's own bytes (never
// modified once visible to a snapshot: callers only read them); ok false
// when the column has no usable value for it.
func (cs *colSnap) value(uid uint32) ([]byte, bool) {
	for cs.i < len(cs.uids) && cs.uids[cs.i] < uid {
		cs.i++
	}
	if cs.i == len(cs.uids) || cs.uids[cs.i] != uid {
		// Out of order (never in SEARCH): search the whole column.
		j, found := slices.BinarySearch(cs.uids, uid)
		if !found {
			return nil, false
		}
		cs.i = j
	}
	if cs.missing[uid] {
		return nil, false
	}
	return cs.data[cs.offs[cs.i]:cs.offs[cs.i+1]:cs.offs[cs.i+1]], true
}

func newColumnCache(maxBytes int64) *columnCache {
	return &columnCache{c: newLRU[*column](0, maxBytes)}
}

// columnKey is the cache id of (mailbox, field).
func columnKey(mailbox int64, f store.HeaderField) int64 {
	return mailbox*int64(store.NumHeaderFields) + int64(f)
}

// size returns the number of cached columns and their bytes.
func (c *columnCache) size() (int, int64) { return c.c.size() }

// snapshot returns field's column of the selected mailbox covering every
// UID up to maxUID, loading what it lacks from the store (and computing
// and storing the fields of bodies that have none).
func (m *msgCommands) snapshot(s *session, hs store.HeaderSearch, f store.HeaderField) (*colSnap, error) {
	v := s.sel
	key := columnKey(v.id, f)
	col, _ := m.columns.c.get(key)
	if col == nil || col.uidValidity != v.uidValidity {
		col = &column{mailbox: v.id, field: f, uidValidity: v.uidValidity, next: 1, offs: []uint32{0}}
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.next <= v.maxUID() {
		if err := m.loadColumn(s, hs, col); err != nil {
			return nil, err
		}
	}
	m.columns.c.put(key, col, col.cost())
	return &colSnap{uids: col.uids, offs: col.offs, data: col.data, missing: col.missing}, nil
}

// loadColumn appends the messages with UIDs from col.next on, straight
// from the store's rows; bodies without stored fields are filled in
// afterwards and their values spliced into the new part of the column.
func (m *msgCommands) loadColumn(s *session, hs store.HeaderSearch, col *column) error {
	base := len(col.uids) // the first entry of this load
	var pendIdx []int     // entries whose bodies have no stored fields
	var pendBody []int64
	var long []uint32 // UIDs whose value is not stored
	err := hs.HeaderColumn(s.ctx, col.mailbox, col.field, col.next, func(uid uint32, body int64, value string, ok, stored bool) error {
		switch {
		case ok:
			col.data = append(col.data, value...)
		case !stored:
			pendIdx = append(pendIdx, len(col.uids))
			pendBody = append(pendBody, body)
		default:
			long = append(long, uid)
		}
		col.uids = append(col.uids, uid)
		col.offs = append(col.offs, uint32(len(col.data)))
		return nil
	})
	if err == nil && len(pendIdx) > 0 {
		var filled map[int64]*store.HeaderFields
		if filled, err = m.backfill(s.ctx, s, hs, pendBody); err == nil {
			long = append(long, col.splice(base, pendIdx, pendBody, filled)...)
		}
	}
	if err != nil {
		// Drop this load: the entries before base are unchanged.
		col.uids, col.offs = col.uids[:base], col.offs[:base+1]
		col.data = col.data[:col.offs[base]]
		return err
	}
	if len(long) > 0 {
		// Replaced, never modified: snapshots read it unlocked.
		missing := make(map[uint32]bool, len(col.missing)+len(long))
		for u := range col.missing {
			missing[u] = true
		}
		for _, u := range long {
			missing[u] = true
		}
		col.missing = missing
	}
	if n := len(col.uids); n > base {
		col.next = max(col.next, col.uids[n-1]+1)
	}
	return nil
}

// splice rebuilds the column's text from entry base on, with the values
// of the entries at pendIdx (bodies pendBody) taken from filled; it
// returns the UIDs of those that still have none. Only bytes after the
// older entries are rewritten, so snapshots of those stay valid.
func (col *column) splice(base int, pendIdx []int, pendBody []int64, filled map[int64]*store.HeaderFields) []uint32 {
	var long []uint32
	from := col.offs[base]
	seg := make([]byte, 0, len(col.data)-int(from)+64*len(pendIdx))
	offs := make([]uint32, 0, len(col.uids)-base)
	p := 0
	for i := base; i < len(col.uids); i++ {
		if p < len(pendIdx) && pendIdx[p] == i {
			if hf := filled[pendBody[p]]; hf != nil && !hf.Long[col.field] {
				seg = append(seg, hf.Value[col.field]...)
			} else {
				long = append(long, col.uids[i])
			}
			p++
		} else {
			seg = append(seg, col.data[col.offs[i]:col.offs[i+1]]...)
		}
		offs = append(offs, from+uint32(len(seg)))
	}
	col.data = append(col.data[:from], seg...)
	copy(col.offs[base+1:], offs)
	return long
}

// backfill computes the fields of bodies stored without them (delivered
// before the store kept them, or by a writer without an indexer), from
// their header blocks, and stores them. Bodies that cannot be read are
// left out (their messages are searched in the header, which reports
// the error).
func (m *msgCommands) backfill(ctx context.Context, s *session, hs store.HeaderSearch, ids []int64) (map[int64]*store.HeaderFields, error) {
	bb, ok := s.srv.opts.Store.(bodyBatcher)
	if !ok {
		return nil, nil
	}
	out := make(map[int64]*store.HeaderFields, len(ids))
	for len(ids) > 0 {
		n := min(backfillChunk, len(ids))
		chunk := make(map[int64]*store.HeaderFields, n)
		err := bb.ReadBodies(ctx, ids[:n], func(id int64, r io.ReaderAt, size int64) error {
			st, err := imapmsg.ParseHeader(r, size)
			if err != nil {
				return nil
			}
			h := make([]byte, st.Root.BodyOffset)
			if _, err := r.ReadAt(h, 0); err != nil && !errors.Is(err, io.EOF) {
				return nil
			}
			chunk[id] = headerFields(h)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := hs.PutHeaderFields(ctx, chunk); err != nil {
			return nil, err
		}
		for id, f := range chunk {
			out[id] = f
		}
		ids = ids[n:]
	}
	if len(out) > 0 {
		s.srv.log.Debug("imap search: stored header fields of older messages", "bodies", len(out))
	}
	return out, nil
}

// headerFields is the store.HeaderIndexer of IMAP: SEARCH's view of the
// header fields it keeps (imapmsg.SearchFields).
func headerFields(header []byte) *store.HeaderFields {
	vals := imapmsg.SearchFields(header)
	hf := &store.HeaderFields{}
	for i, v := range vals {
		if len(v) > store.MaxHeaderFieldLen {
			hf.Long[i] = true
			continue
		}
		hf.Value[i] = v
	}
	return hf
}

// HeaderIndexer returns the function a store uses to compute the
// searchable header fields at delivery and APPEND
// (sqlstore.Store.SetHeaderIndexer); the app wires it.
func HeaderIndexer() store.HeaderIndexer { return headerFields }
