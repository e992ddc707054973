package imapd

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
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

// A load keeps one copy of each value it meets again (a mailbox's From
// and To repeat a few hundred senders and recipients) while it has seen
// fewer than dedupValues distinct ones, or while at least a quarter of
// its values were repeats (Subject and Message-ID hardly repeat: the
// lookups stop there).
const dedupValues = 4096

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
// the text at data[offs[i]:], a uvarint length and the bytes. Entries
// share the text of an equal value (columnLoad), and data[0] is the
// empty value. Entries are only appended, under mu; a snapshot of the
// slices taken under mu stays valid without it.
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
	return columnText(cs.data, cs.offs[cs.i]), true
}

// columnText returns the value stored at data[off:] (never modified once
// visible to a snapshot: callers only read it; capped, so an append
// copies).
func columnText(data []byte, off uint32) []byte {
	if n := data[off]; n < 0x80 { // one length byte: values under 128 bytes
		start := int(off) + 1
		end := start + int(n)
		return data[start:end:end]
	}
	n, k := binary.Uvarint(data[off:])
	start := int(off) + k
	end := start + int(n)
	return data[start:end:end]
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
		col = &column{mailbox: v.id, field: f, uidValidity: v.uidValidity, next: 1, data: []byte{0}}
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.next <= v.maxUID() {
		// Room for the view's messages the column lacks, so that a
		// 100,000-message load does not leave a quarter of its UIDs and
		// offsets unused (append's growth).
		add := len(v.msgs) - v.firstAtOrAbove(col.next)
		col.uids = slices.Grow(col.uids, add)
		col.offs = slices.Grow(col.offs, add)
		if err := m.loadColumn(s, hs, col); err != nil {
			return nil, err
		}
	}
	m.columns.c.put(key, col, col.cost())
	return &colSnap{uids: col.uids, offs: col.offs, data: col.data, missing: col.missing}, nil
}

// columnLoad appends values to a column's text, sharing the text of a
// value it has already appended (see dedupValues).
type columnLoad struct {
	col          *column
	seen         map[string]uint32 // value -> its offset in col.data
	lookups, hit int
}

// add appends v (unless an equal value is there) and returns its offset.
func (l *columnLoad) add(v string) uint32 {
	if v == "" {
		return 0
	}
	col := l.col
	if l.seen != nil {
		if off, ok := l.seen[v]; ok {
			l.lookups++
			l.hit++
			return off
		}
		l.lookups++
	}
	off := uint32(len(col.data))
	col.data = binary.AppendUvarint(col.data, uint64(len(v)))
	col.data = append(col.data, v...)
	if l.seen != nil {
		switch {
		case len(l.seen) < dedupValues:
			l.seen[strings.Clone(v)] = off // v may be the store's buffer
		case l.hit*4 < l.lookups:
			l.seen = nil // the values hardly repeat
		}
	}
	return off
}

// loadColumn appends the messages with UIDs from col.next on, straight
// from the store's rows; bodies without stored fields are filled in
// afterwards and their entries pointed at their values.
func (m *msgCommands) loadColumn(s *session, hs store.HeaderSearch, col *column) error {
	base, baseData := len(col.uids), len(col.data) // the first entry and byte of this load
	var pendIdx []int                              // entries whose bodies have no stored fields
	var pendBody []int64
	var long []uint32 // UIDs whose value is not stored
	ld := &columnLoad{col: col, seen: make(map[string]uint32)}
	err := hs.HeaderColumn(s.ctx, col.mailbox, col.field, col.next, func(uid uint32, body int64, value string, ok, stored bool) error {
		var off uint32
		switch {
		case ok:
			off = ld.add(value)
		case !stored:
			pendIdx = append(pendIdx, len(col.uids))
			pendBody = append(pendBody, body)
		default:
			long = append(long, uid)
		}
		col.uids = append(col.uids, uid)
		col.offs = append(col.offs, off)
		return nil
	})
	if err == nil && len(pendIdx) > 0 {
		var filled map[int64]*store.HeaderFields
		if filled, err = m.backfill(s.ctx, s, hs, pendBody); err == nil {
			for p, i := range pendIdx {
				if hf := filled[pendBody[p]]; hf != nil && !hf.Long[col.field] {
					col.offs[i] = ld.add(hf.Value[col.field])
				} else {
					long = append(long, col.uids[i])
				}
			}
		}
	}
	if err != nil {
		// Drop this load: the entries before base are unchanged.
		col.uids, col.offs, col.data = col.uids[:base], col.offs[:base], col.data[:baseData]
		return err
	}
	if grown := len(col.data) - baseData; grown > 64<<10 && cap(col.data)-len(col.data) > grown/8 {
		// A large load: drop append's spare capacity (up to a quarter).
		col.data = slices.Clone(col.data)
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
