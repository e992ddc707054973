package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// fetch is FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9) with RFC 7162's
// MODSEQ item and CHANGEDSINCE / VANISHED modifiers.
func (m *msgCommands) fetch(s *session, c *command) error {
	req, err := parseFetch(c.args)
	if err != nil {
		return err
	}
	if req.vanished && (!c.uid || !s.qresync) {
		// RFC 7162 3.6: VANISHED only in UID FETCH, after ENABLE QRESYNC.
		return bad("VANISHED needs UID FETCH and ENABLE QRESYNC")
	}
	if req.vanished && !req.hasChanged {
		return bad("VANISHED needs CHANGEDSINCE")
	}
	seqs, err := s.seqsArg(req.set, c.uid)
	if err != nil {
		return err
	}
	if req.hasChanged || req.has(fetchModSeq) {
		s.enableCondstore() // RFC 7162 3.1: CONDSTORE enabling commands
	}
	if req.vanished {
		if err := s.writeVanishedEarlier(req); err != nil {
			return err
		}
	}
	seen, err := m.markSeen(s, req, seqs)
	if err != nil {
		return err
	}
	if req.has(fetchSaveDate) && len(seqs) > 0 {
		lo, hi := s.sel.msgs[seqs[0]-1].uid, uint32(0)
		for _, q := range seqs {
			u := s.sel.msgs[q-1].uid
			lo, hi = min(lo, u), max(hi, u)
		}
		if req.saveDates, err = s.srv.opts.Store.SaveDates(s.ctx, s.sel.id, lo, hi); err != nil {
			return err
		}
	}
	expunged := false
	// One slice of sections for every message of the command.
	sections := make([]sectionData, len(req.items))
	n, want := req.need(), req.bytes()
	// Header-only requests read missing headers a chunk at a time in one
	// store call instead of one per message.
	batch := n < needStructure && want != bytesAll && (n > needNothing || want > bytesNone)
	for i, q := range seqs {
		if batch && i%prefetchChunk == 0 {
			var chunk []uint32
			for _, cq := range seqs[i:min(i+prefetchChunk, len(seqs))] {
				if !req.hasChanged || s.sel.msg(cq).ModSeq > req.changedSince {
					chunk = append(chunk, cq)
				}
			}
			m.prefetchHeaders(s, chunk, n, want)
		}
		msg := s.sel.msg(q)
		if req.hasChanged && msg.ModSeq <= req.changedSince {
			continue // RFC 7162 3.3.1
		}
		clear(sections)
		err := m.fetchOne(s, c, req, q, &msg, seen[msg.UID], sections)
		if err != nil && isExpungedBody(err) {
			expunged = true
			continue
		}
		if err != nil {
			return err
		}
	}
	if expunged {
		// RFC 5530: some of the messages were expunged elsewhere; the
		// client hears about them after this command.
		return no("EXPUNGEISSUED", "Some messages were expunged and could not be fetched")
	}
	return nil
}

// writeVanishedEarlier answers UID FETCH ... (CHANGEDSINCE m VANISHED):
// "* VANISHED (EARLIER) uids" for the requested UIDs expunged after m
// (RFC 7162 3.6).
func (s *session) writeVanishedEarlier(req *fetchRequest) error {
	ch, err := s.srv.opts.Store.ChangesSince(s.ctx, s.sel.id, req.changedSince)
	if err != nil {
		return err
	}
	star := max(s.sel.maxUID(), ch.Mailbox.UIDNext-1)
	set := req.set
	if set.isSaved() {
		set = s.sel.savedNumSet() // RFC 5182 "$"
	}
	var uids []uint32
	for _, uid := range ch.Expunged {
		if set.contains(uid, star) {
			uids = append(uids, uid)
		}
	}
	if len(uids) > 0 {
		s.w.Untagged()
		s.w.Raw("VANISHED (EARLIER) ")
		s.w.Raw(imapmsg.CompactUIDs(sortUnique(uids)))
		s.w.CRLF()
	}
	return nil
}

// markSeen sets \Seen on the messages a non-PEEK body fetch reads (RFC
// 9051 6.4.5), in one store call, and returns the UIDs whose flags
// changed: their FETCH responses carry the new FLAGS.
func (m *msgCommands) markSeen(s *session, req *fetchRequest, seqs []uint32) (map[uint32]bool, error) {
	if !req.setsSeen() || s.sel.readOnly {
		return nil, nil
	}
	var uids []uint32
	for _, q := range seqs {
		msg := s.sel.msg(q)
		if hasFlag(msg.Flags, flagSeen) || s.sel.isGone(msg.UID) {
			continue
		}
		if req.hasChanged && msg.ModSeq <= req.changedSince {
			continue
		}
		uids = append(uids, msg.UID)
	}
	if len(uids) == 0 {
		return nil, nil
	}
	res, err := s.applyFlags(&store.FlagUpdate{UIDs: uids, Op: store.FlagsAdd, Flags: []string{flagSeen}})
	if err != nil {
		return nil, err
	}
	changed := make(map[uint32]bool, len(res.Changed))
	for _, mi := range res.Changed {
		changed[mi.UID] = true
	}
	return changed, nil
}

// sectionData is one section cut out of a message, ready to write.
// Binary sections (RFC 3516) are decoded in memory: data.
type sectionData struct {
	r    *io.SectionReader
	size int64
	data []byte
}

// fetchOne writes the FETCH response of one message. Everything that can
// fail before the response starts (opening the body, parsing it, reading
// header fields) is done first, so a failure leaves no half response.
// sections is zeroed room for the sections of req's items.
func (m *msgCommands) fetchOne(s *session, c *command, req *fetchRequest, seq uint32, msg *store.MessageInfo, seenChanged bool, sections []sectionData) error {
	n := req.need()
	body, err := m.open(s, msg, n, req.bytes())
	if err != nil {
		return err
	}
	defer body.Close()
	for i, it := range req.items {
		if it.kind == fetchBinary || it.kind == fetchBinarySize {
			data, err := body.st.Binary(body.r, it.section.Part)
			if errors.Is(err, imapmsg.ErrUnknownCTE) {
				return no("UNKNOWN-CTE", "Cannot decode the part's Content-Transfer-Encoding")
			}
			if err != nil {
				return fmt.Errorf("fetch %s: %w", it.name, err)
			}
			if p := it.partial; p != nil {
				data = data[min(p.Offset, int64(len(data))):]
				data = data[:min(p.Count, int64(len(data)))]
			}
			sections[i] = sectionData{data: data, size: int64(len(data))}
			continue
		}
		if it.kind != fetchSection {
			continue
		}
		sr, err := body.st.Extract(body.r, it.section)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", it.name, err)
		}
		if it.partial != nil {
			sr = it.partial.Apply(sr)
		}
		sections[i] = sectionData{r: sr, size: sr.Size()}
	}
	preview := ""
	if req.has(fetchPreview) {
		preview = imapmsg.Preview(body.r, body.st)
	}

	w := s.w
	w.Untagged()
	w.Uint(uint64(seq))
	w.Raw(" FETCH (")
	sep := ""
	if c.uid || req.has(fetchUID) {
		w.Raw("UID ")
		w.Uint(uint64(msg.UID))
		sep = " "
	}
	flagsDone, modSeqDone := false, false
	var copyErr error
	for i, it := range req.items {
		if it.kind == fetchUID {
			continue
		}
		w.Raw(sep)
		sep = " "
		switch it.kind {
		case fetchFlags:
			w.Raw("FLAGS ")
			w.Flags(s.shownFlags(msg))
			flagsDone = true
		case fetchInternalDate:
			w.Raw("INTERNALDATE ")
			w.Raw(`"` + msg.InternalDate.Format(internalDateLayout) + `"`)
		case fetchSaveDate:
			// RFC 8514 4.1: NIL for a message saved before Petrel kept
			// the date.
			w.Raw("SAVEDATE ")
			if d, ok := req.saveDates[msg.UID]; ok {
				w.Raw(`"` + d.Format(internalDateLayout) + `"`)
			} else {
				w.Raw("NIL")
			}
		case fetchEmailID:
			w.Raw("EMAILID (" + emailObjectID(msg.BodyID) + ")")
		case fetchPreview:
			// RFC 8970 3: NIL when the message has no text to show.
			w.Raw("PREVIEW ")
			w.NString(preview, true)
		case fetchThreadID:
			w.Raw("THREADID NIL") // RFC 8474 5.2: Petrel keeps no threads
		case fetchSize:
			w.Raw("RFC822.SIZE ")
			w.Uint(uint64(body.size))
		case fetchEnvelope:
			w.Raw("ENVELOPE ")
			w.Raw(body.st.Root.Envelope)
		case fetchBodyStructure:
			w.Raw("BODYSTRUCTURE ")
			w.Bytes(body.st.AppendBodyStructure(nil, true))
		case fetchBody:
			w.Raw("BODY ")
			w.Bytes(body.st.AppendBodyStructure(nil, false))
		case fetchModSeq:
			w.Raw("MODSEQ (")
			w.Uint(msg.ModSeq)
			w.Raw(")")
			modSeqDone = true
		case fetchSection:
			w.Raw(it.name)
			w.Byte(' ')
			if err := writeSection(w, sections[i]); err != nil && copyErr == nil {
				copyErr = err
			}
		case fetchBinary:
			// RFC 3516 4.2: literal8 only for content with NUL.
			w.Raw(it.name)
			w.Byte(' ')
			w.LiteralHeader(sections[i].size, bytes.IndexByte(sections[i].data, 0) >= 0)
			w.Bytes(sections[i].data)
		case fetchBinarySize:
			w.Raw(it.name)
			w.Byte(' ')
			w.Uint(uint64(sections[i].size))
		}
	}
	if seenChanged && !flagsDone {
		// RFC 9051 6.4.5: the flags changed; report them.
		w.Raw(sep + "FLAGS ")
		w.Flags(s.shownFlags(msg))
		flagsDone, sep = true, " "
	}
	if !modSeqDone && (req.hasChanged || (s.condstore && flagsDone)) {
		// RFC 7162 3.2.4 / 3.3.1: MODSEQ goes with FLAGS once CONDSTORE is on.
		w.Raw(sep + "MODSEQ (")
		w.Uint(msg.ModSeq)
		w.Raw(")")
	}
	w.Raw(")")
	w.CRLF()
	return copyErr
}

// internalDateLayout is RFC 9051 date-time ("date-day-fixed" has a
// leading space for one-digit days).
const internalDateLayout = "_2-Jan-2006 15:04:05 -0700"

// writeSection writes a section as a literal, streaming it from the body.
// If the body cannot be read to the end, the literal is padded with
// spaces so that the response stays well-formed, and the error returned.
func writeSection(w *respWriter, sd sectionData) error {
	w.LiteralHeader(sd.size, false)
	n, err := io.Copy(w, sd.r)
	if n < sd.size {
		pad := []byte(strings.Repeat(" ", 4096))
		for left := sd.size - n; left > 0 && w.Err() == nil; left -= int64(len(pad)) {
			w.Bytes(pad[:min(left, int64(len(pad)))])
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil && w.Err() == nil {
		return fmt.Errorf("reading message body: %w", err)
	}
	return nil
}
