package imapd

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// searchReturn is RFC 4731's RETURN options, with RFC 5182's SAVE and
// RFC 5267's CONTEXT, UPDATE and PARTIAL.
type searchReturn struct {
	esearch              bool // answer with ESEARCH
	min, max, all, count bool
	save                 bool // set "$" (RFC 5182)
	context              bool // a hint only (RFC 5267 4.2)
	update               bool // tell the client how the result changes (RFC 5267 4.3)
	// partial asks for results plo..phi (1-based, plo <= phi) of the
	// result list (RFC 5267 4.4).
	partial  bool
	plo, phi uint32
}

// quiet: SAVE alone suppresses the ESEARCH response (RFC 5182 1).
func (r *searchReturn) quiet() bool {
	return r.save && !r.min && !r.max && !r.all && !r.count && !r.partial && !r.update && !r.context
}

// search is SEARCH and UID SEARCH (RFC 9051 6.4.4) with RFC 4731 ESEARCH
// (RETURN options; IMAP4rev2 always answers ESEARCH, RFC 9051 7.3.4),
// RFC 7162 3.1.5 MODSEQ, RFC 5182 SAVE and "$", and RFC 5267 CONTEXT.
func (m *msgCommands) search(s *session, c *command) (err error) {
	d := c.args
	d.SP()
	ret := searchReturn{esearch: s.rev2, all: true}
	// The first word may be RETURN, then CHARSET; otherwise it is the
	// first search key.
	var first []imapmsg.Token
	word := searchWord(d)
	if strings.EqualFold(word, "RETURN") {
		d.SP()
		readReturnOptions(d, &ret)
		d.SP()
		word = searchWord(d)
	}
	charset := ""
	if strings.EqualFold(word, "CHARSET") {
		d.SP()
		charset = d.AString()
	} else if word != "" {
		first = append(first, imapmsg.Token{Kind: imapmsg.TokAtom, Value: word})
	}
	toks := append(first, searchTokens(d)...)
	if err := d.End(); err != nil {
		return err
	}
	if ret.update && s.sel.hasUpdate(c.tag) {
		return bad("Tag reuse: " + c.tag + " already has an UPDATE context") // RFC 5267 4.3
	}
	if ret.save {
		// RFC 5182 2.1: a SEARCH with SAVE that fails with NO empties
		// "$"; a BAD leaves it alone.
		defer func() {
			if err != nil && !isBad(err) {
				s.sel.saved = nil
			}
		}()
	}
	key, err := parseCriteria(charset, toks)
	if err != nil {
		return err
	}
	s.sel.fillSaved(key)
	useModSeq := key.HasModSeq()
	if useModSeq {
		s.enableCondstore() // RFC 7162 3.1: SEARCH MODSEQ enables CONDSTORE
	}
	found, err := m.matchAll(s, key)
	if err != nil {
		return err
	}
	if ret.save {
		s.sel.saveResult(ret, found, found)
	}
	if !ret.quiet() {
		s.writeSearch(c, ret, found, useModSeq)
	}
	if ret.update {
		s.addUpdate(c, m, key, found)
	}
	return nil
}

// isBad reports an error that ends in a tagged BAD.
func isBad(err error) bool {
	var r *result
	if errors.As(err, &r) {
		return r.kind == "BAD"
	}
	return isSyntaxError(err)
}

// readReturnOptions reads RFC 4731's RETURN list (also ESORT's, RFC
// 5267) over the defaults in ret: an empty list is RETURN (ALL).
func readReturnOptions(d *decoder, ret *searchReturn) {
	*ret = searchReturn{esearch: true}
	empty := true
	d.List(func() bool {
		empty = false
		switch upperASCII(d.Atom()) {
		case "MIN":
			ret.min = true
		case "MAX":
			ret.max = true
		case "ALL":
			ret.all = true
		case "COUNT":
			ret.count = true
		case "SAVE":
			ret.save = true
		case "CONTEXT":
			ret.context = true
		case "UPDATE":
			ret.update = true
		case "PARTIAL":
			// partial-range = nz-number ":" nz-number, either order.
			if ret.partial {
				d.fail("PARTIAL given twice")
				return false
			}
			ret.partial = true
			d.SP()
			lo := d.NzNumber()
			if !d.Accept(':') {
				d.fail("PARTIAL needs a range m:n")
				return false
			}
			hi := d.NzNumber()
			ret.plo, ret.phi = min(lo, hi), max(lo, hi)
		default:
			d.fail("Unknown RETURN option")
			return false
		}
		return d.Err() == nil
	})
	if ret.partial && ret.all {
		d.fail("PARTIAL and ALL together") // RFC 5267 4.4
	}
	if empty {
		ret.all = true // RFC 4731 3.1: RETURN () is RETURN (ALL)
	}
}

// parseCriteria checks the charset and parses the search criteria.
func parseCriteria(charset string, toks []imapmsg.Token) (*imapmsg.SearchKey, error) {
	switch strings.ToUpper(charset) {
	case "", "UTF-8", "US-ASCII":
	default:
		// RFC 9051 6.4.4: NO with the supported charsets.
		return nil, no("BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset")
	}
	key, err := imapmsg.ParseSearch(toks)
	if err != nil {
		return nil, bad(strings.TrimPrefix(err.Error(), imapmsg.ErrSearch.Error()+": "))
	}
	return key, nil
}

// matchAll returns the sequence numbers (ascending) of the selected
// mailbox's messages that match key. SEARCH, SORT and THREAD share it.
func (m *msgCommands) matchAll(s *session, key *imapmsg.SearchKey) ([]uint32, error) {
	v := s.sel
	key.Resolve(v.count(), v.maxUID())
	var found []uint32 // sequence numbers, ascending
	sm := &searchMessage{}
	cols := m.columnsFor(s, key)
	var saved map[uint32]time.Time
	if key.ReadsSaveDate() && v.count() > 0 {
		var err error
		if saved, err = s.srv.opts.Store.SaveDates(s.ctx, v.id, 1, v.maxUID()); err != nil {
			return nil, err
		}
	}
	batch := key.ReadsHeader()
	if cols != nil {
		batch = key.NeedsHeader()
	}
	ftx := m.fullTextFor(s, key)
	if ftx != nil && !headerOutsideText(key) {
		batch = false // TEXT reads the headers of its candidates only
	}
	for q := uint32(1); q <= v.count(); q++ {
		if batch && (q-1)%prefetchChunk == 0 {
			chunk := make([]uint32, 0, prefetchChunk)
			for cq := q; cq <= v.count() && len(chunk) < prefetchChunk; cq++ {
				chunk = append(chunk, cq)
			}
			m.prefetchHeaders(s, chunk, needHeader, bytesHeader)
		}
		msg := v.msg(q)
		if v.isGone(msg.UID) {
			continue // expunged elsewhere: its body may be gone
		}
		// One searchMessage for the whole loop: Match keeps no reference
		// to it, and 100,000 messages need no 100,000 allocations.
		*sm = searchMessage{m: m, s: s, seq: q, info: msg, cols: cols, fts: ftx, saved: saved}
		ok, err := imapmsg.Match(key, sm)
		sm.close()
		if err != nil && isExpungedBody(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok {
			found = append(found, q)
		}
	}
	return found, nil
}

// searchWord reads an atom if one comes next ("" before a string or a
// parenthesis).
func searchWord(d *decoder) string {
	if d.Err() != nil {
		return ""
	}
	return d.run(searchAtomChar)
}

// searchAtomChar: atoms of search criteria, which include sequence sets
// with "*".
func searchAtomChar(c byte) bool { return isAtomChar(c) || c == '*' }

// searchTokens reads the search criteria up to the end of the line as
// tokens: parentheses, atoms (numbers, sequence sets, keywords) and
// strings (quoted or literal).
func searchTokens(d *decoder) []imapmsg.Token {
	var toks []imapmsg.Token
	for d.Err() == nil && !d.AtEOL() {
		switch d.peek() {
		case ' ':
			d.next()
		case '(':
			d.next()
			toks = append(toks, imapmsg.Token{Kind: imapmsg.TokOpen})
		case ')':
			d.next()
			toks = append(toks, imapmsg.Token{Kind: imapmsg.TokClose})
		case '"', '{':
			toks = append(toks, imapmsg.Token{Kind: imapmsg.TokString, Value: d.String()})
		default:
			a := d.run(searchAtomChar)
			if a == "" {
				d.fail("Bad search criteria")
				return nil
			}
			toks = append(toks, imapmsg.Token{Kind: imapmsg.TokAtom, Value: a})
		}
	}
	return toks
}

// writeSearch answers with SEARCH (IMAP4rev1) or ESEARCH.
func (s *session) writeSearch(c *command, ret searchReturn, seqs []uint32, useModSeq bool) {
	v := s.sel
	num := func(q uint32) uint32 {
		if c.uid {
			return v.msg(q).UID
		}
		return q
	}
	w := s.w
	if !ret.esearch {
		w.Untagged()
		w.Raw("SEARCH")
		var highest uint64
		for _, q := range seqs {
			w.Byte(' ')
			w.Uint(uint64(num(q)))
			highest = max(highest, v.msg(q).ModSeq)
		}
		if useModSeq && len(seqs) > 0 {
			// RFC 7162 3.1.5: the highest modseq of the messages found.
			w.Raw(" (MODSEQ ")
			w.Uint(highest)
			w.Raw(")")
		}
		w.CRLF()
		return
	}
	// RFC 4731 3.1: * ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set] [COUNT n].
	w.Untagged()
	w.Raw("ESEARCH (TAG ")
	w.String(c.tag)
	w.Raw(")")
	if c.uid {
		w.Raw(" UID")
	}
	var highest uint64
	if len(seqs) > 0 {
		if ret.min {
			w.Raw(" MIN ")
			w.Uint(uint64(num(seqs[0])))
			highest = max(highest, v.msg(seqs[0]).ModSeq)
		}
		if ret.max {
			w.Raw(" MAX ")
			w.Uint(uint64(num(seqs[len(seqs)-1])))
			highest = max(highest, v.msg(seqs[len(seqs)-1]).ModSeq)
		}
		if ret.all {
			nums := make([]uint32, len(seqs))
			for i, q := range seqs {
				nums[i] = num(q)
			}
			w.Raw(" ALL ")
			w.Raw(imapmsg.CompactUIDs(nums))
		}
		if ret.partial {
			for _, q := range partialOf(ret, seqs) {
				highest = max(highest, v.msg(q).ModSeq)
			}
		}
		if ret.all || ret.count {
			for _, q := range seqs {
				highest = max(highest, v.msg(q).ModSeq)
			}
		}
	}
	if ret.partial {
		part := partialOf(ret, seqs)
		nums := make([]uint32, len(part))
		for i, q := range part {
			nums[i] = num(q)
		}
		s.writePartial(ret, imapmsg.CompactUIDs(nums))
	}
	if ret.count {
		w.Raw(" COUNT ")
		w.Uint(uint64(len(seqs)))
	}
	if useModSeq && len(seqs) > 0 {
		// RFC 7162 3.1.5 with RFC 4731: the highest modseq of what was returned.
		w.Raw(" MODSEQ ")
		w.Uint(highest)
	}
	w.CRLF()
}

// searchMessage is the imapmsg.MessageView of one message of the
// selected mailbox: metadata from the view, bytes opened on first need.
type searchMessage struct {
	m    *msgCommands
	s    *session
	seq  uint32
	info store.MessageInfo
	body *openedBody
	cols *searchColumns // nil: every header key reads the header
	fts  *ftsFilter     // nil: full-text search is off
	// saved are the mailbox's save dates when the search has a SAVED*
	// key (RFC 8514 4.2).
	saved map[uint32]time.Time
}

var (
	_ imapmsg.MessageView = (*searchMessage)(nil)
	_ imapmsg.FieldSource = (*searchMessage)(nil)
)

var _ imapmsg.SaveDateSource = (*searchMessage)(nil)

var _ imapmsg.ObjectIDSource = (*searchMessage)(nil)

// EmailID implements imapmsg.ObjectIDSource (RFC 8474).
func (sm *searchMessage) EmailID() string { return emailObjectID(sm.info.BodyID) }

// SaveDate implements imapmsg.SaveDateSource.
func (sm *searchMessage) SaveDate() (time.Time, bool) {
	t, ok := sm.saved[sm.info.UID]
	return t, ok
}

// searchColumns are the stored header fields one SEARCH uses.
type searchColumns [imapmsg.NumStoredFields]*colSnap

// columnsFor loads the stored header columns that key can use; nil when
// it uses none or the store keeps none. A store error leaves the search
// to the header blocks, which are the truth.
func (m *msgCommands) columnsFor(s *session, key *imapmsg.SearchKey) *searchColumns {
	hs, ok := s.srv.opts.Store.(store.HeaderSearch)
	fields := key.StoredFields()
	if !ok || len(fields) == 0 {
		return nil
	}
	cols := &searchColumns{}
	for _, f := range fields {
		snap, err := m.snapshot(s, hs, store.HeaderField(f))
		if err != nil {
			s.srv.log.Warn("imap search: stored header fields unavailable, reading headers", "err", err)
			return nil
		}
		cols[f] = snap
	}
	return cols
}

// StoredField implements imapmsg.FieldSource from the loaded columns.
func (sm *searchMessage) StoredField(f imapmsg.StoredField) ([]byte, bool) {
	if sm.cols == nil || sm.cols[f] == nil {
		return nil, false
	}
	return sm.cols[f].value(sm.info.UID)
}

func (sm *searchMessage) SeqNum() uint32          { return sm.seq }
func (sm *searchMessage) UID() uint32             { return sm.info.UID }
func (sm *searchMessage) Flags() []string         { return sm.s.shownFlags(&sm.info) }
func (sm *searchMessage) Size() int64             { return sm.info.Size }
func (sm *searchMessage) InternalDate() time.Time { return sm.info.InternalDate }
func (sm *searchMessage) ModSeq() uint64          { return sm.info.ModSeq }

// Header reads the header block: only the header's bytes are read, from
// the header cache when it has them. The block must not be modified.
func (sm *searchMessage) Header() ([]byte, error) {
	if h, _ := sm.m.headers.get(sm.info.BodyID); h != nil {
		return h, nil
	}
	if err := sm.load(needHeader); err != nil {
		return nil, err
	}
	h := make([]byte, sm.body.st.Root.BodyOffset)
	if _, err := sm.body.r.ReadAt(h, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	return h, nil
}

// Content opens the whole message with its structure.
func (sm *searchMessage) Content() (io.ReaderAt, *imapmsg.Structure, error) {
	if err := sm.load(needStructure); err != nil {
		return nil, nil, err
	}
	return sm.body.r, sm.body.st, nil
}

func (sm *searchMessage) load(n need) error {
	if sm.body != nil && (n < needStructure || !sm.body.st.Shallow) {
		return nil
	}
	sm.close()
	b, err := sm.m.open(sm.s, &sm.info, n, bytesAll)
	if err != nil {
		return err
	}
	sm.body = b
	return nil
}

func (sm *searchMessage) close() {
	if sm.body != nil {
		sm.body.Close()
		sm.body = nil
	}
}
