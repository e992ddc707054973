package imapd

import (
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/petrelmail/petrel/internal/fts"
	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// Full-text search for SEARCH BODY and TEXT (FULL_TEXT_SEARCH,
// docs/search.md): the index names the bodies that may hold a needle,
// and only those, with the bodies it has not indexed yet, are read and
// confirmed. BODY compares imapmsg.IndexText's body text then, for
// every message alike, so an answer does not depend on how far the
// indexer has got.

// FullTextExtractor returns the text the full-text indexer stores for a
// message: its header fields and body text as BODY and TEXT compare
// them. The app gives it to fts.NewIndexer.
func FullTextExtractor(attachments bool) fts.Extractor {
	opt := imapmsg.TextOptions{Attachments: attachments}
	return func(r io.ReaderAt, size int64) (string, error) {
		st, err := imapmsg.Parse(r, size)
		if err != nil {
			return "", err
		}
		header, body, err := imapmsg.IndexText(r, st, opt)
		if err != nil {
			return "", err
		}
		return header + "\n" + strings.Join(body, "\n"), nil
	}
}

// ftsFilter is what the index said for one SEARCH.
type ftsFilter struct {
	opt       imapmsg.TextOptions
	unindexed map[int64]struct{}            // bodies the index has no row for
	found     map[string]map[int64]struct{} // needle -> bodies that may hold it; absent: read all
	// unindexed lists only the messages from the mailbox's floor up
	// (ftsFloors); found is nil unless the whole answer is consistent.
}

// fullTextFor asks the index about every BODY and TEXT needle of key; nil
// when full-text search is off or key has no such needle. A store error
// leaves every message to be read, with the same text rules.
func (m *msgCommands) fullTextFor(s *session, key *imapmsg.SearchKey) *ftsFilter {
	if !s.srv.opts.FullTextSearch {
		return nil
	}
	var needles []string
	textNeedles(key, &needles)
	if len(needles) == 0 {
		return nil
	}
	f := &ftsFilter{
		opt: imapmsg.TextOptions{Attachments: s.srv.opts.FullTextAttachments},
	}
	idx, ok := s.srv.opts.Store.(store.FullTextIndex)
	if !ok {
		return f
	}
	mailbox := s.sel.id
	e1, err := idx.FullTextEpoch(s.ctx)
	if err != nil {
		s.srv.log.Warn("imap search: full-text index unavailable, reading messages", "err", err)
		return f
	}
	fk := ftsFloorKey{mailbox: mailbox, attachments: f.opt.Attachments}
	floor := m.fts.get(fk, e1)
	f.unindexed = make(map[int64]struct{})
	lowest := uint32(0)
	err = idx.FullTextUnindexed(s.ctx, mailbox, f.opt.Attachments, floor, func(uid uint32, body int64) {
		f.unindexed[body] = struct{}{}
		if lowest == 0 {
			lowest = uid
		}
	})
	if err != nil {
		s.srv.log.Warn("imap search: full-text index unavailable, reading messages", "err", err)
		return f
	}
	found := make(map[string]map[int64]struct{})
	for _, n := range needles {
		if _, done := found[n]; done {
			continue
		}
		q, err := fts.Query(s.ctx, idx, n)
		if errors.Is(err, fts.ErrNoIndex) {
			continue
		}
		var ids []int64
		if err == nil {
			ids, err = idx.FullTextMatch(s.ctx, mailbox, q)
		}
		if err != nil {
			s.srv.log.Warn("imap search: full-text query failed, reading messages", "err", err)
			continue
		}
		found[n] = idSet(ids)
	}
	// Rows dropped (petrel index rebuild) while we asked: what the floor
	// said may no longer hold, so every message is read this time.
	if e2, err := idx.FullTextEpoch(s.ctx); err != nil || e2 != e1 {
		return f
	}
	f.found = found
	next := s.sel.maxUID() + 1
	if lowest != 0 && lowest < next {
		next = lowest
	}
	m.fts.put(fk, e1, next)
	return f
}

// ftsFloors remembers, per mailbox, a UID below which every message was
// indexed at an earlier SEARCH, so that only the messages from there up
// are asked about again: an index row goes only with its body (and then
// the message is gone) or with DropFullText, which changes the epoch;
// UIDs only grow.
type ftsFloors struct {
	mu sync.Mutex
	m  map[ftsFloorKey]ftsFloor
}

type ftsFloorKey struct {
	mailbox     int64
	attachments bool
}

type ftsFloor struct {
	epoch int64
	uid   uint32
}

// maxFTSFloors bounds the mailboxes remembered (about 32 bytes each).
const maxFTSFloors = 100000

// get returns the floor of key at epoch (1: ask about every message).
func (c *ftsFloors) get(key ftsFloorKey, epoch int64) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.m[key]; ok && f.epoch == epoch {
		return f.uid
	}
	return 1
}

func (c *ftsFloors) put(key ftsFloorKey, epoch int64, uid uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxFTSFloors {
		c.m = make(map[ftsFloorKey]ftsFloor)
	}
	c.m[key] = ftsFloor{epoch: epoch, uid: uid}
}

func idSet(ids []int64) map[int64]struct{} {
	out := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		out[id] = struct{}{}
	}
	return out
}

// textNeedles collects the values of the BODY and TEXT keys of k.
func textNeedles(k *imapmsg.SearchKey, out *[]string) {
	switch k.Op {
	case imapmsg.SearchBody, imapmsg.SearchText:
		*out = append(*out, k.Value)
	}
	for i := range k.Sub {
		textNeedles(&k.Sub[i], out)
	}
}

// headerOutsideText reports whether a key other than TEXT reads headers:
// with the index, TEXT reads only its candidates' headers, so a search
// needs no batch prefetch of every header for it.
func headerOutsideText(k *imapmsg.SearchKey) bool {
	switch k.Op {
	case imapmsg.SearchText:
		return false
	case imapmsg.SearchAnd, imapmsg.SearchOr, imapmsg.SearchNot:
		for i := range k.Sub {
			if headerOutsideText(&k.Sub[i]) {
				return true
			}
		}
		return false
	}
	return k.ReadsHeader()
}

// MayContain implements imapmsg.BodyIndex.
func (sm *searchMessage) MayContain(needle string) bool {
	f := sm.fts
	if f == nil {
		return true
	}
	if _, ok := f.unindexed[sm.info.BodyID]; ok {
		return true
	}
	found, ok := f.found[needle]
	if !ok {
		return true
	}
	_, ok = found[sm.info.BodyID]
	return ok
}

// IndexedBodyText implements imapmsg.BodyIndex.
func (sm *searchMessage) IndexedBodyText() ([]string, bool, error) {
	if sm.fts == nil {
		return nil, false, nil
	}
	r, st, err := sm.Content()
	if err != nil {
		return nil, true, err
	}
	_, body, err := imapmsg.IndexText(r, st, sm.fts.opt)
	return body, true, err
}
