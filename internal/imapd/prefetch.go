package imapd

import (
	"context"
	"io"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// prefetchChunk is how many messages FETCH and SEARCH look ahead: their
// missing headers are read in one store call, then served from the
// header cache (far below its bound, so they are still there when used).
const prefetchChunk = 256

// bodyBatcher is a Store that reads many bodies in one call
// (store.BodyBatch; *sqlstore.Store is one).
type bodyBatcher interface {
	ReadBodies(ctx context.Context, ids []int64, fn func(id int64, r io.ReaderAt, size int64) error) error
}

// needsStore reports whether open(msg, n, want) would read the store.
func (m *msgCommands) needsStore(msg *store.MessageInfo, n need, want wantBytes) bool {
	switch {
	case n == needNothing && want == bytesNone:
		return false
	case want == bytesAll || n == needStructure:
		return true // not what the header cache holds; no batching
	}
	if h, _ := m.headers.get(msg.BodyID); h != nil {
		return false
	}
	return want == bytesHeader || m.cache.get(msg.BodyID) == nil
}

// prefetchHeaders reads, in one store call, the bodies of the messages
// among seqs whose header block or structure open would otherwise read
// one by one, and caches their headers and shallow structures. Errors
// are left to the per-message path, which reads and reports them.
func (m *msgCommands) prefetchHeaders(s *session, seqs []uint32, n need, want wantBytes) {
	bb, ok := s.srv.opts.Store.(bodyBatcher)
	if !ok {
		return
	}
	var ids []int64
	for _, q := range seqs {
		msg := s.sel.msg(q)
		if !s.sel.isGone(msg.UID) && m.needsStore(&msg, n, want) {
			ids = append(ids, msg.BodyID)
		}
	}
	if len(ids) < 2 {
		return // the per-message path costs the same
	}
	_ = bb.ReadBodies(s.ctx, ids, func(id int64, r io.ReaderAt, size int64) error {
		st := m.cache.get(id)
		if st == nil || st.Size != size {
			var err error
			if st, err = imapmsg.ParseHeader(r, size); err != nil {
				return nil
			}
			m.cache.put(id, st)
		}
		m.cacheHeader(id, &openedBody{r: r, size: size, st: st})
		return nil
	})
}
