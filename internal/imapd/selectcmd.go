package imapd

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/petrelmail/petrel/internal/imapd/imapmsg"
	"github.com/petrelmail/petrel/internal/store"
)

// systemFlags are the flags every mailbox supports (RFC 9051 2.3.2).
var systemFlags = []string{flagAnswered, flagFlagged, flagDeleted, flagSeen, flagDraft}

// qresyncParams are SELECT's QRESYNC parameters (RFC 7162 3.2.5).
type qresyncParams struct {
	uidValidity uint32
	modSeq      uint64
	knownUIDs   numSet // nil: all
}

// cmdSelect is SELECT and EXAMINE (RFC 9051 6.3.2, 6.3.3) with RFC 7162's
// CONDSTORE and QRESYNC parameters.
func cmdSelect(s *session, c *command) error {
	d := c.args
	d.SP()
	name := s.mailboxArg(d)
	var condstore bool
	var qr *qresyncParams
	if d.Accept(' ') {
		d.List(func() bool {
			switch upperASCII(d.Atom()) {
			case "CONDSTORE":
				condstore = true
			case "QRESYNC":
				if !s.qresync {
					// RFC 7162 3.2.5: QRESYNC must be ENABLEd first.
					d.fail("QRESYNC is not enabled")
					return false
				}
				qr = &qresyncParams{}
				d.SP()
				d.List(func() bool {
					qr.uidValidity = d.NzNumber()
					d.SP()
					qr.modSeq = d.Number64()
					if d.Accept(' ') && !d.Is('(') {
						qr.knownUIDs = d.SeqSet()
						d.Accept(' ')
					}
					if d.Is('(') {
						// seq-match-data: a hint Petrel does not need, since
						// it remembers every expunge.
						d.List(func() bool { d.SeqSet(); return true })
					}
					return d.Err() == nil
				})
			default:
				d.fail("Unknown SELECT parameter")
				return false
			}
			return d.Err() == nil
		})
	}
	endErr := d.End()
	if endErr != nil && endErr != d.refusal {
		return endErr
	}
	if s.sel != nil {
		// RFC 9051 6.3.2: selecting closes the selected mailbox, without
		// expunging, also when the new one cannot be selected; RFC 7162
		// 3.2.11 and RFC 9051 7.1: OK [CLOSED].
		s.deselect()
		if s.qresync || s.rev2 {
			s.w.Status("*", "OK", "CLOSED", "Previous mailbox closed")
		}
	}
	if endErr != nil {
		return endErr
	}
	if condstore {
		s.condstore = true
	}
	readOnly := c.name == "EXAMINE"
	ver, at := s.changeVersion(), time.Now()
	mb, err := s.srv.opts.Store.GetMailbox(s.ctx, s.user, name)
	if err != nil {
		return mailboxError(err)
	}
	msgs, err := s.srv.views.listing(s.ctx, s.srv.opts.Store, mb)
	if err != nil {
		return mailboxError(err)
	}
	v := &view{
		id:          mb.ID,
		name:        mb.Name,
		readOnly:    readOnly,
		uidValidity: mb.UIDValidity,
		uidNext:     mb.UIDNext,
		msgs:        msgs,
		shared:      true, // the listing cache's, or fresh: copied on change
		sets:        s.srv.views.sets,
		modSeq:      mb.HighestModSeq,
	}
	for i := range msgs {
		// A message committed between GetMailbox and the listing is
		// already known; the next sync must not report it again.
		v.modSeq = max(v.modSeq, msgs[i].modSeq)
		v.uidNext = max(v.uidNext, msgs[i].uid+1)
	}
	s.writeFlagsResponses(v)
	s.w.Untagged()
	s.w.Uint(uint64(len(msgs)))
	s.w.Raw(" EXISTS")
	s.w.CRLF()
	if !s.rev2 {
		// RFC 3501 6.3.1: RECENT is required in IMAP4rev1 (RFC 9051
		// dropped \Recent, so rev2 sessions neither see nor take it).
		// OK [UNSEEN] is the first unseen message.
		s.takeRecent(v, mb.RecentUID, v.uidNext)
		s.w.Untagged()
		s.w.Uint(uint64(v.recentCount()))
		s.w.Raw(" RECENT")
		s.w.CRLF()
		for i := range msgs {
			if !hasFlag(msgs[i].flagList(), flagSeen) {
				s.w.Untagged()
				s.w.Raw("OK [UNSEEN ")
				s.w.Uint(uint64(i + 1))
				s.w.Raw("] First unseen")
				s.w.CRLF()
				break
			}
		}
	}
	if s.rev2 {
		// RFC 9051 6.3.2: a LIST response with the mailbox's name and
		// attributes.
		if err := s.writeSelectedList(mb); err != nil {
			return err
		}
	}
	s.w.Untagged()
	s.w.Raw("OK [UIDVALIDITY ")
	s.w.Uint(uint64(v.uidValidity))
	s.w.Raw("] UIDs valid")
	s.w.CRLF()
	s.w.Untagged()
	s.w.Raw("OK [UIDNEXT ")
	s.w.Uint(uint64(v.uidNext))
	s.w.Raw("] Predicted next UID")
	s.w.CRLF()
	// RFC 7162 3.1.2.1: every SELECT of a server with CONDSTORE.
	s.w.Untagged()
	s.w.Raw("OK [HIGHESTMODSEQ ")
	s.w.Uint(v.modSeq)
	s.w.Raw("] Highest")
	s.w.CRLF()
	// RFC 8474 4.2: the mailbox's object id at every SELECT and EXAMINE.
	s.w.Untagged()
	s.w.Raw("OK [MAILBOXID (" + mailboxObjectID(mb.ID) + ")] Mailbox id")
	s.w.CRLF()
	if qr != nil && qr.uidValidity == v.uidValidity {
		if err := s.qresyncSelect(v, qr); err != nil {
			return err
		}
	}
	s.markPolled(v, ver, at)
	s.sel = v
	s.state = stateSelected
	if readOnly {
		return ok("READ-ONLY", c.name+" completed")
	}
	return ok("READ-WRITE", c.name+" completed")
}

// writeFlagsResponses writes FLAGS and OK [PERMANENTFLAGS] (RFC 9051
// 7.3.5): the system flags and the keywords in use; new keywords are
// allowed (\*).
func (s *session) writeFlagsResponses(v *view) {
	v.keywords = map[string]string{}
	var last *[]string
	for i := range v.msgs {
		if v.msgs[i].flags == last {
			continue // the same interned list as the message before
		}
		last = v.msgs[i].flags
		for _, f := range v.msgs[i].flagList() {
			if k := strings.ToLower(f); !strings.HasPrefix(f, `\`) && v.keywords[k] == "" {
				v.keywords[k] = f
			}
		}
	}
	s.writeFlagsList(v.keywords)
}

// writeFlagsList writes FLAGS and OK [PERMANENTFLAGS] with the system
// flags and keywords.
func (s *session) writeFlagsList(keywords map[string]string) {
	kw := make([]string, 0, len(keywords))
	for _, f := range keywords {
		kw = append(kw, f)
	}
	sort.Strings(kw)
	flags := append(append([]string{}, systemFlags...), kw...)
	s.w.Untagged()
	s.w.Raw("FLAGS ")
	s.w.Flags(flags)
	s.w.CRLF()
	s.w.Untagged()
	s.w.Raw("OK [PERMANENTFLAGS ")
	s.w.Flags(append(flags, `\*`))
	s.w.Raw("] Flags permitted")
	s.w.CRLF()
}

// takeRecent makes the messages from UID known (the mailbox's first not
// yet recent to any session) up to upTo \Recent in the session: claimed
// from the store for SELECT, so that no other session gets them, only
// shown for EXAMINE. \Recent is a courtesy: a store error costs it, not
// the command.
func (s *session) takeRecent(v *view, known, upTo uint32) {
	from := known
	if from < upTo && !v.readOnly {
		var err error
		if from, err = s.srv.opts.Store.ClaimRecent(s.ctx, v.id, upTo); err != nil {
			s.log.Warn("imap: \\Recent not recorded", "err", err)
			from = upTo
		}
	}
	v.addRecent(from, upTo)
}

// shownFlags are m's flags as the session shows them: with \Recent for a
// message recent in it.
func (s *session) shownFlags(m *store.MessageInfo) []string {
	if s.sel == nil || len(s.sel.recent) == 0 || !s.sel.isRecent(m.UID) {
		return m.Flags
	}
	return append(slices.Clip(m.Flags), flagRecent)
}

// noteKeywords sends FLAGS and PERMANENTFLAGS again when flags hold a
// keyword the client has not been told of: the mailbox's defined flags
// changed (RFC 9051 7.3.5; Dovecot does so on STORE and for others'
// changes, and imaptest expects it).
func (s *session) noteKeywords(flags []string) {
	v := s.sel
	if v == nil || v.keywords == nil {
		return
	}
	changed := false
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			continue
		}
		if k := strings.ToLower(f); v.keywords[k] == "" {
			v.keywords[k] = f
			changed = true
		}
	}
	if changed {
		s.writeFlagsList(v.keywords)
	}
}

// writeSelectedList writes the LIST response of a mailbox being selected.
func (s *session) writeSelectedList(mb *store.Mailbox) error {
	boxes, err := s.srv.opts.Store.ListMailboxes(s.ctx, s.user)
	if err != nil {
		return err
	}
	ents := listEntries(boxes, nil, "", []string{mb.Name}, listOptions{}, false)
	attrs := []string{}
	if len(ents) == 1 {
		attrs = ents[0].attrs(listOptions{}, false, s.rev2)
	}
	s.w.Untagged()
	s.w.Raw("LIST (")
	s.w.Raw(strings.Join(attrs, " "))
	s.w.Raw(`) "/" `)
	s.writeMailbox(mb.Name)
	s.w.CRLF()
	return nil
}

// qresyncSelect writes what changed since the client's modseq (RFC 7162
// 3.2.5.2): FETCH (UID FLAGS MODSEQ) for changed messages and VANISHED
// (EARLIER) for expunged ones.
func (s *session) qresyncSelect(v *view, qr *qresyncParams) error {
	ch, err := s.srv.opts.Store.ChangesSince(s.ctx, v.id, qr.modSeq)
	if err != nil {
		return err
	}
	known := func(uid uint32) bool {
		return qr.knownUIDs == nil || qr.knownUIDs.contains(uid, v.maxUID())
	}
	// The messages as listed for this SELECT that changed after the
	// client's modseq; later changes come with the next sync.
	for i := range v.msgs {
		if m := &v.msgs[i]; m.modSeq > qr.modSeq && known(m.uid) {
			s.writeFlagsFetch(uint32(i+1), v.msg(uint32(i+1)))
		}
	}
	var vanished []uint32
	for _, uid := range ch.Expunged {
		if known(uid) && v.seqOf(uid) == 0 {
			vanished = append(vanished, uid)
		}
	}
	if len(vanished) > 0 {
		s.w.Untagged()
		s.w.Raw("VANISHED (EARLIER) ")
		s.w.Raw(imapmsg.CompactUIDs(vanished))
		s.w.CRLF()
	}
	return nil
}

// deselect leaves the Selected state.
func (s *session) deselect() {
	s.sel = nil
	s.state = stateAuthenticated
}

// cmdClose is CLOSE (RFC 9051 6.4.1): expunge \Deleted messages silently
// (not in EXAMINE) and deselect.
func cmdClose(s *session, c *command) error {
	if err := c.args.End(); err != nil {
		return err
	}
	v := s.sel
	s.deselect()
	if !v.readOnly {
		uids, err := s.srv.opts.Store.ExpungeByID(s.ctx, v.id, nil)
		if err != nil {
			return mailboxError(err)
		}
		// No sync reports these (the view is gone), so drop their
		// cached bodies here.
		s.srv.msgs.forget(v.bodiesOf(uids))
	}
	return nil
}

// cmdUnselect is UNSELECT (RFC 3691): deselect without expunging.
func cmdUnselect(s *session, c *command) error {
	if err := c.args.End(); err != nil {
		return err
	}
	s.deselect()
	return nil
}
